"""One invocation of the nightly job: decode, claim, sweep, then hand off or finish.

The decisions live elsewhere (what is due: SQL; when to stop: budget.py; who owns the run: the
claim RPCs); this module sequences them and logs every step. `handle_event` never raises: it
returns ACK or RETRY, and the entry point turns RETRY into an HTTP error so that Pub/Sub
redelivers the message later.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from certexpiry.budget import TimeBudget
from certexpiry.codes import Code
from certexpiry.errors import (
    STATEMENT_TIMEOUT,
    CertexpiryError,
    ContractError,
    DatabaseError,
    InvalidMessage,
    PublishError,
    RpcError,
    RunBusy,
    StoreError,
)
from certexpiry.log import JsonLogger, TraceContext, bind_run, new_invocation_id
from certexpiry.messages import NightlyTrigger, Resume, decode
from certexpiry.monitoring import monitor_and_audit
from certexpiry.publisher import Publisher
from certexpiry.redact import is_sqlstate
from certexpiry.reports import log_record_failures
from certexpiry.retry import retries_reported_to
from certexpiry.settings import Settings
from certexpiry.store import COUNT_KEYS, Claim, Store


class Outcome(enum.Enum):
    """What the entry point tells Pub/Sub."""

    ACK = "ack"
    RETRY = "retry"


@dataclass
class Job:
    """Everything an invocation needs, wired once per instance by main.py."""

    settings: Settings
    store: Store
    publisher: Publisher
    log: JsonLogger
    clock: Callable[[], float] = time.monotonic
    new_run_id: Callable[[], UUID] = uuid.uuid4


@dataclass
class _Narrowing:
    """How a segment gets past a batch that fails as a whole (docs/decisions/0028): the same
    page again with half as many certifications, down to one; a certification that fails even
    alone is passed as failed by the next call, which carries its SQLSTATE (`failed_ahead`):
    a call that only passes it (batch size 0), or, after a statement timeout, one that passes
    it and does the next certification (whose timing out too means the database is slow).
    Carried in the continuation, so a hand-off does not start the search again."""

    batch_size: int
    failed_ahead: list[str] = field(default_factory=list)


@dataclass
class _Segment:
    """The state of the segment this invocation is running."""

    claim: Claim
    log: JsonLogger
    narrowing: _Narrowing
    # Where the run stands: from the claim's checkpoint, then each batch's answer.
    totals: dict[str, int] = field(init=False)
    cursor: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.cursor = self.claim.cursor
        self.totals = dict(self.claim.totals)


class _Invocation:
    """The invocation's logger, bound to the run as soon as its id is known.

    Before that it carries a UUID of its own, so that even an invalid message's line is tied
    to something; the top-level error handling logs with whatever is bound by then, and what
    libraries log in the invocation's context (records, warnings) carries the same id
    (``certexpiry.log.bind_run``, by contextvars).
    """

    def __init__(self, log: JsonLogger) -> None:
        self.log = log.bind(run_id=new_invocation_id())
        self._unbind = bind_run(self.log)

    def bind(self, run_id: object) -> JsonLogger:
        self.log = self.log.bind(run_id=str(run_id))
        self._unbind()
        self._unbind = bind_run(self.log)
        return self.log

    def close(self) -> None:
        self._unbind()

    def retried(self, error: StoreError, attempt: int) -> None:
        """A transient failure the transport retries: one line, on the run's logger by then."""
        log_retry(self.log, error, attempt)


def log_retry(log: JsonLogger, error: StoreError, attempt: int) -> None:
    """TRANSIENT_RETRY for one retry: the operation, the attempt that failed and the error's
    code (SQLSTATE, or HTTP status and PostgREST code), never its text."""
    log.warning(
        Code.TRANSIENT_RETRY,
        "A call to the database failed transiently; trying it again.",
        attempt=attempt,
        **error.retry_context(),
    )


def handle_event(
    job: Job, event_type: str | None, data: Any, *, trace: TraceContext | None = None
) -> Outcome:
    """Run one invocation for one Pub/Sub CloudEvent; log everything, never raise."""
    invocation = _Invocation(job.log.bind(trace=trace))
    try:
        with retries_reported_to(invocation.retried):
            return _dispatch(job, invocation, event_type, data)
    except RunBusy as exc:
        invocation.bind(exc.run_id).info(
            Code.RUN_BUSY,
            "The run is held by a live invocation; Pub/Sub will redeliver.",
            **exc.log_context(),
        )
        return Outcome.RETRY
    except StoreError as exc:
        invocation.log.error(
            exc.code, "A call to the database failed.", exc=exc, **exc.log_context()
        )
        return Outcome.RETRY if exc.transient else Outcome.ACK
    except PublishError as exc:
        invocation.log.error(
            exc.code,
            "The continuation could not be published; Pub/Sub will redeliver.",
            exc=exc,
            **exc.log_context(),
        )
        return Outcome.RETRY
    except CertexpiryError as exc:
        invocation.log.error(
            exc.code,
            "The invocation stopped on an error (see error_code and context).",
            **exc.log_context(),
        )
        return Outcome.ACK
    except Exception as exc:  # noqa: BLE001  # the top-level catch the spec asks for
        invocation.log.error(
            Code.UNEXPECTED_EXCEPTION,
            "Unexpected exception in the nightly sweep.",
            exc=exc,
            error_type=type(exc).__name__,
        )
        return Outcome.ACK
    finally:
        invocation.close()


