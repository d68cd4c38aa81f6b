-- The job's own tables. What the job adds to the app's tables (a column, a trigger, the foreign
-- keys to them) comes last, in 80_app_additions.sql, so that the install holds the app's table
-- locks for the shortest time.
--
-- The job's state lives in its own schema (certexpiry), out of PostgREST's reach: its version
-- ledger, the idempotency log, the outbox and the run state. The audit log stays in public,
-- where an ops admin reads it through the API (policies below). Row level security is on for
-- every table the job creates; privileges are granted object by object in 90_privileges.sql.
-- The job's indexes on the app's certifications are built without blocking the app's writes,
-- each in a migration of its own (95_app_indexes.sql).

-- The job's version ledger: each migration records itself here, whichever way it is applied
-- (`certexpiry migrate`, `supabase db push` from the app's repository, the SQL editor), so the
-- function's schema check never reads the app's migration history.
create table certexpiry.schema_migrations (
    version text primary key,
    name text not null,
    applied_at timestamptz not null default now(),
    checksum text
);
comment on table certexpiry.schema_migrations is
    'The job''s migrations applied to this database (written by each migration itself); '
    'checksum is set by `certexpiry migrate`, which refuses a changed applied file.';

-- One row per effect: keyed by expiry date, so a renewed certification (new date) starts a
-- fresh cycle. The key is the primary key: no surrogate id, so each record costs one index
-- insertion. No index on run_id: "what did run X do" is a rare ops question, and
-- cron_runs.totals and the audit row answer the usual one.
create table certexpiry.certification_idempotency_log (
    certification_id uuid not null,
    action text not null check (action = 'auto_pause' or action ~ '^reminder_[0-9]+d$'),
    expiry_date date not null,
    run_id uuid,
    outcome text not null default 'done' check (outcome in ('done', 'superseded')),
    created_at timestamptz not null default now(),
    constraint certification_idempotency_log_once primary key (certification_id, action, expiry_date)
);
comment on column certexpiry.certification_idempotency_log.outcome is
    'done: the effect happened; superseded: a larger reminder offset skipped because a smaller one was due.';

-- The job's side of the app's sender (75_outbox_api.sql): a message is claimed for a while
-- (claimed_until, attempts), then ends once, in one of three ways: delivered (dispatched_at),
-- failed for good (failed_at, failure_code) or dropped by the claim as no longer true
-- (dropped_at). Why: docs/decisions/0030-outbox-claim-and-acknowledge.md.
create table certexpiry.notification_outbox (
    id bigint generated always as identity primary key,
    peer_mentor_id uuid not null,
    certification_id uuid not null,
    kind text not null check (kind in ('reminder', 'pause_notice')),
    payload jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    dispatched_at timestamptz,
    claimed_until timestamptz,
    attempts integer not null default 0 check (attempts >= 0),
    failed_at timestamptz,
    failure_code text check (failure_code ~ '^[a-z][a-z0-9_]{0,39}$'),
    dropped_at timestamptz,
    constraint notification_outbox_one_end check (num_nonnulls(dispatched_at, failed_at, dropped_at) <= 1),
    constraint notification_outbox_failure_has_code check ((failed_at is null) = (failure_code is null))
);
comment on table certexpiry.notification_outbox is
    'Written in the same transaction as the idempotency row; the app''s sender claims messages '
    'with public.claim_outbox, delivers each at least once and reports it with '
    'public.acknowledge_outbox (dispatched_at) or public.fail_outbox (failed_at, failure_code).';
comment on column certexpiry.notification_outbox.claimed_until is
    'The visibility timeout of the last claim: until then no other claim hands the message out.';
comment on column certexpiry.notification_outbox.attempts is
    'How many times the message was claimed; at p_max_attempts a lapsed claim fails it (attempts_exhausted).';
comment on column certexpiry.notification_outbox.failure_code is
    'Why it failed for good: a code (attempts_exhausted or the sender''s), never free text.';
comment on column certexpiry.notification_outbox.dropped_at is
    'Set by the claim on a reminder whose certification changed since it was queued (renewed, '
    'no longer active or deleted): it would be false. Pause notices are never dropped.';
-- The messages still to deliver, oldest first: what claim_outbox scans and outbox_backlog
-- counts. The failed and dropped ones are counted by their own small indexes, never by a scan
-- over the delivered rows.
create index notification_outbox_pending_idx on certexpiry.notification_outbox (created_at, id)
    where dispatched_at is null and failed_at is null and dropped_at is null;
create index notification_outbox_failed_idx on certexpiry.notification_outbox (failed_at)
    where failed_at is not null;
create index notification_outbox_dropped_idx on certexpiry.notification_outbox (dropped_at)
    where dropped_at is not null;
create index notification_outbox_certification_idx on certexpiry.notification_outbox (certification_id);
-- The foreign keys' other side: the app deleting a mentor finds their notices by index.
create index notification_outbox_peer_mentor_idx on certexpiry.notification_outbox (peer_mentor_id);

-- Run state of the self-resuming sweep: one row per organisation-local night.
create table certexpiry.cron_runs (
    run_id uuid primary key,
    nightly_key date not null unique,
    timezone text not null,
    status text not null default 'running'
        check (status in ('running', 'handoff', 'completed', 'abandoned')),
    segment integer not null default 0 check (segment >= 0),
    cursor text,
    lease_until timestamptz not null,
    heartbeat_at timestamptz not null default now(),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    totals jsonb not null default '{}'::jsonb,
    swept_reminder_days integer[],
    worked_ms bigint not null default 0 check (worked_ms >= 0)
);
comment on column certexpiry.cron_runs.segment is
    'Fencing token: only the invocation holding this segment may write batches for the run.';
comment on column certexpiry.cron_runs.lease_until is
    'Renewed by every batch; a crashed invocation''s segment can be reclaimed once it passes.';
comment on column certexpiry.cron_runs.swept_reminder_days is
    'The reminder offsets this run''s sweep covered, set when it read its last page; the next '
    'night''s schedule starts after the last night that covered each offset.';
comment on column certexpiry.cron_runs.worked_ms is
    'The time the run''s segments worked, in milliseconds: each heartbeat of the invocation '
    'holding the segment (a batch, the hand-off, the completion) adds the time since the one '
    'before; a claim only sets the heartbeat, so the waits between segments, for a lapsed '
    'lease or a redelivery, are not counted (finished_at - started_at is the wall clock).';
create index cron_runs_unfinished_idx on certexpiry.cron_runs (started_at)
    where status in ('running', 'handoff');

-- Missed nights ops have acknowledged (`certexpiry nights ack`): one row per organisation-local
-- night that had no run, with an optional code (no free text: no personal data can land here).
-- Never updated or deleted: service_role may select and insert, nothing else.
create table certexpiry.night_acknowledgements (
    night date primary key,
    acknowledged_at timestamptz not null default now(),
    code text check (code ~ '^[a-z][a-z0-9_]{0,39}$')
);
comment on table certexpiry.night_acknowledgements is
    'Missed nights (no run) acknowledged by ops, kept for good; written only by '
    'public.acknowledge_missed_nights, which refuses a night that had a run or was not missed.';

-- One row per run, written at its end: what monitoring found. Never deleted. Readable by
-- service_role and by an ops admin (a user whose JWT carries the claim user_role = 'ops_admin',
-- set by the app's custom access token hook), who may also set resolved, nothing else.
create table public.cron_audit_log (
    run_id uuid primary key,
    run_at timestamptz not null,
    missed_pause_count integer not null,
    missed_ids jsonb not null,
    resolved boolean not null default false,
    status text not null default 'completed'
        check (status in ('completed', 'monitoring_failed', 'failed')),
    nightly_key date,
    segments integer,
    totals jsonb not null default '{}'::jsonb,
    duration_ms bigint,
    updated_at timestamptz not null default now(),
    resolved_at timestamptz,
    missed_nights jsonb not null default '[]'::jsonb
);
comment on table public.cron_audit_log is
    'certexpiry: one row per nightly run, what its monitoring found. Readable by service_role '
    'and ops admins (JWT claim user_role = ops_admin), who may set resolved.';
comment on column public.cron_audit_log.status is
    'completed: the night swept and monitoring answered; monitoring_failed: the monitoring query '
    'failed (the work stands, unverified); failed: the night stopped half-way at a batch it '
    'could not get past (RUN_STOPPED; the run is left for the next night), whatever monitoring '
    'found.';
comment on column public.cron_audit_log.resolved is
    'Set by ops (certexpiry audit resolve, or an ops admin through the API) to acknowledge a '
    'remediation; rows are never deleted.';
comment on column public.cron_audit_log.missed_nights is
    'Organisation-local nights before this run''s night that have no run (newest 366), set by upsert_cron_audit.';

create or replace function certexpiry.stamp_resolved()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if old.resolved and not new.resolved then
        raise exception 'an audit row once resolved stays resolved' using errcode = '42501';
    end if;
    if new.resolved and not old.resolved then
        new.resolved_at := coalesce(old.resolved_at, now());
    end if;
    new.updated_at := now();
    return new;
end
$$;
comment on function certexpiry.stamp_resolved() is
    'Trigger: an audit row resolved through the API gets its resolved_at and updated_at, which '
    'an ops admin may not write; resolved never goes back to false.';
create trigger cron_audit_log_stamp_resolved
    before update of resolved on public.cron_audit_log
    for each row execute function certexpiry.stamp_resolved();

alter table certexpiry.schema_migrations enable row level security;
alter table certexpiry.certification_idempotency_log enable row level security;
alter table certexpiry.notification_outbox enable row level security;
alter table certexpiry.cron_runs enable row level security;
alter table certexpiry.night_acknowledgements enable row level security;
alter table public.cron_audit_log enable row level security;

-- The ops admin, as Supabase's role-based access guide identifies one: a custom claim in the
-- JWT (docs/deploy.md, "The ops admin").
create policy cron_audit_log_ops_admin_read on public.cron_audit_log
    for select to authenticated
    using ((select auth.jwt()) ->> 'user_role' = 'ops_admin');
create policy cron_audit_log_ops_admin_resolve on public.cron_audit_log
    for update to authenticated
    using ((select auth.jwt()) ->> 'user_role' = 'ops_admin')
    with check ((select auth.jwt()) ->> 'user_role' = 'ops_admin');
