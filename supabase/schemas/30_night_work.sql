-- The night's work: which certifications a night reads, in what order, how a page of them is
-- judged, and the marks that keep the few off the schedule. Defined once here and used by the
-- sweep (public.process_expiry_batch), the plan (public.plan_night) and the demo's history.
--
-- When a certification's effects fall due follows from its expiry date alone
-- (certexpiry.action_days); the idempotency log only says which of them are already done. So a
-- night reads, on the expiry-date index certifications_on_schedule_idx, the certifications with
-- an effect falling due on a night the sweep has not covered yet (the schedule): every expired
-- one still active, and for each reminder offset n the expiry dates whose day expiry - n came
-- after the last night whose sweep covered n. A normal night reads four days of expiry dates; a
-- night after an outage reads the outage's. Processing writes the effects and nothing else.
--
-- certifications.next_action_on marks only the certifications off that schedule:
--   null      on the schedule (active), or not active;
--   -infinity not yet looked at: inserted after the job was installed, renewed or reactivated
--             (its effects may fall on nights already swept): read once, then back on the
--             schedule. Rows the app had when the job was installed start on the schedule;
--   a date    look at it on that night: a reminder that failed is retried the next night;
--   infinity  nothing left for this expiry date (expired, its auto-pause already recorded).
-- Monitoring needs no log probe because of this: an active certification on the schedule has
-- no auto-pause record for its expiry date. Why, with the measurements:
-- docs/decisions/0022-schedule-and-marks.md.

create or replace function certexpiry.last_swept(p_today date, p_offset integer)
returns date
language sql stable
as $$
    select coalesce((
        select r.nightly_key from certexpiry.cron_runs r
        where r.nightly_key < p_today and p_offset = any (r.swept_reminder_days)
        order by r.nightly_key desc
        limit 1), '-infinity')
$$;
comment on function certexpiry.last_swept(date, integer) is
    'The last night before tonight whose sweep read its last page with reminder offset N '
    '(-infinity: none).';

create or replace function certexpiry.swept_by(p_today date)
returns boolean
language sql stable
as $$
    select exists (
        select from certexpiry.cron_runs r
        where r.nightly_key <= p_today and r.swept_reminder_days is not null)
$$;
comment on function certexpiry.swept_by(date) is
    'Whether a night up to p_today read its last page: from then on the schedule holds no '
    'certification whose auto-pause is recorded (before it, records written by other means, '
    'such as an imported history, may exist).';

create or replace function certexpiry.schedule_ranges(p_today date, p_reminder_days integer[])
returns table (lo date, hi date)
language sql stable
as $$
    select lower(r), upper(r) - 1
    from unnest((
        select range_agg(daterange(d.lo, d.hi, '[]'))
        from (
            select '-infinity'::date as lo, p_today - 1 as hi
            union all
            select greatest(certexpiry.last_swept(p_today, n) + n + 1, p_today), p_today + n
            from unnest(p_reminder_days) n
        ) d
        where d.lo <= d.hi
    )) r
$$;
comment on function certexpiry.schedule_ranges(date, integer[]) is
    'The expiry dates tonight''s schedule reads, as disjoint ranges: every expired date, and for '
    'each reminder offset n the dates whose day expiry - n came after the last night that swept '
    'n (a new offset reaches its whole window once).';

create or replace function certexpiry.reset_next_action()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.status <> 'active' then
        new.next_action_on := null;
    else
        new.next_action_on := '-infinity';
    end if;
    return new;
end
$$;
comment on function certexpiry.reset_next_action() is
    'Trigger: a certification renewed (new expiry date) or reactivated is marked -infinity (read '
    'once by the next night); one no longer active leaves the schedule. An inserted one gets '
    '-infinity from the column''s default, so inserts call no trigger.';

-- One certification of a page: as read (mark is next_action_on; null on the schedule) and as
-- judged from its expiry date (certexpiry.judge).
create type certexpiry.page_row as (
    id uuid,
    peer_mentor_id uuid,
    expiry_date date,
    mark date,
    due_on date,
    after_tonight date
);
comment on type certexpiry.page_row is
    'One certification of a night''s page, as read and as judged from its expiry date.';

create or replace function certexpiry.night_page(
    p_today date, p_reminder_days integer[], p_cursor text, p_limit integer)
returns table (id uuid, peer_mentor_id uuid, expiry_date date, mark date)
language plpgsql stable
as $$
declare
    v_uuid constant text := '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
    v_day constant text := '(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})';
    v_on_schedule boolean := true;
    v_after_day date := '-infinity';
    v_after_id uuid := '00000000-0000-0000-0000-000000000000';
    v_range record;
    v_from_day date;
    v_from_id uuid;
    v_read integer := 0;
    v_rows integer;
