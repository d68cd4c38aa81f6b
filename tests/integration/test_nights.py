"""`certexpiry nights`: the last nights like a cron monitor's history, missed ones included."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg

from tests.clock import OrgDay
from tests.integration.test_cli import Cli
from tests.integration.test_cli import cli as cli  # the fixture, shared

Conn = psycopg.Connection[Any]


def add_run(db: Conn, org: OrgDay, days_ago: int, status: str, missed: int | None = None) -> str:
    """A cron_runs row for a past night (and its audit row when `missed` is given)."""
    run_id = str(uuid.uuid4())
    night = org.today - timedelta(days=days_ago)
    db.execute(
        "insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, segment, "
        "lease_until, started_at, finished_at, totals) values (%s, %s, %s, %s, 2, now(), "
        "now() - interval '90 seconds', now(), %s)",
        (run_id, night, org.timezone, status, json.dumps({"reminders_queued": 7, "failures": 1})),
    )
    if missed is not None:
        db.execute(
            "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids, "
            "nightly_key, segments, totals, duration_ms) values (%s, now(), %s, '[]', %s, 3, "
            "'{}', 90000)",
            (run_id, missed, night),
        )
    return run_id


def test_nights_shows_each_night_and_the_missed_ones(cli: Cli, db: Conn, org: OrgDay) -> None:
    """Runs five and three nights ago; tonight without a run yet is pending, the nights between
    are missed, the night before the first run is not."""
    first = add_run(db, org, 5, "completed", missed=2)
    add_run(db, org, 3, "abandoned")
    result = cli("nights", "--nights", "7", "--json")
    assert result.code == 0, result.err
    *nights, outbox = [json.loads(line) for line in result.out.splitlines()]
    assert outbox["outbox"]["undelivered"] == 0  # the backlog comes last
    assert [n["night"] for n in nights] == [
        (org.today - timedelta(days=ago)).isoformat() for ago in range(7)
    ]
    assert [n["status"] for n in nights] == [
        "pending",
        "missed",
        "missed",
        "abandoned",
        "missed",
        "completed",
        "before_first_run",
    ]
    oldest_run = nights[5]
    assert oldest_run["run_id"] == first
    assert oldest_run["segments"] == 3  # the audit row's, which counts the run's segments
    assert oldest_run["duration_ms"] == 90000
    assert oldest_run["totals"]["reminders_queued"] == 7
    assert (oldest_run["missed_pause_count"], oldest_run["resolved"]) == (2, False)
    assert nights[3]["duration_ms"] == 90000  # no audit row: from the run's own timestamps
    assert nights[1]["run_id"] is None

    text = cli("nights", "--nights", "7", "--format", "text")
    rows = text.out.splitlines()
    assert rows[0].split()[:2] == ["NIGHT", "STATUS"]
    assert rows[2].startswith("! ")
    assert "missed" in rows[2]
    assert rows[6].split()[:2] == [(org.today - timedelta(days=5)).isoformat(), "completed"]
    assert rows[6].rstrip().endswith("NO")  # missed auto-pauses, not resolved
    assert "3 night(s) without a run" in text.out
    assert "Outbox: nothing undelivered" in text.out


def test_nights_rejects_a_count_out_of_range(cli: Cli) -> None:
    """--nights takes 1..366 and says so."""
    for bad in ("0", "367", "abc"):
        result = cli("nights", "--nights", bad)
        assert result.code == 2
        assert "--nights" in result.err
