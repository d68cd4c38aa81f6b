"""The store port: what the sweep needs from the database, as the SQL API defines it.

Every business rule lives in SQL (supabase/migrations). The RPCs' signatures and the models of
their answers are the contract (certexpiry.contract); this module turns those answers into the
values the sweep works with. The two adapters (direct Postgres, Supabase HTTP) implement the
one-method `RpcTransport`, which returns the raw JSON: `RpcStore` checks it against the contract
at once, so an answer of any other shape is a `ContractError`, never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from certexpiry import contract
from certexpiry.contract import COUNT_KEYS as COUNT_KEYS
from certexpiry.contract import AuditStatus, Counts
from certexpiry.contract import ClaimOutcome as ClaimOutcome
from certexpiry.contract import OutboxBacklog as OutboxBacklog
from certexpiry.redact import CatalogName

T = TypeVar("T")


class RpcTransport(Protocol):
    """Calls one SQL API function and returns its JSON result (raises StoreError)."""

    def call(self, operation: str, params: Mapping[str, Any]) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Claim:
    """The answer to "may this invocation work on the run?"."""

    outcome: ClaimOutcome
    run_id: UUID
    segment: int
    cursor: str | None = None
    today: date | None = None
    totals: Mapping[str, int] = field(default_factory=Counts)
    abandoned: Sequence[UUID] = ()
    started_at: datetime | None = None
    missed_nights: Sequence[date] = ()

    @property
    def owns_run(self) -> bool:
        """True when this invocation now holds the run and must work on it."""
        return self.outcome in ("started", "resumed", "claimed")


@dataclass(frozen=True)
class RecordFailure:
    """A certification the batch could not process; the rest of the batch was kept."""

    certification_id: str
    peer_mentor_id: str
    operation: str
    sqlstate: str
    names: Mapping[str, CatalogName] = field(default_factory=dict)
    """The constraint, schema, table, column, datatype and routine the error is about, those
    the database's catalog has (``certexpiry.error_names``); never the error's message."""


# Counts are `Counts` (a Mapping) from the RPCs; fakes may script any mapping of the same keys.
@dataclass(frozen=True)
class BatchResult:
    """What one batch did, and where the next one starts."""

    fenced: bool
    counts: Mapping[str, int]
    next_cursor: str | None
    done: bool
    failures: Sequence[RecordFailure] = ()
    run_totals: Mapping[str, int] = field(default_factory=Counts)


@dataclass(frozen=True)
class Completion:
    """A run marked finished, with its totals across all segments."""

    fenced: bool
    totals: Mapping[str, int]
    segments: int
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class MissedReport:
    """The monitoring query's answer: expired, unpaused, and never auto-paused."""

    missed_pause_count: int
    missed_ids: Sequence[str]


@dataclass(frozen=True)
class AuditRow:
    """One row of cron_audit_log, as the end of a run writes it."""

    run_id: UUID
    missed_pause_count: int
    missed_ids: Sequence[str]
    status: AuditStatus
    nightly_key: date | None
    segments: int | None
    totals: Mapping[str, int]
    duration_ms: int | None


@dataclass(frozen=True)
class Remediation:
    """What a remediation paused, and the certifications it could not."""

    counts: Mapping[str, int]
    failures: Sequence[RecordFailure]


def _failures(details: Sequence[contract.RecordFailure]) -> list[RecordFailure]:
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


def _claim(answer: contract.NightlyClaim | contract.SegmentClaim) -> Claim:
    """One claim, whichever RPC and outcome it came from; what an outcome lacks stays empty."""
    claim = Claim(outcome=answer.outcome, run_id=answer.run_id, segment=answer.segment)
    if isinstance(answer, contract.NightlyCompleted | contract.NightlyBusy):
        return replace(claim, today=answer.today, abandoned=answer.abandoned)
    if isinstance(answer, contract.NightlyOwned | contract.SegmentClaimed):
        claim = replace(
            claim,
            cursor=answer.cursor,
            today=answer.today,
            totals=answer.totals,
            started_at=answer.started_at,
        )
    if isinstance(answer, contract.NightlyOwned):
        return replace(claim, abandoned=answer.abandoned, missed_nights=answer.missed_nights)
    return claim


