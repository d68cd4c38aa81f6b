-- What ops use (the certexpiry command line): the audit rows, remediation, tonight's plan, the
-- night history with the acknowledging of a missed night, and the schema check. Granted to
-- service_role only, like the sweep's API.
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
    v_limit integer := case when p_ids_limit is not null  -- null: every id
                            then greatest(0, least(p_ids_limit, 100000)) end;
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
    'first p_ids_limit ids of each list (null: all of them).';

create or replace function certexpiry.expected_at(
    p_night date, p_timezone text, p_schedule_time time, p_schedule_zone text)
returns timestamptz
language sql stable
set search_path = ''
as $$
    select min(x.t)
    from (select ((p_night + k) + p_schedule_time) at time zone p_schedule_zone as t
          from generate_series(-1, 1) k) x
    where (x.t at time zone p_timezone)::date = p_night
$$;
comment on function certexpiry.expected_at(date, text, time, text) is
    'When a daily schedule at p_schedule_time in p_schedule_zone (Cloud Scheduler''s cron and '
    'time zone) fires for the organisation-local night p_night: the firing whose local date in '
    'p_timezone is that night (null when none is, which a far-off zone can make happen).';

create or replace function certexpiry.first_night()
returns date
language sql stable
set search_path = ''
as $$
    select min(r.nightly_key) from certexpiry.cron_runs r
$$;
comment on function certexpiry.first_night() is
    'The night of the first run ever recorded (null: none): no night before it is missed.';

create or replace function public.night_history(
    p_timezone text, p_nights integer, p_schedule_time time, p_schedule_zone text,
    p_late_after_s integer, p_now timestamptz default now())
returns jsonb
language sql stable
set search_path = ''
as $$
    with bounds as (
        select certexpiry.org_today(p_timezone, p_now) as today,
               greatest(1, least(coalesce(p_nights, 14), 366)) as nights,
               certexpiry.first_night() as first_night
    ), nights as (
        select (b.today - g)::date as night, b.today, b.first_night
        from bounds b cross join generate_series(0, b.nights - 1) g
    ), facts as (
        select n.night, n.today, n.first_night, r.run_id, r.status as run_status, r.segment,
               r.started_at, r.finished_at, r.worked_ms, r.totals, r.lease_until,
               a.status as audit_status, a.segments, a.missed_pause_count, a.resolved,
               k.acknowledged_at, k.code as ack_code,
               certexpiry.expected_at(n.night, p_timezone, p_schedule_time, p_schedule_zone)
                   as expected_at,
               (select min(c.nightly_key) from certexpiry.cron_runs c
                where c.nightly_key > n.night and c.swept_reminder_days is not null)
                   as swept_after
        from nights n
        left join certexpiry.cron_runs r on r.nightly_key = n.night
        left join public.cron_audit_log a on a.run_id = r.run_id
        left join certexpiry.night_acknowledgements k on k.night = n.night
    )
    select coalesce(jsonb_agg(jsonb_build_object(
            'night', f.night,
            'state', case
                when f.run_id is not null then case
                    when f.run_status <> 'completed' and f.audit_status = 'failed' then 'stopped'
                    when f.run_status in ('running', 'handoff') and f.lease_until >= p_now
                        then 'running'
                    when f.run_status <> 'completed' then 'failed'
                    when f.audit_status is distinct from 'completed' then 'unverified'
                    when f.missed_pause_count > 0 and not f.resolved then 'unresolved'
                    else 'ok' end
                when f.first_night is null or f.night < f.first_night then 'before_first_run'
                when f.night = f.today then case
                    when p_now >= f.expected_at + make_interval(secs => greatest(p_late_after_s, 0))
                        then 'late'
                    else 'pending' end
                when f.acknowledged_at is not null then 'acknowledged'
                else 'missed' end,
            'run_id', f.run_id,
            'run_status', f.run_status,
            'audit_status', f.audit_status,
            'segments', coalesce(f.segments, f.segment + 1),
            'expected_at', f.expected_at,
            'started_at', f.started_at,
            'finished_at', f.finished_at,
            'worked_ms', f.worked_ms,
            'wall_ms', (floor(extract(epoch from (f.finished_at - f.started_at)) * 1000))::bigint,
            'totals', coalesce(f.totals, '{}'::jsonb),
            'lease_left_s', case when f.run_status in ('running', 'handoff')
                                 then round(greatest(0, extract(epoch from (f.lease_until - p_now)))::numeric, 1)
                            end,
            'missed_pause_count', f.missed_pause_count,
            'resolved', f.resolved,
            'acknowledged_at', f.acknowledged_at,
            'ack_code', f.ack_code,
            'covered_by', case when f.run_id is null and f.night >= f.first_night
                               and f.night < f.today then f.swept_after end)
        order by f.night desc), '[]'::jsonb)
    from facts f
