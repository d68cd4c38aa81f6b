"""Transient failures retried in-process leave one TRANSIENT_RETRY warning each (issue 28):
a night that survived a database restart says so, and nothing else about it changes.

The real transports run the night through `handle_event` and `RpcStore`: the direct-Postgres
one over a stand-in connection that loses itself as a restarting server does, the Supabase one
over respx answering PostgREST's 503. Both answer every RPC in the SQL contract's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import psycopg
import psycopg.errors
import pytest
import respx

from certexpiry.errors import DatabaseError
from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.retry import RetryPolicy, retries_reported_to
from certexpiry.store import RpcStore, RpcTransport
from certexpiry.store import postgres as pg_store
from certexpiry.store.postgres import PgTransport
from certexpiry.store.postgrest import SupabaseTransport
from certexpiry.sweep import Outcome, handle_event
from certexpiry_ops.local import pubsub_event_data
from tests.jobs import make_job
from tests.logcapture import CapturedLog

FAST = RetryPolicy(attempts=4, max_seconds=30, initial_wait_s=0.001, max_wait_s=0.002)
TODAY = "2026-11-28"
STARTED = "2026-11-28T01:00:00+00:00"
TOTALS = {"mentors": 2, "certifications": 3, "certifications_paused": 2, "batches": 1}
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "log-entry.schema.json").read_text()
)


def answer(operation: str, params: Mapping[str, Any]) -> Any:
    """What each RPC of a one-batch night answers, in the contract's shape."""
    run_id = params.get("p_run_id")
    answers: dict[str, Any] = {
        "claim_nightly_run": {
            "outcome": "started",
            "run_id": run_id,
            "segment": 0,
            "cursor": None,
            "today": TODAY,
            "abandoned": [],
            "totals": {},
            "started_at": STARTED,
            "missed_nights": [],
        },
        "process_expiry_batch": {
            **TOTALS,
            "fenced": False,
            "next_cursor": None,
            "done": True,
            "failures_detail": [],
            "run_totals": TOTALS,
        },
        "get_missed_auto_pauses": {"missed_pause_count": 0, "missed_ids": [], "today": TODAY},
        "upsert_cron_audit": {"run_id": run_id, "missed_pause_count": 0, "resolved": False},
        "outbox_backlog": {
            "undelivered": 1,
            "claimed": 0,
            "oldest_undelivered_at": STARTED,
            "oldest_age_s": 5,
            "failed": 0,
            "dropped": 0,
        },
        "complete_run": {
            "fenced": False,
            "totals": TOTALS,
            "segments": 1,
            "started_at": STARTED,
            "finished_at": STARTED,
            "nightly_key": TODAY,
        },
    }
    return answers[operation]


# ------------------------------------------------------------------ direct Postgres


class _Cursor:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row

    def fetchone(self) -> tuple[Any, ...]:
        return self.row


class RestartingDatabase:
    """Stands in for psycopg's connection: raises `failures[operation]` one by one (as a server
    restarting mid-night does: the connection lost, then 57P01 admin shutdown), then answers."""

    def __init__(self, failures: Mapping[str, list[psycopg.Error]]) -> None:
        self.failures = {operation: list(errors) for operation, errors in failures.items()}
        self.calls: list[str] = []
        self.closed = False
        self.broken = False

    def execute(self, operation: str, values: Mapping[str, Any]) -> _Cursor:
        self.calls.append(operation)
        pending = self.failures.get(operation)
        if pending:
            raise pending.pop(0)
        return _Cursor((answer(operation, values),))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def restarting(monkeypatch: pytest.MonkeyPatch) -> Callable[..., RestartingDatabase]:
    """A PgTransport's connection replaced by a RestartingDatabase; the statement is the RPC's
    name (so the stand-in knows what is called)."""
    monkeypatch.setattr(pg_store, "_rpc_statement", lambda operation, _signature, _names: operation)

    def make(transport: PgTransport, **failures: list[psycopg.Error]) -> RestartingDatabase:
        database = RestartingDatabase(failures)
        monkeypatch.setattr(transport, "_connection", lambda: database)
        return database

    return make


def _lost() -> psycopg.Error:
    return psycopg.OperationalError("server closed the connection unexpectedly")


def _shutdown() -> psycopg.Error:
    return psycopg.errors.AdminShutdown("terminating connection due to administrator command")


