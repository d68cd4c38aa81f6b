"""One invocation of the nightly job: decode the message, claim the run, then run a segment.

The claim's answer is a tagged outcome the invocation matches on (certexpiry.store.port): a
busy run, a duplicate or an unknown run are answered here, and only a run this invocation
owns goes on to its segment (certexpiry.sweep.segment). `handle_event` never raises: it
returns ACK or RETRY, and the entry point turns RETRY into an HTTP error so that Pub/Sub
redelivers the message later.
"""

from __future__ import annotations

from typing import Any, assert_never

from certexpiry.codes import Code
from certexpiry.errors import CertexpiryError, InvalidMessage, PublishError, StoreError
from certexpiry.log import JsonLogger, TraceContext, bind_run, new_invocation_id
from certexpiry.messages import NightlyTrigger, Resume, decode
from certexpiry.retry import retries_reported_to
from certexpiry.store import Busy, Completed, Duplicate, Owned, Unknown
from certexpiry.sweep.job import Job, Outcome
from certexpiry.sweep.narrowing import Narrowing
from certexpiry.sweep.segment import Segment, run_segment


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
    match claim:
        case Completed():
            log.info(
                Code.DUPLICATE_DELIVERY,
                "Tonight's run has already completed; nothing to do.",
                message_id=message_id,
                nightly_key=_iso(claim.today),
            )
            return Outcome.ACK
        case Busy():
            return _busy(log, claim)
        case Owned():
            return _started(job, log, claim, message_id)
        case _:
            assert_never(claim)


def _started(job: Job, log: JsonLogger, claim: Owned, message_id: str | None) -> Outcome:
    """Tonight's run is this invocation's: started, or resumed after its lease lapsed."""
    settings = job.settings
    if claim.missed_nights:
        log.warning(
            Code.NIGHTS_MISSED,
            f"{len(claim.missed_nights)} nights before tonight have no run.",
            details=[night.isoformat() for night in claim.missed_nights],
            nightly_key=_iso(claim.today),
            timezone=settings.org_timezone,
        )
    log.info(
        Code.RUN_RESUMED if claim.resumed else Code.RUN_STARTED,
        f"Nightly run {'resumed' if claim.resumed else 'started'}.",
        message_id=message_id,
        segment=claim.segment,
        nightly_key=_iso(claim.today),
        timezone=settings.org_timezone,
    )
    return run_segment(job, Segment(claim, log, Narrowing(settings.batch_size)))


def _resume(job: Job, invocation: _Invocation, message: Resume, message_id: str | None) -> Outcome:
    log = invocation.bind(message.run_id)
    claim = job.store.claim_continuation(message.run_id, message.segment, job.settings.lease_s)
    match claim:
        case Unknown():
            log.error(
                Code.INVALID_MESSAGE,
                "Ignored a continuation for a run that does not exist.",
                message_id=message_id,
                segment=message.segment,
            )
            return Outcome.ACK
        case Duplicate():
            log.info(
                Code.DUPLICATE_DELIVERY,
                "Ignored a duplicate or stale continuation.",
                message_id=message_id,
                segment=message.segment,
            )
            return Outcome.ACK
        case Busy():
            return _busy(log, claim)
        case Owned():
            pass
        case _:
            assert_never(claim)
    log.info(
        Code.SEGMENT_STARTED,
        "Continuation claimed; resuming from the checkpoint.",
        message_id=message_id,
        segment=claim.segment,
        nightly_key=_iso(claim.today),
    )
    narrowing = Narrowing(
        job.settings.batch_size
        if message.batch_size is None
        else min(message.batch_size, job.settings.batch_size),
        list(message.failed_ahead),
    )
    return run_segment(job, Segment(claim, log, narrowing))


def _busy(log: JsonLogger, claim: Busy) -> Outcome:
    """A live invocation holds the run's lease: nothing to do now, Pub/Sub redelivers later."""
    log.info(
        Code.RUN_BUSY,
        "The run is held by a live invocation; Pub/Sub will redeliver.",
        run_id=str(claim.run_id),
        segment=claim.segment,
    )
    return Outcome.RETRY


def _iso(value: object) -> str | None:
    return None if value is None else str(value)
