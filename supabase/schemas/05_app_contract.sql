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