def _night(transport: RpcTransport, log: CapturedLog) -> Outcome:
    job = make_job(RpcStore(transport), log)
    return handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(b'{"kind":"nightly"}'))


CLEAN_NIGHT = [
    "RUN_STARTED",
    "BATCH_DONE",
    "MONITORING_CLEAN",
    "AUDIT_WRITTEN",
    "OUTBOX_BACKLOG",
    "RUN_COMPLETED",
]
RPCS = [
    "claim_nightly_run",
    "process_expiry_batch",
    "get_missed_auto_pauses",
    "upsert_cron_audit",
    "outbox_backlog",
    "complete_run",
]


def test_a_database_restart_mid_night_leaves_one_warning_per_retry_and_nothing_else(
    restarting: Callable[..., RestartingDatabase],
) -> None:
    """The batch's connection is lost, then the restarting server refuses with 57P01: two
    TRANSIENT_RETRY warnings (attempts 1 and 2, the operation, the reason or SQLSTATE, the
    driver's class; no message text), then the same night as without the restart."""
    transport = PgTransport("postgresql://unused", retry=FAST)
    database = restarting(transport, process_expiry_batch=[_lost(), _shutdown()])
    log = CapturedLog()
    assert _night(transport, log) is Outcome.ACK

    retries = log.with_code("TRANSIENT_RETRY")
    assert [entry["context"] for entry in retries] == [
        {
            "operation": "process_expiry_batch",
            "attempt": 1,
            "error_type": "OperationalError",
            "reason": "connection lost",
        },
        {
            "operation": "process_expiry_batch",
            "attempt": 2,
            "error_type": "AdminShutdown",
            "sqlstate": "57P01",
        },
    ]
    assert {entry["severity"] for entry in retries} == {"WARNING"}
    run_ids = {entry["cron_run_id"] for entry in log.entries}
    assert len(run_ids) == 1  # the run's id, as every other line of the night
    for entry in log.entries:
        jsonschema.validate(entry, SCHEMA)
    # The night itself is the clean night: same lines, same calls, each RPC done once.
    assert [code for code in log.codes() if code != "TRANSIENT_RETRY"] == CLEAN_NIGHT
    assert log.codes().index("TRANSIENT_RETRY") == 1  # after RUN_STARTED, before BATCH_DONE
    assert [call for call in database.calls if call != "process_expiry_batch"] == [
        rpc for rpc in RPCS if rpc != "process_expiry_batch"
    ]
    assert database.calls.count("process_expiry_batch") == 3
    completed = log.with_code("RUN_COMPLETED")[0]["context"]
    assert completed["certifications_paused"] == 2


def test_every_rpc_of_the_night_reports_its_retries(
    restarting: Callable[..., RestartingDatabase],
) -> None:
    """A retry in any call of the night (the claim, monitoring, the audit row, the completion)
    is a TRANSIENT_RETRY line naming that call."""
    transport = PgTransport("postgresql://unused", retry=FAST)
    restarting(transport, **{rpc: [_lost()] for rpc in RPCS})
    log = CapturedLog()
    assert _night(transport, log) is Outcome.ACK
    assert [entry["context"]["operation"] for entry in log.with_code("TRANSIENT_RETRY")] == RPCS
    assert [code for code in log.codes() if code != "TRANSIENT_RETRY"] == CLEAN_NIGHT


def test_retries_that_run_out_are_warnings_then_the_error_and_a_redelivery(
    restarting: Callable[..., RestartingDatabase],
) -> None:
    """Past the policy's bound: one warning per retry (attempts 1-3 of 4), then the call's
    ERROR line, and Pub/Sub is asked to redeliver, as before."""
    transport = PgTransport("postgresql://unused", retry=FAST)
    restarting(transport, claim_nightly_run=[_lost() for _ in range(4)])
    log = CapturedLog()
    assert _night(transport, log) is Outcome.RETRY
    assert log.codes() == ["TRANSIENT_RETRY"] * 3 + ["DB_OPERATION_FAILED"]
    assert [entry["context"]["attempt"] for entry in log.entries[:3]] == [1, 2, 3]


def test_a_non_transient_failure_is_not_retried_and_not_reported_as_one(
    restarting: Callable[..., RestartingDatabase],
) -> None:
    """A unique violation is no retry: no TRANSIENT_RETRY line."""
    transport = PgTransport("postgresql://unused", retry=FAST)
    restarting(transport, claim_nightly_run=[psycopg.errors.UniqueViolation("duplicate key value")])
    log = CapturedLog()
    assert _night(transport, log) is Outcome.ACK
    assert log.codes() == ["DB_OPERATION_FAILED"]


