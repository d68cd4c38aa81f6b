-- What ops use (the certexpiry command line): the audit rows, remediation, tonight's plan, the
-- night history and the schema check. Granted to service_role only, like the sweep's API.
-- Why: docs/decisions/0015-schema-version-check.md, 0016-plan-night-rolled-back.md.

create or replace function certexpiry.audit_today(p_run_id uuid)
returns date
language sql stable
as $$
    select certexpiry.org_today(coalesce(
        (select r.timezone from certexpiry.cron_runs r where r.run_id = p_run_id), 'Europe/Oslo'))
$$;
comment on function certexpiry.audit_today(uuid) is
    'Today in the time zone of the audit row''s run (Europe/Oslo when the run is unknown).';

create or replace function certexpiry.still_missed(p_certification_ids jsonb, p_today date)
returns jsonb
language sql stable
as $_$
    select coalesce(jsonb_agg(m.certification_id order by m.certification_id), '[]'::jsonb)
    from certexpiry.missed_auto_pauses(p_today) m
    where m.certification_id in (
        select (e.value #>> '{}')::uuid
        from jsonb_array_elements(
                 case when jsonb_typeof(p_certification_ids) = 'array' then p_certification_ids
                      else '[]'::jsonb end) e
        where jsonb_typeof(e.value) = 'string'
          and e.value #>> '{}' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    )
$_$;
comment on function certexpiry.still_missed(jsonb, date) is
    'Of an audit row''s missed ids (only well-formed UUIDs count), those monitoring still finds.';

create or replace function public.list_cron_audit(p_limit integer default 20)
returns jsonb
language sql stable
set search_path = ''
as $$
    select coalesce(jsonb_agg(to_jsonb(x) order by x.run_at desc, x.run_id), '[]'::jsonb)
    from (
        select a.run_id, a.run_at, a.nightly_key, a.status, a.segments, a.missed_pause_count,
               a.resolved, a.resolved_at, a.duration_ms, a.totals, a.updated_at
        from public.cron_audit_log a
        order by a.run_at desc, a.run_id
        limit greatest(1, least(coalesce(p_limit, 20), 1000))
    ) x
$$;
comment on function public.list_cron_audit(integer) is
    'The newest audit rows (1 to 1000, default 20), without their id lists.';

create or replace function public.get_cron_audit(p_run_id uuid)
returns jsonb
language sql stable
set search_path = ''
as $$
    select to_jsonb(a) || jsonb_build_object(
        'still_missed', certexpiry.still_missed(a.missed_ids, certexpiry.audit_today(a.run_id)))
    from public.cron_audit_log a
    where a.run_id = p_run_id
$$;
comment on function public.get_cron_audit(uuid) is
    'One audit row with the ids monitoring still finds among its missed ids.';

create or replace function public.resolve_cron_audit(p_run_id uuid, p_force boolean default false)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row public.cron_audit_log;
    v_still jsonb;
begin
    select * into v_row from public.cron_audit_log where run_id = p_run_id for update;
    if not found then
        return jsonb_build_object('found', false, 'resolved', false, 'refused', false,
            'forced', false, 'still_missed', '[]'::jsonb, 'resolved_at', null);
    end if;
    v_still := certexpiry.still_missed(v_row.missed_ids, certexpiry.audit_today(p_run_id));
    if v_row.resolved then
        return jsonb_build_object('found', true, 'resolved', true, 'refused', false,
            'forced', false, 'still_missed', v_still, 'resolved_at', v_row.resolved_at);
    end if;
    if jsonb_array_length(v_still) > 0 and not coalesce(p_force, false) then
        return jsonb_build_object('found', true, 'resolved', false, 'refused', true,
            'forced', false, 'still_missed', v_still, 'resolved_at', null);
    end if;
    update public.cron_audit_log
    set resolved = true, resolved_at = coalesce(resolved_at, now()), updated_at = now()
    where run_id = p_run_id
    returning * into v_row;
    return jsonb_build_object('found', true, 'resolved', true, 'refused', false,
        'forced', jsonb_array_length(v_still) > 0, 'still_missed', v_still,
        'resolved_at', v_row.resolved_at);
end
$$;
comment on function public.resolve_cron_audit(uuid, boolean) is
    'Acknowledge an audit row; refused while any of its ids is still missed, unless forced.';

create or replace function public.remediate_auto_pauses(p_run_id uuid, p_certification_ids uuid[], p_timezone text)
returns jsonb
language sql
set search_path = ''
as $$
    select certexpiry.apply_effects_isolated(
        p_run_id, certexpiry.org_today(p_timezone), '{}', p_certification_ids)
$$;
comment on function public.remediate_auto_pauses(uuid, uuid[], text) is
    'Auto-pause exactly the given certifications through the same rule and failure isolation as '
    'the sweep (no reminder offsets: pauses only); only those that still qualify are touched.';

create or replace function public.plan_night(
    p_timezone text, p_today date, p_reminder_days integer[], p_ids_limit integer)
returns jsonb
language plpgsql
set search_path = ''
set lock_timeout = '3s'
as $_$
declare
    v_today date := coalesce(p_today, certexpiry.org_today(p_timezone));
    v_limit integer := greatest(0, least(coalesce(p_ids_limit, 20), 100000));
    v_plan_run uuid := gen_random_uuid();
    v_due uuid[];
    v_due_expiry date[];
    v_mentors uuid[];
    v_effects jsonb;
    v_done jsonb;
    v_run jsonb;
begin
    select coalesce(array_agg(a.certification_id order by a.certification_id), '{}'),
           coalesce(array_agg(a.expiry_date order by a.certification_id), '{}'),
           coalesce(array_agg(distinct a.peer_mentor_id), '{}')
      into v_due, v_due_expiry, v_mentors
    from certexpiry.actionable_certifications(v_today, p_reminder_days) a;

    select jsonb_build_object('run_id', r.run_id, 'status', r.status, 'segment', r.segment)
      into v_run
    from certexpiry.cron_runs r where r.nightly_key = v_today;

    begin
        -- The mentors still active before the effects, to tell which the effects pause.
        v_mentors := array(select m.id from public.peer_mentors m
                           where m.id = any (v_mentors) and m.status <> 'paused');
        v_effects := certexpiry.apply_effects_isolated(
            v_plan_run, v_today, p_reminder_days, v_due, v_due_expiry);
        with recorded as (
            select l.certification_id as id, l.action, l.outcome
            from certexpiry.certification_idempotency_log l
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
$_$;
comment on function public.plan_night(text, date, integer[], integer) is
    'What tonight''s sweep would do, without doing it: the night''s work whole '
    '(certexpiry.actionable_certifications, the sweep''s own selection and judgement), its '
    'effects applied and then rolled back by a private SQLSTATE (CXPLN), with counts and the '
    'first p_ids_limit ids of each list.';

create or replace function public.night_history(p_timezone text, p_nights integer)
returns jsonb
language sql stable
set search_path = ''
as $$
    with bounds as (
        select certexpiry.org_today(p_timezone) as today,
               greatest(1, least(coalesce(p_nights, 14), 366)) as nights,
               (select min(r.nightly_key) from certexpiry.cron_runs r) as first_night
    ), nights as (
        select (b.today - g)::date as night, b.today, b.first_night
        from bounds b cross join generate_series(0, b.nights - 1) g
    )
    select coalesce(jsonb_agg(jsonb_build_object(
            'night', n.night,
            'status', case
                when r.run_id is not null then r.status
                when n.first_night is null or n.night < n.first_night then 'before_first_run'
                when n.night = n.today then 'pending'
                else 'missed' end,
            'run_id', r.run_id,
            'segments', coalesce(a.segments, r.segment + 1),
            'started_at', r.started_at,
            'finished_at', r.finished_at,
            'duration_ms', coalesce(a.duration_ms,
                (extract(epoch from (r.finished_at - r.started_at)) * 1000)::bigint),
            'totals', coalesce(r.totals, '{}'::jsonb),
            'lease_left_s', case when r.status in ('running', 'handoff')
                                 then round(greatest(0, extract(epoch from (r.lease_until - now())))::numeric, 1)
                            end,
            'missed_pause_count', a.missed_pause_count,
            'resolved', a.resolved)
        order by n.night desc), '[]'::jsonb)
    from nights n
    left join certexpiry.cron_runs r on r.nightly_key = n.night
    left join public.cron_audit_log a on a.run_id = r.run_id
$$;
comment on function public.night_history(text, integer) is
    'The last p_nights organisation-local nights (1 to 366, default 14), newest first: each '
    'night''s run and status, or missed / pending / before_first_run, with its audit row''s '
    'missed pauses.';

create or replace function public.schema_version()
returns jsonb
language sql stable
security definer
set search_path = ''
as $$
    select jsonb_build_object('latest', max(m.version), 'applied', count(*))
    from certexpiry.schema_migrations m
$$;
comment on function public.schema_version() is
    'The job''s newest applied migration and how many are applied, from its own ledger (never '
    'the app''s migration history): the function''s cold-start check refuses a database older '
    'than its release.';
