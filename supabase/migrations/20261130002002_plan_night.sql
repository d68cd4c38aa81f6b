-- What a night's run would do, without doing it (`certexpiry plan`): before the first
-- production night, after a long outage, or before changing REMINDER_DAYS.
--
-- No copy of a rule: the function takes the night's work exactly as the sweep pages it
-- (certexpiry.actionable_certifications: active, next action due) and applies the sweep's own
-- effects to it (certexpiry.apply_effects_isolated: the same rules, triggers, constraints and
-- failure isolation) inside a block that always ends by raising, so PL/pgSQL rolls every write
-- back; what the effects recorded is read out into variables first, which survive the rollback.
-- So the answer is what the run would do, failures included, id for id. Nothing is kept; only
-- the outbox's identity sequence advances (sequences are not transactional). Row locks are
-- taken and released with the block: run it when no run is in progress (a row locked elsewhere
-- shows up as a failure after the 3 s lock_timeout).
--
-- p_today: the organisation-local night to plan (null: today in p_timezone); p_ids_limit: how
-- many IDs of each list to return (0..100000, lowest IDs first); every count is complete.
-- Reminders sent and reminders superseded are keyed by offset (days).
-- run: tonight's cron_runs row (status and segment), or null when none exists yet.
create or replace function public.plan_night(
    p_timezone text,
    p_today date,
    p_reminder_days integer[],
    p_ids_limit integer)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
set lock_timeout = '3s'
as $$
declare
    v_today date := coalesce(p_today, certexpiry.org_today(p_timezone));
    v_limit integer := greatest(0, least(coalesce(p_ids_limit, 20), 100000));
    v_plan_run uuid := gen_random_uuid();
    v_due uuid[];
    v_mentors uuid[];
    v_effects jsonb;
    v_done jsonb;
    v_run jsonb;
begin
    select coalesce(array_agg(a.certification_id order by a.certification_id), '{}'),
           coalesce(array_agg(distinct a.peer_mentor_id), '{}')
      into v_due, v_mentors
    from certexpiry.actionable_certifications(v_today, p_reminder_days) a;

    select jsonb_build_object('run_id', r.run_id, 'status', r.status, 'segment', r.segment)
      into v_run
    from public.cron_runs r where r.nightly_key = v_today;

    begin
        -- The mentors still active before the effects, to tell which the effects pause.
        v_mentors := array(select m.id from public.peer_mentors m
                           where m.id = any (v_mentors) and m.status <> 'paused');
        v_effects := certexpiry.apply_effects_isolated(v_plan_run, v_today, p_reminder_days, v_due);
        with recorded as (
            select l.certification_id as id, l.action, l.outcome
            from public.certification_idempotency_log l
            where l.run_id = v_plan_run
        ), lists as (
            select 'reminder_' || substring(r.action from '^reminder_([0-9]+)d$') as list, r.id
            from recorded r where r.action like 'reminder\_%' and r.outcome = 'done'
            union all
            select 'superseded_' || substring(r.action from '^reminder_([0-9]+)d$'), r.id
            from recorded r where r.action like 'reminder\_%' and r.outcome = 'superseded'
            union all
            select 'certifications_paused', r.id from recorded r where r.action = 'auto_pause'
            union all
            select 'mentors_paused', m.id from public.peer_mentors m
            where m.id = any (v_mentors) and m.status = 'paused'
            union all
            select 'failures', (f ->> 'certification_id')::uuid
            from jsonb_array_elements(v_effects -> 'failures_detail') f
        )
        select coalesce(jsonb_object_agg(g.list, jsonb_build_object('count', g.n, 'ids', g.ids)),
                        '{}'::jsonb)
          into v_done
        from (
            select l.list, count(distinct l.id) as n,
                   coalesce((select jsonb_agg(x.id order by x.id) from (
                                 select distinct l2.id from lists l2 where l2.list = l.list
                                 order by l2.id limit v_limit) x), '[]'::jsonb) as ids
            from lists l group by l.list
        ) g;
        raise exception 'plan_night: roll back' using errcode = 'CXPLN';
    exception when sqlstate 'CXPLN' then
        null;  -- every write of the block is undone; v_effects and v_done are kept
    end;

    return jsonb_build_object(
        'today', v_today,
        'reminder_days', to_jsonb(p_reminder_days),
        'run', v_run,
        'certifications', cardinality(v_due),
        'counts', v_effects - 'failures_detail',
        'reminders', coalesce((select jsonb_object_agg(substring(k from 10), v_done -> k)
                               from jsonb_object_keys(v_done) k where k like 'reminder\_%'),
                              '{}'::jsonb),
        'superseded', coalesce((select jsonb_object_agg(substring(k from 12), v_done -> k)
                                from jsonb_object_keys(v_done) k where k like 'superseded\_%'),
                               '{}'::jsonb),
        'certifications_paused',
            coalesce(v_done -> 'certifications_paused', '{"count": 0, "ids": []}'::jsonb),
        'mentors_paused', coalesce(v_done -> 'mentors_paused', '{"count": 0, "ids": []}'::jsonb),
        'failures', coalesce(v_done -> 'failures', '{"count": 0, "ids": []}'::jsonb));
end
$$;

revoke all on function public.plan_night(text, date, integer[], integer) from public, anon, authenticated;
grant execute on function public.plan_night(text, date, integer[], integer) to service_role;
