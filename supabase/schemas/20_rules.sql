-- The business rules, each defined once: dates, offsets and when each effect falls due. The
-- sweep, monitoring, the plan and remediation are all written in terms of these, so they cannot
-- disagree.
--
-- Plain SQL functions without a SET clause on purpose: the planner inlines them into the
-- calling query and uses the indexes (a SET search_path would stop inlining). Every name inside
-- is schema-qualified (docs/decisions/0005-inlinable-rules.md).

create or replace function certexpiry.org_today(p_timezone text, p_now timestamptz default now())
returns date
language sql stable
as $$ select (p_now at time zone p_timezone)::date $$;
comment on function certexpiry.org_today(text, timestamptz) is
    'Today in the organisation''s time zone: the night a run belongs to.';

create or replace function certexpiry.is_expired(p_expiry_date date, p_today date)
returns boolean
language sql immutable
as $$ select p_expiry_date < p_today $$;
comment on function certexpiry.is_expired(date, date) is
    'Expired: a certification is valid through its expiry date, expired from the next day on.';

create or replace function certexpiry.days_left(p_expiry_date date, p_today date)
returns integer
language sql immutable
as $$ select p_expiry_date - p_today $$;
comment on function certexpiry.days_left(date, date) is
    'Days left until expiry (0 on the expiry date itself).';

create or replace function certexpiry.reminder_due(p_expiry_date date, p_today date, p_offset integer)
returns boolean
language sql immutable
as $$ select p_expiry_date >= p_today and p_expiry_date - p_today <= p_offset $$;
comment on function certexpiry.reminder_due(date, date, integer) is
    'Reminder offset N is due when 0 <= days left <= N; only the smallest due offset is sent.';

-- The explicit text cast keeps the expression immutable, so it is inlined (`'reminder_' ||
-- integer` resolves to anytextcat, which is only stable, and was called once per row).
create or replace function certexpiry.reminder_action(p_offset integer)
returns text
language sql immutable
as $$ select 'reminder_' || p_offset::text || 'd' $$;
comment on function certexpiry.reminder_action(integer) is
    'The idempotency log''s action name of reminder offset N: reminder_Nd.';

create or replace function certexpiry.action_days(
    p_expiry_date date, p_today date, p_reminder_days integer[])
returns table (action text, day date)
language sql immutable
as $$
    select 'auto_pause',
           case when certexpiry.is_expired(p_expiry_date, p_today) then p_today
                else p_expiry_date + 1 end
    union all
    select certexpiry.reminder_action(n), greatest(p_expiry_date - n, p_today)
    from unnest(p_reminder_days) n
    where certexpiry.reminder_due(p_expiry_date, greatest(p_expiry_date - n, p_today), n)
$$;
comment on function certexpiry.action_days(date, date, integer[]) is
    'When each effect of an expiry date falls due, seen from tonight: the auto-pause the day '
    'after expiry (tonight if already expired), each reminder offset N on expiry - N (tonight '
    'if that day has passed and the reminder is still due). Defined once; judging a '
    'certification is reading this.';

create or replace function certexpiry.judge(
    p_expiry_date date, p_today date, p_reminder_days integer[])
returns table (due_on date, after_tonight date)
language sql immutable
as $$
    select min(a.day), min(a.day) filter (where a.day > p_today)
    from certexpiry.action_days(p_expiry_date, p_today, p_reminder_days) a
$$;
comment on function certexpiry.judge(date, date, integer[]) is
    'A certification judged from its expiry date alone: the first day one of its effects falls '
    'due (due tonight when <= tonight) and the first one after tonight (null: none left). '
    'Whether an effect is already recorded is not asked here: the effects'' inserts are the '
    'arbiter of "never twice" (docs/decisions/0025-pages-judged-from-expiry-dates.md).';

create or replace function certexpiry.recorded(p_certification_id uuid, p_action text, p_expiry_date date)
returns setof certexpiry.certification_idempotency_log
language sql stable
as $$
    select l.* from certexpiry.certification_idempotency_log l
    where l.certification_id = p_certification_id
      and l.action = p_action
      and l.expiry_date = p_expiry_date
$$;
comment on function certexpiry.recorded(uuid, text, date) is
    'The idempotency log''s record of one effect for one expiry date (empty: not done).';

create or replace function certexpiry.sum_counts(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select coalesce(jsonb_object_agg(k, coalesce((p_a ->> k)::bigint, 0) + coalesce((p_b ->> k)::bigint, 0)), '{}'::jsonb)
    from (select jsonb_object_keys(p_a) as k union select jsonb_object_keys(p_b)) keys
$$;
comment on function certexpiry.sum_counts(jsonb, jsonb) is
    'Two count objects added key by key (a missing key counts 0).';

create or replace function certexpiry.merge_effects(p_a jsonb, p_b jsonb)
returns jsonb
language sql immutable
as $$
    select certexpiry.sum_counts(p_a - 'failures_detail', p_b - 'failures_detail')
        || jsonb_build_object('failures_detail',
               coalesce(p_a -> 'failures_detail', '[]'::jsonb) || coalesce(p_b -> 'failures_detail', '[]'::jsonb))
$$;
comment on function certexpiry.merge_effects(jsonb, jsonb) is
    'Two effects answers merged: counts added, failure details concatenated.';
