-- Missed nights: the job notices by itself that a night went by without a run (a skipped or
-- paused scheduler job, a broken deploy, a scheduler time that did not exist that night), even
-- where no alert policy was set up. The catch-up itself is already safe: tonight's sweep covers
-- everything still due and superseded reminders are not sent.
--
-- A night is missed when no cron_runs row has its organisation-local date. Each missed night is
-- reported once, by the first run after it: the nights strictly between the newest earlier run
-- and tonight. Before the first run ever recorded there is nothing to miss.
--   claim_nightly_run answers them in missed_nights (started and resumed outcomes), the sweep
--   logs NIGHTS_MISSED (WARNING), and upsert_cron_audit records them in the run's audit row.

alter table public.cron_audit_log
    add column missed_nights jsonb not null default '[]'::jsonb;
comment on column public.cron_audit_log.missed_nights is
    'Organisation-local nights before this run''s night that have no run (newest 366), set by upsert_cron_audit.';

-- The nights before p_today without a run, since the newest earlier run: oldest first, at most
-- the newest 366 of them (a longer outage is named by its last year; the count says the rest).
create or replace function certexpiry.missed_nights(p_today date)
returns jsonb
language sql
stable
set search_path = ''
as $$
    with previous as (
        select max(r.nightly_key) as nightly_key
        from public.cron_runs r
        where r.nightly_key < p_today
    ), gap as (
        select d::date as night
        from previous p,
             generate_series(greatest(p.nightly_key + 1, p_today - 366), p_today - 1, interval '1 day') d
        where p.nightly_key is not null
    )
    select coalesce(jsonb_agg(to_char(g.night, 'YYYY-MM-DD') order by g.night), '[]'::jsonb)
    from gap g
$$;

revoke all on function certexpiry.missed_nights(date) from public;
grant execute on function certexpiry.missed_nights(date) to service_role;

-- claim_nightly_run as in 20261128000300_sweep_api.sql, plus missed_nights on the outcomes that
-- own the run (started, resumed).
create or replace function public.claim_nightly_run(
    p_run_id uuid,
    p_timezone text default 'Europe/Oslo',
    p_lease_seconds integer default 120,
    p_now timestamptz default now())
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_key date := certexpiry.org_today(p_timezone, p_now);
    v_run public.cron_runs;
    v_abandoned jsonb;
begin
    with stale as (
        update public.cron_runs r
        set status = 'abandoned', finished_at = p_now
        where r.status in ('running', 'handoff') and r.nightly_key < v_key and r.lease_until < p_now
        returning r.run_id
    )
    select coalesce(jsonb_agg(run_id), '[]'::jsonb) into v_abandoned from stale;

    insert into public.cron_runs (run_id, nightly_key, timezone, status, segment, lease_until, heartbeat_at, started_at)
    values (p_run_id, v_key, p_timezone, 'running', 0, p_now + make_interval(secs => p_lease_seconds), p_now, p_now)
    on conflict (nightly_key) do nothing
    returning * into v_run;
    if found then
        return jsonb_build_object('outcome', 'started', 'run_id', v_run.run_id, 'segment', 0,
            'cursor', null, 'today', v_key, 'abandoned', v_abandoned, 'totals', v_run.totals,
            'started_at', v_run.started_at, 'missed_nights', certexpiry.missed_nights(v_key));
    end if;

    select * into v_run from public.cron_runs where nightly_key = v_key for update;
    if v_run.status in ('completed', 'abandoned') then
        return jsonb_build_object('outcome', 'completed', 'run_id', v_run.run_id,
            'segment', v_run.segment, 'today', v_key, 'abandoned', v_abandoned);
    end if;
    if v_run.lease_until < p_now then
        update public.cron_runs
        set segment = segment + 1, status = 'running', heartbeat_at = p_now,
            lease_until = p_now + make_interval(secs => p_lease_seconds)
        where run_id = v_run.run_id
        returning * into v_run;
        return jsonb_build_object('outcome', 'resumed', 'run_id', v_run.run_id,
            'segment', v_run.segment, 'cursor', v_run.cursor, 'today', v_key,
            'abandoned', v_abandoned, 'totals', v_run.totals, 'started_at', v_run.started_at,
            'missed_nights', certexpiry.missed_nights(v_key));
    end if;
    return jsonb_build_object('outcome', 'busy', 'run_id', v_run.run_id, 'segment', v_run.segment,
        'today', v_key, 'lease_until', v_run.lease_until, 'abandoned', v_abandoned);
end
$$;

-- upsert_cron_audit as in 20261130000300_bounded_monitoring.sql, plus the run's missed nights,
-- computed here from cron_runs (the same rule the claim answered with), so the row records them
-- whichever segment finishes the run.
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
               case when c.missed_pause_count > 0 then c.missed_ids else p_missed_ids end as missed_ids,
               case when p_nightly_key is null then '[]'::jsonb
                    else certexpiry.missed_nights(p_nightly_key) end as missed_nights
        from complete c
    )
    insert into public.cron_audit_log as a (run_id, run_at, missed_pause_count, missed_ids, status,
        nightly_key, segments, totals, duration_ms, missed_nights)
    select p_run_id, p_run_at, r.missed_pause_count, r.missed_ids, p_status, p_nightly_key,
        p_segments, coalesce(p_totals, '{}'::jsonb), p_duration_ms, r.missed_nights
    from row r
    on conflict (run_id) do update
    set missed_pause_count = excluded.missed_pause_count,
        missed_ids = excluded.missed_ids,
        status = excluded.status,
        nightly_key = coalesce(excluded.nightly_key, a.nightly_key),
        segments = coalesce(excluded.segments, a.segments),
        totals = excluded.totals,
        duration_ms = coalesce(excluded.duration_ms, a.duration_ms),
        missed_nights = case when excluded.nightly_key is null then a.missed_nights
                             else excluded.missed_nights end,
        updated_at = now()
    returning jsonb_build_object('run_id', a.run_id, 'missed_pause_count', a.missed_pause_count,
        'resolved', a.resolved)
$$;
