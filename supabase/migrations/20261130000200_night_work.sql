-- A night's cost follows its work, not the size of the tables.
--
-- Until now every batch found its page by walking the active certifications inside the reminder
-- window in mentor order, probing the idempotency log for each: a night that had little to do
-- still read every in-window certification, and a batch cost O(table). Here each certification
-- carries the organisation-local date of its next due effect, `next_action_on`, kept right by
-- the sweep (after it applies a certification's effects) and by a trigger (when a certification
-- is inserted, renewed, paused or reactivated). A night pages, by keyset, over the certifications
-- whose next action is due, so it reads what it has to do and nothing else; a batch is bounded
-- in certifications, so a mentor with thousands of them is split across batches.

alter table public.certifications add column next_action_on date;
comment on column public.certifications.next_action_on is
    'Organisation-local date of the next effect due (a reminder or the auto-pause); -infinity: '
    'not yet looked at; null: nothing left for this expiry date, or not active. Kept by the sweep '
    '(certexpiry.next_action_date) and the trigger certifications_next_action; never set by hand.';

-- "Not yet looked at": the first night after this migration visits every active certification
-- once, and from then on only those with something due.
update public.certifications set next_action_on = '-infinity' where status = 'active';

-- The night's work, in keyset order. expiry_date is included so that monitoring reads the
-- index alone.
create index certifications_next_action_idx on public.certifications (next_action_on, id)
    include (expiry_date)
    where status = 'active' and next_action_on is not null;

-- The sweep no longer pages by mentor over the reminder window.
drop index public.certifications_active_mentor_idx;

-- Supabase's database linter flags the unindexed foreign key; a mentor's notices are also what
-- ops look up.
create index notification_outbox_peer_mentor_idx on public.notification_outbox (peer_mentor_id);

-- When a certification next has something due, given what the idempotency log records for its
-- current expiry date, judged on the night p_today: the auto-pause from the first expired day,
-- each unrecorded reminder offset from the first day it is due while its window is open. Null
-- when nothing is left (the auto-pause is recorded). Written with the same rules the effects use
-- (is_expired, reminder_due, recorded), so "due on p_today" here is exactly "the effects have
-- something to do on p_today".
create or replace function certexpiry.next_action_date(
    p_certification_id uuid, p_expiry_date date, p_today date, p_reminder_days integer[])
returns date
language sql stable
as $$
    select min(due.day) from (
        select case when certexpiry.is_expired(p_expiry_date, p_today) then p_today
                    else p_expiry_date + 1 end as day
        where not exists (select from certexpiry.recorded(p_certification_id, 'auto_pause', p_expiry_date))
        union all
        select greatest(p_expiry_date - n, p_today)
        from unnest(p_reminder_days) n
        where certexpiry.reminder_due(p_expiry_date, greatest(p_expiry_date - n, p_today), n)
          and not exists (
              select from certexpiry.recorded(p_certification_id, certexpiry.reminder_action(n), p_expiry_date))
    ) due
$$;

-- An inserted, renewed or reactivated certification is looked at on the next night (its next
-- action depends on the reminder offsets, which only the sweep knows); a paused one has none.
create or replace function certexpiry.reset_next_action()
returns trigger
language plpgsql
as $$
begin
    if new.status <> 'active' then
        new.next_action_on := null;
    elsif tg_op = 'INSERT' or new.expiry_date is distinct from old.expiry_date
          or old.status is distinct from new.status then
        new.next_action_on := '-infinity';
    end if;
    return new;
end
$$;

create trigger certifications_next_action
    before insert or update of expiry_date, status on public.certifications
    for each row execute function certexpiry.reset_next_action();

