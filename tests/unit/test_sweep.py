"""The invocation's sequencing with a hand-written fake store: claims, hand-off, errors."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from certexpiry.errors import (
    ContractError,
    DatabaseError,
    PublishError,
    RpcError,
    RpcTimeout,
    StoreError,
)
from certexpiry.messages import PUBSUB_EVENT_TYPE, Resume
from certexpiry.redact import body_shape
from certexpiry.store import BatchResult, ClaimOutcome, MissedReport, Owned, RecordFailure
from certexpiry.sweep import Outcome, handle_event
from certexpiry_ops.fakes import FakeStore, InMemoryPublisher
from certexpiry_ops.local import LOCAL_TOPIC, pubsub_event_data
from tests.jobs import make_job
from tests.logcapture import CapturedLog

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "log-entry.schema.json"
NIGHTLY = pubsub_event_data(b'{"kind": "nightly"}', message_id="msg-1")


def _schema() -> Any:
    return json.loads(SCHEMA_PATH.read_text())


class FailingPublisher:
    def publish(self, topic: str, data: bytes, attributes: Any) -> str:
        raise PublishError(topic, "ServiceUnavailable")


def _page(done: bool, **counts: int) -> BatchResult:
    return BatchResult(
        fenced=False,
        counts={"batches": 1, **counts},
        next_cursor=f"2026-11-30/{uuid.uuid4()}",
        done=done,
    )


def test_postgrest_error_yields_schema_valid_error_line() -> None:
    """A store raising a PostgREST error gives an ERROR line with error_code, HTTP status and body (spec test 1)."""
    error = RpcError(
        "claim_nightly_run",
        http_status=500,
        body=body_shape('{"code":"XX000","message":"internal error"}', "application/json"),
        postgrest_code="XX000",
    )
    store, log = FakeStore(raises={"claim_nightly_run": error}), CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    (entry,) = log.entries
    jsonschema.validate(entry, _schema())
    assert entry["severity"] == "ERROR"
    assert entry["error_code"] == "SUPABASE_RPC_FAILED"
    assert entry["context"]["http_status"] == 500
    assert entry["context"]["response_body"]["code"] == "XX000"
    assert "internal error" not in json.dumps(entry)  # the body's text is never logged
    assert entry["context"]["operation"] == "claim_nightly_run"
    assert entry["@type"].endswith("ReportedErrorEvent")


def test_unexpected_exception_yields_stack_trace() -> None:
    """An injected runtime exception is caught at the top and logged with a stack trace (spec test 4)."""
    store, log = (
        FakeStore(raises={"process_batch": ZeroDivisionError("division by zero")}),
        CapturedLog(),
    )
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    entry = log.with_code("UNEXPECTED_EXCEPTION")[0]
    jsonschema.validate(entry, _schema())
    assert entry["severity"] == "ERROR"
    trace = entry["stack_trace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.rstrip().endswith("\nZeroDivisionError")  # the type, never the message
    assert "division by zero" not in json.dumps(entry)
    assert entry["context"]["error_type"] == "ZeroDivisionError"
    # The whole path, from the handler's top down to the frame that raised it.
    assert trace.index(", in run_segment\n") < trace.index(", in process_batch\n")
    assert trace.count('  File "') >= 3


def test_transient_store_error_asks_for_redelivery() -> None:
    """A transient failure before any publish is logged and answered RETRY."""
    store = FakeStore(
        raises={"claim_nightly_run": RpcTimeout("claim_nightly_run", elapsed_ms=30_000)}
    )
    log = CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    entry = log.entries[0]
    assert entry["error_code"] == "SUPABASE_TIMEOUT"
    assert entry["context"]["elapsed_ms"] == 30_000


def test_database_error_is_logged_with_operation_and_sqlstate() -> None:
    """A direct-Postgres failure is DB_OPERATION_FAILED with the RPC name and SQLSTATE."""
    store = FakeStore(
        raises={"process_batch": DatabaseError("process_expiry_batch", sqlstate="40P01")}
    )
    log = CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    entry = log.with_code("DB_OPERATION_FAILED")[0]
    assert entry["context"]["operation"] == "process_expiry_batch"
    assert entry["context"]["sqlstate"] == "40P01"


def test_record_failures_are_logged_by_id_and_the_run_goes_on() -> None:
    """Rows the batch reports as failed become DB_OPERATION_FAILED lines with their IDs."""
    cert, mentor = str(uuid.uuid4()), str(uuid.uuid4())
    page = BatchResult(
        fenced=False,
        counts={"batches": 1, "failures": 1},
        next_cursor=None,
        done=True,
        failures=[RecordFailure(cert, mentor, "auto_pause", "P0001")],
    )
    store, log = FakeStore(pages=[page]), CapturedLog()
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY)
    failure = log.with_code("DB_OPERATION_FAILED")[0]
    assert failure["context"]["certification_id"] == cert
    assert failure["context"]["peer_mentor_id"] == mentor
    assert failure["context"]["operation"] == "auto_pause"
    assert log.codes()[-1] == "RUN_COMPLETED"


def test_budget_reached_hands_off_and_publishes_the_cursor() -> None:
    """When the next batch would overrun the budget, the run checkpoints and publishes a continuation."""
    first = _page(False, mentors=50)
    store, log, publisher = FakeStore(pages=[first]), CapturedLog(), InMemoryPublisher()
    ticks = itertools.count()
    job = make_job(
        store,
        log,
        publisher=publisher,
        clock=lambda: next(ticks) * 100.0,
        time_budget_s=420,
        monitoring_reserve_s=15,
    )
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    assert store.names() == ["claim_nightly_run", "process_batch", "handoff"]
    (topic, data, attributes) = publisher.messages[0]
    message = Resume.model_validate_json(data)
    assert topic == LOCAL_TOPIC
    assert message.segment == 1
    assert message.cursor == first.next_cursor
    assert attributes["cron_run_id"] == str(store.run_id)
    assert log.codes()[-1] == "CONTINUATION_PUBLISHED"


def test_publish_failure_after_checkpoint_asks_for_redelivery() -> None:
    """If the continuation cannot be published, the handoff stays stored and Pub/Sub is asked to redeliver."""
    store, log = FakeStore(pages=[_page(False)]), CapturedLog()
    ticks = itertools.count()
    job = make_job(store, log, publisher=FailingPublisher(), clock=lambda: next(ticks) * 100.0)
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    assert "handoff" in store.names()
    assert log.with_code("CONTINUATION_PUBLISH_FAILED")[0]["context"]["topic"] == LOCAL_TOPIC


@pytest.mark.parametrize(
    ("outcome", "code", "expected"),
    [
        ("busy", "RUN_BUSY", Outcome.RETRY),
        ("completed", "DUPLICATE_DELIVERY", Outcome.ACK),
    ],
)
def test_nightly_claim_outcomes(outcome: ClaimOutcome, code: str, expected: Outcome) -> None:
    """A busy run asks for redelivery; a completed run acknowledges the duplicate trigger."""
    store, log = FakeStore(claim_outcome=outcome), CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is expected
    assert log.codes() == [code]
    assert store.names() == ["claim_nightly_run"]


@pytest.mark.parametrize(
    ("outcome", "code", "expected"),
    [
        ("busy", "RUN_BUSY", Outcome.RETRY),
        ("duplicate", "DUPLICATE_DELIVERY", Outcome.ACK),
        ("unknown", "INVALID_MESSAGE", Outcome.ACK),
        ("claimed", "RUN_COMPLETED", Outcome.ACK),
    ],
)
def test_continuation_claim_outcomes(outcome: ClaimOutcome, code: str, expected: Outcome) -> None:
    """Each answer of the continuation claim leads to the right log line and acknowledgement."""
    store, log = FakeStore(claim_outcome=outcome), CapturedLog()
    body = Resume(kind="resume", run_id=store.run_id, segment=2, cursor=None).to_bytes()
    assert (
        handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, pubsub_event_data(body)) is expected
    )
    assert log.codes()[-1] == code


def test_fenced_batch_stops_without_writing() -> None:
    """A batch fenced out (another invocation took over) stops the segment quietly."""
    store = FakeStore(pages=[BatchResult(fenced=True, counts={}, next_cursor=None, done=False)])
    log = CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    assert log.codes()[-1] == "RUN_FENCED"
    assert "complete" not in store.names()


def test_fenced_handoff_and_completion() -> None:
    """A lost fence at handoff or completion is logged as RUN_FENCED and nothing is published."""
    ticks = itertools.count()
    store, log, publisher = (
        FakeStore(pages=[_page(False)], handoff_ok=False),
        CapturedLog(),
        InMemoryPublisher(),
    )
    handle_event(
        make_job(store, log, publisher=publisher, clock=lambda: next(ticks) * 100.0),
        PUBSUB_EVENT_TYPE,
        NIGHTLY,
    )
    assert log.codes()[-1] == "RUN_FENCED"
    assert publisher.messages == []
    store, log = FakeStore(completion_fenced=True), CapturedLog()
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY)
    assert log.codes()[-1] == "RUN_FENCED"


def test_missing_topic_on_handoff_is_a_settings_error() -> None:
    """Without CONTINUATION_TOPIC a handoff cannot publish: INVALID_SETTINGS and a retry."""
    ticks = itertools.count()
    store, log = FakeStore(pages=[_page(False)]), CapturedLog()
    job = make_job(store, log, clock=lambda: next(ticks) * 100.0)
    job.settings = job.settings.model_copy(update={"continuation_topic": None})
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    assert log.with_code("INVALID_SETTINGS")[0]["context"]["setting"] == "CONTINUATION_TOPIC"


def test_clean_run_emits_started_batches_monitoring_audit_completed() -> None:
    """A one-segment run logs its whole story in order, all lines valid against the schema."""
    store, log = FakeStore(pages=[_page(False, mentors=50), _page(True, mentors=3)]), CapturedLog()
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY)
    assert log.codes() == [
        "RUN_STARTED",
        "BATCH_DONE",
        "BATCH_DONE",
        "MONITORING_CLEAN",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_COMPLETED",
    ]
    for entry in log.entries:
        jsonschema.validate(entry, _schema())
        assert entry["cron_run_id"] == str(store.run_id)


def test_logged_severities_match_the_catalogue() -> None:
    """Every line the sweep writes has the severity the runbook's catalogue gives its code."""
    from certexpiry.codes import CATALOGUE, Code

    scenarios: list[FakeStore] = [
        FakeStore(pages=[_page(True)]),
        FakeStore(pages=[_page(True)], missed=MissedReport(1, [str(uuid.uuid4())])),
        FakeStore(
            raises={"missed_auto_pauses": RuntimeError("x"), "upsert_audit": RuntimeError("y")}
        ),
        FakeStore(claim_outcome="busy"),
        FakeStore(claim_outcome="completed"),
        FakeStore(raises={"process_batch": ZeroDivisionError()}),
        FakeStore(raises={"claim_nightly_run": RpcTimeout("claim_nightly_run", elapsed_ms=1)}),
        FakeStore(raises={"claim_nightly_run": RpcError("claim_nightly_run", http_status=500)}),
        FakeStore(raises={"claim_nightly_run": DatabaseError("x", sqlstate="23505")}),
    ]
    seen: set[str] = set()
    for store in scenarios:
        log = CapturedLog()
        handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY)
        for entry in log.entries:
            seen.add(entry["error_code"])
            expected = CATALOGUE[Code(entry["error_code"])].severity.value
            assert entry["severity"] == expected, entry["error_code"]
    assert {"MISSED_AUTO_PAUSE", "MONITORING_FAILED", "AUDIT_FAILED", "RUN_BUSY"} <= seen


