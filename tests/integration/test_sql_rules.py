"""The business rules in SQL, exercised through the RPCs as PostgREST calls them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests import faults
from tests.integration.sqlapi import NOW, TODAY, batch, claim, missed, rpc, sweep_all
from tests.seeding import actions_of, add_cert, add_mentor, outbox_of, status_of

Conn = psycopg.Connection[Any]


def _today(conn: Conn, at: datetime) -> date:
    row = conn.execute("select certexpiry.org_today('Europe/Oslo', %s)", (at,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 11, 27, 22, 59, tzinfo=UTC), date(2026, 11, 27)),  # 23:59 Oslo (CET)
        (datetime(2026, 11, 27, 23, 0, tzinfo=UTC), date(2026, 11, 28)),  # 00:00 Oslo
        (datetime(2026, 6, 30, 21, 59, tzinfo=UTC), date(2026, 6, 30)),  # 23:59 Oslo (CEST)
        (datetime(2026, 6, 30, 22, 0, tzinfo=UTC), date(2026, 7, 1)),  # 00:00 Oslo (CEST)
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), date(2026, 3, 29)),  # DST starts 02:00 local
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # the night DST ends
    ],
)
def test_today_follows_the_organisation_time_zone(db: Conn, utc: datetime, expected: date) -> None:
    """Today is the Oslo calendar date, not the UTC one, on both sides of midnight and DST."""
    assert _today(db, utc) == expected


def test_expiry_boundary_yesterday_today_tomorrow(db: Conn) -> None:
    """A certification is valid through its expiry date and paused from the next day on."""
    mentor_y, mentor_t, mentor_n = add_mentor(db), add_mentor(db), add_mentor(db)
    yesterday = add_cert(db, mentor_y, TODAY - timedelta(days=1))
    today = add_cert(db, mentor_t, TODAY)
    tomorrow = add_cert(db, mentor_n, TODAY + timedelta(days=1))

    totals = sweep_all(db, NOW)

    assert status_of(db, "certifications", yesterday) == "paused"
    assert status_of(db, "peer_mentors", mentor_y) == "paused"
    assert status_of(db, "certifications", today) == "active"
    assert status_of(db, "certifications", tomorrow) == "active"
    assert totals["certifications_paused"] == 1
    assert totals["mentors_paused"] == 1
    assert actions_of(db, yesterday) == [("auto_pause", "done")]
    assert [kind for kind, _ in outbox_of(db, yesterday)] == ["pause_notice"]
    # Today and tomorrow are inside the 1-day offset: one reminder each, larger offsets superseded.
    assert actions_of(db, today) == [
        ("reminder_1d", "done"),
        ("reminder_30d", "superseded"),
        ("reminder_7d", "superseded"),
    ]
    assert [kind for kind, _ in outbox_of(db, tomorrow)] == ["reminder"]


def test_midnight_utc_uses_oslo_date(db: Conn) -> None:
    """At 23:30 UTC on the 27th it is already the 28th in Oslo, so a cert expiring on the 27th is expired."""
    cert = add_cert(db, add_mentor(db), date(2026, 11, 27))
    sweep_all(db, datetime(2026, 11, 27, 23, 30, tzinfo=UTC))
    assert status_of(db, "certifications", cert) == "paused"


def test_before_midnight_oslo_not_yet_expired(db: Conn) -> None:
    """At 22:30 UTC on the 27th it is still the 27th in Oslo: expiring that day is still valid."""
    cert = add_cert(db, add_mentor(db), date(2026, 11, 27))
    sweep_all(db, datetime(2026, 11, 27, 22, 30, tzinfo=UTC))
    assert status_of(db, "certifications", cert) == "active"


def test_reminder_offsets_send_the_smallest_due_one(db: Conn) -> None:
    """Each offset fires when it becomes due, and only once."""
    cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=20))
    sweep_all(db, NOW)
    assert actions_of(db, cert) == [("reminder_30d", "done")]
    payloads = [p for k, p in outbox_of(db, cert)]
    assert payloads[0]["offset_days"] == 30
    assert payloads[0]["days_left"] == 20


def test_catch_up_after_downtime_sends_one_reminder(db: Conn) -> None:
    """After downtime, only the smallest due offset is sent; skipped larger ones never follow."""
    cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=5))
    sweep_all(db, NOW)
    assert actions_of(db, cert) == [("reminder_30d", "superseded"), ("reminder_7d", "done")]
    assert len(outbox_of(db, cert)) == 1
    # Next nights: 4 days left, still only 7d due: nothing new.
    sweep_all(db, NOW + timedelta(days=1))
    assert len(outbox_of(db, cert)) == 1


def test_sequence_of_nights_sends_each_offset_once(db: Conn) -> None:
    """Walking night by night from 40 days out sends 30d, 7d and 1d once each, then pauses."""
    cert = add_cert(db, add_mentor(db), TODAY + timedelta(days=40))
    for night in range(42):
        sweep_all(db, NOW + timedelta(days=night))
    kinds = [(k, p.get("offset_days")) for k, p in outbox_of(db, cert)]
    assert kinds == [("reminder", 30), ("reminder", 7), ("reminder", 1), ("pause_notice", None)]
    assert status_of(db, "certifications", cert) == "paused"


def test_renewal_starts_a_new_cycle(db: Conn) -> None:
    """A renewed certification (new expiry date) gets its reminders again."""
    mentor = add_mentor(db)
    cert = add_cert(db, mentor, TODAY + timedelta(days=3))
    sweep_all(db, NOW)
    db.execute(
        "update public.certifications set expiry_date = %s where id = %s",
        (TODAY + timedelta(days=6), cert),
    )
    sweep_all(db, NOW + timedelta(days=1))
    reminders = [p["expiry_date"] for k, p in outbox_of(db, cert) if k == "reminder"]
    assert reminders == [str(TODAY + timedelta(days=3)), str(TODAY + timedelta(days=6))]


def test_second_batch_run_changes_nothing(db: Conn) -> None:
    """Re-running every batch of the night from the start adds no effect the second time."""
    for offset in (-3, -1, 0, 1, 6, 25, 45):
        add_cert(db, add_mentor(db), TODAY + timedelta(days=offset))
    first = sweep_all(db, NOW)
    effects = db.execute(
        "select (select count(*) from certexpiry.notification_outbox), (select count(*) from certexpiry.certification_idempotency_log)"
    ).fetchone()
    db.execute("update certexpiry.cron_runs set lease_until = '-infinity'")  # owner gone
    again = claim(db, NOW + timedelta(hours=1))  # same Oslo night: resumed
    assert again["outcome"] == "resumed"
    second = batch(db, again["run_id"], again["segment"], cursor=None)
    assert first["reminders_queued"] == 4
    assert first["certifications_paused"] == 2
    assert second["certifications_paused"] == 0  # the schedule is read again, nothing applied
    assert second["reminders_queued"] == 0
    assert second["done"] is True
    replay = rpc(
        db,
        "select certexpiry.apply_effects(%(r)s, %(t)s, '{30,7,1}', array(select id from public.certifications))",
        {"r": uuid.uuid4(), "t": TODAY},
    )
    assert replay == {
        "certifications_paused": 0,
        "mentors_paused": 0,
        "notices_queued": 0,
        "reminders_queued": 0,
        "reminders_superseded": 0,
    }
    assert (
        db.execute(
            "select (select count(*) from certexpiry.notification_outbox), (select count(*) from certexpiry.certification_idempotency_log)"
        ).fetchone()
        == effects
    )


EFFECTS_WITH_DATES = (
    "select certexpiry.apply_effects(%(r)s, %(t)s, '{30,7,1}', %(ids)s::uuid[], %(dates)s::date[])"
)


def test_effects_handed_expiry_dates_apply_what_looking_at_every_id_applies(db: Conn) -> None:
    """With the expiry dates read with the ids, each certification is looked at only by the
    effect its date calls for, and the night's effects are the same as without them."""
    days = (-3, -1, 0, 6, 29, 45)
    certs = [add_cert(db, add_mentor(db), TODAY + timedelta(days=d)) for d in days]
    dates = [TODAY + timedelta(days=d) for d in days]
    with db.transaction(force_rollback=True):
        with_dates = rpc(
            db, EFFECTS_WITH_DATES, {"r": uuid.uuid4(), "t": TODAY, "ids": certs, "dates": dates}
        )
    without = rpc(
        db,
        "select certexpiry.apply_effects(%(r)s, %(t)s, '{30,7,1}', %(ids)s::uuid[])",
        {"r": uuid.uuid4(), "t": TODAY, "ids": certs},
    )
    assert with_dates == without
    assert without["certifications_paused"] == 2
    assert without["reminders_queued"] == 3


