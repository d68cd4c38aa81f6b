-- Remove certexpiry from the app's database and leave the app as it was before the job was
-- installed: its tables' columns, triggers and indexes, its grants, policies and default
-- privileges (the job never changed those). Run it as the role that installed the job, in one
-- transaction: `certexpiry uninstall` (it also asks before it runs), or psql -1 -f, or the SQL
-- editor. It deletes the job's history (the idempotency log, the outbox, the runs, the
-- acknowledged missed nights, the audit log and the job's migration ledger) with it: export what ops must keep first. The app's own
-- migration history never held the job's versions unless the job's migrations were pushed
-- from the app's repository; then remove those files there too (docs/deploy.md).
--
-- tests/integration/test_install.py installs the job into the app fixture, runs a night,
-- removes it with this file and compares the app's catalog with the one before.

set local lock_timeout = '5s';

-- What the job added to the app's certifications.
drop trigger if exists certifications_next_action on public.certifications;
drop index if exists public.certifications_on_schedule_idx;
drop index if exists public.certifications_next_action_idx;
alter table public.certifications drop column if exists next_action_on;

-- The job's RPCs and its audit log in public.
drop function if exists public.claim_nightly_run(uuid, text, integer, timestamptz);
drop function if exists public.claim_continuation(uuid, integer, integer, timestamptz);
drop function if exists public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[]);
drop function if exists public.handoff_run(uuid, integer, integer);
drop function if exists public.complete_run(uuid, integer);
drop function if exists public.get_missed_auto_pauses(text, date, integer);
drop function if exists public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz);
drop function if exists public.list_cron_audit(integer);
drop function if exists public.get_cron_audit(uuid);
drop function if exists public.resolve_cron_audit(uuid, boolean);
drop function if exists public.remediate_auto_pauses(uuid, uuid[], text);
drop function if exists public.plan_night(text, date, integer[], integer);
drop function if exists public.night_history(text, integer, time, text, integer, timestamptz);
drop function if exists public.acknowledge_missed_nights(date[], text, text, timestamptz);
drop function if exists public.claim_outbox(integer, integer, integer);
drop function if exists public.acknowledge_outbox(bigint[]);
drop function if exists public.fail_outbox(bigint[], text);
drop function if exists public.outbox_backlog();
drop function if exists public.schema_version();
drop table if exists public.cron_audit_log;

-- Everything else the job owns: rules, run state, idempotency log, outbox, ledger, the
-- acknowledged missed nights.
drop schema if exists certexpiry cascade;
