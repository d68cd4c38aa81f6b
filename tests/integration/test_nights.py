"""`certexpiry nights` and `nights ack`: the last nights as a cron monitor's history (state,
expected/start/end times in the organisation's zone, worked time, late, missed, acknowledged,
no runs yet), against the real SQL (public.night_history, public.acknowledge_missed_nights)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.clock import OrgDay
from tests.integration.sqlapi import rpc
from tests.integration.test_cli import Cli
from tests.integration.test_cli import cli as cli  # the fixture, shared

Conn = psycopg.Connection[Any]


@pytest.fixture
def nights_cli(cli: Cli, org: OrgDay, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI with the scheduler firing at 01:00 in the organisation's zone: in the test's
    midday zone (tests/clock.py) tonight's expected time is eleven hours gone."""
    monkeypatch.setenv("CERTEXPIRY_SCHEDULE", "0 1 * * *")
    monkeypatch.setenv("CERTEXPIRY_SCHEDULE_TIME_ZONE", org.timezone)
    return cli


def add_run(
    db: Conn,
    org: OrgDay,
    days_ago: int,
    status: str,
    *,
    missed: int | None = None,
    audit: str = "completed",
    lease_s: int = 0,
    swept: bool = True,
) -> str:
    """A cron_runs row for a night (and its audit row when `missed` is given)."""
    run_id = str(uuid.uuid4())
    night = org.today - timedelta(days=days_ago)
    started = datetime.combine(night, time(1, 0, 5), ZoneInfo(org.timezone))
    db.execute(
        "insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, segment, "
        "lease_until, started_at, finished_at, totals, worked_ms, swept_reminder_days) values "
        "(%s, %s, %s, %s, 2, now() + make_interval(secs => %s), %s, "
        "case when %s in ('completed', 'abandoned') then %s + interval '90 seconds' end, "
        "%s, 41200, %s)",
        (
            run_id,
            night,
            org.timezone,
            status,
            lease_s,
            started,
            status,
            started,
            json.dumps({"reminders_queued": 7, "failures": 1}),
            [30, 7, 1] if swept else None,
        ),
    )
    if missed is not None:
        db.execute(
            "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids, "
            "nightly_key, segments, totals, duration_ms, status) values (%s, now(), %s, '[]', "
            "%s, 3, '{}', 90000, %s)",
            (run_id, missed, night, audit),
        )
    return run_id


