"""The models of the function's RPC answers: pydantic models that mirror the SQL's
`jsonb_build_object` calls key by key, no unknown key (`extra="forbid"`), no missing one,
outcomes and statuses as `Literal`s. Kept apart from the RPC list (certexpiry.store.contract) so
that the toolkit's own answers (certexpiry_ops.contract) build on the same base and counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from certexpiry.errors import DIAGNOSTIC_NAMES
from certexpiry.messages import Cursor

NightlyOutcome = Literal["started", "resumed", "busy", "completed"]
ContinuationOutcome = Literal["claimed", "busy", "duplicate", "unknown"]
ClaimOutcome = Literal[NightlyOutcome, ContinuationOutcome]
RunStatus = Literal["running", "handoff", "completed", "abandoned"]  # cron_runs.status
# cron_audit_log.status; failed: the night stopped at a batch it could not get past (issue 28)
AuditStatus = Literal["completed", "monitoring_failed", "failed"]

Count = Annotated[int, Field(strict=True, ge=0)]
Segment = Annotated[int, Field(strict=True, ge=0)]


class ContractModel(BaseModel):
    """An RPC answer, exactly: unknown keys are an error, and the error never shows a value."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class CountFields(ContractModel):
    """The counts of the job, as SQL adds them (certexpiry.sum_counts): an absent key is 0.

    Absent is legitimate: a new run's totals are `{}`, and a batch whose every row failed
    reports only `failures`. A renamed key, a null, a negative or a non-integer is an error.
    """

    mentors: Count = 0
    certifications: Count = 0
    reminders_queued: Count = 0
    reminders_superseded: Count = 0
    certifications_paused: Count = 0
    mentors_paused: Count = 0
    notices_queued: Count = 0
    failures: Count = 0
    batches: Count = 0


class Counts(CountFields, Mapping[str, int]):
    """The one counts model: batch counts, run and completion totals, remediation, audit rows.

    Also a read-only `Mapping[str, int]` of all nine keys, so `dict(counts)`, `counts["mentors"]`
    and `counts.get(...)` work wherever counts were plain dicts.
    """

    def __getitem__(self, key: str) -> int:
        if key not in COUNT_KEYS:
            raise KeyError(key)
        value: int = getattr(self, key)
        return value

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # keys, as a Mapping's
        return iter(COUNT_KEYS)

    def __len__(self) -> int:
        return len(COUNT_KEYS)


COUNT_KEYS: tuple[str, ...] = tuple(CountFields.model_fields)


_SQL_NAME = Annotated[str | None, Field(default=None, max_length=128)]


class RecordFailure(ContractModel):
    """One element of `failures_detail` (certexpiry.failure_detail): which certification failed,
    its mentor, the operation and the SQLSTATE.

    No text of the error's: the SQL sends no message, and of the diagnostics' names and the
    context's functions only those the database's catalog has (certexpiry.error_names, an
    allow-list: a trigger can set those fields to any text). A name the catalog lacks is
    absent, as is every name of a certification passed after failing alone (the sweep knew
    only its SQLSTATE). An answer with a `message` is outside the contract.
    """

    certification_id: UUID
    peer_mentor_id: UUID
    operation: Literal["auto_pause", "reminder"]
    sqlstate: Annotated[str, Field(pattern=r"^[0-9A-Z]{5}$")]
    constraint_name: _SQL_NAME
    schema_name: _SQL_NAME
    table_name: _SQL_NAME
    column_name: _SQL_NAME
    datatype_name: _SQL_NAME
    # The context's functions, innermost first, joined by " < ": as long as the call stack
    # (the bisection's recursion included), so not bounded like one name.
    routine: str | None = None

    def names(self) -> dict[str, str]:
        """The names that are set (DIAGNOSTIC_NAMES: the diagnostics' and the routine)."""
        found = {key: getattr(self, key) for key in DIAGNOSTIC_NAMES}
        return {key: value for key, value in found.items() if value}


