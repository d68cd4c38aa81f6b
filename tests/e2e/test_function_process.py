"""End to end: functions-framework serving main.nightly_sweep, driven like Pub/Sub would."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.chain import NIGHTLY, over_http
from tests.clock import OrgDay
from tests.seeding import add_cert, add_mentor

Conn = psycopg.Connection[Any]


def _seed(db: Conn, mentors: int, today: date) -> None:
    for i in range(mentors):
        mentor = add_mentor(db, name=f"Ola Testesen {i}")
        add_cert(db, mentor, today - timedelta(days=1 + i % 3))
        add_cert(db, mentor, today + timedelta(days=i % 10))


def test_chain_through_the_framework_and_fake_pubsub(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """The trigger and every continuation run through HTTP; all output lines are JSON; the run completes."""
    _seed(db, 30, org.today)
    function = FunctionProcess(
        env=function_env(
            database_url,
            pubsub,
            org_timezone=org.timezone,
            time_budget_s=0.001,
            batch_size=5,
            monitoring_reserve_s=0,
        )
    ).start()
    try:
        statuses = over_http(function, pubsub).run()
        # A duplicate of the nightly trigger after the run is acknowledged and does nothing.
        duplicate = function.deliver(NIGHTLY)
        # A malformed message is acknowledged (200), never retried.
        bad = function.deliver(b"{not json")
    finally:
        function.stop()
    segments = len(statuses)
    assert statuses == [200] * segments  # no delivery refused
    assert segments >= 6  # one batch of 5 mentors per segment
    assert len(pubsub.messages) == segments - 1
    assert duplicate.status == 200
    assert bad.status == 200

    entries = []
    for stream, line in function.lines:
        assert line.strip(), f"empty line on {stream}"
        entries.append(json.loads(line))  # every line on stdout and stderr is JSON
    codes = [e["error_code"] for e in entries]
    assert codes.count("RUN_COMPLETED") == 1
    assert codes.count("CONTINUATION_PUBLISHED") == segments - 1
    assert "INVALID_MESSAGE" in codes
    assert "DUPLICATE_DELIVERY" in codes
    run_ids = {
        e["cron_run_id"] for e in entries if e["error_code"] in ("BATCH_DONE", "RUN_COMPLETED")
    }
    assert len(run_ids) == 1
    assert "Ola Testesen" not in "\n".join(line for _, line in function.lines)
    assert db.execute(
        "select count(*) from public.certifications where status = 'paused'"
    ).fetchone() == (30,)
    assert db.execute("select status, segments from public.cron_audit_log").fetchall() == [
        ("completed", segments)
    ]


def test_traceparent_header_reaches_the_log(
    db: Conn, database_url: str, pubsub: FakePubSub
) -> None:
    """A W3C traceparent on the push request puts the trace and span on the entries."""
    function = FunctionProcess(env=function_env(database_url, pubsub)).start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        function.deliver(
            b"{not json", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
    finally:
        function.stop()
    entries = [json.loads(line) for _, line in function.lines]
    invalid = [e for e in entries if e["error_code"] == "INVALID_MESSAGE"]
    assert invalid[0]["logging.googleapis.com/trace"] == f"projects/local-demo/traces/{trace_id}"
    assert invalid[0]["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"REMINDER_DAYS": "30,x"}, "REMINDER_DAYS"),
        ({"DATABASE_URL": "", "SUPABASE_URL": ""}, "DATABASE_URL"),
    ],
)
def test_bad_settings_give_one_error_line_and_a_503(
    database_url: str, pubsub: FakePubSub, env: dict[str, str], setting: str
) -> None:
    """A bad or missing setting answers 503 (so Pub/Sub retries after a fix) with one JSON ERROR line naming it."""
    base = function_env(database_url, pubsub)
    base.pop("DATABASE_URL")
    function = FunctionProcess(env={**base, **env}).start()
    try:
        delivery = function.deliver(b'{"kind":"nightly"}')
    finally:
        function.stop()
    assert delivery.status == 503
    entries = [json.loads(line) for _, line in function.lines]
    errors = [e for e in entries if e["severity"] == "ERROR"]
    assert [e["error_code"] for e in errors] == ["INVALID_SETTINGS"]
    assert errors[0]["context"]["setting"] == setting
    assert "stack_trace" not in errors[0]
    # An invocation that never reaches a run is tied to a UUID of its own (issue 11).
    assert uuid.UUID(errors[0]["cron_run_id"]).version == 4
    assert all(uuid.UUID(entry["cron_run_id"]) for entry in entries)
