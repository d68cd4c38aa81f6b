-- Each effect reads only the certifications it applies to, and a page is judged from its
-- expiry dates alone (issue 14, "whole night <= 1.3x the floor": the downtime night b and the
-- first night after go-live h, at 1.29-1.34x and 1.50x before this migration, paired runs).
--
-- Measured on b (200k certifications, 61k expired during an outage): the auto-pause writes
-- cost per certification about what the floor's do, and what the sweep added was reading
-- rows again, 1.5 to 2 ms per 500 each time: apply_reminders read every certification of a
-- page of pauses to find none active, and the batch's marking looked up every certification it
-- had just paused to find it no longer active. On h, the page's judgement probed the log for
-- every certification (the first night judges with the log), 0.18 s more.
--
-- - apply_effects and apply_effects_isolated take the expiry dates the caller read with the
--   ids (optional: without them both effects look at every id, as before). An expired one is
--   handed to apply_auto_pauses only, the others to apply_reminders only; each effect still
--   reads its certifications' current state and applies its own rule, so a date read earlier
--   decides nothing but which of the two looks at a certification (one whose expiry date
--   changed since is back in the night's work: the trigger marks it -infinity).
-- - apply_auto_pauses marks infinity ("nothing left") a certification it finds expired and
--   active whose auto-pause is already recorded (reactivated by hand, or written by other
--   means, e.g. imported with the history), which the batch's marking did after the fact.
-- - The batch judges every certification of a page from its expiry date. Until now one not
--   yet looked at (-infinity), and every one on the first night, was judged with the log: one
--   index probe per effect that could be due. The effects settle every case that judgement
--   existed for: their inserts skip a recorded effect (they always were the arbiter of "never
--   twice"), and apply_auto_pauses marks a recorded auto-pause as above. What is due by the
--   dates is a superset of what is due by the log, and the marks come out the same (an expired
--   certification has no day after tonight either way; one not expired always has its
--   auto-pause ahead). The cost moves to where a due effect is already recorded: the effect's
--   insert finds it instead of a probe, once per certification looked at (after an upgrade, or
--   for an imported history). A batch's `certifications` count is the certifications due by
--   their dates, as it already was for a page read again; the effect counts stay exact.
-- - So the batch looks a certification up after the effects only when they cannot have
--   settled it: a marked one going back on the schedule, a failed reminder.
-- - certexpiry.reminder_action was not inlined: `'reminder_' || integer` resolves to
--   anytextcat, which is only stable, inside an immutable function, so the planner called it
--   once per row (43k calls on the downtime night). With an explicit text cast the expression
--   is immutable and inlined; the answer is the same.

drop function if exists certexpiry.apply_effects(uuid, date, integer[], uuid[]);
drop function if exists certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[]);

-- As in 20261128000200_rules.sql, plus: a certification expired and active whose auto-pause is
-- already recorded for its expiry date has nothing left, and is marked so (infinity) instead of
-- being read by every night after.
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

-- Apply every effect due today to the given certifications. One place for "what happens".
-- With p_expiry_dates (aligned with the ids, as the caller read them) an expired one is only
-- looked at by the auto-pause and the others only by the reminders; a null date, or no dates,
-- lets both look.
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

-- As in 20261130003001_structured_failures.sql, with the expiry dates passed on (halved with
-- the ids when a failure is bisected).
create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[],
    p_expiry_dates date[] default null)
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_row record;
    v_sqlstate text;
    v_message text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    begin
        return certexpiry.apply_effects(
                p_run_id, p_today, p_reminder_days, p_certification_ids, p_expiry_dates)
            || jsonb_build_object('failures', 0, 'failures_detail', '[]'::jsonb);
    exception when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text,
            v_constraint = constraint_name, v_schema = schema_name, v_table = table_name,
            v_column = column_name, v_datatype = pg_datatype_name, v_context = pg_exception_context;
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
            'constraint_name', nullif(v_constraint, ''),
            'schema_name', nullif(v_schema, ''),
            'table_name', nullif(v_table, ''),
            'column_name', nullif(v_column, ''),
            'datatype_name', nullif(v_datatype, ''),
            'routine', substring(v_context from '(?:PL/pgSQL|SQL) function ([A-Za-z0-9_$."]+)'),
            'message', certexpiry.redact_mentor_values(v_message, v_row.peer_mentor_id))));
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

revoke all on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) to service_role;
revoke all on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) to service_role;

create or replace function certexpiry.reminder_action(p_offset integer)
returns text
language sql immutable
as $$ select 'reminder_' || p_offset::text || 'd' $$;

