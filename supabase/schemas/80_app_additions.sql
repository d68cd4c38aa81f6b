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
