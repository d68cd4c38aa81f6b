-- The SQL API of the nightly sweep: the only way the Python code touches data. Each function
-- returns one JSON value (PostgREST cuts SETOF results at its max-rows limit) and is idempotent,
-- so a retried call is harmless.

-- Claim the run of tonight (organisation-local date) for a nightly trigger.
--   started:   no run yet for tonight; this invocation owns segment 0.
--   resumed:   tonight's run is unfinished and its lease has lapsed (the invocation that held it
--              died); this invocation takes it over from its checkpoint with a new segment.
--   busy:      another invocation holds a live lease; the caller should retry later.
--   completed: tonight's run already finished; nothing to do.
-- Older runs left unfinished with a lapsed lease are marked abandoned (tonight's full sweep
-- covers everything they would have done) and listed, so no run stays in progress forever.
create or replace function public.claim_nightly_run(
    p_run_id uuid,
    p_timezone text default 'Europe/Oslo',
    p_lease_seconds integer default 120,
    p_now timestamptz default now())
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
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
            'started_at', v_run.started_at);
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
            'abandoned', v_abandoned, 'totals', v_run.totals, 'started_at', v_run.started_at);
    end if;
    return jsonb_build_object('outcome', 'busy', 'run_id', v_run.run_id, 'segment', v_run.segment,
        'today', v_key, 'lease_until', v_run.lease_until, 'abandoned', v_abandoned);
end
$$;

-- Claim segment p_segment of a run for a continuation message, by compare-and-set on the
-- stored (status, segment):
--   claimed:   the previous segment handed off to this one; or this segment's own message is
--              redelivered after its lease lapsed (its invocation died mid-segment, or handed
--              off and the continuation was never delivered). Resumes from the checkpoint.
--   busy:      this segment's lease is live (it is running, or its continuation may still
--              arrive); retry later. Waiting out the lease is what keeps it to one chain: a
--              duplicate that reclaimed a handed-off segment at once would fork the chain.
--   duplicate: the run moved past this segment or finished; acknowledge and drop.
--   unknown:   no such run (a forged or foreign message).
create or replace function public.claim_continuation(
    p_run_id uuid,
    p_segment integer,
    p_lease_seconds integer default 120,
    p_now timestamptz default now())
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
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
$$;

-- Process the next page of at most p_limit mentors with something due, in keyset order after
-- p_cursor, and checkpoint the run in the same transaction. Fenced: only the invocation that
-- holds (p_run_id, p_segment) may write. A failing row does not sink the batch
-- (certexpiry.apply_effects_isolated): failures are reported with their IDs.
create or replace function public.process_expiry_batch(
    p_run_id uuid,
    p_segment integer,
    p_cursor uuid default null,
    p_limit integer default 50,
    p_reminder_days integer[] default '{30,7,1}',
    p_lease_seconds integer default 120)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_run public.cron_runs;
    v_today date;
    v_mentors uuid[];
    v_certs uuid[];
    v_counts jsonb := '{}'::jsonb;
    v_failures jsonb := '[]'::jsonb;
    v_next uuid;
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

    -- The page: the next p_limit mentors with something due, in keyset order (an index range
    -- scan that stops at the limit), then their actionable certifications.
    select coalesce(array_agg(m.peer_mentor_id order by m.peer_mentor_id), '{}') into v_mentors
    from (
        select distinct a.peer_mentor_id
        from certexpiry.actionable_certifications(v_today, p_reminder_days) a
        where a.peer_mentor_id > coalesce(p_cursor, '00000000-0000-0000-0000-000000000000'::uuid)
        order by a.peer_mentor_id
        limit p_limit
    ) m;
    v_done := cardinality(v_mentors) < p_limit;
    v_next := case when cardinality(v_mentors) > 0 then v_mentors[cardinality(v_mentors)] else p_cursor end;

    select coalesce(array_agg(a.certification_id order by a.certification_id), '{}') into v_certs
    from certexpiry.actionable_certifications(v_today, p_reminder_days) a
    where a.peer_mentor_id = any (v_mentors);

    v_counts := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days, v_certs);
    v_failures := v_counts -> 'failures_detail';
    v_counts := v_counts - 'failures_detail';

    v_counts := certexpiry.sum_counts(
        jsonb_build_object('mentors', cardinality(v_mentors), 'certifications', cardinality(v_certs),
                           'batches', 1),
        v_counts);
    update public.cron_runs
    set cursor = v_next, heartbeat_at = now(),
        lease_until = greatest(lease_until, now() + make_interval(secs => p_lease_seconds)),
        totals = certexpiry.sum_counts(totals, v_counts)
    where run_id = p_run_id
    returning * into v_run;

    -- run_totals: the run's totals as committed, across segments and retried calls, so the
    -- caller never has to add them up itself (a lost answer would make its sum wrong).
    return v_counts || jsonb_build_object(
        'fenced', false, 'next_cursor', v_next, 'done', v_done, 'failures_detail', v_failures,
        'run_totals', v_run.totals);
