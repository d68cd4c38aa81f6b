"""The fault matrix: each fault is asserted on the log line it must produce (code, severity,
context fields), on what Pub/Sub is told (ACK or RETRY), and on the data afterwards, including
the recovery (redelivery, or the next night) that must leave exactly the effects of a clean run.

Supabase faults go through the real SupabaseTransport (supabase-py, postgrest-py, httpx) to a
PostgREST stand-in made with respx that forwards every RPC to the test database, so the data
the sweep leaves behind is real; faults are scripted per RPC, before the database is reached,
or after it committed (the answer is lost on the way back).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import grpc
import httpx
import psycopg
import pytest
import respx

from certexpiry.errors import DatabaseError
from certexpiry.log import JsonLogger
from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.publisher import Publisher, PubSubPublisher
from certexpiry.redact import Secrets
from certexpiry.retry import RetryPolicy
from certexpiry.store import AuditRow, RpcStore, Store
from certexpiry.store.postgres import PgTransport, pg_store
from certexpiry.store.postgrest import SupabaseTransport
from certexpiry.sweep import Job, Outcome, handle_event
from certexpiry_ops.contract import SIGNATURES
from certexpiry_ops.local import LOCAL_TOPIC, pubsub_event_data
from certexpiry_ops.pubsub_fake import FakePubSub
from tests import faults, leak_plugin
from tests.chain import NIGHTLY, Chain, Subscription, in_process
from tests.clock import OrgDay, StepClock
from tests.jobs import make_job
from tests.logcapture import CapturedLog
from tests.reliability.support import (
    Expectation,
    expected_effects,
    expire_leases,
    run_state_problems,
    seed_night,
    shift_runs_to_yesterday,
    totals_problems,
    verdict,
)

Conn = psycopg.Connection[Any]
FAST = RetryPolicy(attempts=3, max_seconds=2, initial_wait_s=0.001, max_wait_s=0.002)
SUPABASE_URL = "https://reliabilitytest.supabase.co"
SERVICE_ROLE_KEY = "sb_secret_RELIABILITY_fault_matrix_key_0123456789"
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------- the night


@dataclass
class Night:
    db: Conn
    url: str
    org: OrgDay
    expected: Expectation

    @property
    def today(self) -> date:
        return self.org.today


@pytest.fixture
def night(db: Conn, database_url: str, org: OrgDay) -> Night:
    seed_night(db, 16, org.today)
    return Night(db, database_url, org, expected_effects(db, org.today))


def night_job(
    night: Night,
    store: Store,
    log: JsonLogger,
    publisher: Publisher | None = None,
    **settings: Any,
) -> Job:
    """The shared factory (tests/jobs.py) with the night's zone, small batches, a short lease."""
    options: dict[str, Any] = {"lease_s": 10, "batch_size": 4, **settings}
    return make_job(store, log, publisher=publisher, org_timezone=night.org.timezone, **options)


def deliver(job: Job, body: bytes = NIGHTLY) -> Outcome:
    """One delivery, no chain."""
    return handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(body))


def chain(night: Night, job: Job, published: Subscription | None = None) -> Chain[Outcome]:
    """The shared driver (tests/chain.py); a RETRY is redelivered once the leases expired."""
    driver = in_process(job, published, on_retry=lambda: expire_leases(night.db))
    driver.max_deliveries = 200
    return driver


def the_line(log: CapturedLog, code: str) -> dict[str, Any]:
    found = log.with_code(code)
    assert len(found) == 1, (code, log.codes())
    return found[0]


def check_line(entry: dict[str, Any], severity: str, **context: Any) -> None:
    """Severity, and each context field equal to the value given (or satisfying a predicate)."""
    assert entry["severity"] == severity, entry
    for key, want in context.items():
        got = entry["context"].get(key)
        if callable(want):
            assert want(got), (key, got, entry)
        else:
            assert got == want, (key, got, entry)


def assert_clean_result(night: Night) -> None:
    result = verdict(night.db, night.expected)
    assert result.ok, result.details
    assert run_state_problems(night.db) == []
    assert totals_problems(night.db) == []


def effects_count(db: Conn) -> int:
    row = db.execute(
        "select (select count(*) from certexpiry.notification_outbox) + "
        "(select count(*) from certexpiry.certification_idempotency_log where run_id is not null)"
    ).fetchone()
    assert row is not None
    return int(row[0])


