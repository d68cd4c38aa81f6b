"""The night's work: pages over certifications whose next action is due, bounded in
certifications, isolating bad and locked rows, with monitoring reading only the leftovers."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from tests import faults
from tests.integration.sqlapi import NOW, TODAY, batch, claim, missed, rpc, sweep_all
from tests.seeding import SPEC_MISSED, actions_of, add_cert, add_mentor, outbox_of, status_of

Conn = psycopg.Connection[Any]


def next_action(db: Conn, cert: uuid.UUID) -> date | str | None:
    """The certification's mark: None (on the schedule, or not active), "-infinity" (not yet
    looked at), "infinity" (nothing left) or the date of the night that looks at it."""
    row = db.execute(
        "select case when isfinite(next_action_on) then next_action_on end, next_action_on::text "
        "from public.certifications where id = %s",
        (cert,),
    ).fetchone()
    assert row is not None
    # psycopg cannot load an infinite date; compare it as text.
    if row[1] in ("-infinity", "infinity"):
        return str(row[1])
    mark: date | None = row[0]
    return mark


def record(db: Conn, cert: uuid.UUID, action: str, expiry: date) -> None:
    db.execute(
        "insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date) "
        "values (%s, %s, %s)",
        (cert, action, expiry),
    )


def test_a_night_writes_nothing_but_its_effects(db: Conn) -> None:
    """Certifications inserted before the first night are on the schedule and stay there: the
    night writes their effects and nothing else; one inserted afterwards is looked at once on
    the next night, which also pauses the one that expired meanwhile."""
    certs = [add_cert(db, add_mentor(db), TODAY + timedelta(days=d)) for d in (-2, 0, 5, 29, 60)]
    assert {next_action(db, cert) for cert in certs} == {None}
    first = sweep_all(db, NOW)
    assert first["certifications"] == 4  # the one 60 days out has nothing due yet
    assert first["reminders_queued"] == 3
    assert first["certifications_paused"] == 1
    assert {next_action(db, cert) for cert in certs} == {None}
    late = add_cert(db, add_mentor(db), TODAY + timedelta(days=10))
    assert next_action(db, late) == "-infinity"
    tomorrow = claim(db, NOW + timedelta(days=1))
    page = batch(db, tomorrow["run_id"], tomorrow["segment"], cursor=None)
    assert page["done"] is True
    assert page["certifications"] == 2
    assert page["certifications_paused"] == 1  # expired on TODAY, due the night after
    assert page["reminders_queued"] == 1
    assert status_of(db, "certifications", certs[1]) == "paused"
    assert ("reminder_30d", "done") in actions_of(db, late)
    assert next_action(db, late) is None  # looked at: back on the schedule


def test_an_idle_night_reads_no_certification(db: Conn) -> None:
    """Certifications already reminded for their 30-day offset are not read again until their
    7-day reminder is due: a night reads the expiry dates due that night, not the window."""
    certs = []
    for days in range(9, 30):
        cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=days))
        record(db, cert, "reminder_30d", TODAY + timedelta(days=days))
        certs.append(cert)
    first = sweep_all(db, NOW)
    assert first["reminders_queued"] == 0  # recorded before the night: the insert skips them
    assert {next_action(db, c) for c in certs} == {None}
    tomorrow = claim(db, NOW + timedelta(days=1))
    page = batch(db, tomorrow["run_id"], tomorrow["segment"], cursor=None)
    assert page["done"] is True
    assert page["certifications"] == 0
    assert page["next_cursor"] is None  # not one row read


def test_a_certification_on_the_schedule_is_judged_from_its_expiry_date(db: Conn) -> None:
    """A certification on the schedule is judged without the log on its day, and a record
    written behind the sweep's back still stops the effect (the insert is the arbiter)."""
    expiry = TODAY + timedelta(days=35)
    cert = add_cert(db, add_mentor(db), expiry)
    sweep_all(db, NOW)
    assert next_action(db, cert) is None  # on the schedule: the 30-day reminder in 5 days
    record(db, cert, "reminder_30d", expiry)
    later = claim(db, NOW + timedelta(days=5))
    page = batch(db, later["run_id"], later["segment"], cursor=None)
    assert page["certifications"] == 1  # due by its date: the log was not read to judge it
    assert page["reminders_queued"] == 0
    assert actions_of(db, cert) == [("reminder_30d", "done")]
    assert outbox_of(db, cert) == []
    assert next_action(db, cert) is None