def test_a_stale_expiry_date_only_chooses_which_effect_looks(db: Conn) -> None:
    """An expiry date read before the certification changed decides nothing but which effect
    looks at it: each effect applies its rule to the row as it is now."""
    cert = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    stale = TODAY + timedelta(days=5)  # as if read before the expiry date was moved back
    counts = rpc(
        db, EFFECTS_WITH_DATES, {"r": uuid.uuid4(), "t": TODAY, "ids": [cert], "dates": [stale]}
    )
    assert counts["reminders_queued"] == 0  # the reminders see it expired
    assert counts["certifications_paused"] == 0  # and the pause was not asked to look
    assert status_of(db, "certifications", cert) == "active"
    assert actions_of(db, cert) == []


def test_paused_and_far_future_certifications_are_not_touched(db: Conn) -> None:
    """Already-paused certifications and those beyond the largest offset are left alone."""
    paused = add_cert(
        db, add_mentor(db, status="paused"), TODAY - timedelta(days=10), status="paused"
    )
    far = add_cert(db, add_mentor(db), TODAY + timedelta(days=31))
    totals = sweep_all(db, NOW)
    assert totals.get("mentors", 0) == 0
    assert actions_of(db, paused) == []
    assert actions_of(db, far) == []


def test_keyset_pagination_visits_every_mentor_once(db: Conn) -> None:
    """With a page size of 7, every one of 50 due mentors is processed exactly once."""
    for _ in range(50):
        add_cert(db, add_mentor(db), TODAY + timedelta(days=2))
    totals = sweep_all(db, NOW, limit=7)
    assert totals["mentors"] == 50
    assert totals["reminders_queued"] == 50
    assert totals["batches"] == 8