STATEMENT_TIMEOUT_ERROR = DatabaseError("process_expiry_batch", sqlstate="57014")


def _timeouts(count: int) -> Any:
    """An on_call hook: the first `count` batches hit the statement timeout."""
    left = itertools.count(count, -1)

    def on_call(name: str) -> None:
        if name == "process_batch" and next(left) > 0:
            raise STATEMENT_TIMEOUT_ERROR

    return on_call


def test_statement_timeout_shrinks_the_batch_and_the_run_goes_on() -> None:
    """A batch cancelled by the statement timeout is tried again at half the size, with a
    BATCH_SHRUNK warning each time, and the run completes."""
    store = FakeStore(pages=[_page(True, certifications=3)], on_call=_timeouts(2))
    log = CapturedLog()
    outcome = handle_event(make_job(store, log, batch_size=400), PUBSUB_EVENT_TYPE, NIGHTLY)
    assert outcome is Outcome.ACK
    limits = [args[3] for name, args in store.calls if name == "process_batch"]
    assert limits == [400, 200, 100]
    shrunk = log.with_code("BATCH_SHRUNK")
    assert [entry["context"]["batch_size"] for entry in shrunk] == [200, 100]
    assert all(entry["severity"] == "WARNING" for entry in shrunk)
    assert log.with_code("RUN_COMPLETED")