begin
    -- The cursor: null (the start), on-schedule/<expiry date>/<id> or <mark>/<id>.
    if p_cursor is null then
        null;
    elsif p_cursor ~ ('^on-schedule/' || v_day || '/' || v_uuid || '$') then
        v_after_day := split_part(p_cursor, '/', 2)::date;
        v_after_id := split_part(p_cursor, '/', 3)::uuid;
    elsif p_cursor ~ ('^' || v_day || '/' || v_uuid || '$') then
        v_on_schedule := false;
        v_after_day := split_part(p_cursor, '/', 1)::date;
        v_after_id := split_part(p_cursor, '/', 2)::uuid;
    else
        raise exception 'p_cursor is not a cursor of the night''s pages' using errcode = '22023';
    end if;

    -- The schedule: one index range scan per range of expiry dates, each with one lower bound,
    -- the cursor or the range's start (given both, the index starts from the row comparison and
    -- reads every entry from the cursor on: docs/decisions/0023-one-lower-bound-per-schedule-scan.md).
    if v_on_schedule then
        for v_range in
            select r.lo, r.hi from certexpiry.schedule_ranges(p_today, p_reminder_days) r
            where r.hi >= v_after_day
            order by r.lo
        loop
            exit when v_read >= p_limit;
            v_from_day := v_after_day;
            v_from_id := v_after_id;
            if v_after_day < v_range.lo then
                v_from_day := v_range.lo - 1;  -- after every row of the day before
                v_from_id := 'ffffffff-ffff-ffff-ffff-ffffffffffff';
            end if;
            return query
                select s.id, s.peer_mentor_id, s.expiry_date, null::date
                from public.certifications s
                where s.status = 'active'
                  and s.next_action_on is null
                  and (s.expiry_date, s.id) > (v_from_day, v_from_id)
                  and s.expiry_date <= v_range.hi
                order by s.expiry_date, s.id
                limit p_limit - v_read;
            get diagnostics v_rows = row_count;
            v_read := v_read + v_rows;
        end loop;
        v_after_day := '-infinity';
        v_after_id := '00000000-0000-0000-0000-000000000000';
    end if;

    -- Then the marked certifications due by their mark.
    if p_limit is null or v_read < p_limit then
        return query
            select m.id, m.peer_mentor_id, m.expiry_date, m.next_action_on
            from public.certifications m
            where m.status = 'active'
              and m.next_action_on <= p_today
              and (m.next_action_on, m.id) > (v_after_day, v_after_id)
            order by m.next_action_on, m.id
            limit p_limit - v_read;
    end if;
end
$$;
comment on function certexpiry.night_page(date, integer[], text, integer) is
    'One page of tonight''s work after a cursor, in keyset order: the schedule (by expiry date), '
    'then the marked certifications (by mark). p_limit null: the whole night.';

create or replace function certexpiry.cursor_after(p_row certexpiry.page_row)
returns text
language sql immutable strict
as $$
    select case when p_row.mark is null
                then 'on-schedule/' || p_row.expiry_date::text || '/' || p_row.id::text
                else p_row.mark::text || '/' || p_row.id::text end
$$;
comment on function certexpiry.cursor_after(certexpiry.page_row) is
    'The cursor that continues the night after this row (night_page reads it back).';

create or replace function certexpiry.read_page(
    p_today date, p_reminder_days integer[], p_cursor text, p_limit integer)
returns certexpiry.page_row[]
language sql stable
as $$
    select coalesce(array_agg(
               row(p.id, p.peer_mentor_id, p.expiry_date, p.mark, j.due_on, j.after_tonight)
                   ::certexpiry.page_row
               order by p.n), '{}')
    from certexpiry.night_page(p_today, p_reminder_days, p_cursor, p_limit)
             with ordinality p (id, peer_mentor_id, expiry_date, mark, n)
    cross join lateral certexpiry.judge(p.expiry_date, p_today, p_reminder_days) j
$$;
comment on function certexpiry.read_page(date, integer[], text, integer) is
    'A page of tonight''s work, read (night_page) and judged from the expiry dates (judge), in '
    'page order.';

create or replace function certexpiry.actionable_certifications(p_today date, p_reminder_days integer[])
returns table (certification_id uuid, peer_mentor_id uuid, expiry_date date)
language sql stable
as $$
    select p.id, p.peer_mentor_id, p.expiry_date
    from unnest(certexpiry.read_page(p_today, p_reminder_days, null, null)) p
    where p.due_on <= p_today