def test_failing_row_is_isolated_and_reported(db: Conn) -> None:
    """A trigger raising for one certification does not sink the batch; it is reported by ID."""
    bad_mentor = add_mentor(db)
    bad = add_cert(db, bad_mentor, TODAY - timedelta(days=2))
    good = [add_cert(db, add_mentor(db), TODAY - timedelta(days=2)) for _ in range(3)]
    faults.refuse(
        db,
        "certifications",
        [bad],
        message="refusing to pause",
        name="refuse_pause",
        when="new.status = 'paused'",
    )
    totals = sweep_all(db, NOW)
    assert [status_of(db, "certifications", c) for c in good] == ["paused"] * 3
    assert status_of(db, "certifications", bad) == "active"
    (failure,) = totals["failures_detail"]
    routine = failure.pop("routine")
    # No message (the error's text is never kept), no name the error lacks.
    assert failure == {
        "certification_id": str(bad),
        "peer_mentor_id": str(bad_mentor),
        "operation": "auto_pause",
        "sqlstate": "P0001",
    }
    # The functions the error's context names, innermost first, up to the RPC.
    chain = routine.split(" < ")
    assert chain[:2] == ["public.refuse_pause", "certexpiry.apply_auto_pauses"]
    assert chain[-1] == "public.process_expiry_batch"
    assert actions_of(db, bad) == []
    report = missed(db, str(TODAY))
    assert report["missed_pause_count"] == 1
    assert report["missed_ids"] == [str(bad)]


