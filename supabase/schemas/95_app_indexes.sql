-- The job's indexes on the app's certifications, built without blocking the app's writes
-- (CONCURRENTLY). PostgreSQL cannot build them inside a transaction, so each statement of this
-- file becomes a migration of its own: the Supabase CLI runs every migration file in one
-- transaction except a file holding a single such statement (from CLI v2.109.0 on), and
-- `certexpiry migrate` runs them outside a transaction. A build that failed leaves an INVALID
-- index, which `if not exists` would keep: `certexpiry migrate` drops it and builds it again.

-- The schedule in the night's keyset order (expiry date, id): a page is read from this index
-- alone (peer_mentor_id included). Why: docs/decisions/0022-schedule-and-marks.md.
create index concurrently if not exists certifications_on_schedule_idx
    on public.certifications (expiry_date, id) include (peer_mentor_id)
    where status = 'active' and next_action_on is null;

-- The few certifications off the schedule (marked), in keyset order; expiry_date included so
-- that monitoring reads the index alone.
create index concurrently if not exists certifications_next_action_idx
    on public.certifications (next_action_on, id) include (expiry_date)
    where status = 'active' and next_action_on is not null;