class Store(Protocol):
    """What the sweep needs from the database (RpcStore over either adapter; fakes in tests)."""

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> Claim: ...

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> Claim: ...

    def process_batch(
        self,
        run_id: UUID,
        segment: int,
        cursor: str | None,
        limit: int,
        reminder_days: Sequence[int],
        lease_s: int,
        failed_ahead: Sequence[str] = (),
    ) -> BatchResult: ...

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool: ...

    def complete(self, run_id: UUID, segment: int) -> Completion: ...

    def missed_auto_pauses(
        self, timezone: str, today: date | None, *, limit: int
    ) -> MissedReport: ...

    def upsert_audit(self, row: AuditRow) -> None: ...

    def outbox_backlog(self) -> OutboxBacklog: ...


class RpcStore:
    """The store the sweep uses: typed methods over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def _call(self, answer: contract.Answer[T], params: Mapping[str, Any]) -> T:
        """Call the RPC and check its answer against the contract (ContractError if off)."""
        return answer.parse(self.transport.call(answer.rpc, params))

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> Claim:
        return _claim(
            self._call(
                contract.CLAIM_NIGHTLY_RUN,
                {"p_run_id": str(run_id), "p_timezone": timezone, "p_lease_seconds": lease_s},
            )
        )

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> Claim:
        return _claim(
            self._call(
                contract.CLAIM_CONTINUATION,
                {"p_run_id": str(run_id), "p_segment": segment, "p_lease_seconds": lease_s},
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
        extra = {"p_failed_ahead": list(failed_ahead)} if failed_ahead else {}
        answer = self._call(
            contract.PROCESS_EXPIRY_BATCH,
            {
                "p_run_id": str(run_id),
                "p_segment": segment,
                "p_cursor": cursor,
                "p_limit": limit,
                "p_reminder_days": list(reminder_days),
                "p_lease_seconds": lease_s,
                **extra,
            },
        )
        if isinstance(answer, contract.BatchFenced):
            return BatchResult(fenced=True, counts=Counts(), next_cursor=cursor, done=False)
        return BatchResult(
            fenced=False,
            counts=answer.counts,
            next_cursor=answer.next_cursor,
            done=answer.done,
            failures=_failures(answer.failures_detail),
            run_totals=answer.run_totals,
        )

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool:
        """Mark the run as handed to the next segment; False when fenced out."""
        answer = self._call(
            contract.HANDOFF_RUN,
            {"p_run_id": str(run_id), "p_segment": segment, "p_lease_seconds": lease_s},
        )
        return not answer.fenced

    def complete(self, run_id: UUID, segment: int) -> Completion:
        answer = self._call(contract.COMPLETE_RUN, {"p_run_id": str(run_id), "p_segment": segment})
        if isinstance(answer, contract.CompletionFenced):
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
        answer = self._call(
            contract.GET_MISSED_AUTO_PAUSES,
            {
                "p_timezone": timezone,
                "p_today": None if today is None else today.isoformat(),
                "p_limit": limit,
            },
        )
        return MissedReport(
            missed_pause_count=answer.missed_pause_count,
            missed_ids=[str(item) for item in answer.missed_ids],
        )

    def upsert_audit(self, row: AuditRow) -> None:
        self._call(
            contract.UPSERT_CRON_AUDIT,
            {
                "p_run_id": str(row.run_id),
                "p_missed_pause_count": row.missed_pause_count,
                "p_missed_ids": list(row.missed_ids),
                "p_status": row.status,
                "p_nightly_key": None if row.nightly_key is None else row.nightly_key.isoformat(),
                "p_segments": row.segments,
                "p_totals": dict(row.totals),
                "p_duration_ms": row.duration_ms,
            },
        )

    def remediate(
        self, run_id: UUID | None, certification_ids: Sequence[str], timezone: str
    ) -> Remediation:
        """Auto-pause exactly these certifications (those still expired and active); their
        auto_pause records carry `run_id`, or none (null) for a remediation outside a run."""
        answer = self._call(
            contract.REMEDIATE_AUTO_PAUSES,
            {
                "p_run_id": str(run_id) if run_id is not None else None,
                "p_certification_ids": list(certification_ids),
                "p_timezone": timezone,
            },
        )
        return Remediation(counts=answer.counts, failures=_failures(answer.failures_detail))

    def outbox_backlog(self) -> OutboxBacklog:
        """What waits in the outbox for the app's sender (the nightly OUTBOX_BACKLOG line)."""
        return self._call(contract.OUTBOX_BACKLOG, {})
