-- The sweep's SQL API: the only way the function touches data. Each RPC returns one JSON value
-- (PostgREST cuts SETOF results at its max-rows limit) and is idempotent, so a retried call is
-- harmless. One row of cron_runs per organisation-local night holds a lease and a segment
-- number that fences writers: only the invocation holding (run, segment) may write.
-- Why: docs/decisions/0004-run-totals-in-the-database.md, 0009-keyset-pages-bounded-in-
-- certifications.md, 0020-no-sql-default-repeats-a-setting.md, 0026-batch-size-1000.md.

create or replace function certexpiry.ms_since(p_then timestamptz)
returns bigint
language sql stable
set search_path = ''
as $$
    select greatest(0, floor(extract(epoch from (now() - p_then)) * 1000))::bigint
$$;
comment on function certexpiry.ms_since(timestamptz) is
    'Whole milliseconds from p_then to now (0 if p_then is later): what a heartbeat adds to '
    'cron_runs.worked_ms.';

create or replace function public.claim_nightly_run(
    p_run_id uuid, p_timezone text, p_lease_seconds integer, p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_key date := certexpiry.org_today(p_timezone, p_now);
    v_run certexpiry.cron_runs;
    v_abandoned jsonb;
begin
    with stale as (
        update certexpiry.cron_runs r
        set status = 'abandoned', finished_at = p_now
        where r.status in ('running', 'handoff') and r.nightly_key < v_key and r.lease_until < p_now
        returning r.run_id
    )
    select coalesce(jsonb_agg(run_id), '[]'::jsonb) into v_abandoned from stale;

    insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, segment, lease_until, heartbeat_at, started_at)
    values (p_run_id, v_key, p_timezone, 'running', 0, p_now + make_interval(secs => p_lease_seconds), p_now, p_now)
    on conflict (nightly_key) do nothing
    returning * into v_run;
    if found then
        return jsonb_build_object('outcome', 'started', 'run_id', v_run.run_id, 'segment', 0,
            'cursor', null, 'today', v_key, 'abandoned', v_abandoned, 'totals', v_run.totals,
            'started_at', v_run.started_at, 'missed_nights', certexpiry.missed_nights(v_key));
    end if;

    select * into v_run from certexpiry.cron_runs where nightly_key = v_key for update;
    if v_run.status in ('completed', 'abandoned') then
        return jsonb_build_object('outcome', 'completed', 'run_id', v_run.run_id,
            'segment', v_run.segment, 'today', v_key, 'abandoned', v_abandoned);
    end if;
    if v_run.lease_until < p_now then
        update certexpiry.cron_runs
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
$$;
comment on function public.claim_nightly_run(uuid, text, integer, timestamptz) is
    'Claim tonight''s run (organisation-local date) for a nightly trigger. started: no run yet, '
    'this invocation owns segment 0; resumed: unfinished and its lease lapsed, taken over from '
    'its checkpoint with a new segment; busy: a live lease elsewhere, retry later; completed: '
    'nothing to do. Older unfinished runs with a lapsed lease are marked abandoned and listed '
    '(tonight''s sweep covers their work).';

