"""One segment of a claimed run: its batches, then a hand-off to the next segment or the end
of the run (monitoring, the audit row, completion). Once the run is claimed, a night that
cannot go on still reaches monitoring and its audit row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from certexpiry.budget import TimeBudget
from certexpiry.codes import Code
from certexpiry.errors import PublishError, StoreError
from certexpiry.log import JsonLogger
from certexpiry.messages import Resume
from certexpiry.monitoring import monitor_and_audit
from certexpiry.reports import log_record_failures
from certexpiry.store import COUNT_KEYS, Owned
from certexpiry.sweep.job import Job, Outcome
from certexpiry.sweep.narrowing import Narrowing


@dataclass
class Segment:
    """The state of the segment this invocation is running."""

    claim: Owned
    log: JsonLogger
    narrowing: Narrowing
    # Where the run stands: from the claim's checkpoint, then each batch's answer.
    totals: dict[str, int] = field(init=False)
    cursor: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.cursor = self.claim.cursor
        self.totals = dict(self.claim.totals)


def run_segment(job: Job, segment: Segment) -> Outcome:
    """The segment's batches, then a hand-off or the end of the run. Once the run is claimed,
    a night that cannot go on still reaches monitoring and its audit row (status failed): only
    a transient failure, which Pub/Sub's redelivery resumes from the checkpoint, and a publish
    failure (the hand-off redelivered) end it without them."""
    try:
        return _sweep(job, segment)
    except PublishError:
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


def _sweep(job: Job, segment: Segment) -> Outcome:
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
            narrowing.narrow(exc, log, segment=claim.segment, cursor=segment.cursor)
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
            segment.narrowing = narrowing = Narrowing(settings.batch_size)
        if result.done:
            return _finish(job, segment, budget)


def _stopped(job: Job, segment: Segment, operation: str | None) -> Outcome:
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


def _hand_off(job: Job, segment: Segment, budget: TimeBudget) -> Outcome:
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


def _monitor(job: Job, segment: Segment, *, stopped: bool) -> int:
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


def _finish(job: Job, segment: Segment, budget: TimeBudget) -> Outcome:
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


def _fenced(segment: Segment) -> Outcome:
    """Another invocation holds the run now: stop without writing anything more."""
    segment.log.warning(
        Code.RUN_FENCED,
        "Another invocation took over this run; stopping.",
        segment=segment.claim.segment,
    )
    return Outcome.ACK


def _run_duration_ms(claim: Owned) -> int:
    return max(0, int((datetime.now(UTC) - claim.started_at).total_seconds() * 1000))


def _counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: int(counts.get(key, 0)) for key in COUNT_KEYS}