$$;
comment on function public.night_history(text, integer, time, text, integer, timestamptz) is
    'The last p_nights organisation-local nights (1 to 366, default 14), newest first, as a '
    'cron monitor shows them: each night''s state (ok, unresolved, unverified, running, failed, '
    'stopped; without a run: late, pending, missed, acknowledged, before_first_run), when the '
    'schedule (p_schedule_time in p_schedule_zone) expected it and when it started and ended, '
    'the time its segments worked (cron_runs.worked_ms, without the waits between them), its '
    'totals and audit row, and for a night without a run the later night whose run swept what '
    'it left (covered_by; null: the next run will). Tonight is late once p_late_after_s have '
    'passed since its expected time without a run.';

create or replace function public.acknowledge_missed_nights(
    p_nights date[], p_timezone text, p_code text, p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $_$
declare
    v_today date := certexpiry.org_today(p_timezone, p_now);
    v_first date := certexpiry.first_night();
    v_night date;
    v_row certexpiry.night_acknowledgements;
    v_answer jsonb := '[]'::jsonb;
begin
    if p_code is not null and p_code !~ '^[a-z][a-z0-9_]{0,39}$' then
        raise exception 'p_code must match ^[a-z][a-z0-9_]{0,39}$' using errcode = '22023';
    end if;
    if p_nights is null or cardinality(p_nights) > 366 then
        raise exception 'p_nights must hold at most 366 nights' using errcode = '22023';
    end if;
    for v_night in select distinct n from unnest(p_nights) n where n is not null order by n loop
        if exists (select from certexpiry.cron_runs r where r.nightly_key = v_night) then
            v_answer := v_answer || jsonb_build_object('night', v_night, 'outcome', 'has_run',
                'acknowledged_at', null, 'code', null);
            continue;
        end if;
        if v_first is null or v_night < v_first or v_night >= v_today then
            v_answer := v_answer || jsonb_build_object('night', v_night, 'outcome', 'not_missed',
                'acknowledged_at', null, 'code', null);
            continue;
        end if;
        insert into certexpiry.night_acknowledgements (night, acknowledged_at, code)
        values (v_night, p_now, p_code)
        on conflict (night) do nothing
        returning * into v_row;
        if found then
            v_answer := v_answer || jsonb_build_object('night', v_night, 'outcome', 'acknowledged',
                'acknowledged_at', v_row.acknowledged_at, 'code', v_row.code);
        else
            select * into v_row from certexpiry.night_acknowledgements where night = v_night;
            v_answer := v_answer || jsonb_build_object('night', v_night, 'outcome', 'already',
                'acknowledged_at', v_row.acknowledged_at, 'code', v_row.code);
        end if;
    end loop;
    return v_answer;
end
$_$;
comment on function public.acknowledge_missed_nights(date[], text, text, timestamptz) is
    'Acknowledge missed nights (no run, after the first run ever, before tonight in '
    'p_timezone), each once and for good, with an optional code: per night, oldest first, '
    'acknowledged, already (the first acknowledgement stands), has_run or not_missed (nothing '
    'written for those two).';

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
