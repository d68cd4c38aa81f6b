-- The business rules, each defined once. Every query of the job (the sweep, the monitoring
-- query, remediation) is written in terms of these, so they can never disagree.
--
-- They live in a schema PostgREST does not expose. They are plain SQL functions without a SET
-- clause on purpose: that lets the planner inline them into the calling query and use the
-- indexes (a SET search_path would stop inlining). Every name inside is schema-qualified.

create schema if not exists certexpiry;
revoke all on schema certexpiry from public;
grant usage on schema certexpiry to service_role;

-- Today, in the organisation's time zone.
create or replace function certexpiry.org_today(p_timezone text, p_now timestamptz default now())
returns date
language sql stable
as $$ select (p_now at time zone p_timezone)::date $$;

-- Expired: a certification is valid through its expiry date.
create or replace function certexpiry.is_expired(p_expiry_date date, p_today date)
returns boolean
language sql immutable
as $$ select p_expiry_date < p_today $$;

-- Days left until expiry (0 on the expiry date itself).
create or replace function certexpiry.days_left(p_expiry_date date, p_today date)
returns integer
language sql immutable
as $$ select p_expiry_date - p_today $$;

-- Reminder offset N is due when 0 <= days left <= N.
create or replace function certexpiry.reminder_due(p_expiry_date date, p_today date, p_offset integer)
returns boolean
language sql immutable
as $$ select p_expiry_date >= p_today and p_expiry_date - p_today <= p_offset $$;

create or replace function certexpiry.reminder_action(p_offset integer)
returns text
language sql immutable
as $$ select 'reminder_' || p_offset || 'd' $$;

-- The record of an effect already applied for this expiry date (empty if none). A set-returning
-- function used as `not exists (select from certexpiry.recorded(...))`: unlike a boolean
-- function wrapping EXISTS, the planner inlines it, so the check is an index probe.
create or replace function certexpiry.recorded(p_certification_id uuid, p_action text, p_expiry_date date)
returns setof public.certification_idempotency_log
language sql stable
as $$
    select l.* from public.certification_idempotency_log l
    where l.certification_id = p_certification_id
      and l.action = p_action
      and l.expiry_date = p_expiry_date
$$;

-- Active certifications with an effect still to apply today: an auto-pause, or a reminder
-- offset that is due and not yet sent or superseded.
create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.expiry_date <= p_today + (select coalesce(max(n), 0) from unnest(p_reminder_days) n)
      and (
            (certexpiry.is_expired(c.expiry_date, p_today)
             and not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
         or exists (
                select 1 from unnest(p_reminder_days) n
                where certexpiry.reminder_due(c.expiry_date, p_today, n)
                  and not exists (
                      select from certexpiry.recorded(c.id, certexpiry.reminder_action(n), c.expiry_date)))
      )
$$;

-- Missed auto-pauses: expired, not paused, and no auto_pause record for that expiry date.
create or replace function certexpiry.missed_auto_pauses(p_today date)
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date
    from public.certifications c
    where c.status <> 'paused'
      and certexpiry.is_expired(c.expiry_date, p_today)
      and not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date))
$$;

