-- Monitoring after a failed night without one idempotency-log probe per missed certification.
--
-- After a night that did not run, every expired certification is still due, and the monitoring
-- query probed the log once for each to tell a missed auto-pause from a reactivated one: 160k
-- missed cost about 290 ms warm and 840 ms cold. The probe is only needed where the sweep has not
-- looked at a certification since it last changed:
--
-- * an auto_pause record is only ever written together with the certification's pause (one
--   statement in certexpiry.apply_auto_pauses), and a paused certification has no next action
--   (the trigger certifications_next_action sets null);
-- * any change back to active, or of the expiry date, sets next_action_on to -infinity;
-- * the sweep sets a finite next_action_on only from certexpiry.next_actions, which gives an
--   expired certification a date only while its auto-pause is unrecorded.
--
-- So an active certification with a finite next_action_on has no auto_pause record for its
-- current expiry date, and only the -infinity ones ("not yet looked at": inserted, renewed or
-- reactivated since the last night) need the probe. The result is unchanged (the integration
-- test compares it with the specification's definition after a night with refused, reactivated,
-- renewed and late certifications; the reliability suites compare it on every run). A log row
-- inserted by hand for an active certification is not seen until the certification changes.

-- It also returns next_action_on, the order in which the report lists them.
drop function certexpiry.missed_auto_pauses(date);
create function certexpiry.missed_auto_pauses(p_today date)
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
$$;

-- The count and the first p_limit IDs, longest overdue first (the night's keyset order, which
-- certifications_next_action_idx answers in bounded time whatever the statistics say; ordering by
-- ID let a stale estimate pick a walk of the whole primary key). Two scans of the leftover work
-- instead of one materialised set, so neither spills to disk.
create or replace function public.get_missed_auto_pauses(p_timezone text, p_today date, p_limit integer)
returns jsonb
language sql
stable
security invoker
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

-- A dropped and re-created function starts from the default privileges again.
revoke all on function certexpiry.missed_auto_pauses(date) from public;
grant execute on function certexpiry.missed_auto_pauses(date) to service_role;
