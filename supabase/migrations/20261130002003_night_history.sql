-- The last p_nights organisation-local nights, newest first, as a cron monitor shows them
-- (`certexpiry nights`): each night's run (status, segments, duration, totals) and its audit row
-- (missed auto-pauses, resolved). A night without a run is 'missed' from the first night any
-- run was recorded on; before that it is 'before_first_run', and tonight without a run yet is
-- 'pending'. lease_left_s: for an unfinished run, the seconds its lease still holds (by the
-- database's clock; `run` waits them out). Read-only; one JSON array (1..366 nights).
create or replace function public.night_history(p_timezone text, p_nights integer)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    with bounds as (
        select certexpiry.org_today(p_timezone) as today,
               greatest(1, least(coalesce(p_nights, 14), 366)) as nights,
               (select min(r.nightly_key) from public.cron_runs r) as first_night
    ), nights as (
        select (b.today - g)::date as night, b.today, b.first_night
        from bounds b cross join generate_series(0, b.nights - 1) g
    )
    select coalesce(jsonb_agg(jsonb_build_object(
            'night', n.night,
            'status', case
                when r.run_id is not null then r.status
                when n.first_night is null or n.night < n.first_night then 'before_first_run'
                when n.night = n.today then 'pending'
                else 'missed' end,
            'run_id', r.run_id,
            'segments', coalesce(a.segments, r.segment + 1),
            'started_at', r.started_at,
            'finished_at', r.finished_at,
            'duration_ms', coalesce(a.duration_ms,
                (extract(epoch from (r.finished_at - r.started_at)) * 1000)::bigint),
            'totals', coalesce(r.totals, '{}'::jsonb),
            'lease_left_s', case when r.status in ('running', 'handoff')
                                 then round(greatest(0, extract(epoch from (r.lease_until - now())))::numeric, 1)
                            end,
            'missed_pause_count', a.missed_pause_count,
            'resolved', a.resolved)
        order by n.night desc), '[]'::jsonb)
    from nights n
    left join public.cron_runs r on r.nightly_key = n.night
    left join public.cron_audit_log a on a.run_id = r.run_id
$$;

revoke all on function public.night_history(text, integer) from public, anon, authenticated;
grant execute on function public.night_history(text, integer) to service_role;
