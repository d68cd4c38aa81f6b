"""Missed nights: the nightly claim names the nights without a run, the sweep logs NIGHTS_MISSED
and the audit row records them (certexpiry.missed_nights, supabase/schemas/60_monitoring.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from certexpiry.store import RpcStore
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Outcome
from tests.chain import in_process
from tests.clock import OrgDay
from tests.integration.sqlapi import claim, rpc
from tests.integration.test_sweep import seed_night
from tests.jobs import make_job
from tests.logcapture import CapturedLog

Conn = psycopg.Connection[Any]
# 01:00 UTC: 02:00 in Oslo in winter, the night of 28 November 2026 there.
NIGHT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[RpcStore]:
    s = pg_store(database_url)
    yield s
    s.close()


def _complete(conn: Conn, run_id: str) -> None:
    rpc(conn, "select public.complete_run(p_run_id => %(r)s::uuid, p_segment => 0)", {"r": run_id})


def _seed_run(conn: Conn, night: date, timezone: str) -> None:
    """A completed run of `night`, as an earlier night's claim and completion leave it."""
    conn.execute(
        "insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, lease_until, "
        "finished_at) values (%s, %s, %s, 'completed', now(), now())",
        (uuid.uuid4(), night, timezone),
    )


def test_first_run_ever_misses_nothing(db: Conn) -> None:
    """With no earlier run there is no night to have missed."""
    first = claim(db, NIGHT)
    assert first["outcome"] == "started"
    assert first["missed_nights"] == []


def test_a_gap_is_named_once_by_the_first_run_after_it(db: Conn) -> None:
    """Nights 29 and 30 without a run are named by the claim of 1 December, and not again."""
    _complete(db, claim(db, NIGHT)["run_id"])
    late = claim(db, NIGHT + timedelta(days=3))
    assert late["outcome"] == "started"
    assert late["today"] == "2026-12-01"
    assert late["missed_nights"] == ["2026-11-29", "2026-11-30"]
    _complete(db, late["run_id"])
    assert claim(db, NIGHT + timedelta(days=4))["missed_nights"] == []


def test_consecutive_nights_miss_nothing(db: Conn) -> None:
    """A run every night, across the spring DST change in Oslo, names no missed night."""
    spring = datetime(2027, 3, 26, 1, 0, tzinfo=UTC)  # Friday; clocks go forward on Sunday 28th
    answers = []
    for day in range(4):
        answer = claim(db, spring + timedelta(days=day))
        _complete(db, answer["run_id"])
        answers.append((answer["today"], answer["missed_nights"]))
    assert answers == [
        ("2027-03-26", []),
        ("2027-03-27", []),
        ("2027-03-28", []),
        ("2027-03-29", []),
    ]


def test_a_resumed_claim_names_the_gap_too(db: Conn) -> None:
    """A nightly trigger that takes over tonight's run after its owner died names the gap again."""
    _complete(db, claim(db, NIGHT)["run_id"])
    claim(db, NIGHT + timedelta(days=2), lease=60)
    resumed = claim(db, NIGHT + timedelta(days=2, seconds=61))
    assert resumed["outcome"] == "resumed"
    assert resumed["missed_nights"] == ["2026-11-29"]


def test_a_long_outage_is_cut_to_its_newest_366_nights(db: Conn) -> None:
    """Two years without a run: the claim names the newest 366 nights, oldest first."""
    _complete(db, claim(db, NIGHT)["run_id"])
    back = claim(db, NIGHT + timedelta(days=731))
    nights = back["missed_nights"]
    assert len(nights) == 366
    assert nights[-1] == str((NIGHT + timedelta(days=730)).date())
    assert nights == sorted(nights)


def test_seeded_gap_gives_the_warning_and_the_audit_record(
    db: Conn, store: RpcStore, org: OrgDay
) -> None:
    """A run three nights ago and none since: tonight's sweep logs NIGHTS_MISSED naming the two
    nights between, completes, and its audit row records them."""
    seed_night(db, org.today, 5)
    _seed_run(db, org.today - timedelta(days=3), org.timezone)
    log = CapturedLog()
    assert in_process(make_job(store, log, org_timezone=org.timezone)).run() == [Outcome.ACK]
    missed = log.with_code("NIGHTS_MISSED")
    assert len(missed) == 1
    assert missed[0]["severity"] == "WARNING"
    assert missed[0]["cron_run_id"] is not None
    expected = [str(org.today - timedelta(days=2)), str(org.today - timedelta(days=1))]
    assert missed[0]["context"]["details"] == expected
    assert missed[0]["context"]["nightly_key"] == str(org.today)
    assert log.codes()[-1] == "RUN_COMPLETED"
    rows = db.execute(
        "select nightly_key, missed_nights from public.cron_audit_log where nightly_key = %s",
        (org.today,),
    ).fetchall()
    assert rows == [(org.today, expected)]


def test_no_gap_no_warning_and_an_empty_record(db: Conn, store: RpcStore, org: OrgDay) -> None:
    """Last night ran: no NIGHTS_MISSED line, and the audit row's missed_nights is empty."""
    seed_night(db, org.today, 3)
    _seed_run(db, org.today - timedelta(days=1), org.timezone)
    log = CapturedLog()
    assert in_process(make_job(store, log, org_timezone=org.timezone)).run() == [Outcome.ACK]
    assert "NIGHTS_MISSED" not in log.codes()
    assert db.execute("select missed_nights from public.cron_audit_log").fetchall() == [([],)]
