"""The whole invocation (decode, claim, sweep, hand off, monitor, audit) on the embedded Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.store import RpcStore
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Outcome, handle_event
from certexpiry_ops.local import pubsub_event_data
from tests import faults
from tests.chain import in_process
from tests.clock import OrgDay, StepClock
from tests.jobs import make_job
from tests.logcapture import CapturedLog

Conn = psycopg.Connection[Any]


@pytest.fixture
def store(database_url: str) -> Iterator[RpcStore]:
    s = pg_store(database_url)
    yield s
    s.close()


def seed_night(db: Conn, today: date, mentors: int = 30) -> dict[str, list[Any]]:
    """Per mentor: one expired, one due within the offsets, one far ahead (deterministic IDs)."""
    seeded: dict[str, list[Any]] = {"expired": [], "due": [], "later": []}
    for i in range(mentors):
        mentor = uuid.uuid5(uuid.NAMESPACE_URL, f"mentor/{i}")
        db.execute(
            "insert into public.peer_mentors (id, full_name) values (%s, %s)",
            (mentor, f"Mentor {i}"),
        )
        for kind, expiry in (
            ("expired", today - timedelta(days=1 + i % 5)),
            ("due", today + timedelta(days=i % 30)),
            ("later", today + timedelta(days=60)),
        ):
            cert = uuid.uuid5(uuid.NAMESPACE_URL, f"cert/{kind}/{i}")
            db.execute(
                "insert into public.certifications (id, peer_mentor_id, expiry_date) values (%s, %s, %s)",
                (cert, mentor, expiry),
            )
            seeded[kind].append(cert)
    return seeded


def snapshot(db: Conn) -> dict[str, Any]:
    """The observable end state: statuses and effects (ignoring run ids and timestamps)."""
    return {
        "certs": db.execute("select id, status from public.certifications order by id").fetchall(),
        "mentors": db.execute(
            "select id, status, paused_reason from public.peer_mentors order by id"
        ).fetchall(),
        "log": db.execute(
            "select certification_id, action, expiry_date, outcome from certexpiry.certification_idempotency_log order by 1, 2"
        ).fetchall(),
        "outbox": db.execute(
            "select certification_id, kind, payload from certexpiry.notification_outbox order by 1, 2"
        ).fetchall(),
    }


def test_clean_run_writes_audit_with_zero_missed(db: Conn, store: RpcStore, org: OrgDay) -> None:
    """A clean run logs no WARNING and writes an audit row with missed_pause_count=0 (spec test 3)."""
    seed_night(db, org.today, 10)
    log = CapturedLog()
    assert in_process(make_job(store, log, org_timezone=org.timezone)).run() == [Outcome.ACK]
    assert "WARNING" not in log.severities()
    assert "ERROR" not in log.severities()
    assert log.codes()[0] == "RUN_STARTED"
    assert log.codes()[-1] == "RUN_COMPLETED"
    rows = db.execute(
        "select missed_pause_count, missed_ids, resolved, status, segments from public.cron_audit_log"
    ).fetchall()
    assert rows == [(0, [], False, "completed", 1)]
    run = db.execute("select timezone, nightly_key from certexpiry.cron_runs").fetchall()
    assert run == [(org.timezone, org.today)]  # the night the test seeded against
    completed = log.with_code("RUN_COMPLETED")[0]["context"]
    assert completed["certifications_paused"] == 10
    assert completed["mentors_paused"] == 10


def test_many_segments_reach_the_same_state_as_one(
    database_url: str, pg_admin_url: str, db: Conn, store: RpcStore, org: OrgDay
) -> None:
    """A run forced through many segments by a tiny budget ends in the same state as one segment."""
    seed_night(db, org.today, 40)
    # One-segment reference on a second database seeded with the same rows.
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute("drop database if exists ref_copy with (force)")
        admin.execute("create database ref_copy template certexpiry_template")
    ref_url = make_conninfo(pg_admin_url, dbname="ref_copy")
    with psycopg.connect(ref_url, autocommit=True) as ref:
        seed_night(ref, org.today, 40)
    ref_store = pg_store(ref_url)
    assert in_process(make_job(ref_store, CapturedLog(), org_timezone=org.timezone)).run() == [
        Outcome.ACK
    ]
    ref_store.close()

    log = CapturedLog()
    job = make_job(
        store,
        log,
        org_timezone=org.timezone,
        batch_size=3,
        time_budget_s=10,
        monitoring_reserve_s=1,
    )
    job.clock = StepClock(2.0)  # every batch "takes" 2 s: about two batches per segment
    invocations = len(in_process(job).run())
    assert invocations > 5
    assert log.codes().count("CONTINUATION_PUBLISHED") == invocations - 1
    with psycopg.connect(ref_url, autocommit=True) as ref:
        assert snapshot(db) == snapshot(ref)
    audit = db.execute("select segments, missed_pause_count from public.cron_audit_log").fetchall()
    assert audit == [(invocations, 0)]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute("drop database if exists ref_copy with (force)")


def test_every_message_delivered_twice_still_one_chain(
    db: Conn, store: RpcStore, org: OrgDay
) -> None:
    """Delivering every message twice (retried ones again later) yields one chain and no duplicate effect."""
    seed_night(db, org.today, 20)
    log = CapturedLog()
    job = make_job(
        store,
        log,
        org_timezone=org.timezone,
        batch_size=4,
        time_budget_s=10,
        monitoring_reserve_s=1,
    )
    job.clock = StepClock(3.0)
    chain = in_process(job)
    chain.run(copies=2, max_deliveries=500)  # raises if the deliveries do not settle
    assert len(set(chain.delivered)) > 2  # a trigger and continuations
    assert all(chain.delivered.count(body) >= 2 for body in chain.delivered)
    reminders = db.execute(
        "select certification_id, count(*) from certexpiry.notification_outbox group by 1, kind having count(*) > 1"
    ).fetchall()
    assert reminders == []
    assert len(log.with_code("RUN_COMPLETED")) == 1
    assert len(log.with_code("RUN_BUSY")) >= 1
    assert db.execute("select count(*) from public.cron_audit_log").fetchone() == (1,)


def test_failing_rows_reported_and_flagged_by_monitoring(
    db: Conn, store: RpcStore, org: OrgDay
) -> None:
    """A trigger raising for chosen IDs: those are logged by ID and flagged; all others processed."""
    seeded = seed_night(db, org.today, 12)
    bad = seeded["expired"][:2]
    faults.refuse(db, "certifications", bad)
    log = CapturedLog()
    in_process(make_job(store, log, org_timezone=org.timezone)).run()
    failures = log.with_code("DB_OPERATION_FAILED")
    assert sorted(f["context"]["certification_id"] for f in failures) == sorted(map(str, bad))
    assert all(
        f["severity"] == "ERROR" and f["context"]["operation"] == "auto_pause" for f in failures
    )
    missed = log.with_code("MISSED_AUTO_PAUSE")
    assert len(missed) == 1
    assert missed[0]["severity"] == "WARNING"
    assert sorted(missed[0]["context"]["missed_ids"]) == sorted(map(str, bad))
    assert "certexpiry remediate" in missed[0]["context"]["remediation"]
    paused = db.execute(
        "select count(*) from public.certifications where status = 'paused'"
    ).fetchone()
    assert paused == (10,)
    audit = db.execute(
        "select missed_pause_count, missed_ids from public.cron_audit_log"
    ).fetchone()
    assert audit is not None
    assert audit[0] == 2
    assert sorted(audit[1]) == sorted(map(str, bad))


def test_second_trigger_same_night_sends_nothing(db: Conn, store: RpcStore, org: OrgDay) -> None:
    """Running the nightly trigger again after completion is a duplicate: nothing new is written."""
    seed_night(db, org.today, 5)
    in_process(make_job(store, CapturedLog(), org_timezone=org.timezone)).run()
    before = snapshot(db)
    log = CapturedLog()
    assert in_process(make_job(store, log, org_timezone=org.timezone)).run() == [Outcome.ACK]
    assert log.codes() == ["DUPLICATE_DELIVERY"]
    assert snapshot(db) == before


def test_invalid_message_touches_nothing(db: Conn, store: RpcStore, org: OrgDay) -> None:
    """A malformed message is logged once as INVALID_MESSAGE and changes no data."""
    seed_night(db, org.today, 3)
    before = snapshot(db)
    log = CapturedLog()
    outcome = handle_event(
        make_job(store, log, org_timezone=org.timezone),
        PUBSUB_EVENT_TYPE,
        pubsub_event_data(b'{"kind": "resume", "run_id": "nope"}', message_id="1001"),
    )
    assert outcome is Outcome.ACK
    assert log.codes() == ["INVALID_MESSAGE"]
    assert log.entries[0]["context"]["message_id"] == "1001"
    assert snapshot(db) == before
    assert db.execute("select count(*) from certexpiry.cron_runs").fetchone() == (0,)
