-- Monitoring whose answer is bounded: after a failed night with many missed auto-pauses, the
-- query returned every ID in one JSON value (a sort of all of them, spilling to disk) and the
-- run's line and audit row carried them all. Now it returns the count and the first p_limit IDs
-- (a top-N sort in bounded memory), and the audit row gets the complete list written here, on
-- the server, when the reported list was cut.

drop function public.get_missed_auto_pauses(text, date);

-- Expired, not paused, no auto_pause record: the count and the first p_limit IDs in ID order.
-- p_today null: today in p_timezone; the sweep passes its run's date so a run crossing
-- midnight is judged by its own.
create function public.get_missed_auto_pauses(p_timezone text, p_today date, p_limit integer)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    with missed as (
        select m.certification_id
        from certexpiry.missed_auto_pauses(coalesce(p_today, certexpiry.org_today(p_timezone))) m
    )
    select jsonb_build_object(
        'missed_pause_count', (select count(*) from missed),
        'missed_ids', coalesce((select jsonb_agg(f.certification_id order by f.certification_id)
                                from (select certification_id from missed
                                      order by certification_id limit greatest(p_limit, 0)) f),
                               '[]'::jsonb),
        'today', coalesce(p_today, certexpiry.org_today(p_timezone)))
$$;

-- One audit row per run, upserted on run_id. When the monitoring report's list was cut
-- (fewer IDs than its count), the complete list of the run's night is written from here.
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
security invoker
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
               case when c.missed_pause_count > 0 then c.missed_ids else p_missed_ids end as missed_ids
        from complete c
    )
    insert into public.cron_audit_log as a (run_id, run_at, missed_pause_count, missed_ids, status,
        nightly_key, segments, totals, duration_ms)
    select p_run_id, p_run_at, r.missed_pause_count, r.missed_ids, p_status, p_nightly_key,
        p_segments, coalesce(p_totals, '{}'::jsonb), p_duration_ms
    from row r
    on conflict (run_id) do update
    set missed_pause_count = excluded.missed_pause_count,
        missed_ids = excluded.missed_ids,
        status = excluded.status,
        nightly_key = coalesce(excluded.nightly_key, a.nightly_key),
        segments = coalesce(excluded.segments, a.segments),
        totals = excluded.totals,
        duration_ms = coalesce(excluded.duration_ms, a.duration_ms),
        updated_at = now()
    returning jsonb_build_object('run_id', a.run_id, 'missed_pause_count', a.missed_pause_count,
        'resolved', a.resolved)
$$;

revoke all on function public.get_missed_auto_pauses(text, date, integer) from public, anon, authenticated;
grant execute on function public.get_missed_auto_pauses(text, date, integer) to service_role;
