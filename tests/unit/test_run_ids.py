"""Every line tied to its run: no line of a run, its continuations, its retries or its failures
lacks the run's cron_run_id, and an invocation that never reaches a run has a UUID of its own."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from certexpiry.errors import DatabaseError, PublishError, RpcTimeout
from certexpiry.log import install_process_logging, uninstall_process_logging
from certexpiry.messages import PUBSUB_EVENT_TYPE, Resume
from certexpiry.store import BatchResult, ClaimOutcome
from certexpiry.sweep import Outcome, handle_event
from certexpiry_ops.fakes import FakeStore, InMemoryPublisher
from certexpiry_ops.local import pubsub_event_data
from tests.jobs import make_job
from tests.logcapture import CapturedLog

NIGHTLY = pubsub_event_data(b'{"kind": "nightly"}', message_id="1234567890123456")


class FailingPublisher:
    def publish(self, topic: str, data: bytes, attributes: Any) -> str:
        raise PublishError(topic, "ServiceUnavailable")


def _resume(store: FakeStore, segment: int = 1) -> Any:
    body = Resume(kind="resume", run_id=store.run_id, segment=segment, cursor=None).to_bytes()
    return pubsub_event_data(body, message_id="2234567890123456")


def _ids(log: CapturedLog) -> list[str]:
    return [entry["cron_run_id"] for entry in log.entries]


def _labels(log: CapturedLog) -> list[str]:
    return [entry["logging.googleapis.com/labels"]["cron_run_id"] for entry in log.entries]


FAILURES: dict[str, Callable[[], BaseException]] = {
    "store": lambda: DatabaseError("process_batch", sqlstate="XX000"),
    "transient": lambda: RpcTimeout("process_batch", elapsed_ms=1),
    "unexpected": lambda: ZeroDivisionError("division by zero"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("event", ["nightly", "continuation"])
def test_a_failing_run_logs_its_failure_with_its_run_id(failure: str, event: str) -> None:
    """A store error, a transient timeout or an unexpected exception escaping a run is logged
    by the top-level handler with the run's id, like every line before it."""
    store, log = FakeStore(raises={"process_batch": FAILURES[failure]()}), CapturedLog()
    data = NIGHTLY if event == "nightly" else _resume(store)
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, data)
    # The error's line: the last one, or (a night that stopped) before monitoring and RUN_STOPPED.
    assert "ERROR" in log.severities()
    assert set(_ids(log)) == {str(store.run_id)}
    assert _labels(log) == _ids(log)


def test_a_failing_claim_is_logged_with_the_id_the_invocation_proposed() -> None:
    """claim_nightly_run failing: the line carries the run id this invocation proposed."""
    proposed = uuid.uuid4()
    store = FakeStore(raises={"claim_nightly_run": DatabaseError("claim", sqlstate="08006")})
    log = CapturedLog()
    job = make_job(store, log, new_run_id=lambda: proposed)
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    assert _ids(log) == [str(proposed)]


@pytest.mark.parametrize("event", ["nightly", "continuation"])
def test_run_busy_carries_the_busy_runs_id(event: str) -> None:
    """RUN_BUSY names the run whose lease is held."""
    store, log = FakeStore(claim_outcome="busy"), CapturedLog()
    data = NIGHTLY if event == "nightly" else _resume(store)
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, data) is Outcome.RETRY
    (entry,) = log.entries
    assert entry["error_code"] == "RUN_BUSY"
    assert entry["cron_run_id"] == str(store.run_id)


def test_publish_failure_is_logged_with_the_run_id() -> None:
    """CONTINUATION_PUBLISH_FAILED, caught at the top, carries the run's id."""
    page = BatchResult(
        fenced=False, counts={"batches": 1}, next_cursor=f"2026-11-30/{uuid.uuid4()}", done=False
    )
    store, log = FakeStore(pages=[page]), CapturedLog()
    ticks = iter(range(0, 100_000, 100))
    job = make_job(store, log, publisher=FailingPublisher(), clock=lambda: float(next(ticks)))
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY
    assert log.codes()[-1] == "CONTINUATION_PUBLISH_FAILED"
    assert set(_ids(log)) == {str(store.run_id)}


@pytest.mark.parametrize("outcome", ["duplicate", "unknown", "claimed"])
def test_continuation_outcomes_carry_the_run_id(outcome: ClaimOutcome) -> None:
    """Every answer to a continuation is logged under the run the message names."""
    store, log = FakeStore(claim_outcome=outcome), CapturedLog()
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, _resume(store))
    assert set(_ids(log)) == {str(store.run_id)}


def test_invalid_messages_get_a_uuid_per_invocation() -> None:
    """An invocation that never reaches a run logs under a UUID of its own, a new one each
    time, never null and never the process logger's."""
    log = CapturedLog()
    job = make_job(FakeStore(), log)
    handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(b"{bad", message_id="x"))
    handle_event(job, "google.cloud.other", {})
    first, second = _ids(log)
    assert uuid.UUID(first).version == uuid.UUID(second).version == 4
    assert len({first, second, log.logger.run_id}) == 3


def test_a_run_its_retry_and_its_continuations_all_carry_the_run_id() -> None:
    """A night that fails transiently, is redelivered, hands off and is continued: every line
    of every invocation carries the run's id."""
    pages = [
        BatchResult(
            fenced=False,
            counts={"batches": 1},
            next_cursor=f"2026-11-30/{uuid.uuid4()}",
            done=n == 3,
        )
        for n in range(4)
    ]
    store = FakeStore(pages=pages, raises={"process_batch": RpcTimeout("p", elapsed_ms=1)})
    log, publisher = CapturedLog(), InMemoryPublisher()
    ticks = iter(range(0, 100_000, 60))
    job = make_job(store, log, publisher=publisher, clock=lambda: float(next(ticks)))
    assert handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.RETRY  # the retry
    del store.raises["process_batch"]
    handle_event(job, PUBSUB_EVENT_TYPE, NIGHTLY)
    while publisher.messages:
        _, data, _ = publisher.messages.pop(0)
        handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(data))
    assert "CONTINUATION_PUBLISHED" in log.codes()
    assert log.codes()[-1] == "RUN_COMPLETED"
    assert set(_ids(log)) == {str(store.run_id)}
    assert _labels(log) == _ids(log)


@pytest.fixture
def uninstall() -> Iterator[None]:
    yield
    uninstall_process_logging()


def test_what_libraries_log_during_a_run_carries_the_run_id(uninstall: None) -> None:
    """Library records and warnings during an invocation carry its run's id (contextvars);
    before and after, the process logger's own UUID. (Bytes on fds 1 and 2 are read by the
    capture's thread, which cannot know the invocation: they carry the process's id.)"""
    log = CapturedLog()
    install_process_logging(log.logger, capture_fds=False)
    logging.getLogger("httpx").warning("before")

    def noisy(name: str) -> None:
        if name == "process_batch":
            logging.getLogger("httpx").warning("library says")
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("deprecated", DeprecationWarning, stacklevel=1)

    store = FakeStore(on_call=noisy)
    handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY)
    logging.getLogger("httpx").warning("after")
    records = [entry for entry in log.entries if entry["error_code"] == "LIBRARY_LOG"]
    by_logger = [(e["context"]["logger"], e["cron_run_id"]) for e in records]
    own, run = log.logger.run_id, str(store.run_id)
    assert by_logger == [("httpx", own), ("httpx", run), ("py.warnings", run), ("httpx", own)]
    assert records[2]["context"]["error_type"] == "DeprecationWarning"
    assert all(entry["cron_run_id"] for entry in log.entries)
