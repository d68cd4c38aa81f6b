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
