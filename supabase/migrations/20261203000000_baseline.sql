-- The baseline: the job's whole schema as of its first release, generated from
-- supabase/schemas/ (`make baseline`; do not edit by hand). Until the first release (tag
-- v1.0.0) it may be regenerated; from then on migrations are append-only and never edited: a
-- change goes into supabase/schemas/ and into a new migration (`make schema-diff` shows what
-- differs). tests/integration/test_schema_equal.py keeps the two equal.
--
-- It installs into the app's database (the app's tables must exist: 05_app_contract.sql) and
-- ends by recording itself in the job's ledger, certexpiry.schema_migrations. A lock the app
-- holds is waited for at most 1 s (the app's queries queue behind a waiting DDL statement):
-- then the migration fails whole, and is run again (`certexpiry migrate` retries by itself).

set local lock_timeout = '1s';

-- ===== supabase/schemas/00_schemas.sql =====

-- The schemas of the certification-expiry job.
--
-- supabase/schemas/ is the readable, current definition of every object the job owns, one file
-- per concern, applied in file-name order; supabase/migrations/ holds the history that brings a
-- database to it (the baseline, then append-only migrations from the first release on). A test
-- (tests/integration/test_schema_equal.py) builds one database from each and compares their
-- catalogs; `make schema-diff` prints what differs.
--
-- public holds what PostgREST must reach (the job's RPCs) and the tables; certexpiry holds the
-- rules and internal functions, which no API role reaches except service_role through the RPCs.

-- Functions are created before the column they read on the app's table (80_app_additions.sql
-- adds it last, to hold the app's locks briefly), so their bodies are checked when first run, as
-- pg_dump's own output does.
set check_function_bodies = off;

create schema if not exists certexpiry;
comment on schema certexpiry is
    'Internal rules of the certification-expiry job; reached only through the RPCs in public.';
revoke all on schema certexpiry from public;
grant usage on schema certexpiry to service_role;

-- ===== supabase/schemas/05_app_contract.sql =====

-- The app's contract: what the job needs from the app's tables, checked before anything is
-- installed. The app owns public.peer_mentors and public.certifications (their other columns,
-- statuses, policies, grants and triggers); the job reads and writes only the columns below,
-- and stops here with one error naming everything missing instead of failing half-way.
--
--   public.peer_mentors     id uuid, status text, paused_at timestamptz, paused_reason text,
--                           updated_at timestamptz
--   public.certifications   id uuid, peer_mentor_id uuid, expiry_date date, status text,
--                           paused_at timestamptz, updated_at timestamptz
--   service_role            SELECT and UPDATE on both tables (a hosted project's default)
--
-- Statuses: the job pauses (sets 'paused') only a certification or mentor whose status is
-- 'active', and reads nothing else as work; every other status ('revoked', 'inactive', ...) is
-- the app's and left alone. The job adds to certifications one column (next_action_on), one
-- trigger and two partial indexes, all its own (docs/deploy.md, "What the job adds").

do $$
declare
    v_missing text[] := '{}';
    v_need record;
begin
    for v_need in
        select * from (values
            ('peer_mentors', 'id', 'uuid'),
            ('peer_mentors', 'status', 'text'),
            ('peer_mentors', 'paused_at', 'timestamp with time zone'),
            ('peer_mentors', 'paused_reason', 'text'),
            ('peer_mentors', 'updated_at', 'timestamp with time zone'),
            ('certifications', 'id', 'uuid'),
            ('certifications', 'peer_mentor_id', 'uuid'),
            ('certifications', 'expiry_date', 'date'),
            ('certifications', 'status', 'text'),
            ('certifications', 'paused_at', 'timestamp with time zone'),
            ('certifications', 'updated_at', 'timestamp with time zone')
        ) n (table_name, column_name, data_type)
    loop
        if not exists (
            select from information_schema.columns c
            where c.table_schema = 'public' and c.table_name = v_need.table_name
              and c.column_name = v_need.column_name and c.data_type = v_need.data_type
        ) then
            v_missing := v_missing || format('public.%s.%s (%s)',
                v_need.table_name, v_need.column_name, v_need.data_type);
        end if;
    end loop;
    -- has_table_privilege with a list answers "any of them": each privilege is asked alone.
    for v_need in
        select t.table_name, p.privilege
        from (values ('peer_mentors'), ('certifications')) t (table_name)
        cross join (values ('SELECT'), ('UPDATE')) p (privilege)
        where to_regclass('public.' || t.table_name) is not null
    loop
        if not has_table_privilege('service_role', 'public.' || v_need.table_name, v_need.privilege) then
            v_missing := v_missing || format('%s on public.%s for service_role',
                v_need.privilege, v_need.table_name);
        end if;
    end loop;
    -- The job's foreign keys reference the ids: each must be the primary key or unique.
    for v_need in
        select t.table_name from (values ('peer_mentors'), ('certifications')) t (table_name)
        where to_regclass('public.' || t.table_name) is not null
          and not exists (
              select from pg_index i
              join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
              where i.indrelid = ('public.' || t.table_name)::regclass
                and i.indisunique and i.indnatts = 1 and a.attname = 'id')
    loop
        v_missing := v_missing || format('a primary key or unique index on public.%s (id)',
            v_need.table_name);
    end loop;
    -- On a first install, no object of the app's may carry a name the job creates in public or
    -- on certifications: `create or replace` would take it over, and uninstall would drop it.
    if to_regclass('certexpiry.schema_migrations') is null then
        for v_need in
            select format('%s (already the app''s)', n.what) as what
            from (
                select 'function public.' || p.proname as what
                from pg_proc p
                where p.pronamespace = 'public'::regnamespace
                  and p.proname in ('claim_nightly_run', 'claim_continuation', 'process_expiry_batch',
                                    'handoff_run', 'complete_run', 'get_missed_auto_pauses',
                                    'upsert_cron_audit', 'list_cron_audit', 'get_cron_audit',
                                    'resolve_cron_audit', 'remediate_auto_pauses', 'plan_night',
                                    'night_history', 'schema_version', 'claim_outbox',
                                    'acknowledge_outbox', 'fail_outbox', 'outbox_backlog',
                                    'acknowledge_missed_nights')
                union all
                select 'relation public.' || c.relname
                from pg_class c
                where c.relnamespace = 'public'::regnamespace
                  and c.relname in ('cron_audit_log', 'certifications_on_schedule_idx',
                                    'certifications_next_action_idx')
                union all
                select 'column public.certifications.next_action_on'
                from pg_attribute a
                where a.attrelid = to_regclass('public.certifications')
                  and a.attname = 'next_action_on' and not a.attisdropped
                union all
                select 'trigger certifications_next_action'
                from pg_trigger t
                where t.tgrelid = to_regclass('public.certifications')
                  and t.tgname = 'certifications_next_action'
            ) n
        loop
            v_missing := v_missing || v_need.what;
        end loop;
    end if;
    if cardinality(v_missing) > 0 then
        raise exception 'certexpiry: the app''s database lacks what the job needs, or has it taken: %',
            array_to_string(v_missing, ', ')
            using errcode = 'CX001',
                  hint = 'The job is installed into the peer-mentor app''s database, after the '
                         'app''s own migrations; see docs/deploy.md, "The app''s contract".';
    end if;
end
$$;

-- ===== supabase/schemas/10_tables.sql =====

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

-- ===== supabase/schemas/20_rules.sql =====

-- The business rules, each defined once: dates, offsets and when each effect falls due. The
-- sweep, monitoring, the plan and remediation are all written in terms of these, so they cannot
-- disagree.
--
-- Plain SQL functions without a SET clause on purpose: the planner inlines them into the
-- calling query and uses the indexes (a SET search_path would stop inlining). Every name inside
-- is schema-qualified (docs/decisions/0005-inlinable-rules.md).

create or replace function certexpiry.org_today(p_timezone text, p_now timestamptz default now())
returns date
language sql stable
as $$ select (p_now at time zone p_timezone)::date $$;
comment on function certexpiry.org_today(text, timestamptz) is
    'Today in the organisation''s time zone: the night a run belongs to.';

create or replace function certexpiry.is_expired(p_expiry_date date, p_today date)
returns boolean
language sql immutable
as $$ select p_expiry_date < p_today $$;
comment on function certexpiry.is_expired(date, date) is
    'Expired: a certification is valid through its expiry date, expired from the next day on.';

create or replace function certexpiry.days_left(p_expiry_date date, p_today date)
returns integer
language sql immutable
as $$ select p_expiry_date - p_today $$;
comment on function certexpiry.days_left(date, date) is
    'Days left until expiry (0 on the expiry date itself).';

create or replace function certexpiry.reminder_due(p_expiry_date date, p_today date, p_offset integer)
returns boolean
language sql immutable
as $$ select p_expiry_date >= p_today and p_expiry_date - p_today <= p_offset $$;
comment on function certexpiry.reminder_due(date, date, integer) is
    'Reminder offset N is due when 0 <= days left <= N; only the smallest due offset is sent.';

-- The explicit text cast keeps the expression immutable, so it is inlined (`'reminder_' ||
-- integer` resolves to anytextcat, which is only stable, and was called once per row).
create or replace function certexpiry.reminder_action(p_offset integer)
returns text
language sql immutable
as $$ select 'reminder_' || p_offset::text || 'd' $$;
comment on function certexpiry.reminder_action(integer) is
    'The idempotency log''s action name of reminder offset N: reminder_Nd.';

create or replace function certexpiry.action_days(
    p_expiry_date date, p_today date, p_reminder_days integer[])
returns table (action text, day date)
language sql immutable
as $$
    select 'auto_pause',
           case when certexpiry.is_expired(p_expiry_date, p_today) then p_today
                else p_expiry_date + 1 end
    union all
    select certexpiry.reminder_action(n), greatest(p_expiry_date - n, p_today)
    from unnest(p_reminder_days) n
    where certexpiry.reminder_due(p_expiry_date, greatest(p_expiry_date - n, p_today), n)
$$;
comment on function certexpiry.action_days(date, date, integer[]) is
    'When each effect of an expiry date falls due, seen from tonight: the auto-pause the day '
    'after expiry (tonight if already expired), each reminder offset N on expiry - N (tonight '
    'if that day has passed and the reminder is still due). Defined once; judging a '
    'certification is reading this.';

create or replace function certexpiry.judge(
    p_expiry_date date, p_today date, p_reminder_days integer[])
returns table (due_on date, after_tonight date)
language sql immutable
as $$
    select min(a.day), min(a.day) filter (where a.day > p_today)
    from certexpiry.action_days(p_expiry_date, p_today, p_reminder_days) a
$$;
comment on function certexpiry.judge(date, date, integer[]) is
    'A certification judged from its expiry date alone: the first day one of its effects falls '
    'due (due tonight when <= tonight) and the first one after tonight (null: none left). '
    'Whether an effect is already recorded is not asked here: the effects'' inserts are the '
    'arbiter of "never twice" (docs/decisions/0025-pages-judged-from-expiry-dates.md).';

create or replace function certexpiry.recorded(p_certification_id uuid, p_action text, p_expiry_date date)
returns setof certexpiry.certification_idempotency_log
language sql stable
as $$
    select l.* from certexpiry.certification_idempotency_log l
    where l.certification_id = p_certification_id
      and l.action = p_action
      and l.expiry_date = p_expiry_date
$$;
comment on function certexpiry.recorded(uuid, text, date) is
    'The idempotency log''s record of one effect for one expiry date (empty: not done).';

create or replace function certexpiry.sum_counts(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select coalesce(jsonb_object_agg(k, coalesce((p_a ->> k)::bigint, 0) + coalesce((p_b ->> k)::bigint, 0)), '{}'::jsonb)
    from (select jsonb_object_keys(p_a) as k union select jsonb_object_keys(p_b)) keys
$$;
comment on function certexpiry.sum_counts(jsonb, jsonb) is
    'Two count objects added key by key (a missing key counts 0).';

create or replace function certexpiry.merge_effects(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select certexpiry.sum_counts(p_a - 'failures_detail', p_b - 'failures_detail')
        || jsonb_build_object('failures_detail',
               coalesce(p_a -> 'failures_detail', '[]'::jsonb) || coalesce(p_b -> 'failures_detail', '[]'::jsonb))
$$;
comment on function certexpiry.merge_effects(jsonb, jsonb) is
    'Two effects answers merged: counts added, failure details concatenated.';

-- ===== supabase/schemas/30_night_work.sql =====

-- The night's work: which certifications a night reads, in what order, how a page of them is
-- judged, and the marks that keep the few off the schedule. Defined once here and used by the
-- sweep (public.process_expiry_batch), the plan (public.plan_night) and the demo's history.
--
-- When a certification's effects fall due follows from its expiry date alone
-- (certexpiry.action_days); the idempotency log only says which of them are already done. So a
-- night reads, on the expiry-date index certifications_on_schedule_idx, the certifications with
-- an effect falling due on a night the sweep has not covered yet (the schedule): every expired
-- one still active, and for each reminder offset n the expiry dates whose day expiry - n came
-- after the last night whose sweep covered n. A normal night reads four days of expiry dates; a
-- night after an outage reads the outage's. Processing writes the effects and nothing else.
--
-- certifications.next_action_on marks only the certifications off that schedule:
--   null      on the schedule (active), or not active;
--   -infinity not yet looked at: inserted after the job was installed, renewed or reactivated
--             (its effects may fall on nights already swept): read once, then back on the
--             schedule. Rows the app had when the job was installed start on the schedule;
--   a date    look at it on that night: a reminder that failed is retried the next night;
--   infinity  nothing left for this expiry date (expired, its auto-pause already recorded).
-- Monitoring needs no log probe because of this: an active certification on the schedule has
-- no auto-pause record for its expiry date. Why, with the measurements:
-- docs/decisions/0022-schedule-and-marks.md.

create or replace function certexpiry.last_swept(p_today date, p_offset integer)
returns date
language sql stable
as $$
    select coalesce((
        select r.nightly_key from certexpiry.cron_runs r
        where r.nightly_key < p_today and p_offset = any (r.swept_reminder_days)
        order by r.nightly_key desc
        limit 1), '-infinity')
$$;
comment on function certexpiry.last_swept(date, integer) is
    'The last night before tonight whose sweep read its last page with reminder offset N '
    '(-infinity: none).';

create or replace function certexpiry.swept_by(p_today date)
returns boolean
language sql stable
as $$
    select exists (
        select from certexpiry.cron_runs r
        where r.nightly_key <= p_today and r.swept_reminder_days is not null)
$$;
comment on function certexpiry.swept_by(date) is
    'Whether a night up to p_today read its last page: from then on the schedule holds no '
    'certification whose auto-pause is recorded (before it, records written by other means, '
    'such as an imported history, may exist).';

create or replace function certexpiry.schedule_ranges(p_today date, p_reminder_days integer[])
returns table (lo date, hi date)
language sql stable
as $$
    select lower(r), upper(r) - 1
    from unnest((
        select range_agg(daterange(d.lo, d.hi, '[]'))
        from (
            select '-infinity'::date as lo, p_today - 1 as hi
            union all
            select greatest(certexpiry.last_swept(p_today, n) + n + 1, p_today), p_today + n
            from unnest(p_reminder_days) n
        ) d
        where d.lo <= d.hi
    )) r
$$;
comment on function certexpiry.schedule_ranges(date, integer[]) is
    'The expiry dates tonight''s schedule reads, as disjoint ranges: every expired date, and for '
    'each reminder offset n the dates whose day expiry - n came after the last night that swept '
    'n (a new offset reaches its whole window once).';

create or replace function certexpiry.reset_next_action()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.status <> 'active' then
        new.next_action_on := null;
    else
        new.next_action_on := '-infinity';
    end if;
    return new;
end
$$;
comment on function certexpiry.reset_next_action() is
    'Trigger: a certification renewed (new expiry date) or reactivated is marked -infinity (read '
    'once by the next night); one no longer active leaves the schedule. An inserted one gets '
    '-infinity from the column''s default, so inserts call no trigger.';

-- One certification of a page: as read (mark is next_action_on; null on the schedule) and as
-- judged from its expiry date (certexpiry.judge).
create type certexpiry.page_row as (
    id uuid,
    peer_mentor_id uuid,
    expiry_date date,
    mark date,
    due_on date,
    after_tonight date
);
comment on type certexpiry.page_row is
    'One certification of a night''s page, as read and as judged from its expiry date.';

create or replace function certexpiry.night_page(
    p_today date, p_reminder_days integer[], p_cursor text, p_limit integer)
returns table (id uuid, peer_mentor_id uuid, expiry_date date, mark date)
language plpgsql stable
as $$
declare
    v_uuid constant text := '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
    v_day constant text := '(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})';
    v_on_schedule boolean := true;
    v_after_day date := '-infinity';
    v_after_id uuid := '00000000-0000-0000-0000-000000000000';
    v_range record;
    v_from_day date;
    v_from_id uuid;
    v_read integer := 0;
    v_rows integer;
begin
    -- The cursor: null (the start), on-schedule/<expiry date>/<id> or <mark>/<id>.
    if p_cursor is null then
        null;
    elsif p_cursor ~ ('^on-schedule/' || v_day || '/' || v_uuid || '$') then
        v_after_day := split_part(p_cursor, '/', 2)::date;
        v_after_id := split_part(p_cursor, '/', 3)::uuid;
    elsif p_cursor ~ ('^' || v_day || '/' || v_uuid || '$') then
        v_on_schedule := false;
        v_after_day := split_part(p_cursor, '/', 1)::date;
        v_after_id := split_part(p_cursor, '/', 2)::uuid;
    else
        raise exception 'p_cursor is not a cursor of the night''s pages' using errcode = '22023';
    end if;

    -- The schedule: one index range scan per range of expiry dates, each with one lower bound,
    -- the cursor or the range's start (given both, the index starts from the row comparison and
    -- reads every entry from the cursor on: docs/decisions/0023-one-lower-bound-per-schedule-scan.md).
    if v_on_schedule then
        for v_range in
            select r.lo, r.hi from certexpiry.schedule_ranges(p_today, p_reminder_days) r
            where r.hi >= v_after_day
            order by r.lo
        loop
            exit when v_read >= p_limit;
            v_from_day := v_after_day;
            v_from_id := v_after_id;
            if v_after_day < v_range.lo then
                v_from_day := v_range.lo - 1;  -- after every row of the day before
                v_from_id := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
            end if;
            return query
                select s.id, s.peer_mentor_id, s.expiry_date, null::date
                from public.certifications s
                where s.status = 'active'
                  and s.next_action_on is null
                  and (s.expiry_date, s.id) > (v_from_day, v_from_id)
                  and s.expiry_date <= v_range.hi
                order by s.expiry_date, s.id
                limit p_limit - v_read;
            get diagnostics v_rows = row_count;
            v_read := v_read + v_rows;
        end loop;
        v_after_day := '-infinity';
        v_after_id := '00000000-0000-0000-0000-000000000000';
    end if;

    -- Then the marked certifications due by their mark.
    if p_limit is null or v_read < p_limit then
        return query
            select m.id, m.peer_mentor_id, m.expiry_date, m.next_action_on
            from public.certifications m
            where m.status = 'active'
              and m.next_action_on <= p_today
              and (m.next_action_on, m.id) > (v_after_day, v_after_id)
            order by m.next_action_on, m.id
            limit p_limit - v_read;
    end if;
end
$$;
comment on function certexpiry.night_page(date, integer[], text, integer) is
    'One page of tonight''s work after a cursor, in keyset order: the schedule (by expiry date), '
    'then the marked certifications (by mark). p_limit null: the whole night.';

create or replace function certexpiry.cursor_after(p_row certexpiry.page_row)
returns text
language sql immutable strict
as $$
    select case when p_row.mark is null
                then 'on-schedule/' || p_row.expiry_date::text || '/' || p_row.id::text
                else p_row.mark::text || '/' || p_row.id::text end
$$;
comment on function certexpiry.cursor_after(certexpiry.page_row) is
    'The cursor that continues the night after this row (night_page reads it back).';

create or replace function certexpiry.read_page(
    p_today date, p_reminder_days integer[], p_cursor text, p_limit integer)
returns certexpiry.page_row[]
language sql stable
as $$
    select coalesce(array_agg(
               row(p.id, p.peer_mentor_id, p.expiry_date, p.mark, j.due_on, j.after_tonight)
                   ::certexpiry.page_row
               order by p.n), '{}')
    from certexpiry.night_page(p_today, p_reminder_days, p_cursor, p_limit)
             with ordinality p (id, peer_mentor_id, expiry_date, mark, n)
    cross join lateral certexpiry.judge(p.expiry_date, p_today, p_reminder_days) j
$$;
comment on function certexpiry.read_page(date, integer[], text, integer) is
    'A page of tonight''s work, read (night_page) and judged from the expiry dates (judge), in '
    'page order.';

create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select p.id, p.peer_mentor_id, p.expiry_date
    from unnest(certexpiry.read_page(p_today, p_reminder_days, null, null)) p
    where p.due_on <= p_today
$$;
comment on function certexpiry.actionable_certifications(date, integer[]) is
    'Tonight''s work whole: the certifications the sweep''s pages read and judge due tonight.';

create or replace function certexpiry.mark_page(
    p_today date, p_page certexpiry.page_row[], p_failed uuid[])
returns void
language sql
as $$
    -- What the effects did not settle: a marked certification looked at goes back on the
    -- schedule (null) when something is left after tonight, and a reminder that failed on the
    -- schedule is marked for the next night (tomorrow's date: a mark of tonight would be read
    -- again by tonight's own marked pages, which come after the schedule, so the reminder would
    -- be retried and reported twice in one night). An expired one needs nothing here:
    -- apply_auto_pauses paused it or, finding its auto-pause recorded, marked it infinity.
    -- Failed marked ones keep their mark, failed auto-pauses stay on the schedule (every
    -- night's work), and a certification locked elsewhere, or changed since it was read, is
    -- left as it is.
    with marked as (
        select l.id, t.mark
        from unnest(p_page) w
        cross join lateral (select w.id = any (p_failed) as failed) f
        cross join lateral (
            select case when f.failed then p_today + 1 end as mark,
                   case when f.failed
                        then w.mark is null and not certexpiry.is_expired(w.expiry_date, p_today)
                        else w.mark is not null and w.after_tonight is not null end as write) t
        join public.certifications l on l.id = w.id
        where t.write
          and l.status = 'active'
          and l.expiry_date = w.expiry_date
          and l.next_action_on is not distinct from w.mark
        for update of l skip locked
    )
    update public.certifications c
    set next_action_on = k.mark
    from marked k
    where c.id = k.id
$$;
comment on function certexpiry.mark_page(date, certexpiry.page_row[], uuid[]) is
    'After a page''s effects: marked certifications back on the schedule, failed reminders '
    'marked for the next night.';

create or replace function certexpiry.mark_page_isolated(
    p_today date, p_page certexpiry.page_row[], p_failed uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_sqlstate text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    -- A mark is a write to the app's table too, so the app's triggers and constraints can
    -- refuse it like an effect, with any error class: set-based in a subtransaction; if that
    -- fails, each half alone, down to the certification whose mark fails (the same classes as
    -- certexpiry.apply_effects_isolated, and QUERY_CANCELED left to the caller for the same
    -- reasons). That certification keeps the mark it had (-infinity or a night gone by), so
    -- the next night reads it again: its effects, recorded, are not repeated, and it is
    -- reported again, every night until the app lets the mark be written. Only a certification
    -- not expired gets a mark written, so it is reported as its reminder's failure (the mark is
    -- when its next reminder is looked at); one whose effects failed tonight is reported once.
    -- Deferred constraints fire inside the subtransaction, as in apply_effects_isolated.
    set constraints all immediate;
    begin
        perform certexpiry.mark_page(p_today, p_page, p_failed);
        return '[]'::jsonb;
    exception when others or assert_failure then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name,
            v_schema = schema_name, v_table = table_name, v_column = column_name,
            v_datatype = pg_datatype_name, v_context = pg_exception_context;
    end;
    if cardinality(p_page) = 1 then
        if p_page[1].id = any (p_failed) then
            return '[]'::jsonb;
        end if;
        return jsonb_build_array(certexpiry.failure_detail(p_page[1].id, p_today, v_sqlstate,
            v_constraint, v_schema, v_table, v_column, v_datatype, v_context));
    end if;
    v_half := cardinality(p_page) / 2;
    return certexpiry.mark_page_isolated(p_today, p_page[1:v_half], p_failed)
        || certexpiry.mark_page_isolated(p_today, p_page[v_half + 1:cardinality(p_page)], p_failed);
end
$$;
comment on function certexpiry.mark_page_isolated(date, certexpiry.page_row[], uuid[]) is
    'mark_page without letting one certification whose mark the app refuses (a trigger, a '
    'constraint; any error class but QUERY_CANCELED) hold back the page: each half alone down '
    'to that certification, which keeps its old mark (read again the next night) and is '
    'returned as a failures_detail element (operation reminder), unless its effects already '
    'failed tonight.';

-- ===== supabase/schemas/40_effects.sql =====

-- The effects: what happens to a certification, each effect recorded in the idempotency log in
-- the same statement that does it. The log's key (certification, action, expiry date) is the
-- arbiter of "never twice": an effect whose insert finds its record does nothing else. Callers
-- hand over the certification ids to consider; each effect reads their current state and applies
-- its own rule, so a stale id list can choose only which effect looks, never what it does.
-- Why: docs/decisions/0001-idempotency-log-key.md, 0002-superseded-reminders.md,
-- 0003-effects-set-based.md, 0010-failure-isolation-by-bisection.md,
-- 0017-structured-failures.md, 0024-effects-read-only-their-certifications.md.

create or replace function certexpiry.apply_auto_pauses(p_run_id uuid, p_today date, p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_counts jsonb;
begin
    with expired as (
        select c.id, c.peer_mentor_id, c.expiry_date
        from public.certifications c
        where c.id = any (p_certification_ids)
          and c.status = 'active'
          and certexpiry.is_expired(c.expiry_date, p_today)
        order by c.id
        for update
    ), recorded as (
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select e.id, 'auto_pause', e.expiry_date, p_run_id from expired e
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), paused as (
        update public.certifications c
        set status = 'paused', paused_at = now(), updated_at = now()
        from recorded r
        where c.id = r.certification_id
        returning c.id, c.peer_mentor_id, c.expiry_date
    ), nothing_left as (
        update public.certifications c
        set next_action_on = 'infinity'
        from expired e
        where c.id = e.id
          and not exists (select from recorded r where r.certification_id = e.id)
          and c.next_action_on is distinct from 'infinity'
    ), mentors as (
        update public.peer_mentors m
        set status = 'paused', paused_at = now(), paused_reason = 'certification_expired', updated_at = now()
        where m.id in (select p.peer_mentor_id from paused p) and m.status = 'active'
        returning m.id
    ), notices as (
        insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
        select p.peer_mentor_id, p.id, 'pause_notice',
               jsonb_build_object('reason', 'certification_expired', 'expiry_date', p.expiry_date)
        from paused p
        returning 1
    )
    select jsonb_build_object(
        'certifications_paused', (select count(*) from paused),
        'mentors_paused', (select count(*) from mentors),
        'notices_queued', (select count(*) from notices)
    )
    into v_counts;
    return v_counts;
end
$$;
comment on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) is
    'Auto-pause the expired, active certifications among the ids, and their mentors, '
    'with a pause notice each; one whose auto-pause is already recorded (reactivated by '
    'hand) is marked infinity, nothing left. Returns the counts.';

create or replace function certexpiry.apply_reminders(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_counts jsonb;
begin
    with candidates as (
        select c.id, c.peer_mentor_id, c.expiry_date, certexpiry.days_left(c.expiry_date, p_today) as days_left
        from public.certifications c
        where c.id = any (p_certification_ids) and c.status = 'active'
    ), due as (
        select cand.*, n as offset_days
        from candidates cand cross join lateral unnest(p_reminder_days) n
        where certexpiry.reminder_due(cand.expiry_date, p_today, n)
    ), smallest as (
        select distinct on (d.id) d.* from due d order by d.id, d.offset_days
    ), sent as (
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id)
        select s.id, certexpiry.reminder_action(s.offset_days), s.expiry_date, p_run_id from smallest s
        on conflict on constraint certification_idempotency_log_once do nothing
        returning certification_id
    ), superseded as (
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id, outcome)
        select d.id, certexpiry.reminder_action(d.offset_days), d.expiry_date, p_run_id, 'superseded'
        from due d join smallest s on s.id = d.id
        where d.offset_days > s.offset_days
        on conflict on constraint certification_idempotency_log_once do nothing
        returning 1
    ), queued as (
        insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
        select s.peer_mentor_id, s.id, 'reminder',
               jsonb_build_object('offset_days', s.offset_days, 'days_left', s.days_left,
                                  'expiry_date', s.expiry_date)
        from smallest s join sent on sent.certification_id = s.id
        returning 1
    )
    select jsonb_build_object(
        'reminders_queued', (select count(*) from queued),
        'reminders_superseded', (select count(*) from superseded)
    )
    into v_counts;
    return v_counts;
end
$$;
comment on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) is
    'Queue the smallest due reminder offset of each active certification among the ids and '
    'record the larger due ones as superseded (no burst of stale reminders after downtime). '
    'Returns the counts.';

create or replace function certexpiry.apply_effects(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[],
    p_expiry_dates date[] default null)
returns jsonb
language sql
as $$
    select certexpiry.apply_auto_pauses(p_run_id, p_today, array(
               select u.id from unnest(p_certification_ids, p_expiry_dates) u (id, expiry_date)
               where u.id is not null
                 and (u.expiry_date is null or certexpiry.is_expired(u.expiry_date, p_today))))
        || certexpiry.apply_reminders(p_run_id, p_today, p_reminder_days, array(
               select u.id from unnest(p_certification_ids, p_expiry_dates) u (id, expiry_date)
               where u.id is not null
                 and (u.expiry_date is null or not certexpiry.is_expired(u.expiry_date, p_today))))
$$;
comment on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) is
    'Every effect due to the ids: with the expiry dates the caller read, an expired one goes to '
    'the auto-pause only and the others to the reminders only (null dates: both look at every '
    'id). One place for "what happens".';

create or replace function certexpiry.error_names(
    p_constraint text, p_schema text, p_table text, p_column text, p_datatype text,
    p_context text)
returns jsonb
language sql stable
as $$
    -- Each name is kept only if the catalog has it (never a pattern): an error's fields are
    -- whatever text raised it, and a trigger's RAISE ... USING COLUMN = 'Kari Nordmann' is one.
    with named_tables as (
        select c.oid
        from pg_catalog.pg_class c
        where c.relname = p_table and c.relkind in ('r', 'p', 'v', 'm', 'f')
    ), context_lines as (
        -- Each line of the context that names a function, innermost first as the context lists
        -- them: PL/pgSQL's signature (schema-qualified when the function is not on the search
        -- path, each part double-quoted when it must be) or a SQL function's name in quotes.
        select m.at, m.parts[1] as qualifier, m.parts[2] as plpgsql_name, m.parts[3] as sql_name
        from regexp_matches(p_context,
                 '^(?:PL/pgSQL function (?:("(?:[^"]|"")+"|[^\s."(]+)\.)?("(?:[^"]|"")+"|[^\s."(]+)\('
                 '|SQL function "(.+)"(?: |$))',
                 'gn') with ordinality m (parts, at)
    ), routines as (
        select l.at, r.schema_name, r.name
        from context_lines l
        cross join lateral (
            select case when l.qualifier like '"%'
                        then replace(substr(l.qualifier, 2, length(l.qualifier) - 2), '""', '"')
                        else l.qualifier end as schema_name,
                   case when l.plpgsql_name like '"%'
                        then replace(substr(l.plpgsql_name, 2, length(l.plpgsql_name) - 2), '""', '"')
                        else coalesce(l.plpgsql_name, l.sql_name) end as name) r
        where exists (
            select from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where p.proname = r.name and (r.schema_name is null or n.nspname = r.schema_name))
    )
    select jsonb_strip_nulls(jsonb_build_object(
        'constraint_name', (select p_constraint where exists (
            select from pg_catalog.pg_constraint k where k.conname = p_constraint)),
        'schema_name', (select p_schema where exists (
            select from pg_catalog.pg_namespace n where n.nspname = p_schema)),
        'table_name', (select p_table where exists (select from named_tables)),
        'column_name', (select p_column where exists (
            select from pg_catalog.pg_attribute a
            join pg_catalog.pg_class c on c.oid = a.attrelid
            where a.attname = p_column and a.attnum > 0 and not a.attisdropped
              and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and (c.oid in (select t.oid from named_tables t)
                   or not exists (select from named_tables)))),
        'datatype_name', (select p_datatype where exists (
            select from pg_catalog.pg_type t where t.typname = p_datatype)),
        -- A function calling itself (the isolation's halving) is named once per run of calls,
        -- so a row's routine reads the same wherever it sat in its batch.
        'routine', (select string_agg(q.qualified, ' < ' order by q.at)
                    from (select r.at, coalesce(r.schema_name || '.', '') || r.name as qualified,
                                 lag(coalesce(r.schema_name || '.', '') || r.name)
                                     over (order by r.at) as previous
                          from routines r) q
                    where q.previous is distinct from q.qualified)))
$$;
comment on function certexpiry.error_names(text, text, text, text, text, text) is
    'The names an error''s diagnostics give (constraint, schema, table, column, datatype) and '
    'the functions its context names (routine: schema.name or name, innermost first, joined '
    'by " < ", a repeated call named once), each only if the catalog has it: an allow-list, because a trigger can set '
    'every one of these fields to any text (RAISE ... USING COLUMN = ''Kari Nordmann''), and '
    'the context quotes statements. A name the catalog lacks, null or empty, is left out.';

create or replace function certexpiry.failure_detail(
    p_certification_id uuid, p_today date, p_sqlstate text, p_constraint text, p_schema text,
    p_table text, p_column text, p_datatype text, p_context text)
returns jsonb
language sql stable
as $$
    select jsonb_build_object(
        'certification_id', p_certification_id,
        'peer_mentor_id', c.peer_mentor_id,
        'operation', case when certexpiry.is_expired(c.expiry_date, p_today)
                          then 'auto_pause' else 'reminder' end,
        'sqlstate', p_sqlstate)
        || certexpiry.error_names(p_constraint, p_schema, p_table, p_column, p_datatype, p_context)
    from (values (1)) one
    left join public.certifications c on c.id = p_certification_id
$$;
comment on function certexpiry.failure_detail(uuid, date, text, text, text, text, text, text, text) is
    'One element of failures_detail: the certification that failed, its mentor, the operation '
    '(auto_pause when expired, else reminder), the SQLSTATE, and those of the diagnostics'' '
    'names and the context''s functions the catalog has (certexpiry.error_names). No text of '
    'the error''s: its message, detail and hint are whatever raised it.';

create or replace function certexpiry.apply_effects_isolated(
    p_run_id uuid, p_today date, p_reminder_days integer[], p_certification_ids uuid[],
    p_expiry_dates date[] default null)
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_sqlstate text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    -- Every error a row's effects can raise is that row's failure, whatever its class: the
    -- app's triggers and constraints (RAISE, a check or foreign key, a division by zero, a
    -- lock_timeout on a row locked elsewhere) and an ASSERT in one of them too, which WHEN
    -- OTHERS alone lets through (it matches neither ASSERT_FAILURE nor QUERY_CANCELED), so the
    -- whole batch failed and the next night stopped at the same row. QUERY_CANCELED is left
    -- to propagate on purpose: a statement_timeout or a cancel request is about the whole
    -- call, not one row. Caught here, the timeout would fire once and never again (it is armed
    -- per statement), so the halves would run on unbounded, and a cancel (pg_cancel_backend,
    -- a client giving up) would be swallowed; the sweep retries a timed-out batch halved.
    -- The app's deferred constraint triggers and deferrable foreign keys are fired at the end
    -- of each statement, inside the subtransaction, instead of at commit, where one row's
    -- error would fail the whole call (for the rest of the caller's transaction too).
    set constraints all immediate;
    begin
        return certexpiry.apply_effects(
                p_run_id, p_today, p_reminder_days, p_certification_ids, p_expiry_dates)
            || jsonb_build_object('failures', 0, 'failures_detail', '[]'::jsonb);
    exception when others or assert_failure then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name,
            v_schema = schema_name, v_table = table_name, v_column = column_name,
            v_datatype = pg_datatype_name, v_context = pg_exception_context;
    end;
    if cardinality(p_certification_ids) = 1 then
        return jsonb_build_object('failures', 1, 'failures_detail', jsonb_build_array(
            certexpiry.failure_detail(p_certification_ids[1], p_today, v_sqlstate,
                v_constraint, v_schema, v_table, v_column, v_datatype, v_context)));
    end if;
    v_half := cardinality(p_certification_ids) / 2;
    return certexpiry.merge_effects(
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[1:v_half], p_expiry_dates[1:v_half]),
        certexpiry.apply_effects_isolated(p_run_id, p_today, p_reminder_days,
                                          p_certification_ids[v_half + 1:cardinality(p_certification_ids)],
                                          p_expiry_dates[v_half + 1:cardinality(p_certification_ids)]));
end
$$;
comment on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) is
    'apply_effects without letting one bad row hold back the others: set-based in a '
    'subtransaction; if that fails, each half alone, down to the certification that fails, '
    'reported with its SQLSTATE, the diagnostics'' names the catalog has and operation. Every error class is '
    'a row''s failure (ASSERT_FAILURE included) but QUERY_CANCELED: a statement timeout or a '
    'cancel stops the whole call, and the sweep retries a timed-out batch halved. One bad row '
    'in n costs about 2n row-effects. The sweep, the plan and remediation all use it.';