def test_a_row_outliving_the_statement_timeout_alone_is_passed() -> None:
    """A batch of one that still times out is that row's failure: the next batch passes it
    (57014) and the night completes."""
    store = PoisonedNight(3, {1}, STATEMENT_TIMEOUT_ERROR)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=2), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _failed_ahead(store) == [(), (), (), ("57014",)]
    assert (store.passed, store.done) == ([1], [0, 2])
    assert log.codes()[-1] == "RUN_COMPLETED"


def test_two_rows_in_a_row_outliving_the_statement_timeout_are_a_slow_database() -> None:
    """The batch passing a timed-out row times out too, at one row: the database is slow, not
    a row. Nothing is passed, and Pub/Sub redelivers (the error's line, no audit row)."""
    store = FakeStore(pages=[_page(True)], on_call=_timeouts(5))
    log = CapturedLog()
    outcome = handle_event(make_job(store, log, batch_size=2), PUBSUB_EVENT_TYPE, NIGHTLY)
    assert outcome is Outcome.RETRY
    assert _limits(store) == [2, 1, 1]
    assert _failed_ahead(store) == [(), (), ("57014",)]
    assert log.with_code("DB_OPERATION_FAILED")[0]["context"]["sqlstate"] == "57014"
    assert store.audits == []


def test_a_nested_envelope_is_one_invalid_message_acknowledged() -> None:
    """A 10,000-level nested attribute is one INVALID_MESSAGE line and an ACK (issue 28), not
    an UNEXPECTED_EXCEPTION; the store is never called."""
    nested: list[object] = []
    for _ in range(10_000):
        nested = [nested]
    data = pubsub_event_data(b'{"kind": "nightly"}', message_id="12345")
    data["message"]["attributes"] = {"a": nested}
    store, log = FakeStore(), CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, data) is Outcome.ACK
    assert log.codes() == ["INVALID_MESSAGE"]
    context = log.entries[0]["context"]
    assert (context["reason"], context["message_id"]) == (
        "message attributes are not strings",
        "12345",
    )
    assert store.calls == []


