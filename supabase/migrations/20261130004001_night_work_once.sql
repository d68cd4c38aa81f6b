-- The night's work evaluated once per batch (issue 14, "the actionable set evaluated once per
-- batch").
--
-- Until now a batch evaluated certexpiry.next_actions twice: once over its page to find what is
-- due, and again after the effects, over the same certifications, to date their next action;
-- each evaluation probed the idempotency log for every offset of every certification, and the
-- second one was joined into the UPDATE in a way that read the table again per batch. Measured
-- on the bench's cohort due its 30-day reminder (16,000 certifications, 33 batches), that
-- second pass and its UPDATE were 633 ms of a 1.61 s night whose floor is 0.63 s.
--
-- The next action once tonight's effects are recorded follows from the same evaluation:
-- tonight's effects record every effect due tonight (the auto-pause pauses the certification;
-- the smallest due reminder is sent and the larger due ones are superseded), so what is left is
-- exactly the due days after tonight. next_actions now answers both, from one definition: the
-- next action as of now (next_action_on: the night's work is what is due on p_today) and the
-- next one once tonight's effects are applied (after_tonight: what the sweep stores).

drop function certexpiry.next_actions(date, integer[], uuid[]);

-- When each of the given active certifications next has something due, judged on the night
-- p_today from what the idempotency log records for its current expiry date: the auto-pause
-- from the first expired day, each unrecorded reminder offset from the first day it is due
-- while its window is open. next_action_on: the earliest such day (null: nothing left);
-- after_tonight: the earliest after p_today, i.e. the next action once every effect due on
-- p_today is recorded. Written with the effects' own rules (is_expired, reminder_due,
-- recorded); one SELECT, so the planner inlines it into the query that uses it.
create function certexpiry.next_actions(
    p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date,
               next_action_on date, after_tonight date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date, d.next_action_on, d.after_tonight
    from public.certifications c
    cross join lateral (
        select min(due.day) as next_action_on,
               min(due.day) filter (where due.day > p_today) as after_tonight
        from (
            select case when certexpiry.is_expired(c.expiry_date, p_today) then p_today
                        else c.expiry_date + 1 end as day
            where not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date))
            union all
            select greatest(c.expiry_date - n, p_today)
            from unnest(p_reminder_days) n
            where certexpiry.reminder_due(c.expiry_date, greatest(c.expiry_date - n, p_today), n)
              and not exists (
                  select from certexpiry.recorded(c.id, certexpiry.reminder_action(n), c.expiry_date))
        ) due
    ) d
    where c.id = any (p_certification_ids) and c.status = 'active'
$$;

revoke all on function certexpiry.next_actions(date, integer[], uuid[]) from public;
grant execute on function certexpiry.next_actions(date, integer[], uuid[]) to service_role;

-- As in 20261130000400_night_work_set_based.sql, with the page evaluated once: the due
-- certifications, their mentors and each certification's next action after tonight come from
-- one next_actions over the page; after the effects, the certifications that did not fail and
-- are not locked elsewhere get that date, unless their expiry date changed meanwhile (a renewal
-- leaves -infinity, set by its trigger, for the next night). The date computed before the
-- effects is never later than the true one (the log only grows), so a certification is never
-- dated past its work.
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

    -- The page evaluated once: those with an effect due tonight (one inserted or renewed since
    -- it was last looked at may have none yet), how many mentors they belong to, and when each
    -- certification of the page is next due once tonight's effects are recorded.
    select coalesce(array_agg(n.certification_id order by n.certification_id)
                        filter (where n.next_action_on <= v_today), '{}'),
           count(distinct n.peer_mentor_id) filter (where n.next_action_on <= v_today),
           coalesce(array_agg(n.certification_id), '{}'),
           coalesce(array_agg(n.expiry_date), '{}'),
           coalesce(array_agg(n.after_tonight), '{}')
      into v_due, v_mentors, v_ids, v_expiry, v_next_on
    from certexpiry.next_actions(v_today, p_reminder_days, v_page) n;

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
        'fenced', false, 'next_cursor', v_next, 'done', cardinality(v_page) < p_limit,
        'failures_detail', v_failures, 'run_totals', v_run.totals);
end
$$;
