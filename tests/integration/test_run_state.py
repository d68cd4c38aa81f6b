"""Run-state claims: exactly one chain per run, whatever Pub/Sub and Cloud Scheduler deliver."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.integration.sqlapi import claim, rpc

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
Conn = psycopg.Connection[Any]


def _continuation(conn: Conn, run_id: Any, segment: int, now: datetime) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        conn,
        "select public.claim_continuation(p_run_id => %(r)s::uuid, p_segment => %(s)s, p_lease_seconds => 120, p_now => %(n)s)",
        {"r": str(run_id), "s": segment, "n": now},
    )
    return result


def _handoff(conn: Conn, run_id: Any, segment: int) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        conn,
        "select public.handoff_run(p_run_id => %(r)s::uuid, p_segment => %(s)s, p_lease_seconds => 120)",
        {"r": str(run_id), "s": segment},
    )
    return result


def test_second_nightly_trigger_is_busy_then_completed(db: Conn) -> None:
    """A second trigger the same night is told to retry while the first runs, and is a duplicate after."""
    first = claim(db, NOW)
    assert first["outcome"] == "started"
    assert claim(db, NOW + timedelta(seconds=5))["outcome"] == "busy"
    rpc(
        db,
        "select public.complete_run(p_run_id => %(r)s::uuid, p_segment => 0)",
        {"r": first["run_id"]},
    )
    again = claim(db, NOW + timedelta(seconds=10))
    assert again["outcome"] == "completed"
    assert again["run_id"] == first["run_id"]


def test_nightly_trigger_resumes_a_run_whose_lease_lapsed(db: Conn) -> None:
    """After the owner dies, a redelivered trigger takes the run over with a new segment."""
    first = claim(db, NOW, lease=60)
    resumed = claim(db, NOW + timedelta(seconds=61))
    assert resumed["outcome"] == "resumed"
    assert resumed["run_id"] == first["run_id"]
    assert resumed["segment"] == 1


def test_continuation_claimed_once(db: Conn) -> None:
    """After a handoff, the next segment is claimed once; a second delivery is busy, a later one a duplicate."""
    run = claim(db, NOW)
    assert _handoff(db, run["run_id"], 0)["fenced"] is False
    assert _continuation(db, run["run_id"], 1, NOW)["outcome"] == "claimed"
    assert _continuation(db, run["run_id"], 1, NOW)["outcome"] == "busy"
    assert _handoff(db, run["run_id"], 1)["fenced"] is False
    assert _continuation(db, run["run_id"], 2, NOW)["outcome"] == "claimed"
    assert _continuation(db, run["run_id"], 1, NOW)["outcome"] == "duplicate"


def test_redelivered_message_reclaims_a_handed_off_segment_after_its_lease(db: Conn) -> None:
    """If a segment handed off but its continuation was lost, its own redelivery resumes it once the lease lapses."""
    run = claim(db, NOW)
    _handoff(db, run["run_id"], 0)
    _continuation(db, run["run_id"], 1, NOW)
    _handoff(db, run["run_id"], 1)  # segment 1 checkpointed, then crashed before publishing
    db.execute("update certexpiry.cron_runs set lease_until = %s", (NOW + timedelta(seconds=120),))
    assert _continuation(db, run["run_id"], 1, NOW + timedelta(seconds=3))["outcome"] == "busy"
    again = _continuation(db, run["run_id"], 1, NOW + timedelta(seconds=121))
    assert again["outcome"] == "claimed"
    assert again["segment"] == 1


def test_crashed_segment_reclaimed_after_lease(db: Conn) -> None:
    """A segment whose invocation died mid-way is reclaimable once its lease lapses, not before."""
    run = claim(db, NOW)
    _handoff(db, run["run_id"], 0)
    _continuation(db, run["run_id"], 1, NOW)
    assert _continuation(db, run["run_id"], 1, NOW + timedelta(seconds=60))["outcome"] == "busy"
    assert _continuation(db, run["run_id"], 1, NOW + timedelta(seconds=121))["outcome"] == "claimed"


def test_forged_run_id_is_unknown(db: Conn) -> None:
    """A continuation for a run that does not exist is reported as unknown."""
    assert _continuation(db, uuid.uuid4(), 1, NOW)["outcome"] == "unknown"


def test_next_night_abandons_an_unfinished_run(db: Conn) -> None:
    """An unfinished run of an earlier night is marked abandoned so nothing stays in progress."""
    old = claim(db, NOW - timedelta(days=1))
    new = claim(db, NOW)
    assert new["outcome"] == "started"
    assert new["abandoned"] == [old["run_id"]]
    status = db.execute(
        "select status from certexpiry.cron_runs where run_id = %s", (old["run_id"],)
    ).fetchone()
    assert status == ("abandoned",)


def test_batch_checkpoints_the_cursor_and_totals(db: Conn) -> None:
    """The batch RPC stores the keyset cursor and adds its counts to the run's totals atomically."""
    mentor = uuid.UUID("00000000-0000-4000-8000-000000000001")
    db.execute("insert into public.peer_mentors (id, full_name) values (%s, 'x')", (mentor,))
    cert = db.execute(
        "insert into public.certifications (peer_mentor_id, expiry_date, next_action_on)"
        " values (%s, date '2026-11-20', null) returning id",
        (mentor,),
    ).fetchone()
    assert cert is not None
    run = claim(db, NOW)
    rpc(
        db,
        "select public.process_expiry_batch(p_run_id => %(r)s::uuid, p_segment => 0, "
        "p_cursor => null, p_limit => 50, p_reminder_days => '{30,7,1}', p_lease_seconds => 120)",
        {"r": run["run_id"]},
    )
    row = db.execute(
        "select cursor, totals from certexpiry.cron_runs where run_id = %s", (run["run_id"],)
    ).fetchone()
    assert row is not None
    # The keyset token of the last certification of the page: a row the app had when the job
    # was installed (next_action_on null), read from the schedule, by its expiry date.
    assert row[0] == f"on-schedule/2026-11-20/{cert[0]}"
    assert row[1]["certifications_paused"] == 1
    assert row[1]["batches"] == 1