# A batch that fails as a whole (issue 28, item 2): narrowed down to the certification that
# fails alone; what comes before it done; the next batch passes it as failed and the night goes
# on to monitoring and its audit row.


class PoisonedNight(FakeStore):
    """`rows` certifications in the night's order; a batch covering one of `poisoned` (or
    larger than `largest`) fails whole with `error`, as a transaction rolled back; any other
    batch passes the `failed_ahead` rows after the cursor as failed (as process_expiry_batch
    does), processes its rows and moves the cursor past them."""

    def __init__(
        self,
        rows: int,
        poisoned: set[int],
        error: Exception,
        largest: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(pages=[], **kwargs)
        self.cursors = [f"2026-11-30/{uuid.UUID(int=index + 1)}" for index in range(rows)]
        self.poisoned, self.error, self.largest = poisoned, error, largest
        self.done: list[int] = []
        self.passed: list[int] = []
        self.checkpoint: str | None = None

    def _claim(self, rpc: str, segment: int) -> Any:
        claim = super()._claim(rpc, segment)
        return replace(claim, cursor=self.checkpoint) if isinstance(claim, Owned) else claim

    def process_batch(
        self,
        run_id: uuid.UUID,
        segment: int,
        cursor: str | None,
        limit: int,
        reminder_days: Any,
        lease_s: int,
        failed_ahead: Any = (),
    ) -> BatchResult:
        self._enter(
            "process_batch",
            (run_id, segment, cursor, limit, tuple(reminder_days), tuple(failed_ahead)),
        )
        start = 0 if cursor is None else self.cursors.index(cursor) + 1
        passed = list(range(start, min(start + len(failed_ahead), len(self.cursors))))
        start += len(passed)
        page = list(range(start, min(start + limit, len(self.cursors))))
        if limit > self.largest or self.poisoned & set(page):
            raise self.error
        self.done += page
        self.passed += passed
        paused = len(self.done)
        last = (passed + page)[-1:]
        self.checkpoint = self.cursors[last[0]] if last else cursor
        return BatchResult(
            fenced=False,
            counts={
                "batches": 1,
                "certifications": len(page),
                "certifications_paused": len(page),
                "failures": len(passed),
            },
            next_cursor=self.cursors[last[0]] if last else cursor,
            done=start + limit >= len(self.cursors),
            run_totals={
                "certifications_paused": paused,
                "certifications": paused,
                "failures": len(self.passed),
            },
            failures=[
                RecordFailure(
                    certification_id=str(uuid.UUID(int=row + 1)),
                    peer_mentor_id=str(uuid.UUID(int=1000 + row)),
                    operation="auto_pause",
                    sqlstate=sqlstate,
                )
                for row, sqlstate in zip(passed, failed_ahead, strict=False)
            ],
        )


ASSERT_FAILURE = DatabaseError(
    "process_expiry_batch",
    sqlstate="P0004",
    names={"table_name": "certifications", "routine": "public.app_trigger"},
)


def _limits(store: FakeStore) -> list[int]:
    return [args[3] for name, args in store.calls if name == "process_batch"]


def _failed_ahead(store: FakeStore) -> list[tuple[str, ...]]:
    return [args[5] for name, args in store.calls if name == "process_batch"]


def test_a_poisoned_row_is_narrowed_to_passed_and_the_night_completes() -> None:
    """A batch failing as a whole on one row (an ASSERT in the app's trigger, P0004) is tried
    again halved down to that row (the rows before it done meanwhile); the next batch passes
    it as failed with its SQLSTATE, full batches again after it, and the night completes:
    monitoring names it, the audit row counts it."""
    missed = [str(uuid.UUID(int=7))]
    store = PoisonedNight(10, {6}, ASSERT_FAILURE, missed=MissedReport(1, missed))
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=4), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [4, 4, 2, 2, 1, 0, 4]  # 0: the call that only passes it
    assert _failed_ahead(store) == [(), (), (), (), (), ("P0004",), ()]
    assert store.done == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert store.passed == [6]
    assert log.codes() == [
        "RUN_STARTED",
        "BATCH_DONE",
        "BATCH_SHRUNK",
        "BATCH_DONE",
        "BATCH_SHRUNK",
        "ROW_FAILED_ALONE",
        "DB_OPERATION_FAILED",
        "BATCH_DONE",
        "BATCH_DONE",
        "MISSED_AUTO_PAUSE",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_COMPLETED",
    ]
    shrunk = log.with_code("BATCH_SHRUNK")
    assert [entry["context"]["batch_size"] for entry in shrunk] == [2, 1]
    assert {entry["context"]["sqlstate"] for entry in shrunk} == {"P0004"}
    (alone,) = log.with_code("ROW_FAILED_ALONE")
    assert alone["severity"] == "WARNING"
    context = alone["context"]
    assert context["cursor"] == store.cursors[5]  # the certification after it is the one
    assert (context["sqlstate"], context["operation"]) == ("P0004", "process_expiry_batch")
    assert context["position"] == 1
    assert context["table_name"] == "certifications"
    assert "public.app_trigger" in context["routine"]
    (failed,) = log.with_code("DB_OPERATION_FAILED")
    assert failed["severity"] == "ERROR"
    assert failed["context"]["certification_id"] == str(uuid.UUID(int=7))
    assert (failed["context"]["sqlstate"], failed["context"]["operation"]) == (
        "P0004",
        "auto_pause",
    )
    (audit,) = store.audits
    assert (audit.status, list(audit.missed_ids)) == ("completed", missed)
    assert audit.totals["failures"] == 1
    for entry in log.entries:
        jsonschema.validate(entry, _schema())
        assert entry["cron_run_id"] == str(store.run_id)


