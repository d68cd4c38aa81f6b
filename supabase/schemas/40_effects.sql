-- The effects: what happens to a certification, each effect recorded in the idempotency log in
-- the same statement that does it. The log's key (certification, action, expiry date) is the
-- arbiter of "never twice": an effect whose insert finds its record does nothing else. Callers
-- hand over the certification ids to consider; each effect reads their current state and applies
-- its own rule, so a stale id list can choose only which effect looks, never what it does.
-- Why: docs/decisions/0001-idempotency-log-key.md, 0002-superseded-reminders.md,
-- 0003-effects-set-based.md, 0010-failure-isolation-by-bisection.md,
-- 0017-structured-failures.md, 0024-effects-read-only-their-certifications.md.

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
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select e.id, 'auto_pause', e.expiry_date, p_run_id from expired e
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), paused as (
        update public.certifications c
        set status = 'paused', paused_at = now(), updated_at = now()
        from recorded r
        where c.id = r.certification_id
        returning c.id, c.peer_mentor_id, c.expiry_date
    ), nothing_left as (
        update public.certifications c
        set next_action_on = 'infinity'
        from expired e
        where c.id = e.id
          and not exists (select from recorded r where r.certification_id = e.id)
          and c.next_action_on is distinct from 'infinity'
    ), mentors as (
        update public.peer_mentors m
        set status = 'paused', paused_at = now(), paused_reason = 'certification_expired', updated_at = now()
        where m.id in (select p.peer_mentor_id from paused p) and m.status = 'active'
        returning m.id
    ), notices as (
        insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
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
comment on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) is
    'Auto-pause the expired, active certifications among the ids, and their mentors, '
    'with a pause notice each; one whose auto-pause is already recorded (reactivated by '
    'hand) is marked infinity, nothing left. Returns the counts.';

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
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select s.id, certexpiry.reminder_action(s.offset_days), s.expiry_date, p_run_id from smallest s
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), superseded as (
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id, outcome)
        select d.id, certexpiry.reminder_action(d.offset_days), d.expiry_date, p_run_id, 'superseded'
        from due d join smallest s on s.id = d.id
        where d.offset_days > s.offset_days
        on conflict on constraint certification_idempotency_log_once do nothing
        returning 1
    ), queued as (
        insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
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
comment on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) is
    'Queue the smallest due reminder offset of each active certification among the ids and '
    'record the larger due ones as superseded (no burst of stale reminders after downtime). '
    'Returns the counts.';

create or replace function certexpiry.apply_effects(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[],
    p_expiry_dates date[] default null)
returns jsonb
language sql
as $$
    select certexpiry.apply_auto_pauses(p_run_id, p_today, array(
               select u.id from unnest(p_certification_ids, p_expiry_dates) u (id, expiry_date)
               where u.id is not null
                 and (u.expiry_date is null or certexpiry.is_expired(u.expiry_date, p_today))))
        || certexpiry.apply_reminders(p_run_id, p_today, p_reminder_days, array(
               select u.id from unnest(p_certification_ids, p_expiry_dates) u (id, expiry_date)
               where u.id is not null
                 and (u.expiry_date is null or not certexpiry.is_expired(u.expiry_date, p_today))))
$$;
comment on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) is
    'Every effect due to the ids: with the expiry dates the caller read, an expired one goes to '
    'the auto-pause only and the others to the reminders only (null dates: both look at every '
    'id). One place for "what happens".';

create or replace function certexpiry.error_names(
    p_constraint text, p_schema text, p_table text, p_column text, p_datatype text,
    p_context text)