def test_monitoring_counts_two_expired_unpaused(db: Conn) -> None:
    """Two expired-but-not-paused certifications are reported with their IDs (spec test 2),
    the longest overdue first."""
    ids = [str(add_cert(db, add_mentor(db), TODAY - timedelta(days=d))) for d in (40, 1)]
    add_cert(db, add_mentor(db), TODAY)  # valid today
    add_cert(db, add_mentor(db), TODAY - timedelta(days=5), status="paused")
    report = missed(db, str(TODAY))
    assert report["missed_pause_count"] == 2
    assert report["missed_ids"] == ids


def test_monitoring_ignores_certifications_with_auto_pause_record(db: Conn) -> None:
    """An auto_pause record for the current expiry date means the transition was not missed."""
    cert = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    db.execute(
        "insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date) values (%s, 'auto_pause', %s)",
        (cert, TODAY - timedelta(days=1)),
    )
    assert missed(db, str(TODAY))["missed_pause_count"] == 0


def test_monitoring_returns_one_json_value_beyond_1000_rows(db: Conn) -> None:
    """The count is never cut at PostgREST's row limit (one JSON value, not SETOF); the IDs are
    the first p_limit in ID order (the audit row gets them all, see test_night_work)."""
    mentor = add_mentor(db)
    db.execute(
        "insert into public.certifications (peer_mentor_id, expiry_date) select %s, %s from generate_series(1, 1500)",
        (mentor, TODAY - timedelta(days=3)),
    )
    report = missed(db, str(TODAY))
    assert report["missed_pause_count"] == 1500
    assert len(report["missed_ids"]) == 1000
    assert report["missed_ids"] == sorted(report["missed_ids"])


def test_monitoring_query_uses_an_index(db: Conn) -> None:
    """At 12,000 certifications the monitoring query is an index scan, not a sequential scan."""
    db.execute(
        """
        with m as (
            insert into public.peer_mentors (full_name) select 'x' from generate_series(1, 3000) returning id
        )
        insert into public.certifications (peer_mentor_id, expiry_date, status)
        select m.id, date '2026-11-28' + (g % 200 - 60), case when g % 200 < 60 then 'paused' else 'active' end
        from m, generate_series(1, 4) g
        """
    )
    db.execute("analyze public.certifications; analyze certexpiry.certification_idempotency_log")
    plan = "\n".join(
        str(r[0])
        for r in db.execute(
            "explain select * from certexpiry.missed_auto_pauses(date '2026-11-28')"
        ).fetchall()
    )
    assert "Seq Scan on certifications" not in plan, plan
    assert "Index" in plan, plan


def test_remediation_pauses_exactly_the_given_ids(db: Conn) -> None:
    """remediate_auto_pauses applies the sweep's auto-pause rule to the listed IDs only."""
    first = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    second = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    result = rpc(
        db,
        "select public.remediate_auto_pauses(p_run_id => %(r)s, p_certification_ids => %(i)s::uuid[], p_timezone => 'Europe/Oslo')",
        {"r": uuid.uuid4(), "i": [str(first)]},
    )
    assert result["certifications_paused"] == 1
    assert status_of(db, "certifications", first) == "paused"
    assert status_of(db, "certifications", second) == "active"


def test_batch_is_fenced_for_a_stale_segment(db: Conn) -> None:
    """A batch call for a segment the run no longer holds writes nothing."""
    add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    c = claim(db, NOW)
    result = batch(db, c["run_id"], segment=5)
    assert result["fenced"] is True
    assert db.execute(
        "select count(*) from certexpiry.certification_idempotency_log"
    ).fetchone() == (0,)