-- As in 20261130007001_night_work_on_schedule.sql, handing the effects the expiry dates of the
-- page, judging the page from the expiry dates alone, and leaving the certifications whose
-- auto-pause was due to apply_auto_pauses instead of looking them up again to mark them.
create or replace function public.process_expiry_batch(
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
    v_on_schedule boolean := true;
    v_after_day date := '-infinity';
    v_after_id uuid := '00000000-0000-0000-0000-000000000000';
    v_range record;
    v_from_day date;
    v_from_id uuid;
    v_ids uuid[] := '{}';
    v_mentor_ids uuid[] := '{}';
    v_expiry date[] := '{}';
    v_marks date[] := '{}';
    v_more_ids uuid[];
    v_more_mentor_ids uuid[];
    v_more_expiry date[];
    v_more_marks date[];
    v_next text;
    v_next_on date[];
    v_due uuid[];
    v_due_expiry date[];
    v_mentors integer;
    v_counts jsonb;
    v_failures jsonb;
    v_failed uuid[];
    v_done boolean;
begin
    if p_limit is null or p_limit < 1 or p_limit > 1000 then
        raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
    end if;
    select * into v_run from public.cron_runs where run_id = p_run_id for update;
    if not found or v_run.status <> 'running' or v_run.segment <> p_segment then
        return jsonb_build_object('fenced', true, 'segment', v_run.segment, 'status', v_run.status);
    end if;
    v_today := v_run.nightly_key;
    v_next := p_cursor;
    -- The night reads the schedule (cursor on-schedule/expiry_date/id), then the marked
    -- certifications (cursor next_action_on/id, also the token of the versions before).
    if p_cursor ~ '^on-schedule/(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_after_day := split_part(p_cursor, '/', 2)::date;
        v_after_id := split_part(p_cursor, '/', 3)::uuid;
    elsif p_cursor ~ '^(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_on_schedule := false;
        v_after_day := split_part(p_cursor, '/', 1)::date;
        v_after_id := split_part(p_cursor, '/', 2)::uuid;
    end if;

    -- The schedule: index range scans of the expiry dates due tonight, each stopping at what
    -- the page still holds. Each scan has one lower bound, the cursor or the range's start
    -- (given both, the index starts from the row comparison and reads from the cursor on).
    if v_on_schedule then
        for v_range in
            select r.lo, r.hi from certexpiry.schedule_ranges(v_today, p_reminder_days) r
            where r.hi >= v_after_day
            order by r.lo
        loop
            exit when cardinality(v_ids) >= p_limit;
            v_from_day := v_after_day;
            v_from_id := v_after_id;
            if v_after_day < v_range.lo then
                v_from_day := v_range.lo - 1;  -- after every row of the day before
                v_from_id := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
            end if;
            select coalesce(array_agg(c.id order by c.expiry_date, c.id), '{}'),
                   coalesce(array_agg(c.peer_mentor_id order by c.expiry_date, c.id), '{}'),
                   coalesce(array_agg(c.expiry_date order by c.expiry_date, c.id), '{}'),
                   coalesce(array_agg(null::date order by c.expiry_date, c.id), '{}')
              into v_more_ids, v_more_mentor_ids, v_more_expiry, v_more_marks
            from (
                select s.id, s.peer_mentor_id, s.expiry_date
                from public.certifications s
                where s.status = 'active'
                  and s.next_action_on is null
                  and (s.expiry_date, s.id) > (v_from_day, v_from_id)
                  and s.expiry_date <= v_range.hi
                order by s.expiry_date, s.id
                limit p_limit - cardinality(v_ids)
            ) c;
            v_ids := v_ids || v_more_ids;
            v_mentor_ids := v_mentor_ids || v_more_mentor_ids;
            v_expiry := v_expiry || v_more_expiry;
            v_marks := v_marks || v_more_marks;
        end loop;
        if cardinality(v_ids) > 0 then
            v_next := 'on-schedule/' || v_expiry[cardinality(v_expiry)]::text || '/'
                      || v_ids[cardinality(v_ids)]::text;
        end if;
        v_after_day := '-infinity';
        v_after_id := '00000000-0000-0000-0000-000000000000';
    end if;

    -- Then the marked certifications due by their mark.
    if cardinality(v_ids) < p_limit then
        select coalesce(array_agg(c.id order by c.next_action_on, c.id), '{}'),
               coalesce(array_agg(c.peer_mentor_id order by c.next_action_on, c.id), '{}'),
               coalesce(array_agg(c.expiry_date order by c.next_action_on, c.id), '{}'),
               coalesce(array_agg(c.next_action_on order by c.next_action_on, c.id), '{}')
          into v_more_ids, v_more_mentor_ids, v_more_expiry, v_more_marks
        from (
            select m.id, m.peer_mentor_id, m.expiry_date, m.next_action_on
            from public.certifications m
            where m.status = 'active'
              and m.next_action_on <= v_today
              and (m.next_action_on, m.id) > (v_after_day, v_after_id)
            order by m.next_action_on, m.id
            limit p_limit - cardinality(v_ids)
        ) c;
        if cardinality(v_more_ids) > 0 then
            v_next := v_more_marks[cardinality(v_more_marks)]::text || '/'
                      || v_more_ids[cardinality(v_more_ids)]::text;
        end if;
        v_ids := v_ids || v_more_ids;
        v_mentor_ids := v_mentor_ids || v_more_mentor_ids;
        v_expiry := v_expiry || v_more_expiry;
        v_marks := v_marks || v_more_marks;
    end if;
    v_done := cardinality(v_ids) < p_limit;

    -- The page judged from the expiry dates alone: which have an effect due tonight, how many
    -- mentors they belong to, and when each is next due after tonight. What the log already
    -- records is the effects' to find (their inserts are the arbiter), so a certification whose
    -- due effect is recorded costs its effect's attempt, not a probe of every one. Arrays in page
    -- order.
    select coalesce(array_agg(p.id order by p.id) filter (where j.due_on <= v_today), '{}'),
           coalesce(array_agg(p.expiry_date order by p.id) filter (where j.due_on <= v_today), '{}'),
           count(distinct p.peer_mentor_id) filter (where j.due_on <= v_today),
           coalesce(array_agg(j.after_tonight order by p.n), '{}')
      into v_due, v_due_expiry, v_mentors, v_next_on
    from unnest(v_ids, v_mentor_ids, v_expiry) with ordinality p (id, peer_mentor_id, expiry_date, n)
    cross join lateral (
        select min(a.day) as due_on, min(a.day) filter (where a.day > v_today) as after_tonight
        from certexpiry.action_days(p.expiry_date, v_today, p_reminder_days) a
    ) j;

    v_counts := certexpiry.apply_effects_isolated(
        p_run_id, v_today, p_reminder_days, v_due, v_due_expiry);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';
    v_failed := array(select (f ->> 'certification_id')::uuid from jsonb_array_elements(v_failures) f);

    -- What the effects did not settle: a marked certification looked at goes back on the
    -- schedule, and a reminder that failed on the schedule is marked for the next night. An
    -- expired one needs nothing here: apply_auto_pauses paused it or, finding its auto-pause
    -- recorded, marked it infinity (nothing left); so a night of pauses looks up none of its
    -- certifications again. Failed marked ones keep their mark, failed auto-pauses stay on the
    -- schedule (every night's work), and a certification locked elsewhere, or changed since it
    -- was read, is left as it is.
    with marked as (
        select l.id, t.mark
        from unnest(v_ids, v_expiry, v_marks, v_next_on) w (id, expiry_date, mark, after_tonight)
        cross join lateral (
            select w.id = any (v_failed) as failed) f
        cross join lateral (
            select case when f.failed then v_today end as mark,
                   case when f.failed
                        then w.mark is null and not certexpiry.is_expired(w.expiry_date, v_today)
                        else w.mark is not null and w.after_tonight is not null end as write) t
        join public.certifications l on l.id = w.id
        where t.write
          and l.status = 'active'
          and l.expiry_date = w.expiry_date
          and l.next_action_on is not distinct from w.mark
        for update of l skip locked
    )
    update public.certifications c
    set next_action_on = k.mark
    from marked k
    where c.id = k.id;

    v_counts := certexpiry.sum_counts(
        jsonb_build_object('mentors', v_mentors, 'certifications', cardinality(v_due), 'batches', 1),
        v_counts);
    update public.cron_runs
    set cursor = v_next, heartbeat_at = now(),
        lease_until = greatest(lease_until, now() + make_interval(secs => p_lease_seconds)),
        totals = certexpiry.sum_counts(totals, v_counts),
        swept_reminder_days = case when v_done then p_reminder_days else swept_reminder_days end
    where run_id = p_run_id
    returning * into v_run;

    return v_counts || jsonb_build_object(
        'fenced', false, 'next_cursor', v_next, 'done', v_done,
        'failures_detail', v_failures, 'run_totals', v_run.totals);
end
$$;