returns jsonb
language sql stable
as $$
    -- Each name is kept only if the catalog has it (never a pattern): an error's fields are
    -- whatever text raised it, and a trigger's RAISE ... USING COLUMN = 'Kari Nordmann' is one.
    with named_tables as (
        select c.oid
        from pg_catalog.pg_class c
        where c.relname = p_table and c.relkind in ('r', 'p', 'v', 'm', 'f')
    ), context_lines as (
        -- Each line of the context that names a function, innermost first as the context lists
        -- them: PL/pgSQL's signature (schema-qualified when the function is not on the search
        -- path, each part double-quoted when it must be) or a SQL function's name in quotes.
        select m.at, m.parts[1] as qualifier, m.parts[2] as plpgsql_name, m.parts[3] as sql_name
        from regexp_matches(p_context,
                 '^(?:PL/pgSQL function (?:("(?:[^"]|"")+"|[^\s."(]+)\.)?("(?:[^"]|"")+"|[^\s."(]+)\('
                 '|SQL function "(.+)"(?: |$))',
                 'gn') with ordinality m (parts, at)
    ), routines as (
        select l.at, r.schema_name, r.name
        from context_lines l
        cross join lateral (
            select case when l.qualifier like '"%'
                        then replace(substr(l.qualifier, 2, length(l.qualifier) - 2), '""', '"')
                        else l.qualifier end as schema_name,
                   case when l.plpgsql_name like '"%'
                        then replace(substr(l.plpgsql_name, 2, length(l.plpgsql_name) - 2), '""', '"')
                        else coalesce(l.plpgsql_name, l.sql_name) end as name) r
        where exists (
            select from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where p.proname = r.name and (r.schema_name is null or n.nspname = r.schema_name))
    )
    select jsonb_strip_nulls(jsonb_build_object(
        'constraint_name', (select p_constraint where exists (
            select from pg_catalog.pg_constraint k where k.conname = p_constraint)),
        'schema_name', (select p_schema where exists (
            select from pg_catalog.pg_namespace n where n.nspname = p_schema)),
        'table_name', (select p_table where exists (select from named_tables)),
        'column_name', (select p_column where exists (
            select from pg_catalog.pg_attribute a
            join pg_catalog.pg_class c on c.oid = a.attrelid
            where a.attname = p_column and a.attnum > 0 and not a.attisdropped
              and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and (c.oid in (select t.oid from named_tables t)
                   or not exists (select from named_tables)))),
        'datatype_name', (select p_datatype where exists (
            select from pg_catalog.pg_type t where t.typname = p_datatype)),
        -- A function calling itself (the isolation's halving) is named once per run of calls,
        -- so a row's routine reads the same wherever it sat in its batch.
        'routine', (select string_agg(q.qualified, ' < ' order by q.at)
                    from (select r.at, coalesce(r.schema_name || '.', '') || r.name as qualified,
                                 lag(coalesce(r.schema_name || '.', '') || r.name)
                                     over (order by r.at) as previous
                          from routines r) q
                    where q.previous is distinct from q.qualified)))
$$;
comment on function certexpiry.error_names(text, text, text, text, text, text) is
    'The names an error''s diagnostics give (constraint, schema, table, column, datatype) and '
    'the functions its context names (routine: schema.name or name, innermost first, joined '
    'by " < ", a repeated call named once), each only if the catalog has it: an allow-list, because a trigger can set '
    'every one of these fields to any text (RAISE ... USING COLUMN = ''Kari Nordmann''), and '
    'the context quotes statements. A name the catalog lacks, null or empty, is left out.';

create or replace function certexpiry.failure_detail(
    p_certification_id uuid, p_today date, p_sqlstate text, p_constraint text, p_schema text,
    p_table text, p_column text, p_datatype text, p_context text)
returns jsonb
language sql stable
as $$
    select jsonb_build_object(
        'certification_id', p_certification_id,
        'peer_mentor_id', c.peer_mentor_id,
        'operation', case when certexpiry.is_expired(c.expiry_date, p_today)
                          then 'auto_pause' else 'reminder' end,
        'sqlstate', p_sqlstate)
        || certexpiry.error_names(p_constraint, p_schema, p_table, p_column, p_datatype, p_context)
    from (values (1)) one
    left join public.certifications c on c.id = p_certification_id
$$;
comment on function certexpiry.failure_detail(uuid, date, text, text, text, text, text, text, text) is
    'One element of failures_detail: the certification that failed, its mentor, the operation '
    '(auto_pause when expired, else reminder), the SQLSTATE, and those of the diagnostics'' '
    'names and the context''s functions the catalog has (certexpiry.error_names). No text of '
    'the error''s: its message, detail and hint are whatever raised it.';

create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[],
    p_expiry_dates date[] default null)
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_sqlstate text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    -- Every error a row's effects can raise is that row's failure, whatever its class: the
    -- app's triggers and constraints (RAISE, a check or foreign key, a division by zero, a
    -- lock_timeout on a row locked elsewhere) and an ASSERT in one of them too, which WHEN
    -- OTHERS alone lets through (it matches neither ASSERT_FAILURE nor QUERY_CANCELED), so the
    -- whole batch failed and the next night stopped at the same row. QUERY_CANCELED is left
    -- to propagate on purpose: a statement_timeout or a cancel request is about the whole
    -- call, not one row. Caught here, the timeout would fire once and never again (it is armed
    -- per statement), so the halves would run on unbounded, and a cancel (pg_cancel_backend,
    -- a client giving up) would be swallowed; the sweep retries a timed-out batch halved.
    -- The app's deferred constraint triggers and deferrable foreign keys are fired at the end
    -- of each statement, inside the subtransaction, instead of at commit, where one row's
    -- error would fail the whole call (for the rest of the caller's transaction too).
    set constraints all immediate;
    begin
        return certexpiry.apply_effects(
                p_run_id, p_today, p_reminder_days, p_certification_ids, p_expiry_dates)
            || jsonb_build_object('failures', 0, 'failures_detail', '[]'::jsonb);
    exception when others or assert_failure then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name,
            v_schema = schema_name, v_table = table_name, v_column = column_name,
            v_datatype = pg_datatype_name, v_context = pg_exception_context;
    end;
    if cardinality(p_certification_ids) = 1 then
        return jsonb_build_object('failures', 1, 'failures_detail', jsonb_build_array(
            certexpiry.failure_detail(p_certification_ids[1], p_today, v_sqlstate,
                v_constraint, v_schema, v_table, v_column, v_datatype, v_context)));
    end if;
    v_half := cardinality(p_certification_ids) / 2;
    return certexpiry.merge_effects(
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[1:v_half], p_expiry_dates[1:v_half]),
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[v_half + 1:cardinality(p_certification_ids)],
                                          p_expiry_dates[v_half + 1:cardinality(p_certification_ids)]));
end
$$;
comment on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) is
    'apply_effects without letting one bad row hold back the others: set-based in a '
    'subtransaction; if that fails, each half alone, down to the certification that fails, '
    'reported with its SQLSTATE, the diagnostics'' names the catalog has and operation. Every error class is '
    'a row''s failure (ASSERT_FAILURE included) but QUERY_CANCELED: a statement timeout or a '
    'cancel stops the whole call, and the sweep retries a timed-out batch halved. One bad row '
    'in n costs about 2n row-effects. The sweep, the plan and remediation all use it.';