def run_statuses(db: Conn) -> list[str]:
    return [
        str(row[0])
        for row in db.execute("select status from certexpiry.cron_runs order by started_at")
    ]


# --------------------------------------------------------------------------- PostgREST stand-in


@dataclass
class Fault:
    """One scripted answer: `respond` returns a response or raises an httpx error."""

    respond: Callable[[httpx.Request], httpx.Response]
    times: int | None = None  # None: every call
    after_commit: bool = False  # the RPC runs and commits; then the answer is lost


def status(
    code: int, body: dict[str, Any] | None = None, *, html: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        if html is not None:
            return httpx.Response(code, text=html, headers={"content-type": "text/html"})
        return httpx.Response(code, json=body or {})

    return respond


def raises(
    error: type[httpx.TransportError], message: str
) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return respond


@dataclass
class FakePostgrest:
    """POST /rest/v1/rpc/<name>, answered from the test database unless a fault is scripted."""

    database_url: str
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pg = PgTransport(
            self.database_url, retry=RetryPolicy(attempts=1), signatures=SIGNATURES
        )
        self.router = respx.Router(base_url=SUPABASE_URL, assert_all_called=False)
        self.router.post(path__regex=r"^/rest/v1/rpc/(?P<name>\w+)$").mock(side_effect=self._handle)

    def store(self) -> RpcStore:
        transport = SupabaseTransport(
            SUPABASE_URL,
            SERVICE_ROLE_KEY,
            retry=FAST,
            transport=httpx.MockTransport(self.router.handler),
        )
        return RpcStore(transport)

    def _handle(self, request: httpx.Request, name: str) -> httpx.Response:
        assert request.headers["apikey"] == SERVICE_ROLE_KEY
        self.calls[name] = self.calls.get(name, 0) + 1
        fault = self.faults.get(name)
        if fault is not None:
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[name]
            if fault.after_commit:
                self._forward(name, request)
            return fault.respond(request)
        return self._forward(name, request)

    def _forward(self, name: str, request: httpx.Request) -> httpx.Response:
        try:
            data = self.pg.call(name, json.loads(request.content or b"{}"))
        except DatabaseError as exc:
            return httpx.Response(
                400, json={"code": exc.sqlstate, "message": str(exc), "details": None, "hint": None}
            )
        return httpx.Response(200, json=data)

    def close(self) -> None:
        self.pg.close()


@pytest.fixture
def postgrest(night: Night) -> Iterator[FakePostgrest]:
    leak_plugin.register_secret(SERVICE_ROLE_KEY)
    fake = FakePostgrest(night.url)
    yield fake
    fake.close()


PGRST202 = {
    "code": "PGRST202",
    "details": "Searched for the function public.process_expiry_batch with parameters p_cursor, p_lease_seconds, "
    "p_limit, p_reminder_days, p_run_id, p_segment or with a single unnamed json/jsonb parameter, "
    "but no matches were found in the schema cache.",
    "hint": None,
    "message": "Could not find the function public.process_expiry_batch(p_cursor, p_lease_seconds, p_limit, "
    "p_reminder_days, p_run_id, p_segment) in the schema cache",
}


POSTGREST_FAULTS = [
    (
        "500 P0001",
        "process_expiry_batch",
        status(500, {"code": "P0001", "message": "boom", "details": None, "hint": None}),
        "SUPABASE_RPC_FAILED",
        {"http_status": 500, "postgrest_code": "P0001"},
        Outcome.ACK,
    ),
    (
        "502 HTML",
        "process_expiry_batch",
        status(502, html=HTML_502),
        "SUPABASE_RPC_FAILED",
        {
            "http_status": 502,
            "response_body": {"length": len(HTML_502), "content_type": "text/html"},
        },
        Outcome.RETRY,
    ),
    (
        "503 PGRST002",
        "claim_nightly_run",
        status(
            503,
            {
                "code": "PGRST002",
                "message": "Could not query the database for the schema cache. Retrying.",
                "details": None,
                "hint": None,
            },
        ),
        "SUPABASE_RPC_FAILED",
        {"http_status": 503, "postgrest_code": "PGRST002"},
        Outcome.RETRY,
    ),
    (
        "504 PGRST003",
        "complete_run",
        status(
            504,
            {
                "code": "PGRST003",
                "message": "Timed out acquiring connection from connection pool.",
                "details": None,
                "hint": None,
            },
        ),
        "SUPABASE_RPC_FAILED",
        {"http_status": 504, "postgrest_code": "PGRST003"},
        Outcome.RETRY,
    ),
    (
        "401 invalid key",
        "claim_nightly_run",
        status(
            401,
            {
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            },
        ),
        "SUPABASE_RPC_FAILED",
        # PostgREST's message and hint are free text: only the body's keys (issue 22)
        {"http_status": 401, "response_body": lambda v: v["keys"] == ["hint", "message"]},
        Outcome.ACK,
    ),
    (
        "403 42501",
        "process_expiry_batch",
        status(
            403,
            {
                "code": "42501",
                "message": "permission denied for function process_expiry_batch",
                "details": None,
                "hint": None,
            },
        ),
        "SUPABASE_RPC_FAILED",
        {"http_status": 403, "postgrest_code": "42501"},
        Outcome.ACK,
    ),
    (
        "404 PGRST202 function missing",
        "process_expiry_batch",
        status(404, PGRST202),
        "SUPABASE_RPC_FAILED",
        {
            "http_status": 404,
            "postgrest_code": "PGRST202",
            "response_body": lambda v: v["code"] == "PGRST202" and "message" in v["keys"],
        },
        Outcome.ACK,
    ),
    (
        "read timeout",
        "process_expiry_batch",
        raises(httpx.ReadTimeout, "timed out"),
        "SUPABASE_TIMEOUT",
        {"elapsed_ms": lambda v: isinstance(v, int) and v >= 0},
        Outcome.RETRY,
    ),
    (
        "connection reset",
        "claim_nightly_run",
        raises(httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        "SUPABASE_RPC_FAILED",
        {"http_status": None},
        Outcome.RETRY,
    ),
]


@pytest.mark.parametrize(
    ("name", "rpc", "fault", "code", "fields", "outcome"),
    POSTGREST_FAULTS,
    ids=[case[0] for case in POSTGREST_FAULTS],
)
def test_postgrest_fault(
    name: str,
    rpc: str,
    fault: Callable[[httpx.Request], httpx.Response],
    code: str,
    fields: dict[str, Any],
    outcome: Outcome,
    night: Night,
    postgrest: FakePostgrest,
) -> None:
    """A persistent fault on one RPC: one line with its fields, ACK/RETRY by kind, data consistent;
    then the recovery (a redelivery for RETRY, the next night for ACK) does exactly the clean run."""
    store = postgrest.store()
    log = CapturedLog(secrets=(SERVICE_ROLE_KEY,))
    driver = chain(night, night_job(night, store, log.logger))
    postgrest.faults[rpc] = Fault(fault)
    outcomes = driver.run(stop_on_retry=True)
    assert outcomes[-1] is outcome
    check_line(the_line(log, code), "ERROR", operation=rpc, **fields)
    # Transient faults are retried to the bound only; a row's error (P0001) on the batch is
    # narrowed, halving the night's batch of 4 down to one certification, and the call that
    # only passes that one fails too, so it is not a row's (4, 2, 1, 0: 4 calls).
    narrowed = rpc == "process_expiry_batch" and fields.get("postgrest_code") == "P0001"
    expected_calls = FAST.attempts if outcome is Outcome.RETRY else 4 if narrowed else 1
    assert postgrest.calls[rpc] == expected_calls
    if rpc == "claim_nightly_run":
        assert run_statuses(night.db) == []
        assert effects_count(night.db) == 0
    elif rpc == "process_expiry_batch":
        assert run_statuses(night.db) == ["running"]
        assert effects_count(night.db) == 0
    else:  # complete_run: the work and the audit row are done, the run is not marked complete
        assert run_statuses(night.db) == ["running"]
        assert night.db.execute("select count(*) from public.cron_audit_log").fetchone() == (1,)
    assert SERVICE_ROLE_KEY not in "\n".join(log.raw_lines)

    del postgrest.faults[rpc]
    if outcome is Outcome.RETRY:  # Pub/Sub redelivers what is pending once the lease lapsed
        assert driver.pending
        expire_leases(night.db)
        driver.run(())
    else:  # acknowledged: nothing is redelivered; the next night's run supersedes this one
        assert driver.pending == []
        shift_runs_to_yesterday(night.db)
        driver.run()
        if rpc != "claim_nightly_run":
            check_line(the_line(log, "RUN_ABANDONED"), "WARNING")
    assert_clean_result(night)
    store.close()


def test_postgrest_transient_fault_then_success_is_silent(
    night: Night, postgrest: FakePostgrest
) -> None:
    """A 503 once on the claim: retried inside the call, no ERROR line, the run completes."""
    postgrest.faults["claim_nightly_run"] = Fault(
        status(
            503, {"code": "PGRST001", "message": "no connection", "details": None, "hint": None}
        ),
        times=1,
    )
    log = CapturedLog()
    outcomes = chain(night, night_job(night, postgrest.store(), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    assert postgrest.calls["claim_nightly_run"] == 2
    assert "ERROR" not in log.severities()
    assert_clean_result(night)


def test_postgrest_answer_lost_after_commit_doubles_nothing(
    night: Night, postgrest: FakePostgrest
) -> None:
    """The batch committed but its answer was lost (read timeout): the retried call must not
    double any effect, and RUN_COMPLETED (the run's checkpointed totals) matches the data."""
    postgrest.faults["process_expiry_batch"] = Fault(
        raises(httpx.ReadTimeout, "timed out"), times=1, after_commit=True
    )
    log = CapturedLog()
    outcomes = chain(night, night_job(night, postgrest.store(), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    assert "ERROR" not in log.severities()
    assert_clean_result(night)
    completed = the_line(log, "RUN_COMPLETED")["context"]
    assert completed["reminders_queued"] == len(night.expected.reminders)
    assert completed["certifications_paused"] == len(night.expected.pauses)


def test_postgrest_answer_lost_after_commit_audit_totals(
    night: Night, postgrest: FakePostgrest
) -> None:
    """The same lost answer: the audit row's totals must equal the run's (and the data).

    (Found by this suite: the audit row was written from the segment's own sum of the batch
    answers, which missed the lost one; the batch RPC now returns the run's totals.)"""
    postgrest.faults["process_expiry_batch"] = Fault(
        raises(httpx.ReadTimeout, "timed out"), times=1, after_commit=True
    )
    log = CapturedLog()
    chain(night, night_job(night, postgrest.store(), log.logger)).run()
    completed = the_line(log, "RUN_COMPLETED")["context"]
    audit = night.db.execute("select totals from public.cron_audit_log").fetchone()
    assert audit is not None
    for key in ("reminders_queued", "certifications_paused", "mentors_paused", "batches"):
        assert audit[0][key] == completed[key], (key, audit[0], completed)
    assert audit[0]["reminders_queued"] == len(night.expected.reminders)


def test_postgrest_monitoring_function_missing(night: Night, postgrest: FakePostgrest) -> None:
    """404 PGRST202 on the monitoring RPC (a bad migration): MONITORING_FAILED, the audit row
    says monitoring_failed, the sweep's work stands."""
    postgrest.faults["get_missed_auto_pauses"] = Fault(
        status(404, {**PGRST202, "code": "PGRST202"})
    )
    log = CapturedLog()
    outcomes = chain(night, night_job(night, postgrest.store(), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    check_line(
        the_line(log, "MONITORING_FAILED"),
        "WARNING",
        operation="get_missed_auto_pauses",
        http_status=404,
        postgrest_code="PGRST202",
        error_type="RpcError",
    )
    assert night.db.execute(
        "select status, missed_pause_count from public.cron_audit_log"
    ).fetchall() == [("monitoring_failed", 0)]
    assert verdict(night.db, night.expected).ok
    assert run_statuses(night.db) == ["completed"]


# --------------------------------------------------------------------------- direct Postgres


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nobody listens


def test_postgres_connection_refused(night: Night, monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL pointing at a closed port: DB_OPERATION_FAILED after exactly the bounded
    number of connection attempts, RETRY, URL and password unlogged."""
    password = "rel-refused-pw-51c0ffee"
    url = f"postgresql://certexpiry:{password}@127.0.0.1:{_closed_port()}/postgres"
    leak_plugin.register_secret(password, url)
    log = CapturedLog(secrets=(url,))
    # Bounded by the attempt count alone (the time bound is far off), so the count is exact.
    policy = RetryPolicy(attempts=3, max_seconds=600, initial_wait_s=0.001, max_wait_s=0.002)
    attempts: list[str] = []
    connect = psycopg.connect

    def counting_connect(conninfo: str = "", **kwargs: Any) -> Any:
        if conninfo == url:
            attempts.append(conninfo)
        return connect(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting_connect)  # what pg_store calls
    store = pg_store(url, retry=policy, connect_timeout_s=2)
    assert deliver(night_job(night, store, log.logger)) is Outcome.RETRY
    assert len(attempts) == policy.attempts  # retried, and only to the bound
    check_line(
        the_line(log, "DB_OPERATION_FAILED"),
        "ERROR",
        operation="claim_nightly_run",
        error_type="DatabaseError",
    )
    text = "\n".join(log.raw_lines)
    assert password not in text
    assert "127.0.0.1:" not in text.replace('"127.0.0.1", port', "")
    assert run_statuses(night.db) == []


def test_postgres_statement_timeout(night: Night) -> None:
    """A database slow for every row (each certification's effects outlive statement_timeout,
    57014): the batches are narrowed to one certification, which times out alone, and so does
    the call passing it with the next one, so it is the database, not a row. Nothing is passed
    or kept, Pub/Sub redelivers the message, which finishes the night once the slowness is gone."""
    slow_down = faults.slow(
        night.db, "certexpiry.certification_idempotency_log", 0.3, events="insert"
    )
    log = CapturedLog()
    store = RpcStore(PgTransport(night.url, statement_timeout_ms=100, retry=FAST))
    job = night_job(night, store, log.logger)
    assert deliver(job) is Outcome.RETRY
    check_line(
        the_line(log, "DB_OPERATION_FAILED"),
        "ERROR",
        operation="process_expiry_batch",
        sqlstate="57014",
    )
    assert effects_count(night.db) == 0
    assert run_statuses(night.db) == ["running"]
    assert len(log.with_code("ROW_FAILED_ALONE")) == 1
    slow_down.remove()
    night.db.execute(
        "update certexpiry.cron_runs set lease_until = '-infinity'"
    )  # the lease lapses
    chain(night, job).run()  # Pub/Sub's redelivery of the trigger, and the chain after it
    assert_clean_result(night)
    store.close()


def test_postgres_serialization_failure_is_retried(night: Night) -> None:
    """40001 twice, then success: retried inside the call, no ERROR, nothing doubled."""
    faults.fail_n_times(night.db, "certexpiry.cron_runs", 2)
    log = CapturedLog()
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    assert "ERROR" not in log.severities()
    assert_clean_result(night)


def test_postgres_serialization_failure_persisting(night: Night) -> None:
    """40001 on every attempt: DB_OPERATION_FAILED with the SQLSTATE, RETRY, nothing written;
    the redelivery after the failures stop completes the run exactly once."""
    serialize_fail = faults.refuse(
        night.db, "certexpiry.cron_runs", errcode="40001", message=faults.SERIALIZATION_FAILURE
    )
    log = CapturedLog()
    driver = chain(night, night_job(night, pg_store(night.url, retry=FAST), log.logger))
    outcomes = driver.run(stop_on_retry=True)
    assert outcomes == [Outcome.RETRY]
    check_line(
        the_line(log, "DB_OPERATION_FAILED"),
        "ERROR",
        operation="process_expiry_batch",
        sqlstate="40001",
    )
    assert effects_count(night.db) == 0
    serialize_fail.remove()
    expire_leases(night.db)
    driver.run(())  # the redelivery of the refused trigger
    assert_clean_result(night)


def test_trigger_raising_on_some_rows(night: Night) -> None:
    """A trigger refusing some certifications: one DB_OPERATION_FAILED per row with its ids and
    SQLSTATE, the rest of each batch kept, the refused ones flagged by monitoring."""
    expired = sorted(night.expected.pauses)
    refused = expired[:3]
    faults.refuse(night.db, "certifications", refused)
    log = CapturedLog()
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    failures = log.with_code("DB_OPERATION_FAILED")
    assert sorted(f["context"]["certification_id"] for f in failures) == refused
    for failure in failures:
        check_line(
            failure,
            "ERROR",
            operation="auto_pause",
            sqlstate="P0001",
            peer_mentor_id=lambda v: isinstance(v, str) and len(v) == 36,
            routine=lambda v: v.split(" < ")[0] == "public.refuse",
        )
    missed = the_line(log, "MISSED_AUTO_PAUSE")
    check_line(missed, "WARNING", missed_pause_count=3, missed_ids=lambda v: sorted(v) == refused)
    mentors = {
        str(row[0])
        for row in night.db.execute(
            "select peer_mentor_id from public.certifications where id = any(%s::uuid[])",
            (refused,),
        )
    }
    rest = Expectation(
        pauses=night.expected.pauses - set(refused),
        mentors=night.expected.mentors - mentors,
        reminders=night.expected.reminders,
    )
    assert verdict(night.db, rest).ok
    assert night.db.execute(
        "select missed_pause_count, status from public.cron_audit_log"
    ).fetchall() == [(3, "completed")]


@pytest.mark.leak_scan_exempt("plants a mentor row in an error message on purpose")
def test_trigger_error_quoting_the_mentor_row_leaks_no_pii(night: Night) -> None:
    """A trigger refusing a mentor with `RAISE ... '%', NEW` quotes the whole row (name,
    national id, e-mail) in the error that becomes DB_OPERATION_FAILED.details: no field of it
    may reach the log. (Found by this suite: the name used to pass the sanitiser.)"""
    mentor_ids = [
        str(row[0])
        for row in night.db.execute(
            "select distinct peer_mentor_id from public.certifications where id = any(%s::uuid[])",
            (sorted(night.expected.pauses),),
        )
    ]
    faults.inject(
        night.db,
        "peer_mentors",
        "raise exception 'mentor row rejected: %', new",
        ids=mentor_ids[:2],
        name="refuse",
    )
    stream = io.StringIO()
    logger = JsonLogger(secrets=Secrets(), stream=stream)
    chain(night, night_job(night, pg_store(night.url, retry=FAST), logger)).run()
    scanner = leak_plugin.LeakScanner()
    hits = scanner.scan_text(stream.getvalue(), "trigger quoting the row")
    assert "DB_OPERATION_FAILED" in stream.getvalue()
    assert hits == [], sorted({hit.kind for hit in hits})


# --------------------------------------------------------------------------- Pub/Sub


@pytest.fixture
def real_publisher(pubsub: FakePubSub, monkeypatch: pytest.MonkeyPatch) -> PubSubPublisher:
    """The real client, pointed at the fake Pub/Sub server (the driver reads the server)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "local-demo")
    return PubSubPublisher(deadline_s=1.5)


def _segmented_job(night: Night, log: CapturedLog, publisher: Publisher) -> Job:
    return night_job(
        night,
        pg_store(night.url, retry=FAST),
        log.logger,
        publisher,
        clock=StepClock(3.0),  # a batch or two per segment: several continuations
        time_budget_s=10,
        monitoring_reserve_s=1,
    )


def test_publish_fails_transiently_then_succeeds(
    night: Night, pubsub: FakePubSub, real_publisher: PubSubPublisher
) -> None:
    """UNAVAILABLE twice: the client's bounded retry publishes; no ERROR; the chain completes."""
    pubsub.failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    log = CapturedLog()
    job = _segmented_job(night, log, real_publisher)
    outcomes = chain(night, job, Subscription.to_pubsub(pubsub)).run()
    assert set(outcomes) == {Outcome.ACK}
    assert "ERROR" not in log.severities()
    assert pubsub.calls == len(pubsub.messages) + 2
    assert_clean_result(night)


@pytest.mark.parametrize(
    "failures",
    [[grpc.StatusCode.PERMISSION_DENIED], [grpc.StatusCode.UNAVAILABLE] * 200],
    ids=["permanent", "transient-past-deadline"],
)
def test_publish_fails(
    failures: list[grpc.StatusCode],
    night: Night,
    pubsub: FakePubSub,
    real_publisher: PubSubPublisher,
) -> None:
    """Publishing the continuation fails: CONTINUATION_PUBLISH_FAILED with the topic, RETRY, the
    run waits handed off; the redelivery after its lease re-runs the segment and the chain ends.
    The publish is given up on by itself: a permanent error at once, a transient one at the
    client's deadline, long before the scripted failures would have run out."""
    pubsub.failures = list(failures)
    log = CapturedLog()
    driver = chain(
        night, _segmented_job(night, log, real_publisher), Subscription.to_pubsub(pubsub)
    )
    outcomes = driver.run(stop_on_retry=True)
    assert outcomes == [Outcome.RETRY]
    assert pubsub.messages == []
    if failures[0] == grpc.StatusCode.PERMISSION_DENIED:
        assert pubsub.calls == 1  # not retried
    else:
        assert 1 <= pubsub.calls < len(failures)
        assert len(pubsub.failures) > 0
    check_line(
        the_line(log, "CONTINUATION_PUBLISH_FAILED"),
        "ERROR",
        topic=LOCAL_TOPIC,
        # the class of what failed the publish (google.api_core's), never its message
        error_type=lambda v: v in ("PermissionDenied", "RetryError", "DeadlineExceeded"),
    )
    assert run_statuses(night.db) == ["handoff"]
    pubsub.failures = []
    expire_leases(night.db)
    driver.run(())  # the redelivery of the segment that could not publish, and the rest
    assert_clean_result(night)


# --------------------------------------------------------------------------- stdout


class _Raising(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")


def _closed() -> io.StringIO:
    stream = io.StringIO()
    stream.close()
    return stream


def _broken_pipe() -> io.TextIOWrapper:
    read_end, write_end = os.pipe()
    os.close(read_end)
    return open(write_end, "w", encoding="utf-8")  # closed by the test


@pytest.mark.parametrize(
    "make_stream", [_Raising, _closed, _broken_pipe], ids=["raising", "closed", "broken-pipe"]
)
def test_stdout_failing_the_sweep_still_completes(
    make_stream: Callable[[], Any], night: Night
) -> None:
    """A stdout that raises, is closed or has lost its reader drops lines (counted) and the sweep
    completes with the right data."""
    stream = make_stream()
    logger = JsonLogger(secrets=Secrets(), stream=stream)
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), logger)).run()
    assert outcomes == [Outcome.ACK]
    assert logger.dropped > 5
    assert_clean_result(night)
    assert run_statuses(night.db) == ["completed"]
    with contextlib.suppress(OSError):
        stream.close()


@dataclass
class _RecordingPoller:
    """A poller recording the fds it watches and the timeout (ms) of every wait it asks for."""

    inner: Any
    fds: list[int] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)

    def register(self, fd: int, events: int) -> None:
        self.fds.append(fd)
        self.inner.register(fd, events)

    def poll(self, timeout_ms: int) -> Any:
        self.waits.append(timeout_ms)
        return self.inner.poll(timeout_ms)


def test_stdout_blocked_costs_one_budget_then_recovers(
    night: Night, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stops reading (a full pipe): the sweep waits for it once, one write budget,
    and never again, the data is right, and once the pipe drains the next line reports how many
    lines were dropped."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"\n" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    stream = open(write_end, "w", encoding="utf-8")  # noqa: SIM115  # closed below
    logger = JsonLogger(secrets=Secrets(), stream=stream)
    pollers: list[_RecordingPoller] = []
    real_poll = select.poll

    def recording_poll() -> _RecordingPoller:
        pollers.append(_RecordingPoller(real_poll()))
        return pollers[-1]

    monkeypatch.setattr(select, "poll", recording_poll)
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), logger)).run()
    monkeypatch.undo()
    # A pipe is written through the bounded writer: its poller watches the pipe.
    (poller,) = [found for found in pollers if write_end in found.fds]
    assert outcomes == [Outcome.ACK]
    assert_clean_result(night)
    dropped = logger.dropped
    assert dropped > 5, dropped
    # What the sweep waited for, as asked of poll (not measured): the first dropped line waited
    # out one budget, every later one gave up at once.
    budget_ms = 50  # a line's write budget (docs/logging.md, "Failures of the log itself")
    waited = [timeout_ms for timeout_ms in poller.waits if timeout_ms > 0]
    assert len(waited) == 1, poller.waits
    assert waited[0] <= budget_ms, poller.waits
    assert len(poller.waits) >= dropped  # every dropped line was tried, without waiting

    drained = bytearray()
    reader = threading.Thread(target=lambda: _drain(read_end, drained), daemon=True)
    reader.start()
    room = select.poll()
    room.register(write_end, select.POLLOUT)
    assert room.poll(10_000), "the reader did not make room in the pipe"
    logger.info(_code("RUN_COMPLETED"), "after the reader came back")
    stream.close()
    reader.join(5)
    text = drained.decode("utf-8", "replace")
    notice = [json.loads(line) for line in text.splitlines() if '"LOG_LINES_DROPPED"' in line]
    assert notice
    assert notice[0]["context"]["lines_dropped"] == dropped
    assert notice[0]["severity"] == "WARNING"


def _drain(fd: int, into: bytearray) -> None:
    while True:
        ready, _, _ = select.select([fd], [], [], 2)
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        into += chunk


def _code(name: str) -> Any:
    from certexpiry.codes import Code

    return Code[name]


# --------------------------------------------------------------------------- monitoring and audit


def test_monitoring_query_failing(night: Night) -> None:
    """The monitoring RPC refused (42501): MONITORING_FAILED (WARNING), the audit row says
    monitoring_failed, and the sweep's work and completion stand."""
    night.db.execute(
        "revoke execute on function public.get_missed_auto_pauses(text, date, integer) from service_role"
    )
    log = CapturedLog()
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    check_line(
        the_line(log, "MONITORING_FAILED"),
        "WARNING",
        operation="get_missed_auto_pauses",
        sqlstate="42501",
        error_type="DatabaseError",
    )
    assert night.db.execute("select status from public.cron_audit_log").fetchall() == [
        ("monitoring_failed",)
    ]
    assert verdict(night.db, night.expected).ok
    assert run_statuses(night.db) == ["completed"]
    assert len(log.with_code("RUN_COMPLETED")) == 1


def test_audit_upsert_failing(night: Night) -> None:
    """The audit upsert refused (42501): AUDIT_FAILED (WARNING), no audit row, and the sweep's
    work and completion stand."""
    night.db.execute(
        "revoke execute on function public.upsert_cron_audit(uuid, integer, jsonb, text, date, integer, "
        "jsonb, bigint, timestamptz) from service_role"
    )
    log = CapturedLog()
    outcomes = chain(night, night_job(night, pg_store(night.url, retry=FAST), log.logger)).run()
    assert outcomes == [Outcome.ACK]
    check_line(
        the_line(log, "AUDIT_FAILED"), "WARNING", operation="upsert_cron_audit", sqlstate="42501"
    )
    assert night.db.execute("select count(*) from public.cron_audit_log").fetchone() == (0,)
    assert verdict(night.db, night.expected).ok
    assert run_statuses(night.db) == ["completed"]
    assert len(log.with_code("RUN_COMPLETED")) == 1


@dataclass
class _AuditRaises:
    """A store whose audit upsert raises something unexpected."""

    inner: RpcStore

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def upsert_audit(self, row: AuditRow) -> None:
        raise RuntimeError("audit store exploded")


def test_audit_upsert_raising_unexpectedly(night: Night) -> None:
    """An unexpected exception from the audit upsert is AUDIT_FAILED with its type; the run
    still completes with the right data."""
    log = CapturedLog()
    store = _AuditRaises(pg_store(night.url, retry=FAST))
    outcomes = chain(night, night_job(night, store, log.logger)).run()
    assert outcomes == [Outcome.ACK]
    check_line(the_line(log, "AUDIT_FAILED"), "WARNING", error_type="RuntimeError")
    assert verdict(night.db, night.expected).ok
    assert run_statuses(night.db) == ["completed"]


def test_unknown_run_id_never_reaches_data(night: Night) -> None:
    """A continuation naming a run that does not exist is INVALID_MESSAGE and writes nothing."""
    log = CapturedLog()
    body = json.dumps(
        {"kind": "resume", "run_id": str(uuid.uuid4()), "segment": 3, "cursor": None}
    ).encode()
    assert (
        deliver(night_job(night, pg_store(night.url, retry=FAST), log.logger), body) is Outcome.ACK
    )
    check_line(the_line(log, "INVALID_MESSAGE"), "ERROR", segment=3)
    assert run_statuses(night.db) == []
    assert effects_count(night.db) == 0