def test_an_auto_pause_recorded_behind_the_sweeps_back_leaves_nothing(db: Conn) -> None:
    """An expired certification on the schedule whose auto-pause is already recorded is not
    paused again: the pause marks it as having nothing left, so later nights do not read it
    and monitoring does not report it."""
    expiry = TODAY + timedelta(days=3)
    cert = add_cert(db, add_mentor(db), expiry)
    sweep_all(db, NOW)
    record(db, cert, "auto_pause", expiry)
    totals = sweep_all(db, NOW + timedelta(days=4))  # expired the night before
    assert totals["certifications"] == 1  # judged due from its expiry date
    assert totals["certifications_paused"] == 0
    assert status_of(db, "certifications", cert) == "active"
    assert next_action(db, cert) == "infinity"
    assert missed(db, (TODAY + timedelta(days=5)).isoformat())["missed_pause_count"] == 0
    night = claim(db, NOW + timedelta(days=5))
    page = batch(db, night["run_id"], night["segment"], cursor=None)
    assert page["certifications"] == 0
    assert page["next_cursor"] is None  # not read again


def test_a_reactivated_certification_is_settled_by_its_effects(db: Conn) -> None:
    """A certification reactivated by hand after its auto-pause is looked at again without a
    log probe: the pause finds its record, does not pause or notify twice, and marks it as
    having nothing left."""
    expiry = TODAY - timedelta(days=2)
    cert = add_cert(db, add_mentor(db), expiry)
    sweep_all(db, NOW)
    assert status_of(db, "certifications", cert) == "paused"
    db.execute("update public.certifications set status = 'active' where id = %s", (cert,))
    assert next_action(db, cert) == "-infinity"
    totals = sweep_all(db, NOW + timedelta(days=1))
    assert totals["certifications"] == 1  # due by its date; the record decides
    assert totals["certifications_paused"] == 0
    assert status_of(db, "certifications", cert) == "active"
    assert next_action(db, cert) == "infinity"
    assert [
        kind
        for (kind,) in db.execute(
            "select kind from certexpiry.notification_outbox where certification_id = %s", (cert,)
        )
    ] == ["pause_notice"]


def test_a_night_after_an_outage_reads_the_outages_reminder_days(db: Conn) -> None:
    """Nights without a run widen the next night's schedule: a reminder whose day fell during
    the outage is sent (the schedule starts after the last night the sweep covered)."""
    cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=33))
    sweep_all(db, NOW)
    assert actions_of(db, cert) == []  # 33 days left: nothing yet
    totals = sweep_all(db, NOW + timedelta(days=6))  # five nights without a run
    assert totals["reminders_queued"] == 1
    assert actions_of(db, cert) == [("reminder_30d", "done")]


def test_a_new_reminder_offset_reaches_every_certification_in_its_window(db: Conn) -> None:
    """An offset no earlier night covered is read over its whole window on the first night it
    is configured, so a certification already inside it gets it (the rules pick the smallest
    due offset), and one outside it gets nothing yet."""
    near = add_cert(db, add_mentor(db), TODAY + timedelta(days=10))
    far = add_cert(db, add_mentor(db), TODAY + timedelta(days=40))
    sweep_all(db, NOW)
    assert actions_of(db, near) == [("reminder_30d", "done")]
    sweep_all(db, NOW + timedelta(days=1), days=[30, 14, 7, 1])
    assert actions_of(db, near) == [("reminder_14d", "done"), ("reminder_30d", "done")]
    assert actions_of(db, far) == []


def test_a_giant_mentor_is_split_across_batches(db: Conn) -> None:
    """A mentor with more certifications than a batch holds is paused once, across batches
    of at most `limit` certifications, every certification paused exactly once."""
    mentor = add_mentor(db)
    certs = [add_cert(db, mentor, TODAY - timedelta(days=1 + i % 5)) for i in range(25)]
    totals = sweep_all(db, NOW, limit=10)
    assert totals["batches"] == 3
    assert totals["certifications_paused"] == 25
    assert totals["mentors_paused"] == 1
    assert status_of(db, "peer_mentors", mentor) == "paused"
    assert all(actions_of(db, cert) == [("auto_pause", "done")] for cert in certs)


@pytest.mark.parametrize("cursor", ["00000000-0000-0000-0000-000000000000", "on-schedule/x/y", ""])
def test_a_cursor_the_sweep_did_not_make_is_refused(db: Conn, cursor: str) -> None:
    """A cursor is certexpiry.cursor_after's token and nothing else: anything else (a bare UUID,
    the token of pre-release versions, included) is an invalid parameter, not a restart."""
    add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    run = claim(db, NOW)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        batch(db, run["run_id"], cursor=cursor)