def _dispatch(job: Job, invocation: _Invocation, event_type: str | None, data: Any) -> Outcome:
    try:
        envelope, message = decode(event_type, data)
    except InvalidMessage as exc:
        invocation.log.error(
            Code.INVALID_MESSAGE,
            "Ignored a message this function does not accept.",
            **exc.log_context(),
        )
        return Outcome.ACK
    message_id = envelope.message_id  # logged only in a message id's form
    if isinstance(message, NightlyTrigger):
        return _nightly(job, invocation, message_id)
    return _resume(job, invocation, message, message_id)


def _nightly(job: Job, invocation: _Invocation, message_id: str | None) -> Outcome:
    settings = job.settings
    run_id = job.new_run_id()
    invocation.bind(run_id)  # the id this invocation proposes, until the claim names the run
    claim = job.store.claim_nightly_run(run_id, settings.org_timezone, settings.lease_s)
    log = invocation.bind(claim.run_id)
    for abandoned in claim.abandoned:
        log.warning(
            Code.RUN_ABANDONED,
            "An earlier run was left unfinished; tonight's run supersedes it.",
            run_id=str(abandoned),
        )
    if claim.outcome == "completed":
        log.info(
            Code.DUPLICATE_DELIVERY,
            "Tonight's run has already completed; nothing to do.",
            message_id=message_id,
            nightly_key=_iso(claim.today),
        )
        return Outcome.ACK
    if claim.outcome == "busy":
        raise RunBusy(str(claim.run_id), claim.segment)
    if claim.outcome not in ("started", "resumed"):  # not an answer of claim_nightly_run
        raise ContractError("claim_nightly_run", ["outcome (literal_error)"])
    if claim.missed_nights:
        log.warning(
            Code.NIGHTS_MISSED,
            f"{len(claim.missed_nights)} nights before tonight have no run.",
            details=[night.isoformat() for night in claim.missed_nights],
            nightly_key=_iso(claim.today),
            timezone=settings.org_timezone,
        )
    code = Code.RUN_STARTED if claim.outcome == "started" else Code.RUN_RESUMED
    log.info(
        code,
        f"Nightly run {claim.outcome}.",
        message_id=message_id,
        segment=claim.segment,
        nightly_key=_iso(claim.today),
        timezone=settings.org_timezone,
    )
    return _run_segment(job, _Segment(claim, log, _Narrowing(settings.batch_size)))


def _resume(job: Job, invocation: _Invocation, message: Resume, message_id: str | None) -> Outcome:
    log = invocation.bind(message.run_id)
    claim = job.store.claim_continuation(message.run_id, message.segment, job.settings.lease_s)
    if claim.outcome == "unknown":
        log.error(
            Code.INVALID_MESSAGE,
            "Ignored a continuation for a run that does not exist.",
            message_id=message_id,
            segment=message.segment,
        )
        return Outcome.ACK
    if claim.outcome == "duplicate":
        log.info(
            Code.DUPLICATE_DELIVERY,
            "Ignored a duplicate or stale continuation.",
            message_id=message_id,
            segment=message.segment,
        )
        return Outcome.ACK
    if claim.outcome == "busy":
        raise RunBusy(str(claim.run_id), claim.segment)
    log.info(
        Code.SEGMENT_STARTED,
        "Continuation claimed; resuming from the checkpoint.",
        message_id=message_id,
        segment=claim.segment,
        nightly_key=_iso(claim.today),
    )
    narrowing = _Narrowing(
        job.settings.batch_size
        if message.batch_size is None
        else min(message.batch_size, job.settings.batch_size),
        list(message.failed_ahead),
    )
    return _run_segment(job, _Segment(claim, log, narrowing))


