-- The end of a run: the monitoring query (no expired certification missed), the nights without a
-- run, and the audit row ops read. Why: docs/decisions/0011-bounded-monitoring-answer.md,
-- 0013-monitoring-without-log-probes.md, 0014-missed-nights.md.

create or replace function certexpiry.missed_auto_pauses(p_today date)
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date, next_action_on date)
language sql stable
as $$
    select c.id, c.peer_mentor_id, c.expiry_date, c.next_action_on
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on <= p_today
      and certexpiry.is_expired(c.expiry_date, p_today)
      and (c.next_action_on > '-infinity'
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
    union all
    select c.id, c.peer_mentor_id, c.expiry_date, c.expiry_date
    from public.certifications c
    where c.status = 'active'
      and c.next_action_on is null
      and certexpiry.is_expired(c.expiry_date, p_today)
      and ((select certexpiry.swept_by(p_today))
           or not exists (select from certexpiry.recorded(c.id, 'auto_pause', c.expiry_date)))
$$;
comment on function certexpiry.missed_auto_pauses(date) is
    'Missed auto-pauses: expired, still active, and no auto_pause record for that expiry date. '
    'Read from the night''s leftover work (the marks and the schedule''s expired dates), so its '
    'cost follows the size of the answer: only a certification not yet looked at (-infinity), '
    'or the schedule''s before the first swept night, is probed in the log; once a night is '
    'swept, one on the schedule has no record by construction (30_night_work.sql).';

create or replace function certexpiry.missed_nights(p_today date)
returns jsonb
language sql stable
set search_path = ''
as $$
    with previous as (
        select max(r.nightly_key) as nightly_key
        from certexpiry.cron_runs r
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
comment on function certexpiry.missed_nights(date) is
    'The organisation-local nights between the last night with a run and tonight that have no '
    'run (at most the newest 366), as ISO dates.';

create or replace function public.get_missed_auto_pauses(p_timezone text, p_today date, p_limit integer)
returns jsonb
language sql stable
set search_path = ''
as $$
    with night as (
        select coalesce(p_today, certexpiry.org_today(p_timezone)) as today
    )
    select jsonb_build_object(
        'missed_pause_count', (select count(*) from certexpiry.missed_auto_pauses(n.today)),
        'missed_ids', coalesce((
            select jsonb_agg(f.certification_id order by f.next_action_on, f.certification_id)
            from (select m.certification_id, m.next_action_on
                  from certexpiry.missed_auto_pauses(n.today) m
                  order by m.next_action_on, m.certification_id
                  limit greatest(p_limit, 0)) f), '[]'::jsonb),
        'today', n.today)
    from night n
$$;
comment on function public.get_missed_auto_pauses(text, date, integer) is
    'The monitoring query: how many auto-pauses were missed and the p_limit longest overdue ids. '
    'p_today null: today in p_timezone; the sweep passes its run''s date, so a run crossing '
    'midnight is judged by its own night.';

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
comment on function public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, jsonb, bigint, timestamptz) is
    'One audit row per run, upserted on run_id so a re-run of the end of a run does not duplicate '
    'it; when the caller''s id list was capped, the database writes the complete list. resolved '
    'is ops'' acknowledgement and is never reset here.';
