-- The night's work judged from the schedule (issue 14, "whole night <= 1.3x the floor").
--
-- Until now every certification of a page was judged by probing the idempotency log once per
-- possible effect (the auto-pause and each reminder offset): on the cohort due its 30-day
-- reminder that was four index probes per certification into a log of years of history, about
-- 2.1 s of a 10.8 s night whose floor is 6.9 s, and the effects then probe the same log again
-- when they insert with ON CONFLICT DO NOTHING.
--
-- A certification the sweep has already looked at does not need the probes. Its finite
-- next_action_on was written by the sweep as the first day after that night on which one of its
-- effects falls due, and nothing between then and now can have recorded one of them: an effect
-- is only recorded by the sweep (or by remediation, which records the auto-pause together with
-- the pause that leaves the night's work), and a change of the expiry date or status sends the
-- certification back to -infinity. So what is due tonight, and what falls due after tonight,
-- follows from the expiry date and the offsets alone; the effects' own ON CONFLICT DO NOTHING
-- stays the arbiter of "never twice" whatever the judgement says. Only a certification not yet
-- looked at (-infinity: inserted, renewed or reactivated since the last night) is judged with
-- the log, as before.
--
-- When each effect falls due is now defined once, in certexpiry.action_days; next_actions (the
-- judgement with the log, used by the demo seed, plan_night and the first look) and the sweep
-- both read it. Monitoring's reasoning (20261130000600) still holds: the sweep gives a
-- certification that stays active a finite date only while it is not expired (an expired one
-- that stays active after its effects has its auto-pause recorded, so nothing is left).

-- The days on which each effect of a certification with this expiry date falls due, as seen on
-- the night p_today: the auto-pause from the first expired day (today if already expired), each
-- reminder offset from the first day it is due while its window is open (today if already due).
-- Effects whose window has closed are left out. Pure: what the log records is the caller's
-- business. One SELECT, so the planner inlines it.
create or replace function certexpiry.action_days(
    p_expiry_date date, p_today date, p_reminder_days integer[])
returns table (action text, day date)
language sql immutable
as $$
    select 'auto_pause',
           case when certexpiry.is_expired(p_expiry_date, p_today) then p_today
                else p_expiry_date + 1 end
    union all
    select certexpiry.reminder_action(n), greatest(p_expiry_date - n, p_today)
    from unnest(p_reminder_days) n
    where certexpiry.reminder_due(p_expiry_date, greatest(p_expiry_date - n, p_today), n)
$$;

revoke all on function certexpiry.action_days(date, date, integer[]) from public;
grant execute on function certexpiry.action_days(date, date, integer[]) to service_role;

-- As in 20261130004001_night_work_once.sql (same answer), written with action_days: the
-- effects due on or after p_today that the log does not record.
create or replace function certexpiry.next_actions(
    p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date,
               next_action_on date, after_tonight date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date, d.next_action_on, d.after_tonight
    from public.certifications c
    cross join lateral (
        select min(a.day) as next_action_on,
               min(a.day) filter (where a.day > p_today) as after_tonight
        from certexpiry.action_days(c.expiry_date, p_today, p_reminder_days) a
        where not exists (select from certexpiry.recorded(c.id, a.action, c.expiry_date))
    ) d
    where c.id = any (p_certification_ids) and c.status = 'active'
$$;

-- As in 20261130004001_night_work_once.sql, with the page judged in the query that reads it:
-- a certification already looked at from its expiry date alone, one not yet looked at with the
-- log (next_actions' rule, inline so that the page's rows are read once).
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
    v_after_day date;
    v_after_id uuid;
    v_page_size integer;
    v_ids uuid[];
    v_expiry date[];
    v_next_on date[];
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

    -- The page (an index range scan of the night's work that stops at the limit), judged as it
    -- is read: which certifications have an effect due tonight (one inserted or renewed since it
    -- was last looked at may have none yet), how many mentors they belong to, and when each is
    -- next due once tonight's effects are recorded. The arrays by id are aligned (same order).
    select count(*),
           (array_agg(p.next_action_on order by p.next_action_on desc, p.id desc))[1],
           (array_agg(p.id order by p.next_action_on desc, p.id desc))[1],
           coalesce(array_agg(p.id order by p.id) filter (where j.due_on <= v_today), '{}'),
           count(distinct p.peer_mentor_id) filter (where j.due_on <= v_today),
           coalesce(array_agg(p.id order by p.id), '{}'),
           coalesce(array_agg(p.expiry_date order by p.id), '{}'),
           coalesce(array_agg(j.after_tonight order by p.id), '{}')
      into v_page_size, v_last_day, v_last_id, v_due, v_mentors, v_ids, v_expiry, v_next_on
    from (
        select c.id, c.peer_mentor_id, c.expiry_date, c.next_action_on
        from public.certifications c
        where c.status = 'active'
          and c.next_action_on <= v_today
          and (c.next_action_on, c.id) > (v_after_day, v_after_id)
        order by c.next_action_on, c.id
        limit p_limit
    ) p
    cross join lateral (
        select min(a.day) as due_on, min(a.day) filter (where a.day > v_today) as after_tonight
        from certexpiry.action_days(p.expiry_date, v_today, p_reminder_days) a
        where p.next_action_on <> '-infinity'
           or not exists (select from certexpiry.recorded(p.id, a.action, p.expiry_date))
    ) j;

    v_counts := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days, v_due);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';
    v_failed := array(select (f ->> 'certification_id')::uuid from jsonb_array_elements(v_failures) f);

    -- Processed certifications leave the night's work (paused ones already have, by the
    -- trigger); failed ones, and any locked elsewhere right now, stay for monitoring and the
    -- next night.
    with locked as (
        select l.id, w.after_tonight
        from unnest(v_ids, v_expiry, v_next_on) w (id, expiry_date, after_tonight)
        join public.certifications l on l.id = w.id
        where l.status = 'active'
          and l.expiry_date = w.expiry_date
          and l.next_action_on is distinct from w.after_tonight
          and not (l.id = any (v_failed))
        for update of l skip locked
    )
    update public.certifications c
    set next_action_on = k.after_tonight
    from locked k
    where c.id = k.id;

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
        'fenced', false, 'next_cursor', v_next, 'done', v_page_size < p_limit,
        'failures_detail', v_failures, 'run_totals', v_run.totals);
end
$$;