create or replace function public.claim_continuation(
    p_run_id uuid, p_segment integer, p_lease_seconds integer, p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_run certexpiry.cron_runs;
begin
    select * into v_run from certexpiry.cron_runs where run_id = p_run_id for update;
    if not found then
        return jsonb_build_object('outcome', 'unknown', 'run_id', p_run_id, 'segment', p_segment);
    end if;
    if v_run.status in ('running', 'handoff') then
        if (v_run.status = 'handoff' and v_run.segment = p_segment - 1)
           or (v_run.segment = p_segment and v_run.lease_until < p_now) then
            update certexpiry.cron_runs
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
comment on function public.claim_continuation(uuid, integer, integer, timestamptz) is
    'Claim segment p_segment of a run for a continuation message, by compare-and-set on the '
    'stored (status, segment). claimed: the previous segment handed off to this one, or this '
    'segment''s lease lapsed (resume from the checkpoint); busy: its lease is live, retry later '
    '(waiting out the lease keeps it to one chain); duplicate: the run moved on, acknowledge; '
    'unknown: no such run.';

create or replace function public.process_expiry_batch(
    p_run_id uuid,
    p_segment integer,
    p_cursor text,
    p_limit integer,
    p_reminder_days integer[],
    p_lease_seconds integer,
    p_failed_ahead text[] default '{}')
returns jsonb
language plpgsql
set search_path = ''
set lock_timeout = '3s'
as $$
declare
    v_run certexpiry.cron_runs;
    v_today date;
    v_failed_ahead text[] := coalesce(p_failed_ahead, '{}');
    v_skipped certexpiry.page_row[] := '{}';
    v_cursor text := p_cursor;
    v_page certexpiry.page_row[];
    v_more certexpiry.page_row[];
    v_next text;
    v_done boolean;
    v_effects jsonb;
    v_failures jsonb;
    v_marks_failed jsonb;
    v_counts jsonb;
begin
    if p_limit is null or p_limit < 0 or p_limit > 1000
       or (p_limit = 0 and cardinality(v_failed_ahead) = 0) then
        raise exception 'p_limit must be between 1 and 1000 (0 only with p_failed_ahead)'
            using errcode = '22023';
    end if;
    if cardinality(v_failed_ahead) > 1000
       or exists (select from unnest(v_failed_ahead) s where s is null or s !~ '^[0-9A-Z]{5}$') then
        raise exception 'p_failed_ahead must be at most 1000 SQLSTATEs' using errcode = '22023';
    end if;
    select * into v_run from certexpiry.cron_runs where run_id = p_run_id for update;
    if not found or v_run.status <> 'running' or v_run.segment <> p_segment then
        return jsonb_build_object('fenced', true, 'segment', v_run.segment, 'status', v_run.status);
    end if;
    v_today := v_run.nightly_key;

    -- 0. The certifications right after the cursor that failed even alone, in a batch of one,
    -- the sweep tells by their SQLSTATEs (docs/decisions/0028-a-row-that-fails-alone.md):
    -- read without judging (the judging may be what failed), reported as failed and passed.
    -- Their effects are not tried again tonight. Within this transaction, so a page after them
    -- that fails too undoes the passing (the sweep passes a timed-out certification with the
    -- next one: a database slow for every row is not a row's failure). p_limit 0: only pass.
    if cardinality(v_failed_ahead) > 0 then
        v_skipped := array(
            select row(n.id, n.peer_mentor_id, n.expiry_date, n.mark, null, null)::certexpiry.page_row
            from certexpiry.night_page(v_today, p_reminder_days, p_cursor, cardinality(v_failed_ahead))
                     with ordinality n (id, peer_mentor_id, expiry_date, mark, k)
            order by n.k);
        v_cursor := coalesce(certexpiry.cursor_after(v_skipped[cardinality(v_skipped)]), p_cursor);
    end if;
    select coalesce(jsonb_agg(certexpiry.failure_detail(v_skipped[i].id, v_today,
               v_failed_ahead[i], null, null, null, null, null, null) order by i), '[]')
      into v_failures
    from generate_subscripts(v_skipped, 1) i;

    -- 1. Read the next page of the night's work and judge it from the expiry dates. After a
    -- certification passed for a statement timeout, the page goes on to the first one due
    -- tonight (or the night's end): that its effects fit in the timeout is what tells one slow
    -- row from a database slow for every row, before the passing is committed.
    v_page := '{}';
    loop
        v_more := certexpiry.read_page(v_today, p_reminder_days,
            coalesce(certexpiry.cursor_after(v_page[cardinality(v_page)]), v_cursor), p_limit);
        v_page := v_page || v_more;
        v_done := cardinality(v_more) < p_limit;
        exit when v_done or cardinality(v_more) = 0 or cardinality(v_page) >= 1000
               or not ('57014' = any (v_failed_ahead))
               or exists (select from unnest(v_page) p where p.due_on <= v_today);
    end loop;
    v_next := coalesce(certexpiry.cursor_after(v_page[cardinality(v_page)]), v_cursor);

    -- 2. The effects of what is due tonight, one bad row isolated from the others.
    v_effects := certexpiry.apply_effects_isolated(p_run_id, v_today, p_reminder_days,
        array(select p.id from unnest(v_page) p where p.due_on <= v_today order by p.id),
        array(select p.expiry_date from unnest(v_page) p where p.due_on <= v_today order by p.id));
    v_failures := v_failures || (v_effects -> 'failures_detail');

    -- 3. The marks the effects did not settle; a mark the app refuses is that certification's
    -- failure alone, reported with the effects' failures. A passed certification gets the
    -- mark of a failed one (a reminder on the schedule: the next night), unless it outlived
    -- the statement timeout: its mark would too, and would fail the whole call again.
    v_marks_failed := certexpiry.mark_page_isolated(v_today, v_page || array(
            select v_skipped[i] from generate_subscripts(v_skipped, 1) i
            where v_failed_ahead[i] <> '57014' order by i),
        array(select (f ->> 'certification_id')::uuid from jsonb_array_elements(v_failures) f));
    v_failures := v_failures || v_marks_failed;
    v_effects := v_effects || jsonb_build_object(
        'failures', coalesce((v_effects ->> 'failures')::integer, 0)
                    + cardinality(v_skipped) + jsonb_array_length(v_marks_failed));

    -- 4. Checkpoint the run in the same transaction.
    select certexpiry.sum_counts(jsonb_build_object(
               'mentors', count(distinct p.peer_mentor_id),
               'certifications', count(*),
               'batches', 1), v_effects - 'failures_detail')
      into v_counts
    from unnest(v_page) p
    where p.due_on <= v_today;
    update certexpiry.cron_runs
    set cursor = v_next, heartbeat_at = now(),
        worked_ms = worked_ms + certexpiry.ms_since(heartbeat_at),
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
comment on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[]) is
    'The next page of at most p_limit certifications of the night''s work after p_cursor: read '
    'and judged (certexpiry.read_page), effects applied with failures isolated, marks written, '
    'and the run checkpointed, all in one transaction. Fenced by (run, segment). A row locked '
    'elsewhere fails alone after lock_timeout, and so does a row whose effects or mark the app '
    'refuses, whatever the error (a cancel or statement timeout aside). p_failed_ahead: the '
    'SQLSTATEs of the certifications right after p_cursor that failed even in a batch of one, '
    'reported as failed and passed first (p_limit 0: nothing else). Counts: certifications and mentors judged due by '
    'their dates; effect counts exact.';

create or replace function public.handoff_run(p_run_id uuid, p_segment integer, p_lease_seconds integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_run certexpiry.cron_runs;
begin
    update certexpiry.cron_runs
    set status = 'handoff', heartbeat_at = now(),
        worked_ms = worked_ms + certexpiry.ms_since(heartbeat_at), lease_until = now() + make_interval(secs => p_lease_seconds)
    where run_id = p_run_id and segment = p_segment and status = 'running'
    returning * into v_run;
    return jsonb_build_object('fenced', not found, 'cursor', v_run.cursor, 'segment', p_segment);
end
$$;
comment on function public.handoff_run(uuid, integer, integer) is
    'Hand the run over to the next segment (the continuation is published after this); the lease '
    'covers the time until the continuation arrives.';

create or replace function public.complete_run(p_run_id uuid, p_segment integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_run certexpiry.cron_runs;
begin
    update certexpiry.cron_runs
    set status = 'completed', finished_at = now(), heartbeat_at = now(),
        worked_ms = worked_ms + certexpiry.ms_since(heartbeat_at)
    where run_id = p_run_id and segment = p_segment and status = 'running'
    returning * into v_run;
    return jsonb_build_object('fenced', not found, 'totals', v_run.totals, 'segments', v_run.segment + 1,
        'started_at', v_run.started_at, 'finished_at', v_run.finished_at, 'nightly_key', v_run.nightly_key);
end
$$;
comment on function public.complete_run(uuid, integer) is
    'Mark the run finished; returns its totals across all segments.';