def test_retries_outside_an_invocation_are_not_logged(
    restarting: Callable[..., RestartingDatabase],
) -> None:
    """The listener is the invocation's: once handle_event returns, a retry of the shared
    transport (the ops tooling's, say) reports to no one; a listener set by a caller hears it."""
    transport = PgTransport("postgresql://unused", retry=FAST)
    restarting(transport, get_missed_auto_pauses=[_lost(), _lost()])
    log = CapturedLog()
    assert _night(transport, log) is Outcome.ACK
    before = len(log.entries)
    heard: list[tuple[str, int]] = []
    restarting(transport, get_missed_auto_pauses=[_lost()])
    RpcStore(transport).missed_auto_pauses("Europe/Oslo", None, limit=10)
    assert len(log.entries) == before
    restarting(transport, get_missed_auto_pauses=[_lost()])
    with retries_reported_to(lambda error, attempt: heard.append((error.operation, attempt))):
        RpcStore(transport).missed_auto_pauses("Europe/Oslo", None, limit=10)
    assert heard == [("get_missed_auto_pauses", 1)]


# ------------------------------------------------------------------ Supabase (PostgREST)

URL = "https://abcdefghijklmnop.supabase.co"
KEY = "sb_secret_TESTKEY_not_a_real_key_1234567890"


@pytest.fixture
def supabase() -> Iterator[SupabaseTransport]:
    transport = SupabaseTransport(URL, KEY, retry=FAST)
    yield transport
    transport.close()


@respx.mock
def test_postgrest_503_mid_night_is_one_warning_with_the_http_status(
    supabase: SupabaseTransport,
) -> None:
    """PostgREST answering 503 PGRST002 (its pool lost the database) once: one TRANSIENT_RETRY
    with the HTTP status and PostgREST code, and the clean night."""
    failures = {"process_expiry_batch": 1}

    def respond(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        if failures.get(operation, 0) > 0:
            failures[operation] -= 1
            return httpx.Response(
                503,
                json={
                    "code": "PGRST002",
                    "details": None,
                    "hint": None,
                    "message": "Could not query the database for the schema cache. Retrying.",
                },
            )
        return httpx.Response(200, json=answer(operation, json.loads(request.content)))

    respx.post(url__startswith=f"{URL}/rest/v1/rpc/").mock(side_effect=respond)
    log = CapturedLog()
    assert _night(supabase, log) is Outcome.ACK
    (retry,) = log.with_code("TRANSIENT_RETRY")
    assert retry["context"] == {
        "operation": "process_expiry_batch",
        "attempt": 1,
        "error_type": "APIError",
        "http_status": 503,
        "postgrest_code": "PGRST002",
    }
    assert [code for code in log.codes() if code != "TRANSIENT_RETRY"] == CLEAN_NIGHT


@respx.mock
def test_an_http_timeout_retried_carries_its_elapsed_time(supabase: SupabaseTransport) -> None:
    """A read timeout retried: the warning names the HTTP client's class and the time waited."""
    calls = {"n": 0}

    def respond(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[-1]
        if operation == "claim_nightly_run" and calls["n"] == 0:
            calls["n"] += 1
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json=answer(operation, json.loads(request.content)))

    respx.post(url__startswith=f"{URL}/rest/v1/rpc/").mock(side_effect=respond)
    log = CapturedLog()
    assert _night(supabase, log) is Outcome.ACK
    (retry,) = log.with_code("TRANSIENT_RETRY")
    assert retry["context"]["error_type"] == "ReadTimeout"
    assert retry["context"]["operation"] == "claim_nightly_run"
    assert isinstance(retry["context"]["elapsed_ms"], int)
    assert [code for code in log.codes() if code != "TRANSIENT_RETRY"] == CLEAN_NIGHT


def test_retry_context_is_codes_never_text() -> None:
    """Whatever the database said, the retry's context holds no message or detail."""
    error = DatabaseError(
        "process_expiry_batch",
        sqlstate="40001",
        names={"table_name": "certifications", "routine": "certexpiry.apply_effects"},
    )
    assert error.retry_context() == {
        "operation": "process_expiry_batch",
        "error_type": "DatabaseError",
        "sqlstate": "40001",
    }
