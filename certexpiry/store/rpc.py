"""The store over the SQL API: each port method is one RPC, its answer checked on arrival.

Every business rule lives in SQL (supabase/schemas/). The transports (certexpiry.store.postgres,
certexpiry.store.postgrest) implement the one-method `RpcTransport`, which returns the raw JSON;
`call` names the arguments from the RPC's signature and checks the answer against the contract
at once, so an answer of any other shape is a `ContractError`, never a silent default, and an
argument the RPC lacks fails before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Protocol, TypeVar, assert_never
from uuid import UUID

from certexpiry.redact import CatalogName
from certexpiry.store import answers, contract
from certexpiry.store.answers import Counts, OutboxBacklog
from certexpiry.store.contract import SQL_DEFAULT, Answer
from certexpiry.store.port import (
    AuditRow,
    BatchResult,
    Busy,
    Completed,
    Completion,
    ContinuationClaim,
    Duplicate,
    MissedReport,
    NightlyClaim,
    Owned,
    RecordFailure,
    Unknown,
)

T = TypeVar("T")


class RpcTransport(Protocol):
    """Calls one SQL API function and returns its JSON result (raises StoreError)."""

    def call(self, operation: str, params: Mapping[str, Any]) -> Any: ...

    def close(self) -> None: ...


def call(transport: RpcTransport, answer: Answer[T], **arguments: Any) -> T:
    """Call `answer`'s RPC with these arguments, named as its signature names them (`run_id`
    is sent as `p_run_id`), and check the answer against the contract (ContractError if off)."""
    return answer.parse(transport.call(answer.rpc, answer.arguments(arguments)))


def record_failures(details: Sequence[answers.RecordFailure]) -> list[RecordFailure]:
    """The rows an RPC could not process (`failures_detail`), the rest having been kept."""
    return [
        RecordFailure(
            certification_id=str(item.certification_id),
            peer_mentor_id=str(item.peer_mentor_id),
            operation=item.operation,
            sqlstate=item.sqlstate,
            names={key: CatalogName(value) for key, value in item.names().items()},
        )
        for item in details
    ]


def _nightly(answer: answers.NightlyClaim) -> NightlyClaim:
    match answer:
        case answers.NightlyOwned():
            return Owned(
                run_id=answer.run_id,
                segment=answer.segment,
                cursor=answer.cursor,
                today=answer.today,
                totals=answer.totals,
                started_at=answer.started_at,
                resumed=answer.outcome == "resumed",
                abandoned=answer.abandoned,
                missed_nights=answer.missed_nights,
            )
        case answers.NightlyCompleted():
            return Completed(answer.run_id, answer.segment, answer.today, answer.abandoned)
        case answers.NightlyBusy():
            return Busy(answer.run_id, answer.segment, answer.abandoned)
        case _:
            assert_never(answer)


def _continuation(answer: answers.SegmentClaim) -> ContinuationClaim:
    match answer:
        case answers.SegmentClaimed():
            return Owned(
                run_id=answer.run_id,
                segment=answer.segment,
                cursor=answer.cursor,
                today=answer.today,
                totals=answer.totals,
                started_at=answer.started_at,
            )
        case answers.SegmentBusy():
            return Busy(answer.run_id, answer.segment)
        case answers.SegmentDuplicate():
            return Duplicate(answer.run_id, answer.segment)
        case answers.SegmentUnknown():
            return Unknown(answer.run_id, answer.segment)
        case _:
            assert_never(answer)


class RpcStore:
    """The store the sweep uses: typed methods over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> NightlyClaim:
        return _nightly(
            call(
                self.transport,
                contract.CLAIM_NIGHTLY_RUN,
                run_id=run_id,
                timezone=timezone,
                lease_seconds=lease_s,
            )
        )

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> ContinuationClaim:
        return _continuation(
            call(
                self.transport,
                contract.CLAIM_CONTINUATION,
                run_id=run_id,
                segment=segment,
                lease_seconds=lease_s,
            )
        )

    def process_batch(
        self,
        run_id: UUID,
        segment: int,
        cursor: str | None,
        limit: int,
        reminder_days: Sequence[int],
        lease_s: int,
        failed_ahead: Sequence[str] = (),
    ) -> BatchResult:
        """The next batch after `cursor`; `failed_ahead` are the SQLSTATEs of the certifications
        right after it that failed even in a batch of one, passed as failed first."""
        answer = call(
            self.transport,
            contract.PROCESS_EXPIRY_BATCH,
            run_id=run_id,
            segment=segment,
            cursor=cursor,
            limit=limit,
            reminder_days=reminder_days,
            lease_seconds=lease_s,
            failed_ahead=failed_ahead or SQL_DEFAULT,
        )
        if isinstance(answer, answers.BatchFenced):
            return BatchResult(fenced=True, counts=Counts(), next_cursor=cursor, done=False)
        return BatchResult(
            fenced=False,
            counts=answer.counts,
            next_cursor=answer.next_cursor,
            done=answer.done,
            failures=record_failures(answer.failures_detail),
            run_totals=answer.run_totals,
        )

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool:
        """Mark the run as handed to the next segment; False when fenced out."""
        answer = call(
            self.transport,
            contract.HANDOFF_RUN,
            run_id=run_id,
            segment=segment,
            lease_seconds=lease_s,
        )
        return not answer.fenced

    def complete(self, run_id: UUID, segment: int) -> Completion:
        answer = call(self.transport, contract.COMPLETE_RUN, run_id=run_id, segment=segment)
        if isinstance(answer, answers.CompletionFenced):
            return Completion(
                fenced=True, totals=Counts(), segments=0, started_at=None, finished_at=None
            )
        return Completion(
            fenced=False,
            totals=answer.totals,
            segments=answer.segments,
            started_at=answer.started_at,
            finished_at=answer.finished_at,
        )

    def missed_auto_pauses(self, timezone: str, today: date | None, *, limit: int) -> MissedReport:
        """The count of missed auto-pauses and `limit` of their IDs, the longest overdue first."""
        answer = call(
            self.transport,
            contract.GET_MISSED_AUTO_PAUSES,
            timezone=timezone,
            today=today,
            limit=limit,
        )
        return MissedReport(
            missed_pause_count=answer.missed_pause_count,
            missed_ids=[str(item) for item in answer.missed_ids],
        )

    def upsert_audit(self, row: AuditRow) -> None:
        call(
            self.transport,
            contract.UPSERT_CRON_AUDIT,
            run_id=row.run_id,
            missed_pause_count=row.missed_pause_count,
            missed_ids=row.missed_ids,
            status=row.status,
            nightly_key=row.nightly_key,
            segments=row.segments,
            totals=row.totals,
            duration_ms=row.duration_ms,
        )

    def outbox_backlog(self) -> OutboxBacklog:
        """What waits in the outbox for the app's sender (the nightly OUTBOX_BACKLOG line)."""
        return call(self.transport, contract.OUTBOX_BACKLOG)
