-- The night's work found from the schedule, so that processing a certification writes nothing
-- but its effects (issue 14, "whole night <= 1.3x the floor").
--
-- Until now every certification the sweep processed was also rewritten to store its next
-- action date (next_action_on), the key the night's pages are read by: on the cohort due its
-- 30-day reminder that was 160k row versions and three index entries each, about 2 s of a
-- 10 s night whose floor (which keeps no such state) is 7 s; and the first night after go-live
-- dated every active certification, due or not, 181k writes for 70k certifications with work.
--
-- When a certification's effects fall due follows from its expiry date alone
-- (certexpiry.action_days); the log only says which of them are already done. So a night's
-- work is, on the expiry-date index, the certifications with an effect falling due on a night
-- the sweep has not covered yet: every expired one (a paused certification leaves the index,
-- so only tonight's and missed ones are left), and for each reminder offset n those whose day
-- expiry - n fell after the last night whose sweep covered n, while their window is open
-- (certexpiry.schedule_ranges). A normal night reads four days of expiry dates; a night after
-- an outage reads the outage's; a certification reminded tonight is not written again.
--
-- next_action_on now marks only the certifications that are off that schedule:
--   null      on the schedule (active) or not active;
--   -infinity not yet looked at: inserted after the first night, renewed or reactivated (its
--             effects may fall on nights already swept, and its log is unknown);
--   a date    look at it on that night: a reminder that failed (retried the next night), or a
--             date left by the versions before this one;
--   infinity  nothing left for this expiry date (expired, its auto-pause already recorded).
-- The sweep reads the schedule first, then the marked certifications, and puts a marked one
-- back on the schedule once it has looked at it. Before the first night nothing has been swept,
-- so a certification inserted then starts on the schedule.
--
-- Monitoring still needs no log probe: an active certification on the schedule has no
-- auto_pause record for its expiry date (the record is only written together with the pause,
-- reactivation or a change of expiry date marks it -infinity, and the sweep puts a certification
-- back on the schedule only when its auto-pause is not recorded). A reminder failure is marked
-- for the next night; an auto-pause failure needs no mark, as every expired certification on
-- the schedule is in every night's work.
--
-- Upgrading needs no data migration. The versions before left null on an active certification
-- with nothing left (expired, auto-pause recorded), which now reads "on the schedule"; but until
-- a night has recorded the offsets it swept, the sweep judges every certification with the log
-- (and marks those infinity) and monitoring probes the log for the schedule's expired ones.
-- Dated certifications keep their date and go back on the schedule when it comes.

-- The reminder offsets a run's sweep covered, written when it read its last page.
alter table public.cron_runs add column if not exists swept_reminder_days integer[];
comment on column public.cron_runs.swept_reminder_days is
    'The reminder offsets this run''s sweep covered, set when it read its last page; the next '
    'night''s schedule starts after the last night that covered each offset.';

comment on column public.certifications.next_action_on is
    'null: on the schedule (or not active); -infinity: not yet looked at; a date: look at it '
    'that night; infinity: nothing left for this expiry date. Kept by the sweep and the trigger '
    'certifications_next_action (see 20261130007001); never set by hand.';

-- The schedule, in the night's keyset order; peer_mentor_id is included so that a page is read
-- from the index alone.
create index if not exists certifications_on_schedule_idx
    on public.certifications (expiry_date, id) include (peer_mentor_id)
    where status = 'active' and next_action_on is null;

-- The last night before p_today whose sweep covered reminder offset p_offset (-infinity: none).
create or replace function certexpiry.last_swept(p_today date, p_offset integer)
returns date
language sql stable
as $$
    select coalesce((
        select r.nightly_key from public.cron_runs r
        where r.nightly_key < p_today and p_offset = any (r.swept_reminder_days)
        order by r.nightly_key desc
        limit 1), '-infinity')
$$;

-- Whether the sweep has covered a night up to p_today: until then nothing it judged without
-- the log can be trusted (the first night judges everything with the log).
create or replace function certexpiry.swept_by(p_today date)
returns boolean
language sql stable
as $$
    select exists (
        select from public.cron_runs r
        where r.nightly_key <= p_today and r.swept_reminder_days is not null)
$$;

-- The expiry dates, as disjoint ranges in order, of the certifications with an effect falling
-- due on a night not yet swept, up to p_today: the inverse of certexpiry.action_days over
-- (last swept night, p_today]. The auto-pause falls due on the first expired day, so every
-- expiry date before today; reminder n on expiry - n while the window is open, so expiry dates
-- from the day after (last night that covered n) + n, and at least today, to today + n.
create or replace function certexpiry.schedule_ranges(p_today date, p_reminder_days integer[])
returns table (lo date, hi date)
language sql stable
as $$
    select lower(r), upper(r) - 1
    from unnest((
        select range_agg(daterange(d.lo, d.hi, '[]'))
        from (
            select '-infinity'::date as lo, p_today - 1 as hi
            union all
            select greatest(certexpiry.last_swept(p_today, n) + n + 1, p_today), p_today + n
            from unnest(p_reminder_days) n
        ) d
        where d.lo <= d.hi
    )) r
$$;

-- Before the first night an inserted certification starts on the schedule: the first night's
-- schedule reaches back without bound, and a new certification has no record in the log (the
-- log's key references it). After the first night, or when a certification is renewed or
-- reactivated, the sweep looks at it once first. Security definer: whoever inserts a
-- certification need not read cron_runs.
create or replace function certexpiry.reset_next_action()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if new.status <> 'active' then
        new.next_action_on := null;
    elsif tg_op = 'INSERT' and not exists (select from public.cron_runs) then
        new.next_action_on := null;
    elsif tg_op = 'INSERT' or new.expiry_date is distinct from old.expiry_date
          or old.status is distinct from new.status then
        new.next_action_on := '-infinity';
    end if;
    return new;
end
$$;

-- Active with an effect possibly due on p_today: the marked certifications due by their mark
-- and the schedule's; exact (next_actions reads the log). plan_night and the demo seed use it.
create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select n.certification_id, n.peer_mentor_id, n.expiry_date
    from certexpiry.next_actions(p_today, p_reminder_days, array(
             select w.id from public.certifications w
             where w.status = 'active' and w.next_action_on <= p_today
             union all
             select w.id
             from certexpiry.schedule_ranges(p_today, p_reminder_days) r
             join public.certifications w
               on w.expiry_date between r.lo and r.hi
              and w.status = 'active' and w.next_action_on is null)) n
    where n.next_action_on <= p_today
$$;

-- Missed auto-pauses: the marked ones as in 20261130000600 (a probe only for those not yet
-- looked at), and the expired ones still on the schedule (no probe once a night has been swept:
-- see the header; before, the log may hold what was imported with the certifications). The
-- report lists them longest overdue first by next_action_on, which for one on the schedule is
-- its expiry date: both parts are then read in their index's order, and a capped list reads
-- about as many entries as it returns.
create or replace function certexpiry.missed_auto_pauses(p_today date)
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date, next_action_on date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date, c.next_action_on
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on <= p_today
      and certexpiry.is_expired(c.expiry_date, p_today)
      and (c.next_action_on > '-infinity'
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
    union all
    select c.id, c.peer_mentor_id, c.expiry_date, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on is null
      and certexpiry.is_expired(c.expiry_date, p_today)
      and ((select certexpiry.swept_by(p_today))
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
$$;

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
    v_mentors integer;
    v_counts jsonb;
    v_failures jsonb;
    v_failed uuid[];
    v_done boolean;
    v_first_night boolean;
begin
    if p_limit is null or p_limit < 1 or p_limit > 1000 then
        raise exception 'p_limit must be between 1 and 1000' using errcode = '22023';
    end if;
    select * into v_run from public.cron_runs where run_id = p_run_id for update;
    if not found or v_run.status <> 'running' or v_run.segment <> p_segment then
        return jsonb_build_object('fenced', true, 'segment', v_run.segment, 'status', v_run.status);
    end if;
    v_today := v_run.nightly_key;
    v_first_night := not certexpiry.swept_by(v_today - 1);
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

    -- The page judged: one on the schedule or marked with a date from its expiry date alone
    -- (what the sweep has not looked at since cannot have been recorded), one not yet looked at,
    -- and every one on the first night, with the log; which have an effect due tonight, how many
    -- mentors they belong to, and when each is next due once tonight's effects are recorded.
    -- Arrays in page order.
    select coalesce(array_agg(p.id order by p.id) filter (where j.due_on <= v_today), '{}'),
           count(distinct p.peer_mentor_id) filter (where j.due_on <= v_today),
           coalesce(array_agg(j.after_tonight order by p.n), '{}')
      into v_due, v_mentors, v_next_on
    from unnest(v_ids, v_mentor_ids, v_expiry, v_marks) with ordinality
             p (id, peer_mentor_id, expiry_date, mark, n)
    cross join lateral (
        select min(a.day) as due_on, min(a.day) filter (where a.day > v_today) as after_tonight
        from certexpiry.action_days(p.expiry_date, v_today, p_reminder_days) a
        where (p.mark is distinct from '-infinity' and not v_first_night)
           or not exists (select from certexpiry.recorded(p.id, a.action, p.expiry_date))
    ) j;

    v_counts := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days, v_due);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';
    v_failed := array(select (f ->> 'certification_id')::uuid from jsonb_array_elements(v_failures) f);

    -- A marked certification looked at goes back on the schedule; one with nothing left (still
    -- active after its effects: expired, its auto-pause recorded) is marked infinity; a reminder
    -- that failed on the schedule is marked for the next night. Failed marked ones keep their
    -- mark, failed auto-pauses stay on the schedule (every night's work), and a certification
    -- locked elsewhere, or changed since it was read, is left as it is.
    with marked as (
        select l.id, t.mark
        from unnest(v_ids, v_expiry, v_marks, v_next_on) w (id, expiry_date, mark, after_tonight)
        cross join lateral (
            select w.id = any (v_failed) as failed) f
        cross join lateral (
            select case when f.failed then v_today
                        when w.after_tonight is null then 'infinity'::date end as mark,
                   case when f.failed
                        then w.mark is null and not certexpiry.is_expired(w.expiry_date, v_today)
                        else w.mark is not null or w.after_tonight is null end as write) t
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

revoke all on function certexpiry.last_swept(date, integer) from public;
grant execute on function certexpiry.swept_by(date) to service_role;
revoke all on function certexpiry.swept_by(date) from public;
grant execute on function certexpiry.last_swept(date, integer) to service_role;
revoke all on function certexpiry.schedule_ranges(date, integer[]) from public;
grant execute on function certexpiry.schedule_ranges(date, integer[]) to service_role;
revoke all on function certexpiry.reset_next_action() from public;
