-- The SQL API of the ops command line (`python -m certexpiry audit ...`): read the audit log,
-- and acknowledge a run once its missed auto-pauses are remediated. Same conventions as the
-- sweep's API: one JSON value per call, security invoker, an empty search_path, and only
-- service_role may execute them.

-- Which of these certification IDs (a run's missed_ids) are still missed auto-pauses on p_today:
-- expired, not paused, and no auto_pause record for their current expiry date. Written in terms
-- of certexpiry.missed_auto_pauses, so it can never disagree with the monitoring query. A
-- renewed certification (new expiry date, no longer expired) or one paused since drops out.
-- Elements that are not UUIDs are ignored (missed_ids is jsonb).
create or replace function certexpiry.still_missed(p_certification_ids jsonb, p_today date)
returns jsonb
language sql stable
as $$
    select coalesce(jsonb_agg(m.certification_id order by m.certification_id), '[]'::jsonb)
    from certexpiry.missed_auto_pauses(p_today) m
    where m.certification_id in (
        select (e.value #>> '{}')::uuid
        from jsonb_array_elements(
                 case when jsonb_typeof(p_certification_ids) = 'array' then p_certification_ids
                      else '[]'::jsonb end) e
        where jsonb_typeof(e.value) = 'string'
          and e.value #>> '{}' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    )
$$;

-- Today in the time zone the run was made in (the organisation's), for judging its missed IDs now.
create or replace function certexpiry.audit_today(p_run_id uuid)
returns date
language sql stable
as $$
    select certexpiry.org_today(coalesce(
        (select r.timezone from public.cron_runs r where r.run_id = p_run_id), 'Europe/Oslo'))
$$;

revoke all on function certexpiry.still_missed(jsonb, date), certexpiry.audit_today(uuid) from public;
grant execute on function certexpiry.still_missed(jsonb, date), certexpiry.audit_today(uuid)
    to service_role;

-- The newest p_limit audit rows (1..1000, default 20), newest first. missed_ids are left out
-- (a row's count says whether it has any; get_cron_audit lists them).
create or replace function public.list_cron_audit(p_limit integer default 20)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select coalesce(jsonb_agg(to_jsonb(x) order by x.run_at desc, x.run_id), '[]'::jsonb)
    from (
        select a.run_id, a.run_at, a.nightly_key, a.status, a.segments, a.missed_pause_count,
               a.resolved, a.resolved_at, a.duration_ms, a.totals, a.updated_at
        from public.cron_audit_log a
        order by a.run_at desc, a.run_id
        limit greatest(1, least(coalesce(p_limit, 20), 1000))
    ) x
$$;

-- One audit row with its missed_ids and which of them are still missed now (still_missed);
-- null when there is no row for p_run_id.
create or replace function public.get_cron_audit(p_run_id uuid)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
    select to_jsonb(a) || jsonb_build_object(
        'still_missed', certexpiry.still_missed(a.missed_ids, certexpiry.audit_today(a.run_id)))
    from public.cron_audit_log a
    where a.run_id = p_run_id
$$;

-- Ops' acknowledgement of a run: resolved = true, resolved_at = now (kept on a repeat call).
-- Refused (refused = true, nothing written) while any of the run's missed IDs is still missed,
-- unless p_force. An already resolved row is returned as it is.
--   {found, resolved, refused, forced, still_missed: [...], resolved_at}
create or replace function public.resolve_cron_audit(p_run_id uuid, p_force boolean default false)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
    v_row public.cron_audit_log;
    v_still jsonb;
begin
    select * into v_row from public.cron_audit_log where run_id = p_run_id for update;
    if not found then
        return jsonb_build_object('found', false, 'resolved', false, 'refused', false,
            'forced', false, 'still_missed', '[]'::jsonb, 'resolved_at', null);
    end if;
    v_still := certexpiry.still_missed(v_row.missed_ids, certexpiry.audit_today(p_run_id));
    if v_row.resolved then
        return jsonb_build_object('found', true, 'resolved', true, 'refused', false,
            'forced', false, 'still_missed', v_still, 'resolved_at', v_row.resolved_at);
    end if;
    if jsonb_array_length(v_still) > 0 and not coalesce(p_force, false) then
        return jsonb_build_object('found', true, 'resolved', false, 'refused', true,
            'forced', false, 'still_missed', v_still, 'resolved_at', null);
    end if;
    update public.cron_audit_log
    set resolved = true, resolved_at = coalesce(resolved_at, now()), updated_at = now()
    where run_id = p_run_id
    returning * into v_row;
    return jsonb_build_object('found', true, 'resolved', true, 'refused', false,
        'forced', jsonb_array_length(v_still) > 0, 'still_missed', v_still,
        'resolved_at', v_row.resolved_at);
end
$$;

revoke execute on function
    public.list_cron_audit(integer),
    public.get_cron_audit(uuid),
    public.resolve_cron_audit(uuid, boolean)
from public, anon, authenticated;

grant execute on function
    public.list_cron_audit(integer),
    public.get_cron_audit(uuid),
    public.resolve_cron_audit(uuid, boolean)
to service_role;
