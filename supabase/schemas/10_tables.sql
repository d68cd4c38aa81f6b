-- Tables, their indexes and row level security.
--
-- peer_mentors and certifications are the app's tables (the job reads and pauses them); the
-- others are the job's own: the idempotency log, the outbox, the run state and the audit log.
-- Row level security is on for every table and no policy lets an API role in: the job runs as
-- service_role (BYPASSRLS), and privileges are granted object by object in 90_privileges.sql.

create table public.peer_mentors (
    id uuid primary key default gen_random_uuid(),
    full_name text not null,
    national_id text,
    email text,
    status text not null default 'active' check (status in ('active', 'paused')),
    paused_at timestamptz,
    paused_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.peer_mentors is
    'Volunteer peer mentors; status paused hides a mentor from matching.';

create table public.certifications (
    id uuid primary key default gen_random_uuid(),
    peer_mentor_id uuid not null references public.peer_mentors (id),
    expiry_date date not null,
    status text not null default 'active' check (status in ('active', 'paused')),
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    next_action_on date
);
comment on column public.certifications.expiry_date is
    'Valid through this organisation-local date; expired from the next day on.';
comment on column public.certifications.next_action_on is
    'null: on the schedule (or not active); -infinity: not yet looked at; a date: look at it '
    'that night; infinity: nothing left for this expiry date. Kept by the sweep and the trigger '
    'certifications_next_action (supabase/schemas/30_night_work.sql); never set by hand.';

-- The schedule in the night's keyset order (expiry date, id): a page is read from this index
-- alone (peer_mentor_id included). Why: docs/decisions/0022-schedule-and-marks.md.
create index certifications_on_schedule_idx on public.certifications (expiry_date, id)
    include (peer_mentor_id)
    where status = 'active' and next_action_on is null;
-- The few certifications off the schedule (marked), in keyset order; expiry_date included so
-- that monitoring reads the index alone.
create index certifications_next_action_idx on public.certifications (next_action_on, id)
    include (expiry_date)
    where status = 'active' and next_action_on is not null;
create index certifications_peer_mentor_id_idx on public.certifications (peer_mentor_id);

-- One row per effect: keyed by expiry date, so a renewed certification (new date) starts a
-- fresh cycle. The key is the primary key: no surrogate id, so each record costs one index
-- insertion. No index on run_id: "what did run X do" is a rare ops question, and
-- cron_runs.totals and the audit row answer the usual one.
create table public.certification_idempotency_log (
    certification_id uuid not null references public.certifications (id) on delete cascade,
    action text not null check (action = 'auto_pause' or action ~ '^reminder_[0-9]+d$'),
    expiry_date date not null,
    run_id uuid,
    outcome text not null default 'done' check (outcome in ('done', 'superseded')),
    created_at timestamptz not null default now(),
    constraint certification_idempotency_log_once primary key (certification_id, action, expiry_date)
);
comment on column public.certification_idempotency_log.outcome is
    'done: the effect happened; superseded: a larger reminder offset skipped because a smaller one was due.';

create table public.notification_outbox (
    id bigint generated always as identity primary key,
    peer_mentor_id uuid not null references public.peer_mentors (id),
    certification_id uuid not null references public.certifications (id) on delete cascade,
    kind text not null check (kind in ('reminder', 'pause_notice')),
    payload jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    dispatched_at timestamptz
);
comment on table public.notification_outbox is
    'Written in the same transaction as the idempotency row; another service delivers and stamps dispatched_at.';
create index notification_outbox_pending_idx on public.notification_outbox (created_at)
    where dispatched_at is null;
create index notification_outbox_certification_idx on public.notification_outbox (certification_id);
-- The unindexed foreign key Supabase's linter flags; a mentor's notices are what ops look up.
create index notification_outbox_peer_mentor_idx on public.notification_outbox (peer_mentor_id);

-- Run state of the self-resuming sweep: one row per organisation-local night.
create table public.cron_runs (
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
    swept_reminder_days integer[]
);
comment on column public.cron_runs.segment is
    'Fencing token: only the invocation holding this segment may write batches for the run.';
comment on column public.cron_runs.lease_until is
    'Renewed by every batch; a crashed invocation''s segment can be reclaimed once it passes.';
comment on column public.cron_runs.swept_reminder_days is
    'The reminder offsets this run''s sweep covered, set when it read its last page; the next '
    'night''s schedule starts after the last night that covered each offset.';
create index cron_runs_unfinished_idx on public.cron_runs (started_at)
    where status in ('running', 'handoff');

-- One row per run, written at its end: what monitoring found. Never deleted.
create table public.cron_audit_log (
    run_id uuid primary key,
    run_at timestamptz not null,
    missed_pause_count integer not null,
    missed_ids jsonb not null,
    resolved boolean not null default false,
    status text not null default 'completed' check (status in ('completed', 'monitoring_failed')),
    nightly_key date,
    segments integer,
    totals jsonb not null default '{}'::jsonb,
    duration_ms bigint,
    updated_at timestamptz not null default now(),
    resolved_at timestamptz,
    missed_nights jsonb not null default '[]'::jsonb
);
comment on column public.cron_audit_log.resolved is
    'Set by ops (certexpiry audit resolve) to acknowledge a remediation; rows are never deleted.';
comment on column public.cron_audit_log.missed_nights is
    'Organisation-local nights before this run''s night that have no run (newest 366), set by upsert_cron_audit.';

alter table public.peer_mentors enable row level security;
alter table public.certifications enable row level security;
alter table public.certification_idempotency_log enable row level security;
alter table public.notification_outbox enable row level security;
alter table public.cron_runs enable row level security;
alter table public.cron_audit_log enable row level security;