def test_each_page_continues_where_the_last_ended(db: Conn) -> None:
    """Pages of the schedule, then of the marked certifications, chained by their cursors, read
    each certification of the night once, in keyset order."""
    mentor = add_mentor(db)
    expired = [add_cert(db, mentor, TODAY - timedelta(days=1 + i % 3)) for i in range(7)]
    claim(db, NOW - timedelta(days=1))  # a run exists: the next inserts are marked -infinity
    marked = [add_cert(db, mentor, TODAY + timedelta(days=3)) for _ in range(4)]
    run = claim(db, NOW)
    cursors, seen, cursor = [], 0, None
    while True:
        page = batch(db, run["run_id"], cursor=cursor, limit=3)
        seen += page["certifications"]
        cursors.append(page["next_cursor"])
        cursor = page["next_cursor"]
        if page["done"]:
            break
    assert seen == len(expired) + len(marked)
    assert [c.startswith("on-schedule/") for c in cursors] == [True, True, False, False]
    assert cursors[-1].startswith("-infinity/")


def _refuse_pause(db: Conn, cert: uuid.UUID) -> None:
    """A trigger of the app's refusing (P0001) to pause the certification."""
    faults.refuse(
        db,
        "certifications",
        [cert],
        message="refused",
        name="refuse_one",
        when="new.status = 'paused'",
    )


def test_a_bad_row_is_isolated_by_bisection(db: Conn) -> None:
    """One certification that cannot be paused is reported alone; the rest of the batch is
    kept, it stays in the night's work, and monitoring reports exactly it."""
    certs = [add_cert(db, add_mentor(db), TODAY - timedelta(days=2)) for _ in range(20)]
    bad = certs[7]
    _refuse_pause(db, bad)
    db.execute("revoke execute on function public.refuse_one() from public")
    totals = sweep_all(db, NOW)
    assert totals["certifications_paused"] == 19
    assert totals["failures"] == 1
    (failure,) = totals["failures_detail"]
    assert failure["certification_id"] == str(bad)
    assert failure["sqlstate"] == "P0001"
    assert failure["operation"] == "auto_pause"
    assert next_action(db, bad) is None  # on the schedule: in every night's work
    report = missed(db, TODAY.isoformat())
    assert report["missed_ids"] == [str(bad)]


def test_a_row_locked_elsewhere_fails_fast_and_alone(db: Conn, database_url: str) -> None:
    """A certification locked by another transaction fails with lock_not_available after the
    batch's lock_timeout instead of holding the batch up; the others are paused."""
    faults.shorten_lock_timeout(db)
    certs = [add_cert(db, add_mentor(db), TODAY - timedelta(days=2)) for _ in range(6)]
    locked = certs[3]
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with psycopg.connect(database_url) as other:
            other.execute("select 1 from public.certifications where id = %s for update", (locked,))
            holding.set()
            release.wait(30)
            other.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        totals = sweep_all(db, NOW)
    finally:
        release.set()
        holder.join()
    assert totals["certifications_paused"] == 5
    (failure,) = totals["failures_detail"]
    assert failure["certification_id"] == str(locked)
    assert failure["sqlstate"] == "55P03"
    assert status_of(db, "certifications", locked) == "active"


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_monitoring_agrees_with_the_specs_definition(db: Conn, limit: int) -> None:
    """Whatever the night left behind (a refused row, a reactivated certification with its
    auto-pause recorded, one reactivated without, a renewal, one added after the night), the
    monitoring query returns exactly the spec's expired, unpaused, unrecorded certifications."""
    refused = add_cert(db, add_mentor(db), TODAY - timedelta(days=3))
    reactivated = add_cert(db, add_mentor(db), TODAY - timedelta(days=4))
    reactivated_bare = add_cert(db, add_mentor(db), TODAY - timedelta(days=6))
    renewed = add_cert(db, add_mentor(db), TODAY - timedelta(days=5))
    for _ in range(4):
        add_cert(db, add_mentor(db), TODAY + timedelta(days=3))
    _refuse_pause(db, refused)
    sweep_all(db, NOW, limit=limit)
    # After the night: ops reactivate two paused certifications (one of them also loses its
    # record, as a hand-made fix might), renew another, and a late one is added.
    db.execute(
        "update public.certifications set status = 'active' where id = any(%s)",
        ([reactivated, reactivated_bare],),
    )
    db.execute(
        "delete from certexpiry.certification_idempotency_log where certification_id = %s",
        (reactivated_bare,),
    )
    db.execute(
        "update public.certifications set expiry_date = %s, status = 'active' where id = %s",
        (TODAY + timedelta(days=200), renewed),
    )
    late = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    expected = sorted(str(r[0]) for r in db.execute(SPEC_MISSED, {"today": TODAY}).fetchall())
    assert expected == sorted(map(str, (refused, reactivated_bare, late)))
    report = missed(db, TODAY.isoformat())
    assert report["missed_pause_count"] == 3
    assert sorted(report["missed_ids"]) == expected