def test_rows_failing_alone_one_after_the_other_are_each_passed() -> None:
    """Two certifications in a row that fail alone: each is found and passed in its turn."""
    store = PoisonedNight(6, {2, 3}, ASSERT_FAILURE)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=2), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [2, 2, 1, 0, 2, 1, 0, 2]
    assert _failed_ahead(store) == [(), (), (), ("P0004",), (), (), ("P0004",), ()]
    assert (store.passed, store.done) == ([2, 3], [0, 1, 4, 5])
    assert len(log.with_code("ROW_FAILED_ALONE")) == 2
    assert len(log.with_code("DB_OPERATION_FAILED")) == 2
    assert log.codes()[-1] == "RUN_COMPLETED"


def test_a_call_that_only_passes_failing_too_is_not_a_row_and_stops_the_night() -> None:
    """Every call fails alike, the one passing the certification without doing anything else
    too: not a row's error. The error's line, monitoring, the audit row (failed), RUN_STOPPED."""
    store = PoisonedNight(5, set(), ASSERT_FAILURE, largest=-1)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=2), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [2, 1, 0]
    assert log.codes() == [
        "RUN_STARTED",
        "BATCH_SHRUNK",
        "ROW_FAILED_ALONE",
        "DB_OPERATION_FAILED",
        "MONITORING_CLEAN",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_STOPPED",
    ]
    assert store.audits[0].status == "failed"
    assert store.passed == []


