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