-- Auto-pause the given certifications where the rule holds: certification paused, its mentor
-- paused with reason certification_expired, an auto_pause record and a pause notice, all in
-- the caller's transaction. Set-based; returns counts.
create or replace function certexpiry.apply_auto_pauses(p_run_id uuid, p_today date, p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_counts jsonb;
begin
    with expired as (
        select c.id, c.peer_mentor_id, c.expiry_date
        from public.certifications c
        where c.id = any (p_certification_ids)
          and c.status = 'active'
          and certexpiry.is_expired(c.expiry_date, p_today)
        order by c.id
        for update
    ), recorded as (
        insert into public.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select e.id, 'auto_pause', e.expiry_date, p_run_id from expired e
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), paused as (
        update public.certifications c
        set status = 'paused', paused_at = now(), updated_at = now()
        from recorded r
        where c.id = r.certification_id
        returning c.id, c.peer_mentor_id, c.expiry_date
    ), mentors as (
        update public.peer_mentors m
        set status = 'paused', paused_at = now(), paused_reason = 'certification_expired', updated_at = now()
        where m.id in (select p.peer_mentor_id from paused p) and m.status <> 'paused'
        returning m.id
    ), notices as (
        insert into public.notification_outbox (peer_mentor_id, certification_id, kind, payload)
        select p.peer_mentor_id, p.id, 'pause_notice',
               jsonb_build_object('reason', 'certification_expired', 'expiry_date', p.expiry_date)
        from paused p
        returning 1
    )
    select jsonb_build_object(
        'certifications_paused', (select count(*) from paused),
        'mentors_paused', (select count(*) from mentors),
        'notices_queued', (select count(*) from notices)
    )
    into v_counts;
    return v_counts;
end
$$;

-- Reminders for the given certifications: at most one per certification per night, the
-- smallest due offset; larger due offsets not yet sent are recorded as superseded so that they
-- are never sent later (no burst of stale reminders after downtime).
create or replace function certexpiry.apply_reminders(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_counts jsonb;
begin
    with candidates as (
        select c.id, c.peer_mentor_id, c.expiry_date, certexpiry.days_left(c.expiry_date, p_today) as days_left
        from public.certifications c
        where c.id = any (p_certification_ids) and c.status = 'active'
    ), due as (
        select cand.*, n as offset_days
        from candidates cand cross join lateral unnest(p_reminder_days) n
        where certexpiry.reminder_due(cand.expiry_date, p_today, n)
    ), smallest as (
        select distinct on (d.id) d.* from due d order by d.id, d.offset_days
    ), sent as (
        insert into public.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select s.id, certexpiry.reminder_action(s.offset_days), s.expiry_date, p_run_id from smallest s
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), superseded as (
        insert into public.certification_idempotency_log (certification_id, action, expiry_date, run_id, outcome)
        select d.id, certexpiry.reminder_action(d.offset_days), d.expiry_date, p_run_id, 'superseded'
        from due d join smallest s on s.id = d.id
        where d.offset_days > s.offset_days
        on conflict on constraint certification_idempotency_log_once do nothing
        returning 1
    ), queued as (
        insert into public.notification_outbox (peer_mentor_id, certification_id, kind, payload)
        select s.peer_mentor_id, s.id, 'reminder',
               jsonb_build_object('offset_days', s.offset_days, 'days_left', s.days_left,
                                  'expiry_date', s.expiry_date)
        from smallest s join sent on sent.certification_id = s.id
        returning 1
    )
    select jsonb_build_object(
        'reminders_queued', (select count(*) from queued),
        'reminders_superseded', (select count(*) from superseded)
    )
    into v_counts;
    return v_counts;
end
$$;

-- Apply every effect due today to the given certifications. One place for "what happens".
create or replace function certexpiry.apply_effects(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language sql
as $$
    select certexpiry.apply_auto_pauses(p_run_id, p_today, p_certification_ids)
        || certexpiry.apply_reminders(p_run_id, p_today, p_reminder_days, p_certification_ids)
$$;

-- Apply every effect due today to the given certifications without letting one bad row (a
-- constraint, a trigger, a lock timeout) hold back the others: set-based in a subtransaction,
-- and if that fails, each certification alone. Returns the counts, `failures` and
-- `failures_detail` (certification_id, peer_mentor_id, operation, sqlstate, message). The sweep
-- and remediation both use it, so both isolate failures the same way.
create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_counts jsonb;
    v_failures jsonb := '[]'::jsonb;
    v_row record;
    v_sqlstate text;
    v_message text;
begin
    begin
        v_counts := certexpiry.apply_effects(p_run_id, p_today, p_reminder_days, p_certification_ids);
    exception when others then
        v_counts := '{}'::jsonb;
        for v_row in
            select c.id, c.peer_mentor_id, c.expiry_date from public.certifications c
            where c.id = any (p_certification_ids) order by c.id
        loop
            begin
                v_counts := certexpiry.sum_counts(v_counts,
                    certexpiry.apply_effects(p_run_id, p_today, p_reminder_days, array[v_row.id]));
            exception when others then
                get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text;
                v_failures := v_failures || jsonb_build_object(
                    'certification_id', v_row.id,
                    'peer_mentor_id', v_row.peer_mentor_id,
                    'operation', case when certexpiry.is_expired(v_row.expiry_date, p_today)
                                      then 'auto_pause' else 'reminder' end,
                    'sqlstate', v_sqlstate,
                    'message', left(v_message, 500));
            end;
        end loop;
    end;
    return v_counts || jsonb_build_object(
        'failures', jsonb_array_length(v_failures), 'failures_detail', v_failures);
end
$$;

-- Add two flat JSON objects of counts key by key.
create or replace function certexpiry.sum_counts(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select coalesce(jsonb_object_agg(k, coalesce((p_a ->> k)::bigint, 0) + coalesce((p_b ->> k)::bigint, 0)), '{}'::jsonb)
    from (select jsonb_object_keys(p_a) as k union select jsonb_object_keys(p_b)) keys
$$;

revoke all on all functions in schema certexpiry from public;
grant execute on all functions in schema certexpiry to service_role;
