-- The outbox as the job's interface to the app's sender: the night's effects queue each reminder
-- and pause notice in certexpiry.notification_outbox (40_effects.sql); the app's sender (a
-- Supabase Edge Function or any worker with the service role) takes them out through these
-- RPCs, granted to service_role only (90_privileges.sql):
--
--   claim_outbox        a bounded batch, oldest first, each hidden from other claims for a
--                       visibility timeout; attempts exhausted fail, stale reminders are dropped
--   acknowledge_outbox  delivered (idempotent; a late ack still counts: at least once)
--   fail_outbox         failed for good, with a code
--   outbox_backlog      what ops watch: undelivered, the oldest's age, failed, dropped
--
-- A message ends once: delivered, failed or dropped. The answers carry ids, kinds and the
-- payload, never a name or a contact detail: the sender looks those up in the app.
-- Why: docs/decisions/0030-outbox-claim-and-acknowledge.md.

create or replace function public.claim_outbox(
    p_limit integer, p_visibility_s integer, p_max_attempts integer default 5)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_exhausted integer;
    v_dropped integer := 0;
    v_claimed bigint[] := '{}';
    v_step_dropped integer;
    v_step_claimed bigint[];
begin
    if p_limit is null or p_limit not between 1 and 1000 then
        raise exception 'claim_outbox: p_limit must be between 1 and 1000' using errcode = '22023';
    end if;
    if p_visibility_s is null or p_visibility_s not between 1 and 3600 then
        raise exception 'claim_outbox: p_visibility_s must be between 1 and 3600' using errcode = '22023';
    end if;
    if p_max_attempts is null or p_max_attempts not between 1 and 100 then
        raise exception 'claim_outbox: p_max_attempts must be between 1 and 100' using errcode = '22023';
    end if;

    -- (a) Claimed p_max_attempts times and never acknowledged: failed, never handed out again.
    -- A live claim is left to its sender (its acknowledgement still counts).
    with exhausted as (
        select o.id
        from certexpiry.notification_outbox o
        where o.dispatched_at is null and o.failed_at is null and o.dropped_at is null
          and (o.claimed_until is null or o.claimed_until <= now())
          and o.attempts >= p_max_attempts
        for update skip locked
    ), failed as (
        update certexpiry.notification_outbox o
        set failed_at = now(), failure_code = 'attempts_exhausted'
        from exhausted e
        where o.id = e.id
        returning 1
    )
    select count(*) into v_exhausted from failed;

    -- (b) and (c) The oldest claimable messages, locked without waiting for another sender's:
    -- a reminder whose certification changed since it was queued is dropped, the others are
    -- claimed. Until p_limit are claimed or none is left, so an empty batch means "nothing to
    -- send now", whatever was dropped on the way.
    loop
        with candidates as (
            select o.id, o.kind, o.certification_id, o.payload
            from certexpiry.notification_outbox o
            where o.dispatched_at is null and o.failed_at is null and o.dropped_at is null
              and (o.claimed_until is null or o.claimed_until <= now())
              and o.attempts < p_max_attempts
            order by o.created_at, o.id
            limit p_limit - cardinality(v_claimed)
            for update skip locked
        ), judged as (
            select cand.id,
                   cand.kind = 'reminder'
                   and (c.id is null
                        or c.status is distinct from 'active'
                        or to_jsonb(c.expiry_date) is distinct from cand.payload -> 'expiry_date')
                       as stale
            from candidates cand
            left join public.certifications c on c.id = cand.certification_id
        ), dropped as (
            update certexpiry.notification_outbox o
            set dropped_at = now()
            from judged j
            where o.id = j.id and j.stale
            returning 1
        ), claimed as (
            update certexpiry.notification_outbox o
            set claimed_until = now() + make_interval(secs => p_visibility_s),
                attempts = o.attempts + 1
            from judged j
            where o.id = j.id and not j.stale
            returning o.id
        )
        select (select count(*) from dropped),
               coalesce((select array_agg(cl.id) from claimed cl), '{}')
          into v_step_dropped, v_step_claimed;
        v_dropped := v_dropped + v_step_dropped;
        v_claimed := v_claimed || v_step_claimed;
        -- Nothing dropped: every candidate was claimed, so the batch is full or none is left.
        exit when v_step_dropped = 0 or cardinality(v_claimed) >= p_limit;
    end loop;

    return jsonb_build_object(
        'messages', coalesce((
            select jsonb_agg(jsonb_build_object(
                       'id', o.id,
                       'kind', o.kind,
                       'peer_mentor_id', o.peer_mentor_id,
                       'certification_id', o.certification_id,
                       'payload', o.payload,
                       'attempt', o.attempts,
                       'created_at', o.created_at) order by o.id)
            from certexpiry.notification_outbox o
            where o.id = any (v_claimed)), '[]'::jsonb),
        'dropped', v_dropped,
        'exhausted', v_exhausted);