# claim_nightly_run: one model per outcome, each with exactly the keys the SQL sends.
class NightlyOwned(ContractModel):
    outcome: Literal["started", "resumed"]
    run_id: UUID
    segment: Segment
    cursor: Cursor | None
    today: date
    abandoned: tuple[UUID, ...]
    totals: Counts
    started_at: datetime
    missed_nights: tuple[date, ...]  # nights before `today` with no run (certexpiry.missed_nights)


class NightlyCompleted(ContractModel):
    outcome: Literal["completed"]
    run_id: UUID
    segment: Segment
    today: date
    abandoned: tuple[UUID, ...]


class NightlyBusy(ContractModel):
    outcome: Literal["busy"]
    run_id: UUID
    segment: Segment
    today: date
    lease_until: datetime
    abandoned: tuple[UUID, ...]


# claim_continuation.
class SegmentClaimed(ContractModel):
    outcome: Literal["claimed"]
    run_id: UUID
    segment: Segment
    cursor: Cursor | None
    today: date
    totals: Counts
    started_at: datetime


class SegmentBusy(ContractModel):
    outcome: Literal["busy"]
    run_id: UUID
    segment: Segment
    lease_until: datetime


class SegmentDuplicate(ContractModel):
    outcome: Literal["duplicate"]
    run_id: UUID
    segment: Segment
    status: RunStatus


class SegmentUnknown(ContractModel):
    outcome: Literal["unknown"]
    run_id: UUID
    segment: int  # the caller's, echoed: no run holds it


# process_expiry_batch: fenced out, or this batch's counts (at the top level) and more.
class BatchFenced(ContractModel):
    fenced: Literal[True]
    segment: Segment | None  # null when the run does not exist
    status: RunStatus | None


class CountedAnswer(CountFields):
    """An answer with the counts at its top level, beside other keys."""

    @property
    def counts(self) -> Counts:
        """Just the counts, as one `Counts`."""
        return Counts(**{key: getattr(self, key) for key in COUNT_KEYS})


class BatchProcessed(CountedAnswer):
    fenced: Literal[False]
    next_cursor: Cursor | None
    done: StrictBool
    failures_detail: tuple[RecordFailure, ...]
    run_totals: Counts


class Handoff(ContractModel):
    fenced: StrictBool
    cursor: Cursor | None
    segment: int


# complete_run: fenced out (every other key null), or the finished run.
class CompletionFenced(ContractModel):
    fenced: Literal[True]
    totals: None
    segments: None
    started_at: None
    finished_at: None
    nightly_key: None


class RunFinished(ContractModel):
    fenced: Literal[False]
    totals: Counts
    segments: Annotated[int, Field(strict=True, ge=1)]
    started_at: datetime
    finished_at: datetime
    nightly_key: date


class MissedAnswer(ContractModel):
    missed_pause_count: Count
    missed_ids: tuple[UUID, ...]
    today: date


class AuditUpserted(ContractModel):
    run_id: UUID
    missed_pause_count: Count
    resolved: StrictBool


class SchemaVersion(ContractModel):
    """schema_version's answer: the newest recorded migration (null: none) and how many."""

    latest: Annotated[str, Field(pattern=r"^[0-9]+$")] | None
    applied: Count


class OutboxBacklog(ContractModel):
    """outbox_backlog's answer: what ops watch (the nightly OUTBOX_BACKLOG line, check, nights).
    `oldest_*` are null when nothing waits; `claimed` is part of `undelivered`."""

    undelivered: Count
    claimed: Count
    oldest_undelivered_at: datetime | None
    oldest_age_s: Count | None  # whole seconds
    failed: Count
    dropped: Count


NightlyClaim = NightlyOwned | NightlyCompleted | NightlyBusy
SegmentClaim = SegmentClaimed | SegmentBusy | SegmentDuplicate | SegmentUnknown
