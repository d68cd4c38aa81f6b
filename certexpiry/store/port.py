"""The store port: what the sweep needs from the database, as values it can match on.

A claim's answer is one of a few tagged outcomes (`Owned | Completed | Busy` for tonight's run,
`Owned | Busy | Duplicate | Unknown` for a continuation), each carrying exactly what that
outcome has, so the sweep `match`es on the type and mypy holds the match exhaustive
(`assert_never`): no outcome compared as a string, no field that is empty for some outcomes,
and a busy run is an answer the sweep acts on, not an exception. `RpcStore`
(certexpiry.store.rpc) implements the port over either transport; fakes implement it in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from certexpiry.redact import CatalogName
from certexpiry.store.answers import AuditStatus, Counts, OutboxBacklog


@dataclass(frozen=True)
class Owned:
    """This invocation holds the run now and works on it, from its checkpoint (`cursor`)."""

    run_id: UUID
    segment: int
    cursor: str | None
    today: date
    totals: Mapping[str, int]
    started_at: datetime
    resumed: bool = False
    """Tonight's run was under way and its lease had lapsed: this trigger takes it over."""
    abandoned: Sequence[UUID] = ()
    """Earlier nights' runs left unfinished, superseded by tonight's (claim_nightly_run)."""
    missed_nights: Sequence[date] = ()
    """Nights before `today` with no run (claim_nightly_run)."""


@dataclass(frozen=True)
class Completed:
    """Tonight's run has already completed: the trigger is a duplicate."""

    run_id: UUID
    segment: int
    today: date
    abandoned: Sequence[UUID] = ()


@dataclass(frozen=True)
class Busy:
    """A live invocation holds the run's lease: Pub/Sub is to redeliver later."""

    run_id: UUID
    segment: int
    abandoned: Sequence[UUID] = ()


@dataclass(frozen=True)
class Duplicate:
    """A continuation for a segment already claimed, or for a run already finished."""

    run_id: UUID
    segment: int


@dataclass(frozen=True)
class Unknown:
    """A continuation for a run that does not exist."""

    run_id: UUID
    segment: int


NightlyClaim = Owned | Completed | Busy
"""claim_nightly_run's outcomes."""
ContinuationClaim = Owned | Busy | Duplicate | Unknown
"""claim_continuation's outcomes."""


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


class Store(Protocol):
    """What the sweep needs from the database (RpcStore over either transport; fakes in tests)."""

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> NightlyClaim: ...

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> ContinuationClaim: ...

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