def test_the_narrowing_is_carried_across_a_hand_off() -> None:
    """The budget running out while the search is at one row: the continuation carries the
    batch size and the SQLSTATEs found, and the next segment goes on from them."""
    store = PoisonedNight(8, {5}, ASSERT_FAILURE)
    log, publisher = CapturedLog(), InMemoryPublisher()
    job = make_job(
        store,
        log,
        publisher=publisher,
        clock=lambda: 1000.0 if log.with_code("ROW_FAILED_ALONE") else 0.0,
        batch_size=4,
        monitoring_reserve_s=0,
    )
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    ((_, body, _),) = publisher.messages
    message = json.loads(body)
    assert (message["batch_size"], message["failed_ahead"]) == (0, ["P0004"])
    calls = len(_limits(store))
    store.claim_outcome = "claimed"
    resume = pubsub_event_data(body, message_id="msg-2")
    job.clock = lambda: 0.0
    assert handle_event(job, PUBSUB_EVENT_TYPE, resume) is Outcome.ACK
    assert _failed_ahead(store)[calls] == ("P0004",)
    assert _limits(store)[calls] == 0
    assert store.passed == [5]
    assert log.codes()[-1] == "RUN_COMPLETED"


def test_an_unexpected_exception_after_the_claim_still_writes_the_audit_row() -> None:
    """An exception no code expects, once the run is claimed (here completing the run): the
    UNEXPECTED_EXCEPTION line, monitoring, the audit row (failed) and RUN_STOPPED; ACK."""
    store = FakeStore(pages=[_page(True)], raises={"complete": KeyError("totals")})
    log = CapturedLog()
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    assert log.codes()[-5:] == [
        "UNEXPECTED_EXCEPTION",
        "MONITORING_CLEAN",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_STOPPED",
    ]
    assert [audit.status for audit in store.audits] == ["completed", "failed"]