def _run_segment(job: Job, segment: _Segment) -> Outcome:
    """The segment's batches, then a hand-off or the end of the run. Once the run is claimed,
    a night that cannot go on still reaches monitoring and its audit row (status failed): only
    a transient failure, which Pub/Sub's redelivery resumes from the checkpoint, a publish
    failure (the hand-off redelivered) and a live lease elsewhere end it without them."""
    try:
        return _sweep(job, segment)
    except (RunBusy, PublishError):
        raise
    except StoreError as exc:
        if exc.transient:
            raise
        segment.log.error(
            exc.code,
            "A call to the database failed; the night stops here.",
            exc=exc,
            segment=segment.claim.segment,
            cursor=segment.cursor,
            **exc.log_context(),
        )
        return _stopped(job, segment, exc.operation)
    except Exception as exc:  # noqa: BLE001  # the night still reaches its audit row
        segment.log.error(
            Code.UNEXPECTED_EXCEPTION,
            "Unexpected exception in the nightly sweep; the night stops here.",
            exc=exc,
            error_type=type(exc).__name__,
            segment=segment.claim.segment,
            cursor=segment.cursor,
        )
        return _stopped(job, segment, None)


def _sweep(job: Job, segment: _Segment) -> Outcome:
    settings, log, claim, narrowing = job.settings, segment.log, segment.claim, segment.narrowing
    budget = TimeBudget(
        budget_s=settings.time_budget_s, reserve_s=settings.monitoring_reserve_s, clock=job.clock
    )
    while True:
        if not budget.can_start_batch():
            return _hand_off(job, segment, budget)
        started = job.clock()
        try:
            result = job.store.process_batch(
                claim.run_id,
                claim.segment,
                segment.cursor,
                narrowing.batch_size,
                settings.reminder_days,
                settings.lease_s,
                failed_ahead=tuple(narrowing.failed_ahead),
            )
        except StoreError as exc:
            budget.record_batch(job.clock() - started)
            _narrow(segment, exc)
            continue
        duration_s = job.clock() - started
        budget.record_batch(duration_s)
        if result.fenced:
            return _fenced(segment)
        log_record_failures(log, result.failures)
        segment.totals = dict(result.run_totals)
        log.info(
            Code.BATCH_DONE,
            "Batch processed.",
            segment=claim.segment,
            duration_ms=int(duration_s * 1000),
            **_counts(result.counts),
        )
        segment.cursor = result.next_cursor
        if narrowing.failed_ahead:  # the search found its rows: full batches again
            segment.narrowing = narrowing = _Narrowing(settings.batch_size)
        if result.done:
            return _finish(job, segment, budget)