-- ===== supabase/schemas/50_sweep_api.sql =====

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

-- ===== supabase/schemas/60_monitoring.sql =====

-- The end of a run: the monitoring query (no expired certification missed), the nights without a
-- run, and the audit row ops read. Why: docs/decisions/0011-bounded-monitoring-answer.md,
-- 0013-monitoring-without-log-probes.md, 0014-missed-nights.md.

create or replace function certexpiry.missed_auto_pauses(p_today date)
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date, next_action_on date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date, c.next_action_on
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on <= p_today
      and certexpiry.is_expired(c.expiry_date, p_today)
      and (c.next_action_on > '-infinity'
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
    union all
    select c.id, c.peer_mentor_id, c.expiry_date, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on is null
      and certexpiry.is_expired(c.expiry_date, p_today)
      and ((select certexpiry.swept_by(p_today))
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
$$;
comment on function certexpiry.missed_auto_pauses(date) is
    'Missed auto-pauses: expired, still active, and no auto_pause record for that expiry date. '
    'Read from the night''s leftover work (the marks and the schedule''s expired dates), so its '
    'cost follows the size of the answer: only a certification not yet looked at (-infinity), '
    'or the schedule''s before the first swept night, is probed in the log; once a night is '
    'swept, one on the schedule has no record by construction (30_night_work.sql).';

create or replace function certexpiry.missed_nights(p_today date)
returns jsonb
language sql stable
set search_path = ''
as $$
    with previous as (
        select max(r.nightly_key) as nightly_key
        from certexpiry.cron_runs r
        where r.nightly_key < p_today
    ), gap as (
        select d::date as night
        from previous p,
             generate_series(greatest(p.nightly_key + 1, p_today - 366), p_today - 1, interval '1 day') d
        where p.nightly_key is not null
    )
    select coalesce(jsonb_agg(to_char(g.night, 'YYYY-MM-DD') order by g.night), '[]'::jsonb)
    from gap g
$$;
comment on function certexpiry.missed_nights(date) is
    'The organisation-local nights between the last night with a run and tonight that have no '
    'run (at most the newest 366), as ISO dates.';

create or replace function public.get_missed_auto_pauses(p_timezone text, p_today date, p_limit integer)
returns jsonb
language sql stable
set search_path = ''
as $$
    with night as (
        select coalesce(p_today, certexpiry.org_today(p_timezone)) as today
    )
    select jsonb_build_object(
        'missed_pause_count', (select count(*) from certexpiry.missed_auto_pauses(n.today)),
        'missed_ids', coalesce((
            select jsonb_agg(f.certification_id order by f.next_action_on, f.certification_id)
            from (select m.certification_id, m.next_action_on
                  from certexpiry.missed_auto_pauses(n.today) m
                  order by m.next_action_on, m.certification_id
                  limit greatest(p_limit, 0)) f), '[]'::jsonb),
        'today', n.today)
    from night n
$$;
comment on function public.get_missed_auto_pauses(text, date, integer) is
    'The monitoring query: how many auto-pauses were missed and the p_limit longest overdue ids. '
    'p_today null: today in p_timezone; the sweep passes its run''s date, so a run crossing '
    'midnight is judged by its own night.';

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
set search_path = ''
as $$
    with complete as (
        select count(*)::integer as missed_pause_count,
               coalesce(jsonb_agg(m.certification_id order by m.certification_id), '[]'::jsonb) as missed_ids
        from certexpiry.missed_auto_pauses(p_nightly_key) m
        where p_nightly_key is not null
          and p_missed_pause_count > jsonb_array_length(p_missed_ids)
    ), row as (
        select case when c.missed_pause_count > 0 then c.missed_pause_count else p_missed_pause_count end as missed_pause_count,
               case when c.missed_pause_count > 0 then c.missed_ids else p_missed_ids end as missed_ids,
               case when p_nightly_key is null then '[]'::jsonb
                    else certexpiry.missed_nights(p_nightly_key) end as missed_nights
        from complete c
    )
    insert into public.cron_audit_log as a (run_id, run_at, missed_pause_count, missed_ids, status,
        nightly_key, segments, totals, duration_ms, missed_nights)
    select p_run_id, p_run_at, r.missed_pause_count, r.missed_ids, p_status, p_nightly_key,
        p_segments, coalesce(p_totals, '{}'::jsonb), p_duration_ms, r.missed_nights
    from row r
    on conflict (run_id) do update
    set missed_pause_count = excluded.missed_pause_count,
        missed_ids = excluded.missed_ids,
        status = excluded.status,
        nightly_key = coalesce(excluded.nightly_key, a.nightly_key),
        segments = coalesce(excluded.segments, a.segments),
        totals = excluded.totals,
        duration_ms = coalesce(excluded.duration_ms, a.duration_ms),
        missed_nights = case when excluded.nightly_key is null then a.missed_nights
                             else excluded.missed_nights end,
        updated_at = now()
    returning jsonb_build_object('run_id', a.run_id, 'missed_pause_count', a.missed_pause_count,
        'resolved', a.resolved)
$$;
comment on function public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz) is
    'One audit row per run, upserted on run_id so a re-run of the end of a run does not duplicate '
    'it; when the caller''s id list was capped, the database writes the complete list. resolved '
    'is ops'' acknowledgement and is never reset here.';

-- ===== supabase/schemas/70_ops_api.sql =====

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

-- ===== supabase/schemas/75_outbox_api.sql =====

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

-- ===== supabase/schemas/80_app_additions.sql =====

-- What the job adds to the app's tables, last of all: each statement here takes a lock on an
-- app table (adding the column an ACCESS EXCLUSIVE lock, the trigger and the foreign keys a
-- SHARE ROW EXCLUSIVE one), held until the install commits, so they come after everything that
-- takes time. The functions that read next_action_on were created before it exists
-- (check_function_bodies is off, 00_schemas.sql). The job's indexes on certifications are built
-- without blocking writes, in migrations of their own (95_app_indexes.sql).

-- The job's mark on the app's certifications: metadata only (no table rewrite, no backfill):
-- existing rows read null (on the schedule), rows inserted later -infinity (looked at once).
alter table public.certifications add column if not exists next_action_on date;
alter table public.certifications alter column next_action_on set default '-infinity';
comment on column public.certifications.next_action_on is
    'certexpiry''s mark, never set by hand. null: on the schedule (or not active); -infinity: '
    'not yet looked at; a date: look at it that night; infinity: nothing left for this expiry '
    'date (supabase/schemas/30_night_work.sql).';

-- Fires only on a real change of the two columns (the WHEN clause is evaluated without calling
-- the function), so the app's other updates of a certification cost it nothing.
create or replace trigger certifications_next_action
    before update of expiry_date, status on public.certifications
    for each row
    when (old.expiry_date is distinct from new.expiry_date or old.status is distinct from new.status)
    execute function certexpiry.reset_next_action();

-- The job's rows go with the app's: the app deleting a certification or a mentor deletes the
-- job's records and notices of it (the job's tables are empty here, so each check is instant).
alter table certexpiry.certification_idempotency_log
    add constraint certification_idempotency_log_certification_id_fkey
    foreign key (certification_id) references public.certifications (id) on delete cascade;
