-- Privileges, last: every object the job creates is named here, one at a time, with exactly what
-- service_role needs and nothing for anyone else. The job's functions are SECURITY INVOKER (the
-- trigger and the schema check aside), so they run with service_role's privileges.
-- Why: docs/decisions/0007-least-privilege.md.
--
-- A hosted Supabase project grants anon, authenticated and service_role everything on new
-- tables, sequences and functions in public (default privileges), and PostgreSQL grants EXECUTE
-- on every new function to PUBLIC: each object below is revoked from those roles first.
--
-- Tables, for service_role:
--   peer_mentors, certifications    select, update (auto-pause: read, lock, set paused)
--   certification_idempotency_log   select, insert (the records; insert ... returning)
--   notification_outbox             insert (returning 1 reads no column; the identity column
--                                   needs no privilege on its sequence)
--   cron_runs                       select, insert, update (claims, checkpoints, hand-off)
--   cron_audit_log                  select, insert, update (upsert, list, get, resolve)
-- No DELETE anywhere (audit rows are never deleted), no TRUNCATE, REFERENCES or TRIGGER, no
-- sequence. Foreign keys are checked with the owner's rights and need nothing here.

-- The default privileges of the role running the migrations (postgres on a hosted project) and
-- of supabase_admin where this role may change them, so that no later object in public is
-- granted to the API roles by default.
do $$
declare
    v_role text;
begin
    for v_role in
        select r.rolname from pg_roles r
        where r.rolname in (current_user, 'postgres', 'supabase_admin')
          and pg_has_role(current_user, r.oid, 'MEMBER')
    loop
        execute format('alter default privileges for role %I in schema public '
                       'revoke all on tables from anon, authenticated, service_role', v_role);
        execute format('alter default privileges for role %I in schema public '
                       'revoke all on sequences from anon, authenticated, service_role', v_role);
        execute format('alter default privileges for role %I in schema public '
                       'revoke all on functions from anon, authenticated, service_role', v_role);
    end loop;
end
$$;

-- Tables and the outbox's identity sequence.
revoke all on table public.peer_mentors from public, anon, authenticated, service_role;
revoke all on table public.certifications from public, anon, authenticated, service_role;
revoke all on table public.certification_idempotency_log from public, anon, authenticated, service_role;
revoke all on table public.notification_outbox from public, anon, authenticated, service_role;
revoke all on table public.cron_runs from public, anon, authenticated, service_role;
revoke all on table public.cron_audit_log from public, anon, authenticated, service_role;
revoke all on sequence public.notification_outbox_id_seq from public, anon, authenticated, service_role;
grant select, update on table public.peer_mentors to service_role;
grant select, update on table public.certifications to service_role;
grant select, insert on table public.certification_idempotency_log to service_role;
grant insert on table public.notification_outbox to service_role;
grant select, insert, update on table public.cron_runs to service_role;
grant select, insert, update on table public.cron_audit_log to service_role;

-- The RPCs PostgREST exposes: service_role only.
revoke all on function public.claim_nightly_run(uuid, text, integer, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.claim_nightly_run(uuid, text, integer, timestamptz) to service_role;
revoke all on function public.claim_continuation(uuid, integer, integer, timestamptz) from public, anon, authenticated, service_role;
grant execute on function public.claim_continuation(uuid, integer, integer, timestamptz) to service_role;
revoke all on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer) from public, anon, authenticated, service_role;
grant execute on function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer) to service_role;
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
revoke all on function public.night_history(text, integer) from public, anon, authenticated, service_role;
grant execute on function public.night_history(text, integer) to service_role;
revoke all on function public.schema_version() from public, anon, authenticated, service_role;
grant execute on function public.schema_version() to service_role;

-- The rules and internals the RPCs call (service_role runs them as itself); the trigger
-- function is called by the trigger alone.
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
revoke all on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) from public;
grant execute on function certexpiry.apply_auto_pauses(uuid, date, uuid[]) to service_role;
revoke all on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) from public;
grant execute on function certexpiry.apply_reminders(uuid, date, integer[], uuid[]) to service_role;
revoke all on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects(uuid, date, integer[], uuid[], date[]) to service_role;
revoke all on function certexpiry.redact_mentor_values(text, uuid) from public;
grant execute on function certexpiry.redact_mentor_values(text, uuid) to service_role;
revoke all on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) from public;
grant execute on function certexpiry.apply_effects_isolated(uuid, date, integer[], uuid[], date[]) to service_role;
revoke all on function certexpiry.missed_auto_pauses(date) from public;
grant execute on function certexpiry.missed_auto_pauses(date) to service_role;
revoke all on function certexpiry.missed_nights(date) from public;
grant execute on function certexpiry.missed_nights(date) to service_role;
revoke all on function certexpiry.audit_today(uuid) from public;
grant execute on function certexpiry.audit_today(uuid) to service_role;
revoke all on function certexpiry.still_missed(jsonb, date) from public;
grant execute on function certexpiry.still_missed(jsonb, date) to service_role;
