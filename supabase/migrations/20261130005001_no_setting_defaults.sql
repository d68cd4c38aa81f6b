-- No SQL default repeats a setting. claim_nightly_run and remediate_auto_pauses defaulted the
-- organisation's time zone to 'Europe/Oslo', and claim_nightly_run, claim_continuation and
-- handoff_run the lease to 120 s: ORG_TIMEZONE and LEASE_S say what they are, and a caller that
-- forgot one would have run silently on the default instead of failing. Every caller (the store
-- adapters, the ops console, the benchmarks) passes them. PostgreSQL cannot drop a parameter
-- default in place, so each function is dropped and created again with the body it had (from
-- 20261130001001_missed_nights.sql and 20261128000300_sweep_api.sql, unchanged) and its grants.
-- p_now keeps its default: it is the clock, not a setting.

drop function public.claim_nightly_run(uuid,text,integer,timestamptz);
create function public.claim_nightly_run(p_run_id uuid, p_timezone text, p_lease_seconds integer, p_now timestamp with time zone DEFAULT now())
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
    v_key date := certexpiry.org_today(p_timezone, p_now);
    v_run public.cron_runs;
    v_abandoned jsonb;
begin
    with stale as (
        update public.cron_runs r
        set status = 'abandoned', finished_at = p_now
        where r.status in ('running', 'handoff') and r.nightly_key < v_key and r.lease_until < p_now
        returning r.run_id
    )
    select coalesce(jsonb_agg(run_id), '[]'::jsonb) into v_abandoned from stale;

    insert into public.cron_runs (run_id, nightly_key, timezone, status, segment, lease_until, heartbeat_at, started_at)
    values (p_run_id, v_key, p_timezone, 'running', 0, p_now + make_interval(secs => p_lease_seconds), p_now, p_now)
    on conflict (nightly_key) do nothing
    returning * into v_run;
    if found then
        return jsonb_build_object('outcome', 'started', 'run_id', v_run.run_id, 'segment', 0,
            'cursor', null, 'today', v_key, 'abandoned', v_abandoned, 'totals', v_run.totals,
            'started_at', v_run.started_at, 'missed_nights', certexpiry.missed_nights(v_key));
    end if;

    select * into v_run from public.cron_runs where nightly_key = v_key for update;
    if v_run.status in ('completed', 'abandoned') then
        return jsonb_build_object('outcome', 'completed', 'run_id', v_run.run_id,
            'segment', v_run.segment, 'today', v_key, 'abandoned', v_abandoned);
    end if;
    if v_run.lease_until < p_now then
        update public.cron_runs
        set segment = segment + 1, status = 'running', heartbeat_at = p_now,
            lease_until = p_now + make_interval(secs => p_lease_seconds)
        where run_id = v_run.run_id
        returning * into v_run;
        return jsonb_build_object('outcome', 'resumed', 'run_id', v_run.run_id,
            'segment', v_run.segment, 'cursor', v_run.cursor, 'today', v_key,
            'abandoned', v_abandoned, 'totals', v_run.totals, 'started_at', v_run.started_at,
            'missed_nights', certexpiry.missed_nights(v_key));
    end if;
    return jsonb_build_object('outcome', 'busy', 'run_id', v_run.run_id, 'segment', v_run.segment,
        'today', v_key, 'lease_until', v_run.lease_until, 'abandoned', v_abandoned);
end
$function$;
revoke all on function public.claim_nightly_run(uuid,text,integer,timestamptz) from public;
grant execute on function public.claim_nightly_run(uuid,text,integer,timestamptz) to service_role;

drop function public.claim_continuation(uuid,integer,integer,timestamptz);
create function public.claim_continuation(p_run_id uuid, p_segment integer, p_lease_seconds integer, p_now timestamp with time zone DEFAULT now())
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
    v_run public.cron_runs;
begin
    select * into v_run from public.cron_runs where run_id = p_run_id for update;
    if not found then
        return jsonb_build_object('outcome', 'unknown', 'run_id', p_run_id, 'segment', p_segment);
    end if;
    if v_run.status in ('running', 'handoff') then
        if (v_run.status = 'handoff' and v_run.segment = p_segment - 1)
           or (v_run.segment = p_segment and v_run.lease_until < p_now) then
            update public.cron_runs
            set segment = p_segment, status = 'running', heartbeat_at = p_now,
                lease_until = p_now + make_interval(secs => p_lease_seconds)
            where run_id = p_run_id
            returning * into v_run;
            return jsonb_build_object('outcome', 'claimed', 'run_id', v_run.run_id,
                'segment', v_run.segment, 'cursor', v_run.cursor, 'today', v_run.nightly_key,
                'totals', v_run.totals, 'started_at', v_run.started_at);
        end if;
        if v_run.segment = p_segment then
            return jsonb_build_object('outcome', 'busy', 'run_id', v_run.run_id,
                'segment', v_run.segment, 'lease_until', v_run.lease_until);
        end if;
    end if;
    return jsonb_build_object('outcome', 'duplicate', 'run_id', v_run.run_id,
        'segment', v_run.segment, 'status', v_run.status);
end
$function$;
revoke all on function public.claim_continuation(uuid,integer,integer,timestamptz) from public;
grant execute on function public.claim_continuation(uuid,integer,integer,timestamptz) to service_role;

drop function public.handoff_run(uuid,integer,integer);
create function public.handoff_run(p_run_id uuid, p_segment integer, p_lease_seconds integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
    v_run public.cron_runs;
begin
    update public.cron_runs
    set status = 'handoff', heartbeat_at = now(), lease_until = now() + make_interval(secs => p_lease_seconds)
    where run_id = p_run_id and segment = p_segment and status = 'running'
    returning * into v_run;
    return jsonb_build_object('fenced', not found, 'cursor', v_run.cursor, 'segment', p_segment);
end
$function$;
revoke all on function public.handoff_run(uuid,integer,integer) from public;
grant execute on function public.handoff_run(uuid,integer,integer) to service_role;

drop function public.remediate_auto_pauses(uuid,uuid[],text);
create function public.remediate_auto_pauses(p_run_id uuid, p_certification_ids uuid[], p_timezone text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
    select certexpiry.apply_effects_isolated(
        p_run_id, certexpiry.org_today(p_timezone), '{}', p_certification_ids)
$function$;
revoke all on function public.remediate_auto_pauses(uuid,uuid[],text) from public;
grant execute on function public.remediate_auto_pauses(uuid,uuid[],text) to service_role;