alter table certexpiry.notification_outbox
    add constraint notification_outbox_certification_id_fkey
    foreign key (certification_id) references public.certifications (id) on delete cascade;
alter table certexpiry.notification_outbox
    add constraint notification_outbox_peer_mentor_id_fkey
    foreign key (peer_mentor_id) references public.peer_mentors (id) on delete cascade;

-- ===== supabase/schemas/90_privileges.sql =====

-- Privileges, last: every object the job creates is named here, one at a time, with exactly what
-- service_role needs and nothing for anyone else. Nothing here names an object of the app's,
-- and no default privilege is changed: the app's grants stay the app's. The job's functions are
-- SECURITY INVOKER (the schema check aside), so they run with service_role's privileges; on the
-- app's tables those come from the app (the contract, 05_app_contract.sql, checks them).
-- Why: docs/decisions/0007-least-privilege.md.
--
-- A hosted Supabase project's default privileges grant anon, authenticated and service_role
-- everything on each new table, sequence and function in public, and PostgreSQL grants EXECUTE
-- on each new function to PUBLIC: each object is revoked from those roles first.
--
-- The job's tables, for service_role:
--   certexpiry.certification_idempotency_log   select, insert (the records; insert ... returning)
--   certexpiry.notification_outbox             insert (returning 1 reads no column; the identity
--                                              column needs no privilege on its sequence);
--                                              select, and update of the sender's columns only
--                                              (claimed_until, attempts, dispatched_at,
--                                              failed_at, failure_code, dropped_at) for the
--                                              outbox RPCs (75_outbox_api.sql); a message's
--                                              kind, ids and payload are never updated
--   certexpiry.cron_runs                       select, insert, update (claims, checkpoints)
--   certexpiry.night_acknowledgements          select, insert (acknowledged missed nights are
--                                              kept: never updated or deleted)
--   public.cron_audit_log                      select, insert, update (upsert, list, get, resolve)
--   certexpiry.schema_migrations               none (read by public.schema_version, definer)
-- and for an ops admin (authenticated, filtered by the policies of 10_tables.sql): select on
-- public.cron_audit_log and update of its resolved column, nothing else.