-- Add two effect results: counts key by key, failures_detail concatenated.
create or replace function certexpiry.merge_effects(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select certexpiry.sum_counts(p_a - 'failures_detail', p_b - 'failures_detail')
        || jsonb_build_object('failures_detail',
               coalesce(p_a -> 'failures_detail', '[]'::jsonb) || coalesce(p_b -> 'failures_detail', '[]'::jsonb))
$$;

-- Apply every effect due to the given certifications without letting a bad row (a constraint, a
-- trigger, a lock held elsewhere past lock_timeout) hold back the others: set-based in a
-- subtransaction; if that fails, each half on its own, down to the single certification that
-- fails, which is reported (certification_id, peer_mentor_id, operation, sqlstate, message). One
-- bad row in n costs about 2n row-effects and 2 log2(n) subtransactions, instead of n
-- subtransactions. The sweep and remediation both use it.
create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_row record;
    v_sqlstate text;
    v_message text;
begin
    begin
        return certexpiry.apply_effects(p_run_id, p_today, p_reminder_days, p_certification_ids)
            || jsonb_build_object('failures', 0, 'failures_detail', '[]'::jsonb);
    exception when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text;
    end;
    if cardinality(p_certification_ids) = 1 then
        select c.id, c.peer_mentor_id, c.expiry_date into v_row
        from public.certifications c where c.id = p_certification_ids[1];
        return jsonb_build_object('failures', 1, 'failures_detail', jsonb_build_array(jsonb_build_object(
            'certification_id', p_certification_ids[1],
            'peer_mentor_id', v_row.peer_mentor_id,
            'operation', case when certexpiry.is_expired(v_row.expiry_date, p_today)
                              then 'auto_pause' else 'reminder' end,
            'sqlstate', v_sqlstate,
            'message', left(v_message, 500))));
    end if;
    v_half := cardinality(p_certification_ids) / 2;
    return certexpiry.merge_effects(
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days, p_certification_ids[1:v_half]),
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[v_half + 1:cardinality(p_certification_ids)]));
end
$$;

-- Actionable on p_today: active, and its next action is due. The one definition of the night's
-- work, used by the sweep's pages, the demo seed and the benchmarks.
create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on <= p_today
      and certexpiry.next_action_date(c.id, c.expiry_date, p_today, p_reminder_days) <= p_today
$$;

-- Missed auto-pauses: expired, not paused, and no auto_pause record for that expiry date. Such a
-- certification always has next_action_on <= p_today (the trigger sets -infinity on insert,
-- renewal and reactivation; the sweep sets a later date or null only once the auto-pause is
-- recorded), so the query reads the night's leftover work in next_action_on order, not every
-- unpaused expired row: its cost follows the size of the answer.
create or replace function certexpiry.missed_auto_pauses(p_today date)
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on <= p_today
      and certexpiry.is_expired(c.expiry_date, p_today)
      and not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date))
$$;

-- The run's checkpoint is now an opaque keyset token (next_action_on/id) made by the sweep.
alter table public.cron_runs alter column cursor type text using cursor::text;

drop function public.process_expiry_batch(uuid, integer, uuid, integer, integer[], integer);

-- Process the next page of at most p_limit certifications whose next action is due, in keyset
-- order (next_action_on, id) after p_cursor, and checkpoint the run in the same transaction.
-- Fenced: only the invocation that holds (p_run_id, p_segment) may write. Every certification of
-- the page gets its next_action_on recomputed, so processed ones leave the night's work; a
-- failing one keeps it and is reported, and the cursor moves past it. A row locked elsewhere
-- fails after lock_timeout instead of waiting out the statement timeout. A cursor that is not a
-- keyset token (one made by an older version) starts the night's pages over, which is harmless:
-- processed certifications are no longer due.
create function public.process_expiry_batch(
    p_run_id uuid,
    p_segment integer,
    p_cursor text,
    p_limit integer,
    p_reminder_days integer[],
    p_lease_seconds integer)
returns jsonb
language plpgsql
security invoker
set search_path = ''
set lock_timeout = '3s'
as $$
declare
    v_run public.cron_runs;
    v_today date;
    v_after_day date;
    v_after_id uuid;
    v_page uuid[];
    v_due uuid[];
    v_mentors integer;
    v_last_day date;
    v_last_id uuid;
    v_counts jsonb;
    v_failures jsonb;
    v_failed uuid[];
    v_next text;
