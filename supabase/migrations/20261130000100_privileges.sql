-- Least privilege on the schema PostgREST exposes (public): only service_role reaches anything,
-- and only what the job uses. tests/integration/test_contract.py checks the result.
--
-- A hosted Supabase project grants anon, authenticated and service_role everything on new
-- tables, sequences and functions in public (default privileges), so with the earlier
-- migrations anon could still call `setval` on notification_outbox_id_seq, and any function a
-- later migration forgets to revoke would be callable by anon. This migration
--   1. revokes those default privileges, for the roles whose defaults this role may change;
--   2. revokes every privilege on the tables, sequences and functions now in public from
--      PUBLIC, anon, authenticated and service_role;
--   3. grants service_role back exactly what the SQL API's functions use;
--   4. adds the CHECK on cron_audit_log.status the first migration left out.

-- 1. Default privileges. Those of the role running the migrations (postgres on a hosted
-- project) and of supabase_admin where this role may change them: on a hosted project it may
-- not (Supabase keeps supabase_admin's defaults; they apply only to objects supabase_admin
-- creates, i.e. extensions, never to these migrations' objects), so that role is skipped.
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

-- 2. Nothing for anyone on what exists now.
revoke all on all tables in schema public from public, anon, authenticated, service_role;
revoke all on all sequences in schema public from public, anon, authenticated, service_role;
revoke all on all functions in schema public from public, anon, authenticated, service_role;

-- The ops-admin read policy of the first migration is moot: authenticated has no privilege on
-- cron_audit_log any more (ops read it through the service-role RPCs of the ops command line).
drop policy if exists cron_audit_log_ops_admin_read on public.cron_audit_log;

-- 3. service_role: EXECUTE on the SQL API, and the table privileges its functions need. They
-- are SECURITY INVOKER, so they run with service_role's privileges:
--   peer_mentors, certifications    select, update (auto-pause: read, lock, set paused)
--   certification_idempotency_log   select, insert (the records; insert ... returning)
--   notification_outbox             insert (returning 1 reads no column; the identity column
--                                   needs no privilege on its sequence)
--   cron_runs                       select, insert, update (claims, checkpoints, hand-off)
--   cron_audit_log                  select, insert, update (upsert, list, get, resolve)
-- No DELETE anywhere (audit rows are never deleted), no TRUNCATE, REFERENCES or TRIGGER, no
-- sequence. Foreign keys are checked with the owner's rights and need nothing here.
grant execute on function
    public.claim_nightly_run(uuid, text, integer, timestamptz),
    public.claim_continuation(uuid, integer, integer, timestamptz),
    public.process_expiry_batch(uuid, integer, uuid, integer, integer[], integer),
    public.handoff_run(uuid, integer, integer),
    public.complete_run(uuid, integer),
    public.get_missed_auto_pauses(text, date),
    public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz),
    public.remediate_auto_pauses(uuid, uuid[], text),
    public.list_cron_audit(integer),
    public.get_cron_audit(uuid),
    public.resolve_cron_audit(uuid, boolean)
to service_role;

grant select, update on public.peer_mentors, public.certifications to service_role;
grant select, insert on public.certification_idempotency_log to service_role;
grant insert on public.notification_outbox to service_role;
grant select, insert, update on public.cron_runs, public.cron_audit_log to service_role;

-- 4. The statuses the end of a run writes (certexpiry/monitoring.py, upsert_cron_audit).
alter table public.cron_audit_log
    add constraint cron_audit_log_status_check
    check (status in ('completed', 'monitoring_failed')) not valid;
alter table public.cron_audit_log validate constraint cron_audit_log_status_check;