end
$$;
comment on function public.claim_outbox(integer, integer, integer) is
    'The sender''s next batch: up to p_limit (1-1000) undelivered messages whose claim lapsed or '
    'never existed, oldest first (created_at, id), locked with skip locked so concurrent senders '
    'never share one, each hidden from other claims for p_visibility_s (1-3600) seconds and its '
    'attempts counted. Before that, in the same transaction, a message claimed p_max_attempts '
    '(1-100, default 5) times without an acknowledgement fails (attempts_exhausted: never retried '
    'forever), and a reminder whose certification changed since it was queued (another expiry '
    'date, no longer active, gone) is dropped: it would tell the mentor something false; a pause '
    'notice is always delivered (the pause happened). Out of range arguments: 22023. Answer: '
    '{messages: [{id, kind, peer_mentor_id, certification_id, payload, attempt, created_at}] by '
    'id, dropped, exhausted}; never a name or contact detail (the sender looks them up in the '
    'app). docs/decisions/0030.';

create or replace function public.acknowledge_outbox(p_ids bigint[])
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_ids bigint[] := array(
        select distinct i from unnest(coalesce(p_ids, '{}'::bigint[])) i where i is not null);
    v_acknowledged integer;
    v_already integer;
begin
    -- Locked in id order (fail_outbox does the same; claims never wait), then read afresh: a
    -- concurrent acknowledgement of the same id is counted once as acknowledged, once as already.
    perform 1 from certexpiry.notification_outbox o
    where o.id = any (v_ids)
    order by o.id
    for update;
    select count(*) into v_already
    from certexpiry.notification_outbox o
    where o.id = any (v_ids) and o.dispatched_at is not null;
    update certexpiry.notification_outbox o
    set dispatched_at = now()
    where o.id = any (v_ids)
      and o.dispatched_at is null and o.failed_at is null and o.dropped_at is null;
    get diagnostics v_acknowledged = row_count;
    return jsonb_build_object(
        'acknowledged', v_acknowledged,
        'already', v_already,
        'unknown', cardinality(v_ids) - v_acknowledged - v_already);
end
$$;
comment on function public.acknowledge_outbox(bigint[]) is
    'The sender delivered these messages: dispatched_at is stamped on those not yet delivered, '
    'failed or dropped. Idempotent: an id already delivered is counted as already, changes '
    'nothing. An acknowledgement after the claim lapsed (even once another sender claimed the '
    'message again) still counts: delivery is at least once, and a mentor may get a message '
    'twice, never none. Answer: {acknowledged: newly delivered, already: delivered before, '
    'unknown: not found, failed or dropped} over the distinct non-null ids. docs/decisions/0030.';

create or replace function public.fail_outbox(p_ids bigint[], p_code text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_ids bigint[] := array(
        select distinct i from unnest(coalesce(p_ids, '{}'::bigint[])) i where i is not null);
    v_found integer;
    v_failed integer;
begin
    if p_code is null or p_code !~ '^[a-z][a-z0-9_]{0,39}$' then
        raise exception 'fail_outbox: p_code must be a code (^[a-z][a-z0-9_]{0,39}$), not free text'
            using errcode = '22023';
    end if;
    perform 1 from certexpiry.notification_outbox o
    where o.id = any (v_ids)
    order by o.id
    for update;
    select count(*) into v_found
    from certexpiry.notification_outbox o
    where o.id = any (v_ids);
    update certexpiry.notification_outbox o
    set failed_at = now(), failure_code = p_code
    where o.id = any (v_ids)
      and o.dispatched_at is null and o.failed_at is null and o.dropped_at is null;
    get diagnostics v_failed = row_count;
    return jsonb_build_object(
        'failed', v_failed,
        'already', v_found - v_failed,
        'unknown', cardinality(v_ids) - v_found);
end
$$;
comment on function public.fail_outbox(bigint[], text) is
    'The sender cannot deliver these messages, ever (no contact address, refused by the '
    'provider): failed_at and failure_code are set on those not delivered, failed or dropped, '
    'and kept for ops (outbox_backlog counts them); no claim hands them out again. p_code is a '
    'code matching ^[a-z][a-z0-9_]{0,39}$ (22023 otherwise), never free text: ops log it. '
    'Answer: {failed: newly failed, already: delivered, failed or dropped before, unknown: not '
    'found} over the distinct non-null ids. docs/decisions/0030.';

create or replace function public.outbox_backlog()
returns jsonb
language sql stable
set search_path = ''
as $$
    select jsonb_build_object(
        'undelivered', p.undelivered,
        'claimed', p.claimed,
        'oldest_undelivered_at', p.oldest,
        -- greatest() skips a null: none undelivered stays null.
        'oldest_age_s', case when p.oldest is not null
                             then greatest(0, floor(extract(epoch from now() - p.oldest)))::integer
                        end,
        'failed', (select count(*) from certexpiry.notification_outbox o
                   where o.failed_at is not null),
        'dropped', (select count(*) from certexpiry.notification_outbox o
                    where o.dropped_at is not null))
    from (
        select count(*) as undelivered,
               count(*) filter (where o.claimed_until > now()) as claimed,
               min(o.created_at) as oldest
        from certexpiry.notification_outbox o
        where o.dispatched_at is null and o.failed_at is null and o.dropped_at is null
    ) p
$$;
comment on function public.outbox_backlog() is
    'What ops watch of the outbox: {undelivered: not delivered, failed or dropped; claimed: of '
    'those, with a live claim; oldest_undelivered_at and oldest_age_s (whole seconds; null when '
    'none): a sender that stopped shows as a growing age; failed; dropped}. Each count reads a '
    'partial index (pending, failed, dropped), never the delivered rows.';
