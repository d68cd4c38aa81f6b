-- The night's work, set-based: the next action of a page of certifications is computed in one
-- query (an inlinable set-returning function) instead of one function call per certification,
-- and the index monitoring no longer reads is dropped, so every certification write of the
-- night maintains one index fewer.

-- When each of the given certifications next has something due, judged on the night p_today,
-- from what the idempotency log records for its current expiry date: the auto-pause from the
-- first expired day, each unrecorded reminder offset from the first day it is due while its
-- window is open; null when nothing is left (the auto-pause is recorded). Written with the
-- effects' own rules (is_expired, reminder_due, recorded). One SELECT, so the planner inlines it
-- into the query that uses it. Inactive certifications are left out.
create or replace function certexpiry.next_actions(
    p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns table (certification_id uuid, next_action_on date)
language sql stable
as $$
    select c.id,
           (select min(due.day) from (
                select case when certexpiry.is_expired(c.expiry_date, p_today) then p_today
                            else c.expiry_date + 1 end as day
                where not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date))
                union all
                select greatest(c.expiry_date - n, p_today)
                from unnest(p_reminder_days) n
                where certexpiry.reminder_due(c.expiry_date, greatest(c.expiry_date - n, p_today), n)
                  and not exists (
                      select from certexpiry.recorded(c.id, certexpiry.reminder_action(n), c.expiry_date))
            ) due)
    from public.certifications c
    where c.id = any (p_certification_ids) and c.status = 'active'
$$;

-- The one-certification form, in terms of the set form (kept for callers that have one row).
create or replace function certexpiry.next_action_date(
    p_certification_id uuid, p_expiry_date date, p_today date, p_reminder_days integer[])
returns date
language sql stable
as $$
    select n.next_action_on
    from certexpiry.next_actions(p_today, p_reminder_days, array[p_certification_id]) n
$$;

-- Actionable on p_today: active, its next action due (the demo seed and the benchmarks use it;
-- the sweep pages the same set in batches).
create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date
    from certexpiry.next_actions(p_today, p_reminder_days, array(
             select w.id from public.certifications w
             where w.status = 'active' and w.next_action_on <= p_today)) n
    join public.certifications c on c.id = n.certification_id
    where n.next_action_on <= p_today
$$;

-- Monitoring reads the night's leftover work through certifications_next_action_idx now.
drop index public.certifications_unpaused_expiry_idx;

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
    v_page uuid[];
    v_due uuid[];
    v_mentors integer;
    v_last_day date;
    v_last_id uuid;
    v_counts jsonb;
    v_failures jsonb;
    v_done_ids uuid[];
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

    -- Of the page, those with an effect due tonight (one inserted or renewed since it was last
    -- looked at may have none yet), and how many mentors they belong to.
    select coalesce(array_agg(n.certification_id order by n.certification_id), '{}'),
           count(distinct c.peer_mentor_id)
      into v_due, v_mentors
    from certexpiry.next_actions(v_today, p_reminder_days, v_page) n
    join public.certifications c on c.id = n.certification_id
    where n.next_action_on <= v_today;

    v_counts := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days, v_due);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';

    -- Processed certifications leave the night's work (paused ones already have, by the
    -- trigger); failed ones, and any locked elsewhere right now, stay for monitoring and the
    -- next night.
    select coalesce(array_agg(l.id), '{}') into v_done_ids
    from (
        select c.id from public.certifications c
        where c.id = any (v_page) and c.status = 'active'
          and not exists (select from jsonb_array_elements(v_failures) f
                          where (f ->> 'certification_id')::uuid = c.id)
        for update skip locked
    ) l;
    update public.certifications c
    set next_action_on = n.next_action_on
    from certexpiry.next_actions(v_today, p_reminder_days, v_done_ids) n
    where c.id = n.certification_id
      and c.next_action_on is distinct from n.next_action_on;

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

revoke all on function certexpiry.next_actions(date, integer[], uuid[]) from public;
grant execute on function certexpiry.next_actions(date, integer[], uuid[]) to service_role;