def nights_json(cli: Cli, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The nights, and the summary object (the outbox object comes last)."""
    result = cli("nights", "--json", *args)
    assert result.code == 0, result.err
    *nights, summary, outbox = result.entries
    assert set(outbox) == {"outbox"}
    return nights, summary["summary"]


def test_nights_shows_each_night_and_the_missed_ones(
    nights_cli: Cli, db: Conn, org: OrgDay
) -> None:
    """Runs five and three nights ago; tonight is late (no run eleven hours after 01:00), the
    nights between are missed, the night before the first run is not; the times are in the
    organisation's zone, and the note about what the next run covers is there while no later
    run has swept."""
    first = add_run(db, org, 5, "completed", missed=2)
    add_run(db, org, 3, "abandoned", swept=False)
    nights, summary = nights_json(nights_cli, "--nights", "7")
    assert [n["night"] for n in nights] == [
        (org.today - timedelta(days=ago)).isoformat() for ago in range(7)
    ]
    assert [n["state"] for n in nights] == [
        "late",
        "missed",
        "missed",
        "failed",
        "missed",
        "unresolved",
        "before_first_run",
    ]
    oldest_run = nights[5]
    assert oldest_run["run_id"] == first
    assert oldest_run["run_status"] == "completed"
    assert oldest_run["segments"] == 3  # the audit row's, which counts the run's segments
    assert oldest_run["worked_ms"] == 41200  # the segments' work, not the 90 s wall clock
    assert oldest_run["wall_ms"] == 90000
    assert oldest_run["totals"]["reminders_queued"] == 7
    assert (oldest_run["missed_pause_count"], oldest_run["resolved"]) == (2, False)
    offset = datetime.now(ZoneInfo(org.timezone)).strftime("%z")
    started = datetime.fromisoformat(oldest_run["started_at"])
    assert started.strftime("%z") == offset  # shown in the organisation's zone
    assert oldest_run["timezone"] == org.timezone
    expected = datetime.fromisoformat(nights[0]["expected_at"])
    assert (expected.date(), expected.hour, expected.minute) == (org.today, 1, 0)
    assert nights[1]["run_id"] is None
    # Nights 4, 2 and 1 ago have no run and no later run swept: the next run covers them.
    assert [n["covered_by"] for n in nights[1:5]] == [None, None, None, None]
    assert summary["missed"] == [nights[i]["night"] for i in (1, 2, 4)]
    assert summary["late"] == [org.today.isoformat()]
    assert summary["not_yet_covered"] == summary["missed"]
    assert summary["no_runs_yet"] is False
    assert (summary["timezone"], summary["schedule"]) == (org.timezone, "0 1 * * *")

    text = nights_cli("nights", "--nights", "7", "--format", "text")
    rows = text.out.splitlines()
    assert f"Nights in {org.timezone}" in rows[0]
    assert rows[1].split()[:2] == ["NIGHT", "STATE"]
    assert rows[2].startswith("! ")
    assert "late" in rows[2]
    assert rows[3].startswith("! ")
    assert "missed" in rows[3]
    oldest = rows[7].split()
    assert oldest[1:4] == [(org.today - timedelta(days=5)).isoformat(), "unresolved", "01:00"]
    assert oldest[4:6] == ["01:00:05", "01:01:35"]
    assert "41.2 s" in rows[7]
    assert "3 night(s) without a run, not acknowledged" in text.out
    assert "The next run covers what 3 night(s) without a run left" in text.out
    assert f"Tonight ({org.today}) has no run yet" in text.out
    assert "Outbox: nothing undelivered" in text.out


def test_the_covering_note_goes_once_a_later_run_swept(
    nights_cli: Cli, db: Conn, org: OrgDay
) -> None:
    """A missed night followed by a run that read its last page: the night says which night's
    run covered it, and the text no longer says the next run will."""
    add_run(db, org, 3, "completed", missed=0)
    add_run(db, org, 1, "completed", missed=0)
    nights, summary = nights_json(nights_cli, "--nights", "4")
    assert [n["state"] for n in nights] == ["late", "ok", "missed", "ok"]
    assert nights[2]["covered_by"] == (org.today - timedelta(days=1)).isoformat()
    assert summary["not_yet_covered"] == []
    text = nights_cli("nights", "--nights", "4", "--format", "text").out
    assert "1 night(s) without a run, not acknowledged" in text
    assert "The next run covers" not in text


def test_the_states_of_a_night_with_a_run(nights_cli: Cli, db: Conn, org: OrgDay) -> None:
    """running (live lease), failed (unfinished, lease lapsed), stopped (RUN_STOPPED's audit
    row), unverified (monitoring failed), ok (resolved), and pending before the expected time."""
    add_run(db, org, 0, "handoff", lease_s=300)
    add_run(db, org, 1, "running", lease_s=-60)
    add_run(db, org, 2, "running", missed=1, audit="failed", lease_s=-60)
    add_run(db, org, 3, "completed", missed=0, audit="monitoring_failed")
    resolved = add_run(db, org, 4, "completed", missed=4)
    db.execute("update public.cron_audit_log set resolved = true where run_id = %s", (resolved,))
    nights, _ = nights_json(nights_cli, "--nights", "5")
    assert [n["state"] for n in nights] == ["running", "failed", "stopped", "unverified", "ok"]
    assert nights[0]["lease_left_s"] > 0
    text = nights_cli("nights", "--nights", "5", "--format", "text").out
    assert "1 night(s) did not finish" in text
    assert "1 night(s) stopped half-way" in text
    assert "1 night(s) have no monitoring answer" in text


def test_pending_until_the_expected_time_and_its_grace(
    cli: Cli, db: Conn, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tonight without a run is pending while the schedule's time is ahead (20:00 in the
    organisation's zone, where the test's clock reads midday); the default schedule (01:00
    Etc/UTC) is read when none is set; a schedule Terraform would refuse is a usage error."""
    add_run(db, org, 1, "completed", missed=0)
    monkeypatch.setenv("CERTEXPIRY_SCHEDULE", "30 20 * * *")
    monkeypatch.setenv("CERTEXPIRY_SCHEDULE_TIME_ZONE", org.timezone)
    nights, _ = nights_json(cli, "--nights", "2")
    assert nights[0]["state"] == "pending"
    assert datetime.fromisoformat(nights[0]["expected_at"]).strftime("%H:%M") == "20:30"
    monkeypatch.delenv("CERTEXPIRY_SCHEDULE")
    monkeypatch.delenv("CERTEXPIRY_SCHEDULE_TIME_ZONE")
    _, summary = nights_json(cli, "--nights", "2")
    assert (summary["schedule"], summary["schedule_time_zone"]) == ("0 1 * * *", "Etc/UTC")
    for name, bad in (
        ("CERTEXPIRY_SCHEDULE", "*/5 * * * *"),
        ("CERTEXPIRY_SCHEDULE_TIME_ZONE", "Mars/Olympus"),
    ):
        monkeypatch.setenv(name, bad)
        result = cli("nights")
        assert result.code == 2
        assert name in result.err
        monkeypatch.delenv(name)


def test_no_runs_yet_on_an_empty_database(nights_cli: Cli) -> None:
    """No run at all: the text says so instead of a table of empty nights; JSON says it too."""
    nights, summary = nights_json(nights_cli, "--nights", "3")
    assert {n["state"] for n in nights} == {"before_first_run"}
    assert summary["no_runs_yet"] is True
    assert summary["late"] == []
    assert summary["missed"] == []
    text = nights_cli("nights", "--format", "text").out
    assert "No runs yet" in text
    assert "NIGHT" not in text


def test_ack_records_a_missed_night_for_good(nights_cli: Cli, db: Conn, org: OrgDay) -> None:
    """`nights ack` acknowledges missed nights once (a second ack keeps the first time and
    code); nights shows them acknowledged and no longer asks for it; nights with a run, before
    the first run or tonight are refused with exit 3, the others still acknowledged."""
    add_run(db, org, 4, "completed", missed=0)
    two, one = (str(org.today - timedelta(days=n)) for n in (2, 1))
    first = nights_cli("nights", "ack", two, "--code", "scheduler_paused", "--json")
    assert first.code == 0, first.err
    (answer,) = first.entries
    assert (answer["night"], answer["outcome"], answer["code"]) == (
        two,
        "acknowledged",
        "scheduler_paused",
    )
    again = nights_cli("nights", "ack", two, one, "--json")
    assert again.code == 0, again.err
    assert [(e["night"], e["outcome"]) for e in again.entries] == [
        (two, "already"),
        (one, "acknowledged"),
    ]
    assert again.entries[0]["acknowledged_at"] == answer["acknowledged_at"]
    assert again.entries[0]["code"] == "scheduler_paused"

    nights, summary = nights_json(nights_cli, "--nights", "5")
    assert [n["state"] for n in nights] == ["late", "acknowledged", "acknowledged", "missed", "ok"]
    assert nights[2]["ack_code"] == "scheduler_paused"
    assert summary["acknowledged"] == [one, two]
    assert summary["missed"] == [str(org.today - timedelta(days=3))]

    refused = nights_cli(
        "nights",
        "ack",
        str(org.today - timedelta(days=4)),  # has a run
        str(org.today - timedelta(days=9)),  # before the first run
        str(org.today),  # not over
        str(org.today - timedelta(days=3)),  # missed: acknowledged all the same
        "--format",
        "text",
    )
    assert refused.code == 3
    assert "has a run" in refused.out
    assert "acknowledged at" in refused.out
    assert "certexpiry: error: not a missed night" in refused.err
    rows = db.execute("select night from certexpiry.night_acknowledgements order by 1").fetchall()
    assert [r[0] for r in rows] == [org.today - timedelta(days=n) for n in (3, 2, 1)]


def test_ack_refuses_bad_input(nights_cli: Cli) -> None:
    """A date that is not one, or a code with free text, is a usage error before any call."""
    assert nights_cli("nights", "ack", "yesterday").code == 2
    bad = nights_cli("nights", "ack", "2026-11-29", "--code", "Scheduler was paused by Kari")
    assert bad.code == 2
    assert "--code" in bad.err
    assert nights_cli("nights", "ack").code == 2  # a date is required


def test_acknowledgements_are_kept(db: Conn, org: OrgDay) -> None:
    """service_role may read and add acknowledgements but neither change nor delete one, and
    the SQL refuses a code that is not one."""
    add_run(db, org, 3, "completed")
    night = org.today - timedelta(days=1)
    (answer,) = rpc(
        db,
        "select public.acknowledge_missed_nights(%(n)s::date[], %(z)s, null)",
        {"n": [night], "z": org.timezone},
    )
    assert answer["outcome"] == "acknowledged"
    for statement in (
        "update certexpiry.night_acknowledgements set code = 'x'",
        "delete from certexpiry.night_acknowledgements",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rpc(db, statement + " returning 1")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        rpc(
            db,
            "select public.acknowledge_missed_nights(%(n)s::date[], %(z)s, 'Free text')",
            {"n": [night], "z": org.timezone},
        )


def test_worked_time_leaves_out_the_waits_between_segments(db: Conn, org: OrgDay) -> None:
    """Each heartbeat adds the time since the one before; a claim only sets it: 5 s of work,
    a 100 s wait for the continuation, 3 s more, makes 8 s of work in a run 10 minutes long."""
    run_id = uuid.uuid4()
    rpc(
        db,
        "select public.claim_nightly_run(p_run_id => %(r)s, p_timezone => %(z)s, "
        "p_lease_seconds => 120)",
        {"r": run_id, "z": org.timezone},
    )

    def worked_before(seconds: int, call: str) -> None:
        db.execute(
            "update certexpiry.cron_runs set heartbeat_at = now() - make_interval(secs => %s), "
            "started_at = now() - interval '10 minutes' where run_id = %s",
            (seconds, run_id),
        )
        rpc(db, call, {"r": str(run_id)})

    worked_before(5, "select public.handoff_run(%(r)s::uuid, 0, 120)")
    worked_before(100, "select public.claim_continuation(%(r)s::uuid, 1, 120)")  # a wait
    worked_before(3, "select public.complete_run(%(r)s::uuid, 1)")
    row = db.execute(
        "select worked_ms, extract(epoch from finished_at - started_at) from certexpiry.cron_runs "
        "where run_id = %s",
        (run_id,),
    ).fetchone()
    assert row is not None
    worked_ms, wall_s = row
    assert 8000 <= worked_ms < 100_000  # the wait is not in it
    assert wall_s >= 600


def test_nights_rejects_a_count_out_of_range(cli: Cli) -> None:
    """--nights takes 1..366 and says so."""
    for bad in ("0", "367", "abc"):
        result = cli("nights", "--nights", bad)
        assert result.code == 2
        assert "--nights" in result.err
