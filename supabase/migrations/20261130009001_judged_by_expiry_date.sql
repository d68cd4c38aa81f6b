-- Every certification of a page judged from its expiry date (issue 14, the first night after
-- go-live h), and the reminder action's name computed inline.
--
-- Until now a certification not yet looked at (-infinity), and every certification on the
-- first night, was judged with the log: one index probe per effect that could be due. Since
-- 20261130008001 the effects settle every case that judgement existed for: the inserts skip a
-- recorded effect (they always were the arbiter of "never twice"), and apply_auto_pauses marks
-- an expired certification whose auto-pause is recorded as having nothing left, which is what
-- the batch did for one judged not due. What is due by the dates is a superset of what is due
-- by the log, and the marks come out the same (an expired certification has no day after
-- tonight either way; one not expired always has its auto-pause ahead). So the batch no longer
-- reads the log: on the first night after go-live that was 70k certifications probed for the
-- 4 effects each could have, about 0.13 s of a 4.2 s night whose floor is 3.0 s. The cost moves
-- to where a due effect is already recorded: the effect's insert finds it instead of a probe,
-- once per certification looked at (after an upgrade, or for an imported history). A batch's
-- `certifications` count is the certifications due by their dates, as it already was for a
-- page read again; the effect counts stay exact.
--
-- certexpiry.reminder_action was not inlined: `'reminder_' || integer` resolves to
-- anytextcat, which is only stable, inside an immutable function, so the planner called it
-- once per row (43k calls on the downtime night). With an explicit text cast the expression is
-- immutable and inlined; the answer is the same.

create or replace function certexpiry.reminder_action(p_offset integer)
returns text
language sql immutable
as $$ select 'reminder_' || p_offset::text || 'd' $$;

-- As in 20261130008001_effects_by_expiry.sql, with the page judged from the expiry dates alone
-- and the marks that judgement leaves to the batch.
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
    from unnest(v_ids, v_mentor_ids, v_expiry, v_marks) with ordinality
             p (id, peer_mentor_id, expiry_date, mark, n)
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