def _narrow(segment: _Segment, error: StoreError) -> None:
    """After a batch failed as a whole, nothing of it kept: the same page again, half as large;
    at one certification, that certification is passed as failed by the next call (with its
    SQLSTATE) and what follows gets done. Raises the error when no smaller batch can help: a
    refusal of the call, a transient failure (redelivered), a call that only passes
    certifications failing too (not a row's error: the night stops), or a second
    certification in a row that outlives the statement timeout alone (the database is slow,
    not a row: nothing of the passing is kept, the redelivery resumes from the checkpoint)."""
    narrowing = segment.narrowing
    sqlstate = _row_sqlstate(error)
    if sqlstate is None or narrowing.batch_size == 0:
        raise error
    if narrowing.batch_size > 1:
        narrowing.batch_size = max(1, narrowing.batch_size // 2)
        segment.log.warning(
            Code.BATCH_SHRUNK,
            "A batch failed as a whole; going on with smaller batches.",
            segment=segment.claim.segment,
            batch_size=narrowing.batch_size,
            **error.log_context(),
        )
        return
    if sqlstate == STATEMENT_TIMEOUT and STATEMENT_TIMEOUT in narrowing.failed_ahead:
        raise error
    narrowing.failed_ahead.append(sqlstate)
    # A timed-out certification is passed together with the next one, so that a database slow
    # for every row is told from one slow row before anything is passed.
    narrowing.batch_size = 1 if sqlstate == STATEMENT_TIMEOUT else 0
    segment.log.warning(
        Code.ROW_FAILED_ALONE,
        "A certification fails even in a batch of one; the next call passes it as failed.",
        segment=segment.claim.segment,
        cursor=segment.cursor,
        position=len(narrowing.failed_ahead),
        **error.log_context(),
    )


# SQLSTATE classes about the call or the server, not a row: a smaller batch fails the same way.
# Feature not supported, invalid authorization, syntax or access rule (42501, 42883), invalid
# catalog or schema name; operator intervention (57014 aside, handled first), system error (I/O),
# configuration file error.
_CALL_SQLSTATE_CLASSES = ("0A", "28", "3D", "3F", "42", "57", "58", "F0")


def _row_sqlstate(error: StoreError) -> str | None:
    """The SQLSTATE of a batch failure a smaller batch may not have, or None: a statement
    timeout (57014), or an error that is neither transient nor about the call itself, so
    possibly one row's (a trigger raising, an ASSERT, a constraint no row's isolation caught).
    None for an answer outside the contract (the batch committed), a refusal of the call
    (permission, a missing function: PostgREST's PGRST codes, HTTP 401/403/404 without a
    SQLSTATE) or a driver error without one."""
    if error.statement_timeout:
        return STATEMENT_TIMEOUT
    if error.transient or isinstance(error, ContractError):
        return None
    if isinstance(error, DatabaseError):
        code = error.sqlstate
    elif isinstance(error, RpcError):
        code = error.postgrest_code
    else:
        return None
    if code is None or not is_sqlstate(code) or code.startswith(_CALL_SQLSTATE_CLASSES):
        return None
    return code


def _stopped(job: Job, segment: _Segment, operation: str | None) -> Outcome:
    """The night cannot go on (the error's line is written): monitoring and the audit row
    (status failed: what is done, and the expired certifications still unpaused), then
    RUN_STOPPED. The run is left unfinished, for the next night to supersede; the message is
    acknowledged, since a redelivery would stop at the same place."""
    log, claim = segment.log, segment.claim
    duration_ms = _monitor(job, segment, stopped=True)
    log.warning(
        Code.RUN_STOPPED,
        "Nightly run stopped half-way; its audit row says failed.",
        segment=claim.segment,
        cursor=segment.cursor,
        operation=operation,
        duration_ms=duration_ms,
        **_counts(segment.totals),
    )
    return Outcome.ACK


def _hand_off(job: Job, segment: _Segment, budget: TimeBudget) -> Outcome:
    settings, log, claim, narrowing = job.settings, segment.log, segment.claim, segment.narrowing
    if not job.store.handoff(claim.run_id, claim.segment, settings.lease_s):
        return _fenced(segment)
    if settings.continuation_topic is None:
        log.error(
            Code.INVALID_SETTINGS,
            "CONTINUATION_TOPIC is not set; the run stays handed off until redelivery.",
            setting="CONTINUATION_TOPIC",
        )
        return Outcome.RETRY
    message = Resume(
        kind="resume",
        run_id=claim.run_id,
        segment=claim.segment + 1,
        cursor=segment.cursor,
        batch_size=narrowing.batch_size if narrowing.batch_size < settings.batch_size else None,
        failed_ahead=tuple(narrowing.failed_ahead),
    )
    published_id = job.publisher.publish(
        settings.continuation_topic, message.to_bytes(), {"cron_run_id": str(claim.run_id)}
    )
    log.info(
        Code.CONTINUATION_PUBLISHED,
        "Time budget reached; continuation published.",
        segment=message.segment,
        published_message_id=published_id,
        elapsed_ms=int(budget.elapsed_s() * 1000),
        batches=budget.batches,
        topic=settings.continuation_topic,
    )
    return Outcome.ACK


def _monitor(job: Job, segment: _Segment, *, stopped: bool) -> int:
    """The end of a run, completed or stopped half-way: monitoring and the audit row (status
    failed when stopped); returns the run's duration so far."""
    claim = segment.claim
    duration_ms = _run_duration_ms(claim)
    monitor_and_audit(
        job.store,
        segment.log,
        run_id=claim.run_id,
        timezone=job.settings.org_timezone,
        today=claim.today,
        segments=claim.segment + 1,
        totals=segment.totals,
        duration_ms=duration_ms,
        missed_ids_limit=job.settings.missed_ids_limit,
        stopped=stopped,
    )
    return duration_ms


def _finish(job: Job, segment: _Segment, budget: TimeBudget) -> Outcome:
    log, claim = segment.log, segment.claim
    duration_ms = _monitor(job, segment, stopped=False)
    completion = job.store.complete(claim.run_id, claim.segment)
    if completion.fenced:
        return _fenced(segment)
    log.info(
        Code.RUN_COMPLETED,
        "Nightly run completed.",
        segments=completion.segments,
        duration_ms=duration_ms,
        segment=claim.segment,
        **_counts(completion.totals),
    )
    return Outcome.ACK


def _fenced(segment: _Segment) -> Outcome:
    """Another invocation holds the run now: stop without writing anything more."""
    segment.log.warning(
        Code.RUN_FENCED,
        "Another invocation took over this run; stopping.",
        segment=segment.claim.segment,
    )
    return Outcome.ACK


def _run_duration_ms(claim: Claim) -> int:
    if claim.started_at is None:
        return 0
    return max(0, int((datetime.now(UTC) - claim.started_at).total_seconds() * 1000))


def _counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: int(counts.get(key, 0)) for key in COUNT_KEYS}


def _iso(value: object) -> str | None:
    return None if value is None else str(value)