$$;
comment on function certexpiry.actionable_certifications(date, integer[]) is
    'Tonight''s work whole: the certifications the sweep''s pages read and judge due tonight.';

create or replace function certexpiry.mark_page(
    p_today date, p_page certexpiry.page_row[], p_failed uuid[])
returns void
language sql
as $$
    -- What the effects did not settle: a marked certification looked at goes back on the
    -- schedule (null) when something is left after tonight, and a reminder that failed on the
    -- schedule is marked for the next night (tomorrow's date: a mark of tonight would be read
    -- again by tonight's own marked pages, which come after the schedule, so the reminder would
    -- be retried and reported twice in one night). An expired one needs nothing here:
    -- apply_auto_pauses paused it or, finding its auto-pause recorded, marked it infinity.
    -- Failed marked ones keep their mark, failed auto-pauses stay on the schedule (every
    -- night's work), and a certification locked elsewhere, or changed since it was read, is
    -- left as it is.
    with marked as (
        select l.id, t.mark
        from unnest(p_page) w
        cross join lateral (select w.id = any (p_failed) as failed) f
        cross join lateral (
            select case when f.failed then p_today + 1 end as mark,
                   case when f.failed
                        then w.mark is null and not certexpiry.is_expired(w.expiry_date, p_today)
                        else w.mark is not null and w.after_tonight is not null end as write) t
        join public.certifications l on l.id = w.id
        where t.write
          and l.status = 'active'
          and l.expiry_date = w.expiry_date
          and l.next_action_on is not distinct from w.mark
        for update of l skip locked
    )
    update public.certifications c
    set next_action_on = k.mark
    from marked k
    where c.id = k.id
$$;
comment on function certexpiry.mark_page(date, certexpiry.page_row[], uuid[]) is
    'After a page''s effects: marked certifications back on the schedule, failed reminders '
    'marked for the next night.';

create or replace function certexpiry.mark_page_isolated(
    p_today date, p_page certexpiry.page_row[], p_failed uuid[])
returns jsonb
language plpgsql
as $$
declare
    v_half integer;
    v_sqlstate text;
    v_constraint text;
    v_schema text;
    v_table text;
    v_column text;
    v_datatype text;
    v_context text;
begin
    -- A mark is a write to the app's table too, so the app's triggers and constraints can
    -- refuse it like an effect, with any error class: set-based in a subtransaction; if that
    -- fails, each half alone, down to the certification whose mark fails (the same classes as
    -- certexpiry.apply_effects_isolated, and QUERY_CANCELED left to the caller for the same
    -- reasons). That certification keeps the mark it had (-infinity or a night gone by), so
    -- the next night reads it again: its effects, recorded, are not repeated, and it is
    -- reported again, every night until the app lets the mark be written. Only a certification
    -- not expired gets a mark written, so it is reported as its reminder's failure (the mark is
    -- when its next reminder is looked at); one whose effects failed tonight is reported once.
    -- Deferred constraints fire inside the subtransaction, as in apply_effects_isolated.
    set constraints all immediate;
    begin
        perform certexpiry.mark_page(p_today, p_page, p_failed);
        return '[]'::jsonb;
    exception when others or assert_failure then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_constraint = constraint_name,
            v_schema = schema_name, v_table = table_name, v_column = column_name,
            v_datatype = pg_datatype_name, v_context = pg_exception_context;
    end;
    if cardinality(p_page) = 1 then
        if p_page[1].id = any (p_failed) then
            return '[]'::jsonb;
        end if;
        return jsonb_build_array(certexpiry.failure_detail(p_page[1].id, p_today, v_sqlstate,
            v_constraint, v_schema, v_table, v_column, v_datatype, v_context));
    end if;
    v_half := cardinality(p_page) / 2;
    return certexpiry.mark_page_isolated(p_today, p_page[1:v_half], p_failed)
        || certexpiry.mark_page_isolated(p_today, p_page[v_half + 1:cardinality(p_page)], p_failed);
end
$$;
comment on function certexpiry.mark_page_isolated(date, certexpiry.page_row[], uuid[]) is
    'mark_page without letting one certification whose mark the app refuses (a trigger, a '
    'constraint; any error class but QUERY_CANCELED) hold back the page: each half alone down '
    'to that certification, which keeps its old mark (read again the next night) and is '
    'returned as a failures_detail element (operation reminder), unless its effects already '
    'failed tonight.';
