"""The demo organisation's history comes from the SQL rules run for past nights, not from Python."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from certexpiry_ops import demo_seed

Conn = psycopg.Connection[Any]
TODAY = date(2026, 11, 28)
MENTORS, SEED = 400, 11


def _seed(db: Conn) -> demo_seed.SeedReport:
    return demo_seed.seed(db, mentors=MENTORS, seed=SEED, today=TODAY)


def _run_nights() -> dict[uuid.UUID, date]:
    """The simulated nights of the default story, by their run id."""
    return {
        demo_seed.night_run_id(SEED, night): night for night in demo_seed.simulated_nights(TODAY)
    }


def test_every_log_row_was_written_by_a_simulated_night(db: Conn) -> None:
    """Every idempotency row carries the run id of a simulated night and fits that night's rules."""
    _seed(db)
    nights = _run_nights()
    rows = db.execute(
        "select run_id, action, expiry_date from certexpiry.certification_idempotency_log"
    ).fetchall()
    assert rows
    for run_id, action, expiry in rows:
        assert run_id in nights, "a log row no simulated night wrote"
        night = nights[run_id]
        if action == "auto_pause":
            assert expiry < night
        else:
            offset = int(action.removeprefix("reminder_").removesuffix("d"))
            assert 0 <= (expiry - night).days <= offset
    assert len({r[0] for r in rows}) > 1  # many nights, each with its own run id


def test_tonights_pauses_are_counted_by_sql(db: Conn) -> None:
    """SeedReport.to_pause_tonight is the count of certexpiry.missed_auto_pauses(today), and not 0."""
    report = _seed(db)
    row = db.execute("select count(*) from certexpiry.missed_auto_pauses(%s)", (TODAY,)).fetchone()
    assert row == (report.to_pause_tonight,)
    assert report.to_pause_tonight > 0
    assert report.already_paused > 0


def test_paused_certifications_have_one_auto_pause_and_a_paused_mentor(db: Conn) -> None:
    """Each paused certification has one auto_pause row for its expiry date and a paused mentor."""
    report = _seed(db)
    on_leave = {
        m.id for m in demo_seed.generate(MENTORS, SEED, TODAY).mentors if m.status == "paused"
    }
    rows = db.execute(
        """
        select m.id, m.status, m.paused_reason,
               (select count(*) from certexpiry.certification_idempotency_log l
                where l.certification_id = c.id and l.action = 'auto_pause'
                  and l.expiry_date = c.expiry_date)
        from public.certifications c join public.peer_mentors m on m.id = c.peer_mentor_id
        where c.status = 'paused'
        """
    ).fetchall()
    assert len(rows) == report.already_paused > 0
    for mentor_id, status, reason, auto_pauses in rows:
        assert auto_pauses == 1
        assert status == "paused"
        assert reason == ("on_leave" if mentor_id in on_leave else "certification_expired")


def test_renewed_certifications_start_a_fresh_cycle(db: Conn) -> None:
    """A renewed certification has log rows for its earlier expiry date and none for its new one."""
    report = _seed(db)
    renewed = [c for c in demo_seed.generate(MENTORS, SEED, TODAY).certifications if c.renewed_from]
    assert len(renewed) == report.renewed > 0
    was_paused = 0
    for cert in renewed:
        row = db.execute(
            "select expiry_date, status from public.certifications where id = %s", (cert.id,)
        ).fetchone()
        assert row == (cert.expiry_date, "active")
        dates = dict(
            db.execute(
                "select expiry_date, array_agg(action) from certexpiry.certification_idempotency_log "
                "where certification_id = %s group by expiry_date",
                (cert.id,),
            ).fetchall()
        )
        assert set(dates) == {cert.renewed_from}
        was_paused += "auto_pause" in dates[cert.renewed_from]
    assert was_paused > 0  # some had been auto-paused before their renewal and are active again
    due = db.execute(
        "select count(*) from certexpiry.actionable_certifications(%s, '{30,7,1}') "
        "where certification_id = any (%s)",
        (TODAY, [c.id for c in renewed]),
    ).fetchone()
    soon = [c for c in renewed if c.expiry_date <= TODAY + timedelta(days=30)]
    assert due == (len(soon),)
    assert soon


def test_seeding_is_reproducible(db: Conn) -> None:
    """Two seeds with the same seed and today give the same certifications, statuses and log."""
    snapshots = []
    for _ in range(2):
        _seed(db)
        snapshots.append(
            (
                db.execute(
                    "select id, expiry_date, status from public.certifications order by id"
                ).fetchall(),
                db.execute("select id, status from public.peer_mentors order by id").fetchall(),
                db.execute(
                    "select certification_id, action, expiry_date, run_id, outcome "
                    "from certexpiry.certification_idempotency_log order by 1, 2, 3"
                ).fetchall(),
            )
        )
        db.execute(
            "truncate certexpiry.certification_idempotency_log, certexpiry.notification_outbox, "
            "public.certifications, public.peer_mentors"
        )
    assert snapshots[0] == snapshots[1]
    assert snapshots[0][0]


def test_an_outage_longer_than_the_story_allows_is_refused(db: Conn) -> None:
    """An outage so long that renewed certifications' earlier cycles never ran is a ValueError."""
    with pytest.raises(ValueError, match="outage_days"):
        demo_seed.seed(db, mentors=5, today=TODAY, outage_days=demo_seed.MAX_OUTAGE_DAYS + 1)
    assert demo_seed.is_empty(db)