begin
    if p_limit is null or p_limit < 1 or p_limit > 1000 then
        raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
    end if;
    select * into v_run from public.cron_runs where run_id = p_run_id for update;
    if not found or v_run.status <> 'running' or v_run.segment <> p_segment then
        return jsonb_build_object('fenced', true, 'segment', v_run.segment, 'status', v_run.status);
    end if;
    v_today := v_run.nightly_key;
    -- Before the first page: before every row (ids are random v4 UUIDs, never the nil UUID).
    v_after_day := '-infinity';
    v_after_id := '00000000-0000-0000-0000-000000000000';
    if p_cursor ~ '^(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_after_day := split_part(p_cursor, '/', 1)::date;
        v_after_id := split_part(p_cursor, '/', 2)::uuid;
    end if;

    -- The page: an index range scan of the night's work that stops at the limit.
    select coalesce(array_agg(p.id order by p.next_action_on, p.id), '{}'),
           (array_agg(p.next_action_on order by p.next_action_on desc, p.id desc))[1],
           (array_agg(p.id order by p.next_action_on desc, p.id desc))[1]
      into v_page, v_last_day, v_last_id
    from (
        select c.id, c.next_action_on
        from public.certifications c
        where c.status = 'active'
          and c.next_action_on <= v_today
          and (c.next_action_on, c.id) > (v_after_day, v_after_id)
        order by c.next_action_on, c.id
        limit p_limit
    ) p;

    -- Of the page, those with an effect due tonight (a certification inserted or renewed since
    -- it was last looked at may have none yet).
    select coalesce(array_agg(c.id order by c.id), '{}'), count(distinct c.peer_mentor_id)
      into v_due, v_mentors
    from public.certifications c
    where c.id = any (v_page)
      and certexpiry.next_action_date(c.id, c.expiry_date, v_today, p_reminder_days) <= v_today;

    v_counts := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days, v_due);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';
    select coalesce(array_agg((f ->> 'certification_id')::uuid), '{}') into v_failed
    from jsonb_array_elements(v_failures) f;

    -- Processed certifications leave the night's work (paused ones already have, by the
    -- trigger); failed ones, and any locked elsewhere right now, stay for monitoring and the
    -- next night.
    update public.certifications c
    set next_action_on = certexpiry.next_action_date(c.id, c.expiry_date, v_today, p_reminder_days)
    where c.id in (
        select l.id from public.certifications l
        where l.id = any (v_page) and l.status = 'active' and not (l.id = any (v_failed))
        for update skip locked);

    v_next := case when v_last_id is null then p_cursor else v_last_day::text || '/' || v_last_id::text end;
    v_counts := certexpiry.sum_counts(
        jsonb_build_object('mentors', v_mentors, 'certifications', cardinality(v_due), 'batches', 1),
        v_counts);
    update public.cron_runs
    set cursor = v_next, heartbeat_at = now(),
        lease_until = greatest(lease_until, now() + make_interval(secs => p_lease_seconds)),
        totals = certexpiry.sum_counts(totals, v_counts)
    where run_id = p_run_id
    returning * into v_run;

    return v_counts || jsonb_build_object(
        'fenced', false, 'next_cursor', v_next, 'done', cardinality(v_page) < p_limit,
        'failures_detail', v_failures, 'run_totals', v_run.totals);
end
$$;

revoke all on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer)
    from public, anon, authenticated;
grant execute on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer)
    to service_role;
revoke all on function certexpiry.next_action_date(uuid, date, date, integer[]),
    certexpiry.reset_next_action(), certexpiry.merge_effects(jsonb, jsonb) from public;
grant execute on function certexpiry.next_action_date(uuid, date, date, integer[]),
    certexpiry.merge_effects(jsonb, jsonb) to service_role;