revoke all on table certexpiry.schema_migrations from public, anon, authenticated, service_role;
revoke all on table certexpiry.certification_idempotency_log from public, anon, authenticated, service_role;
revoke all on table certexpiry.notification_outbox from public, anon, authenticated, service_role;
revoke all on sequence certexpiry.notification_outbox_id_seq from public, anon, authenticated, service_role;
revoke all on table certexpiry.cron_runs from public, anon, authenticated, service_role;
revoke all on table certexpiry.night_acknowledgements from public, anon, authenticated, service_role;
revoke all on table public.cron_audit_log from public, anon, authenticated, service_role;

grant select, insert on table certexpiry.certification_idempotency_log to service_role;
grant select, insert on table certexpiry.notification_outbox to service_role;
grant update (claimed_until, attempts, dispatched_at, failed_at, failure_code, dropped_at)
    on table certexpiry.notification_outbox to service_role;
grant select, insert, update on table certexpiry.cron_runs to service_role;
grant select, insert on table certexpiry.night_acknowledgements to service_role;
grant select, insert, update on table public.cron_audit_log to service_role;
grant select on table public.cron_audit_log to authenticated;
grant update (resolved) on table public.cron_audit_log to authenticated;

-- The RPCs PostgREST exposes: service_role only.
revoke all on function public.claim_nightly_run(uuid, text, integer, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.claim_nightly_run(uuid, text, integer, timestamptz) to service_role;
revoke all on function public.claim_continuation(uuid, integer, integer, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.claim_continuation(uuid, integer, integer, timestamptz) to service_role;
revoke all on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[]) from public, anon, authenticated, service_role;
grant execute on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[]) to service_role;
revoke all on function public.handoff_run(uuid, integer, integer) from public, anon, authenticated, service_role;
grant execute on function public.handoff_run(uuid, integer, integer) to service_role;
revoke all on function public.complete_run(uuid, integer) from public, anon, authenticated, service_role;
grant execute on function public.complete_run(uuid, integer) to service_role;
revoke all on function public.get_missed_auto_pauses(text, date, integer) from public, anon, authenticated, service_role;
grant execute on function public.get_missed_auto_pauses(text, date, integer) to service_role;
revoke all on function public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz) to service_role;
revoke all on function public.list_cron_audit(integer) from public, anon, authenticated, service_role;
grant execute on function public.list_cron_audit(integer) to service_role;
revoke all on function public.get_cron_audit(uuid) from public, anon, authenticated, service_role;
grant execute on function public.get_cron_audit(uuid) to service_role;
revoke all on function public.resolve_cron_audit(uuid, boolean) from public, anon, authenticated, service_role;
grant execute on function public.resolve_cron_audit(uuid, boolean) to service_role;
revoke all on function public.remediate_auto_pauses(uuid, uuid[], text) from public, anon, authenticated, service_role;
grant execute on function public.remediate_auto_pauses(uuid, uuid[], text) to service_role;
revoke all on function public.plan_night(text, date, integer[], integer) from public, anon, authenticated, service_role;
grant execute on function public.plan_night(text, date, integer[], integer) to service_role;
revoke all on function public.night_history(text, integer, time, text, integer, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.night_history(text, integer, time, text, integer, timestamptz) to service_role;
revoke all on function public.acknowledge_missed_nights(date[], text, text, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.acknowledge_missed_nights(date[], text, text, timestamptz) to service_role;
revoke all on function public.claim_outbox(integer, integer, integer) from public, anon, authenticated, service_role;
grant execute on function public.claim_outbox(integer, integer, integer) to service_role;
revoke all on function public.acknowledge_outbox(bigint[]) from public, anon, authenticated, service_role;
grant execute on function public.acknowledge_outbox(bigint[]) to service_role;
revoke all on function public.fail_outbox(bigint[], text) from public, anon, authenticated, service_role;
grant execute on function public.fail_outbox(bigint[], text) to service_role;
revoke all on function public.outbox_backlog() from public, anon, authenticated, service_role;
grant execute on function public.outbox_backlog() to service_role;
revoke all on function public.schema_version() from public, anon, authenticated, service_role;
grant execute on function public.schema_version() to service_role;

-- The rules and internals the RPCs call (service_role runs them as itself); trigger functions
-- are called by their triggers alone.
revoke all on function certexpiry.stamp_resolved() from public;
revoke all on function certexpiry.org_today(text, timestamptz) from public;
grant execute on function certexpiry.org_today(text, timestamptz) to service_role;
revoke all on function certexpiry.is_expired(date, date) from public;
grant execute on function certexpiry.is_expired(date, date) to service_role;
revoke all on function certexpiry.days_left(date, date) from public;
grant execute on function certexpiry.days_left(date, date) to service_role;
revoke all on function certexpiry.reminder_due(date, date, integer) from public;
grant execute on function certexpiry.reminder_due(date, date, integer) to service_role;
revoke all on function certexpiry.reminder_action(integer) from public;
grant execute on function certexpiry.reminder_action(integer) to service_role;
revoke all on function certexpiry.action_days(date, date, integer[]) from public;
grant execute on function certexpiry.action_days(date, date, integer[]) to service_role;
revoke all on function certexpiry.judge(date, date, integer[]) from public;
grant execute on function certexpiry.judge(date, date, integer[]) to service_role;
revoke all on function certexpiry.recorded(uuid, text, date) from public;
grant execute on function certexpiry.recorded(uuid, text, date) to service_role;
revoke all on function certexpiry.sum_counts(jsonb, jsonb) from public;
grant execute on function certexpiry.sum_counts(jsonb, jsonb) to service_role;
revoke all on function certexpiry.merge_effects(jsonb, jsonb) from public;
grant execute on function certexpiry.merge_effects(jsonb, jsonb) to service_role;
revoke all on function certexpiry.last_swept(date, integer) from public;
grant execute on function certexpiry.last_swept(date, integer) to service_role;
revoke all on function certexpiry.swept_by(date) from public;
grant execute on function certexpiry.swept_by(date) to service_role;
revoke all on function certexpiry.schedule_ranges(date, integer[]) from public;
grant execute on function certexpiry.schedule_ranges(date, integer[]) to service_role;
revoke all on function certexpiry.reset_next_action() from public;
revoke all on function certexpiry.night_page(date, integer[], text, integer) from public;
grant execute on function certexpiry.night_page(date, integer[], text, integer) to service_role;
revoke all on function certexpiry.cursor_after(certexpiry.page_row) from public;
grant execute on function certexpiry.cursor_after(certexpiry.page_row) to service_role;
revoke all on function certexpiry.read_page(date, integer[], text, integer) from public;
grant execute on function certexpiry.read_page(date, integer[], text, integer) to service_role;
revoke all on function certexpiry.actionable_certifications(date, integer[]) from public;
grant execute on function certexpiry.actionable_certifications(date, integer[]) to service_role;
revoke all on function certexpiry.mark_page(date, certexpiry.page_row[], uuid[]) from public;
grant execute on function certexpiry.mark_page(date, certexpiry.page_row[], uuid[]) to service_role;
revoke all on function certexpiry.mark_page_isolated(date, certexpiry.page_row[], uuid[]) from public;
grant execute on function certexpiry.mark_page_isolated(date, certexpiry.page_row[], uuid[]) to service_role;
revoke all on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) from public;
grant execute on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) to service_role;
revoke all on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) from public;
grant execute on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) to service_role;
revoke all on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) to service_role;
revoke all on function certexpiry.error_names(text, text, text, text, text, text) from public;
grant execute on function certexpiry.error_names(text, text, text, text, text, text) to service_role;
revoke all on function certexpiry.failure_detail(uuid, date, text, text, text, text, text, text, text) from public;
grant execute on function certexpiry.failure_detail(uuid, date, text, text, text, text, text, text, text) to service_role;
revoke all on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) to service_role;
revoke all on function certexpiry.missed_auto_pauses(date) from public;
grant execute on function certexpiry.missed_auto_pauses(date) to service_role;
revoke all on function certexpiry.missed_nights(date) from public;
grant execute on function certexpiry.missed_nights(date) to service_role;
revoke all on function certexpiry.ms_since(timestamptz) from public;
grant execute on function certexpiry.ms_since(timestamptz) to service_role;
revoke all on function certexpiry.expected_at(date, text, time, text) from public;
grant execute on function certexpiry.expected_at(date, text, time, text) to service_role;
revoke all on function certexpiry.first_night() from public;
grant execute on function certexpiry.first_night() to service_role;
revoke all on function certexpiry.audit_today(uuid) from public;
grant execute on function certexpiry.audit_today(uuid) to service_role;
revoke all on function certexpiry.still_missed(jsonb, date) from public;
grant execute on function certexpiry.still_missed(jsonb, date) to service_role;
revoke all on type certexpiry.page_row from public;
grant usage on type certexpiry.page_row to service_role;

-- ===== the job's ledger =====

insert into certexpiry.schema_migrations (version, name)
values ('20261203000000', 'baseline')
on conflict (version) do nothing;