def test_a_batch_too_large_for_the_database_is_narrowed_and_the_night_completes() -> None:
    """A failure a smaller batch does not have (54000, a limit exceeded) is narrowed once,
    and the night goes on at that size to RUN_COMPLETED."""
    error = DatabaseError("process_expiry_batch", sqlstate="54000")
    store = PoisonedNight(10, set(), error, largest=3)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=6), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [6, 3, 3, 3, 3]
    assert store.done == list(range(10))
    assert log.codes()[-1] == "RUN_COMPLETED"
    assert store.audits[0].status == "completed"
    assert "ERROR" not in log.severities()


@pytest.mark.parametrize(
    "error",
    [
        DatabaseError("process_expiry_batch", sqlstate="42501"),
        RpcError(
            "process_expiry_batch",
            http_status=404,
            postgrest_code="PGRST202",
        ),
        RpcError("process_expiry_batch", http_status=401),
        ContractError("process_expiry_batch", ["done (bool_type)"]),
    ],
    ids=["42501", "PGRST202", "401", "contract"],
)
def test_a_refused_call_is_not_narrowed_but_the_night_still_reaches_its_audit_row(
    error: StoreError,
) -> None:
    """A refusal of the call itself (a grant, a missing function, a bad key) or an answer
    outside the contract fails every batch size alike: one call, then the error's line,
    monitoring, the audit row (failed) and RUN_STOPPED; acknowledged."""
    store = PoisonedNight(10, set(), error, largest=0)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=8), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [8]
    assert log.codes() == [
        "RUN_STARTED",
        error.code.value,
        "MONITORING_CLEAN",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_STOPPED",
    ]
    assert log.entries[1]["context"]["operation"] == "process_expiry_batch"
    assert store.audits[0].status == "failed"


def test_a_supabase_row_failure_is_narrowed_like_a_direct_one() -> None:
    """Through PostgREST the SQLSTATE is the postgrest_code: P0001 (a trigger's RAISE) is
    narrowed to the row and passed with it, like a direct connection's."""
    error = RpcError("process_expiry_batch", http_status=400, postgrest_code="P0001")
    store = PoisonedNight(4, {0}, error)
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=4), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert _limits(store) == [4, 2, 1, 0, 4]
    assert _failed_ahead(store)[3] == ("P0001",)
    assert (store.passed, store.done) == ([0], [1, 2, 3])
    (alone,) = log.with_code("ROW_FAILED_ALONE")
    assert (alone["context"]["postgrest_code"], alone["context"]["cursor"]) == ("P0001", None)
    assert log.codes()[-4:] == [
        "MONITORING_CLEAN",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_COMPLETED",
    ]


def test_a_stopped_night_whose_audit_fails_is_still_acknowledged_once_said() -> None:
    """A refused call, and monitoring, the audit row and the backlog failing too: their
    warnings, RUN_STOPPED, an ACK."""
    store = PoisonedNight(
        3,
        {0},
        DatabaseError("process_expiry_batch", sqlstate="42501"),
        raises={
            "missed_auto_pauses": RuntimeError("x"),
            "upsert_audit": RuntimeError("y"),
            "outbox_backlog": RuntimeError("z"),
        },
    )
    log = CapturedLog()
    assert (
        handle_event(make_job(store, log, batch_size=1), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    )
    assert log.codes() == [
        "RUN_STARTED",
        "DB_OPERATION_FAILED",
        "MONITORING_FAILED",
        "AUDIT_FAILED",
        "MONITORING_FAILED",
        "RUN_STOPPED",
    ]


def test_a_transient_batch_failure_is_still_redelivered_not_narrowed() -> None:
    """A transient failure (retried in the transport already) is not narrowed: RETRY."""
    error = DatabaseError("process_expiry_batch", sqlstate="40P01")
    store = PoisonedNight(4, {0}, error)
    log = CapturedLog()
    assert handle_event(make_job(store, log, batch_size=4), PUBSUB_EVENT_TYPE, NIGHTLY) is (
        Outcome.RETRY
    )
    assert _limits(store) == [4]
    assert store.audits == []