def test_missed_nights_leave_certifications_reported_without_a_log_probe(db: Conn) -> None:
    """Certifications on the schedule that expired during nights with no run are reported,
    exactly as the specification's definition says, without probing the idempotency log for
    any of them (the probe only serves rows not yet looked at)."""
    certs = [add_cert(db, add_mentor(db), TODAY + timedelta(days=2 + i)) for i in range(4)]
    sweep_all(db, NOW)
    assert {next_action(db, cert) for cert in certs} == {None}
    later = TODAY + timedelta(days=10)  # nine nights without a run
    expected = sorted(str(r[0]) for r in db.execute(SPEC_MISSED, {"today": later}).fetchall())
    assert expected == sorted(map(str, certs))
    report = missed(db, later.isoformat())
    assert report["missed_pause_count"] == 4
    assert sorted(report["missed_ids"]) == expected
    plan = "\n".join(
        str(r[0])
        for r in db.execute(
            "explain (analyze, costs off, timing off) "
            "select count(*) from certexpiry.missed_auto_pauses(%s)",
            (later,),
        ).fetchall()
    )
    assert "certification_idempotency_log" in plan, plan
    probe = plan[plan.index("certification_idempotency_log") :].splitlines()[0]
    assert "never executed" in probe, plan


def test_monitoring_lists_the_longest_overdue_first(db: Conn) -> None:
    """When the report's list is cut, it keeps the certifications overdue the longest (the
    night's own order), not whichever IDs sort first."""
    old = uuid.UUID("00000000-0000-4000-8000-000000000001")  # the first ID in ID order
    db.execute(
        "insert into public.certifications (id, peer_mentor_id, expiry_date) values (%s, %s, %s)",
        (old, add_mentor(db), TODAY + timedelta(days=1)),
    )
    sweep_all(db, NOW)  # on the schedule: its auto-pause falls due on TODAY + 2
    recent = [add_cert(db, add_mentor(db), TODAY + timedelta(days=3)) for _ in range(3)]
    # Never looked at (-infinity), the recent ones may be overdue longer: they come first.
    report = rpc(
        db,
        "select public.get_missed_auto_pauses(p_timezone => 'Europe/Oslo', p_today => %(t)s, "
        "p_limit => 4)",
        {"t": TODAY + timedelta(days=5)},
    )
    assert report["missed_pause_count"] == 4
    assert report["missed_ids"] == [*sorted(map(str, recent)), str(old)]


def test_a_renewal_starts_a_fresh_cycle_on_the_next_night(db: Conn) -> None:
    """Renewing a certification makes it due for a look on the next night, which sends the
    new expiry date's first reminder."""
    cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=3))
    sweep_all(db, NOW)
    assert next_action(db, cert) is None
    db.execute(
        "update public.certifications set expiry_date = %s where id = %s",
        (TODAY + timedelta(days=20), cert),
    )
    assert next_action(db, cert) == "-infinity"
    tomorrow = claim(db, NOW + timedelta(days=1))
    page = batch(db, tomorrow["run_id"], tomorrow["segment"], cursor=None)
    assert page["reminders_queued"] == 1
    assert ("reminder_30d", "done") in actions_of(db, cert)


def test_monitoring_returns_the_count_and_the_first_ids_and_the_audit_row_gets_all(
    db: Conn,
) -> None:
    """With more missed auto-pauses than the limit, the query answers the full count and the
    first IDs (in ID order among certifications equally overdue), and the audit row written from
    that capped report holds them all."""
    certs = sorted(str(add_cert(db, add_mentor(db), TODAY - timedelta(days=2))) for _ in range(5))
    report = rpc(
        db,
        "select public.get_missed_auto_pauses(p_timezone => 'Europe/Oslo', p_today => %(t)s, "
        "p_limit => 2)",
        {"t": TODAY},
    )
    assert report["missed_pause_count"] == 5
    assert report["missed_ids"] == certs[:2]
    run_id = uuid.uuid4()
    rpc(
        db,
        "select public.upsert_cron_audit(p_run_id => %(r)s, p_missed_pause_count => 5, "
        "p_missed_ids => %(ids)s::jsonb, p_nightly_key => %(t)s)",
        {"r": run_id, "ids": json.dumps(certs[:2]), "t": TODAY},
    )
    row = db.execute(
        "select missed_pause_count, missed_ids from public.cron_audit_log where run_id = %s",
        (run_id,),
    ).fetchone()
    assert row is not None
    assert row[0] == 5
    assert sorted(row[1]) == certs
