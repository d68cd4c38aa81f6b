-- Which schema this database has, for the function's cold-start check: the newest migration
-- recorded in supabase_migrations.schema_migrations, the history table that both
-- `supabase db push` and `certexpiry migrate` fill, and how many are recorded. A function
-- deployed against an older schema then says so once, at start, instead of failing with a
-- missing function in the middle of a night.
--
-- Read from the history table rather than written into this function, so a migration added on
-- any branch moves the answer without redefining this function. SECURITY DEFINER: service_role
-- has no privilege on supabase_migrations, and needs none for anything else; the function
-- returns version strings and a count only. A database migrated without a history table (SQL
-- applied by hand) answers latest null.
create or replace function public.schema_version()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_answer jsonb;
begin
    if to_regclass('supabase_migrations.schema_migrations') is null then
        return jsonb_build_object('latest', null, 'applied', 0);
    end if;
    execute 'select jsonb_build_object(''latest'', max(version), ''applied'', count(*))'
            ' from supabase_migrations.schema_migrations'
       into v_answer;
    return v_answer;
end
$$;

revoke all on function public.schema_version() from public, anon, authenticated;
grant execute on function public.schema_version() to service_role;
