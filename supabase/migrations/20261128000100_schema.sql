-- Tables of the certification-expiry job, with row level security on every one.
-- Supabase no longer grants new tables to the API roles by default: every grant is explicit.


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
comment on table public.peer_mentors is 'Volunteer peer mentors; status paused hides a mentor from matching.';

create table public.certifications (
    id uuid primary key default gen_random_uuid(),
    peer_mentor_id uuid not null references public.peer_mentors (id),
    expiry_date date not null,
    status text not null default 'active' check (status in ('active', 'paused')),
    paused_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on column public.certifications.expiry_date is
    'Valid through this organisation-local date; expired from the next day on.';

-- Required by the spec for the monitoring query.
create index certifications_expiry_date_status_idx on public.certifications (expiry_date, status);
-- Monitoring: only unpaused rows, so "expired and not paused" is a short range scan that stays
-- small however many paused certifications pile up.
create index certifications_unpaused_expiry_idx on public.certifications (expiry_date)
    where status <> 'paused';
-- The sweep pages through mentors in keyset order over their active certifications.
create index certifications_active_mentor_idx on public.certifications (peer_mentor_id, expiry_date)
    where status = 'active';
create index certifications_peer_mentor_id_idx on public.certifications (peer_mentor_id);

create table public.certification_idempotency_log (
    certification_id uuid not null references public.certifications (id) on delete cascade,
    action text not null check (action = 'auto_pause' or action ~ '^reminder_[0-9]+d$'),
    expiry_date date not null,
    run_id uuid,
    outcome text not null default 'done' check (outcome in ('done', 'superseded')),
    created_at timestamptz not null default now(),
    -- Keyed by expiry date: a renewed certification (new date) starts a fresh cycle. The key is
    -- the primary key: no surrogate id, so each record costs one index insertion, not three.
    constraint certification_idempotency_log_once primary key (certification_id, action, expiry_date)
);
comment on column public.certification_idempotency_log.outcome is
    'done: the effect happened; superseded: a larger reminder offset skipped because a smaller one was due.';
-- No index on run_id: "what did run X do" is a rare ops question, and every record would pay
-- for it; cron_runs.totals and the audit row answer the usual one.

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

-- Run state of the self-resuming sweep: one row per organisation-local night.
create table public.cron_runs (
    run_id uuid primary key,
    nightly_key date not null unique,
    timezone text not null,
    status text not null default 'running'
        check (status in ('running', 'handoff', 'completed', 'abandoned')),
    segment integer not null default 0 check (segment >= 0),
    cursor uuid,
    lease_until timestamptz not null,
    heartbeat_at timestamptz not null default now(),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    totals jsonb not null default '{}'::jsonb
);
comment on column public.cron_runs.segment is
    'Fencing token: only the invocation holding this segment may write batches for the run.';
comment on column public.cron_runs.lease_until is
    'Renewed by every batch; a crashed invocation''s segment can be reclaimed once it passes.';
create index cron_runs_unfinished_idx on public.cron_runs (started_at) where status in ('running', 'handoff');

create table public.cron_audit_log (
    run_id uuid primary key,
    run_at timestamptz not null,
    missed_pause_count integer not null,
    missed_ids jsonb not null,
    resolved boolean not null default false,
    status text not null default 'completed',
    nightly_key date,
    segments integer,
    totals jsonb not null default '{}'::jsonb,
    duration_ms bigint,
    updated_at timestamptz not null default now(),
    resolved_at timestamptz
);
comment on column public.cron_audit_log.resolved is
    'Set by ops (certexpiry audit resolve) to acknowledge a remediation; rows are never deleted.';

alter table public.peer_mentors enable row level security;
alter table public.certifications enable row level security;
alter table public.certification_idempotency_log enable row level security;
alter table public.notification_outbox enable row level security;
alter table public.cron_runs enable row level security;
alter table public.cron_audit_log enable row level security;

-- The job runs as service_role (BYPASSRLS); nothing is granted to anon anywhere.
revoke all on public.peer_mentors, public.certifications, public.certification_idempotency_log,
    public.notification_outbox, public.cron_runs, public.cron_audit_log from anon, authenticated;

grant select, insert, update, delete on public.peer_mentors, public.certifications,
    public.certification_idempotency_log, public.notification_outbox, public.cron_runs,
    public.cron_audit_log to service_role;

-- Ops admins read the audit log through the API; only service_role writes it.
grant select on public.cron_audit_log to authenticated;
create policy cron_audit_log_ops_admin_read on public.cron_audit_log
    for select to authenticated
    using ((select auth.jwt()) ->> 'user_role' = 'ops-admin');