end
$$;

-- Hand the run over to the next segment (the continuation message is published after this).
create or replace function public.handoff_run(p_run_id uuid, p_segment integer, p_lease_seconds integer default 120)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_run public.cron_runs;
begin
    update public.cron_runs
    set status = 'handoff', heartbeat_at = now(), lease_until = now() + make_interval(secs => p_lease_seconds)
    where run_id = p_run_id and segment = p_segment and status = 'running'
    returning * into v_run;
    return jsonb_build_object('fenced', not found, 'cursor', v_run.cursor, 'segment', p_segment);
end
$$;

-- Mark the run finished; returns its totals across all segments.
create or replace function public.complete_run(p_run_id uuid, p_segment integer)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_run public.cron_runs;
begin
    update public.cron_runs
    set status = 'completed', finished_at = now(), heartbeat_at = now()
    where run_id = p_run_id and segment = p_segment and status = 'running'
    returning * into v_run;
    return jsonb_build_object('fenced', not found, 'totals', v_run.totals, 'segments', v_run.segment + 1,
        'started_at', v_run.started_at, 'finished_at', v_run.finished_at, 'nightly_key', v_run.nightly_key);
end
$$;

-- The monitoring query: certifications that are expired, not paused and have no auto_pause
-- record. One JSON value with the count and every ID (never cut). p_today defaults to today in
-- p_timezone; the sweep passes its run's date so a run crossing midnight is judged by its own.
create or replace function public.get_missed_auto_pauses(
    p_timezone text default 'Europe/Oslo',
    p_today date default null)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select jsonb_build_object(
        'missed_pause_count', count(*),
        'missed_ids', coalesce(jsonb_agg(m.certification_id order by m.certification_id), '[]'::jsonb),
        'today', coalesce(p_today, certexpiry.org_today(p_timezone)))
    from certexpiry.missed_auto_pauses(coalesce(p_today, certexpiry.org_today(p_timezone))) m
$$;

-- One audit row per run, upserted on run_id so a re-run of the end of a run does not duplicate
-- it. resolved is ops' acknowledgement and is never reset by the job.
create or replace function public.upsert_cron_audit(
    p_run_id uuid,
    p_missed_pause_count integer,
    p_missed_ids jsonb,
    p_status text default 'completed',
    p_nightly_key date default null,
    p_segments integer default null,
    p_totals jsonb default '{}'::jsonb,
    p_duration_ms bigint default null,
    p_run_at timestamptz default now())
returns jsonb
language sql
security invoker
set search_path = ''
as $$
    insert into public.cron_audit_log as a (run_id, run_at, missed_pause_count, missed_ids, status,
        nightly_key, segments, totals, duration_ms)
    values (p_run_id, p_run_at, p_missed_pause_count, p_missed_ids, p_status, p_nightly_key,
        p_segments, coalesce(p_totals, '{}'::jsonb), p_duration_ms)
    on conflict (run_id) do update
    set missed_pause_count = excluded.missed_pause_count,
        missed_ids = excluded.missed_ids,
        status = excluded.status,
        nightly_key = coalesce(excluded.nightly_key, a.nightly_key),
        segments = coalesce(excluded.segments, a.segments),
        totals = excluded.totals,
        duration_ms = coalesce(excluded.duration_ms, a.duration_ms),
        updated_at = now()
    returning jsonb_build_object('run_id', a.run_id, 'missed_pause_count', a.missed_pause_count,
        'resolved', a.resolved)
$$;

-- Remediation (ops): auto-pause exactly the given certifications through the same rule and the
-- same failure isolation as the sweep (no reminder offsets: pauses only); only those that still
-- qualify are touched.
create or replace function public.remediate_auto_pauses(
    p_run_id uuid,
    p_certification_ids uuid[],
    p_timezone text default 'Europe/Oslo')
returns jsonb
language sql
security invoker
set search_path = ''
as $$
    select certexpiry.apply_effects_isolated(
        p_run_id, certexpiry.org_today(p_timezone), '{}', p_certification_ids)
$$;

revoke execute on function
    public.claim_nightly_run(uuid, text, integer, timestamptz),
    public.claim_continuation(uuid, integer, integer, timestamptz),
    public.process_expiry_batch(uuid, integer, uuid, integer, integer[], integer),
    public.handoff_run(uuid, integer, integer),
    public.complete_run(uuid, integer),
    public.get_missed_auto_pauses(text, date),
    public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz),
    public.remediate_auto_pauses(uuid, uuid[], text)
from public, anon, authenticated;

grant execute on function
    public.claim_nightly_run(uuid, text, integer, timestamptz),
    public.claim_continuation(uuid, integer, integer, timestamptz),
    public.process_expiry_batch(uuid, integer, uuid, integer, integer[], integer),
    public.handoff_run(uuid, integer, integer),
    public.complete_run(uuid, integer),
    public.get_missed_auto_pauses(text, date),
    public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz),
    public.remediate_auto_pauses(uuid, uuid[], text)
to service_role;
