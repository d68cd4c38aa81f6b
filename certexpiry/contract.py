"""The typed contract between the SQL API and Python: every RPC's signature and answer.

`RPC_SIGNATURES` is the one list of the SQL API's functions (supabase/schemas/), argument by
argument as `pg_proc` has them; tests/integration/test_contract.py holds it against the
database. `ANSWERS` says what each one returns, as pydantic models that mirror the SQL's
`jsonb_build_object` calls key by key: no unknown key (`extra="forbid"`), no missing one, outcomes
and statuses as `Literal`s. `Answer.parse` turns any other shape into a `ContractError` that
names the RPC and the field paths, never the values (they may be personal data).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

from certexpiry.errors import DIAGNOSTIC_NAMES, ContractError
from certexpiry.messages import Cursor
from certexpiry.redact import WORDS

# RPC name -> argument name -> Postgres type (as format_type() spells it), in pg_proc's order.
# Both adapters send only the arguments the caller names; the others take their SQL default
# (p_now and p_run_at exist for tests that pin the clock; the job never sends them).
RPC_SIGNATURES: Mapping[str, Mapping[str, str]] = {
    "claim_nightly_run": {
        "p_run_id": "uuid",
        "p_timezone": "text",
        "p_lease_seconds": "integer",
        "p_now": "timestamp with time zone",
    },
    "claim_continuation": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_lease_seconds": "integer",
        "p_now": "timestamp with time zone",
    },
    "process_expiry_batch": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_cursor": "text",
        "p_limit": "integer",
        "p_reminder_days": "integer[]",
        "p_lease_seconds": "integer",
        "p_failed_ahead": "text[]",
    },
    "handoff_run": {"p_run_id": "uuid", "p_segment": "integer", "p_lease_seconds": "integer"},
    "complete_run": {"p_run_id": "uuid", "p_segment": "integer"},
    "get_missed_auto_pauses": {"p_timezone": "text", "p_today": "date", "p_limit": "integer"},
    "upsert_cron_audit": {
        "p_run_id": "uuid",
        "p_missed_pause_count": "integer",
        "p_missed_ids": "jsonb",
        "p_status": "text",
        "p_nightly_key": "date",
        "p_segments": "integer",
        "p_totals": "jsonb",
        "p_duration_ms": "bigint",
        "p_run_at": "timestamp with time zone",
    },
    "remediate_auto_pauses": {
        "p_run_id": "uuid",
        "p_certification_ids": "uuid[]",
        "p_timezone": "text",
    },
    # The ops command line (certexpiry_ops.ops, supabase/schemas/70_ops_api.sql).
    "list_cron_audit": {"p_limit": "integer"},
    "get_cron_audit": {"p_run_id": "uuid"},
    "resolve_cron_audit": {"p_run_id": "uuid", "p_force": "boolean"},
    # The schema check and the ops console (supabase/schemas/70_ops_api.sql).
    "schema_version": {},
    "plan_night": {
        "p_timezone": "text",
        "p_today": "date",
        "p_reminder_days": "integer[]",
        "p_ids_limit": "integer",
    },
    "night_history": {
        "p_timezone": "text",
        "p_nights": "integer",
        "p_schedule_time": "time without time zone",
        "p_schedule_zone": "text",
        "p_late_after_s": "integer",
        "p_now": "timestamp with time zone",
    },
    "acknowledge_missed_nights": {
        "p_nights": "date[]",
        "p_timezone": "text",
        "p_code": "text",
        "p_now": "timestamp with time zone",
    },
    # The outbox as the app's sender sees it (supabase/schemas/75_outbox_api.sql): the nightly
    # monitoring asks for the backlog; the toolkit's toy sender (certexpiry deliver) the rest.
    "claim_outbox": {
        "p_limit": "integer",
        "p_visibility_s": "integer",
        "p_max_attempts": "integer",
    },
    "acknowledge_outbox": {"p_ids": "bigint[]"},
    "fail_outbox": {"p_ids": "bigint[]", "p_code": "text"},
    "outbox_backlog": {},
}

# The newest migration this release's SQL contract was built with: the function refuses (at cold
# start, SCHEMA_MISMATCH) a database whose newest applied migration is older. A test holds it
# equal to the newest file in supabase/migrations/.
SCHEMA_VERSION = "20261203000000"

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


class RemediationAnswer(CountedAnswer):
    failures_detail: tuple[RecordFailure, ...]


class AuditSummary(ContractModel):
    """One cron_audit_log row as list_cron_audit returns it (without its missed_ids)."""

    run_id: UUID
    run_at: datetime
    nightly_key: date | None
    status: AuditStatus
    segments: int | None
    missed_pause_count: Count
    resolved: StrictBool
    resolved_at: datetime | None
    duration_ms: int | None
    totals: Counts
    updated_at: datetime

    @property
    def unresolved(self) -> bool:
        """True when the run reported missed auto-pauses and ops has not resolved it."""
        return self.missed_pause_count > 0 and not self.resolved


class AuditEntry(AuditSummary):
    """The whole row (get_cron_audit), and which missed_ids are still missed now."""

    missed_ids: tuple[str, ...]  # jsonb as the sweep wrote it; not every element need be a UUID
    still_missed: tuple[UUID, ...]
    missed_nights: tuple[date, ...] = ()  # nights before this run's night that had no run


class Resolution(ContractModel):
    """resolve_cron_audit's answer."""

    found: StrictBool
    resolved: StrictBool
    refused: StrictBool
    forced: StrictBool
    still_missed: tuple[UUID, ...]
    resolved_at: datetime | None


class SchemaVersion(ContractModel):
    """schema_version's answer: the newest recorded migration (null: none) and how many."""

    latest: Annotated[str, Field(pattern=r"^[0-9]+$")] | None
    applied: Count


class PlanList(ContractModel):
    """One list of plan_night: how many, and the lowest IDs (up to the asked limit)."""

    count: Count
    ids: tuple[UUID, ...]


class PlanRun(ContractModel):
    """The night's cron_runs row, when one exists."""

    run_id: UUID
    status: RunStatus
    segment: Segment


Offset = Annotated[str, Field(pattern=r"^[0-9]+$")]  # a reminder offset in days, as a JSON key


class Plan(ContractModel):
    """plan_night's answer: what a run of `today` would do, from the sweep's own effects."""

    today: date
    reminder_days: tuple[int, ...]
    run: PlanRun | None
    certifications: Count
    counts: Counts
    reminders: dict[Offset, PlanList]  # queued, by offset
    superseded: dict[Offset, PlanList]  # recorded as superseded (never sent), by offset
    certifications_paused: PlanList
    mentors_paused: PlanList
    failures: PlanList

    @property
    def reminders_queued(self) -> int:
        return sum(item.count for item in self.reminders.values())

    @property
    def reminders_superseded(self) -> int:
        return sum(item.count for item in self.superseded.values())


# night_history's verdict on a night, as a cron monitor's. With a run: ok (completed, monitoring
# clean or resolved), unresolved (missed auto-pauses not resolved), unverified (monitoring failed
# or no audit row), running (a live lease), failed (unfinished, no live lease: crashed or
# superseded), stopped (RUN_STOPPED). Without one: pending, late (tonight, past the expected time
# and its grace), missed, acknowledged (a missed night ops acknowledged), before_first_run.
NightState = Literal[
    "ok",
    "unresolved",
    "unverified",
    "running",
    "failed",
    "stopped",
    "pending",
    "late",
    "missed",
    "acknowledged",
    "before_first_run",
]
AckCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Night(ContractModel):
    """One organisation-local night of night_history, with or without a run."""

    night: date
    state: NightState
    run_id: UUID | None
    run_status: RunStatus | None
    audit_status: AuditStatus | None
    segments: int | None
    expected_at: datetime | None  # when the schedule fires for this night (null: it does not)
    started_at: datetime | None
    finished_at: datetime | None
    worked_ms: Count | None  # the segments' working time, without the waits between them
    wall_ms: int | None  # finished_at - started_at
    totals: Counts
    lease_left_s: Annotated[float, Field(ge=0)] | None  # unfinished runs only
    missed_pause_count: Count | None
    resolved: StrictBool | None
    acknowledged_at: datetime | None
    ack_code: AckCode | None
    covered_by: date | None  # without a run: the later night whose run swept what it left


NightAckOutcome = Literal["acknowledged", "already", "has_run", "not_missed"]


class NightAck(ContractModel):
    """One night of acknowledge_missed_nights' answer."""

    night: date
    outcome: NightAckOutcome
    acknowledged_at: datetime | None
    code: AckCode | None


OutboxKind = Literal["reminder", "pause_notice"]  # notification_outbox.kind
MessageId = Annotated[int, Field(strict=True, ge=1)]


class OutboxMessage(ContractModel):
    """One message of claim_outbox: ids, its kind and payload (dates and numbers), never a name
    or a contact detail (the sender looks the mentor up in the app)."""

    id: MessageId
    kind: OutboxKind
    peer_mentor_id: UUID
    certification_id: UUID
    payload: dict[str, Any]  # a JSON object: expiry_date; offset_days, days_left for reminders
    attempt: Annotated[int, Field(strict=True, ge=1)]  # this claim's, counting from 1
    created_at: datetime


class OutboxClaim(ContractModel):
    """claim_outbox's answer: the batch (empty: nothing to send now), and what the claim dropped
    (reminders of certifications changed since queued) or failed (attempts exhausted)."""

    messages: tuple[OutboxMessage, ...]
    dropped: Count
    exhausted: Count


class OutboxAcknowledged(ContractModel):
    """acknowledge_outbox's answer, over the distinct ids sent."""

    acknowledged: Count
    already: Count
    unknown: Count


class OutboxFailed(ContractModel):
    """fail_outbox's answer, over the distinct ids sent."""

    failed: Count
    already: Count
    unknown: Count


class OutboxBacklog(ContractModel):
    """outbox_backlog's answer: what ops watch (the nightly OUTBOX_BACKLOG line, check, nights).
    `oldest_*` are null when nothing waits; `claimed` is part of `undelivered`."""

    undelivered: Count
    claimed: Count
    oldest_undelivered_at: datetime | None
    oldest_age_s: Count | None  # whole seconds
    failed: Count
    dropped: Count


T = TypeVar("T")
_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")
_MAX_LISTED = 10


class Answer(Generic[T]):
    """How one RPC's JSON answer is checked; `tag` names the key a union of models keys on."""

    def __init__(self, rpc: str, shape: Any, *, tag: str | None = None) -> None:
        self.rpc = rpc
        self.tag = tag
        keyed: Any = shape if tag is None else Annotated[shape, Field(discriminator=tag)]
        self._adapter: TypeAdapter[T] = TypeAdapter(keyed)

    def parse(self, data: Any) -> T:
        """The answer as its model; ContractError (fields, never values) for any other shape."""
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            problems = [self._problem(error) for error in exc.errors(include_url=False)]
        # Raised outside the except block: the ValidationError (it quotes the values) is
        # neither the cause nor the context of the ContractError.
        raise ContractError(self.rpc, _listed(problems))

    def _problem(self, error: Any) -> str:
        loc: tuple[int | str, ...] = tuple(error["loc"])
        if self.tag is not None:  # a union keyed on `tag`: pydantic puts the matched tag first
            loc = (self.tag,) if error["type"] in _TAG_ERRORS else loc[1:]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        return f"{path.lstrip('.') or '(answer)'} ({error['type']})"


def _listed(problems: list[str]) -> list[str]:
    if len(problems) <= _MAX_LISTED:
        return problems
    return [*problems[:_MAX_LISTED], f"and {len(problems) - _MAX_LISTED} more"]


NightlyClaim = NightlyOwned | NightlyCompleted | NightlyBusy
SegmentClaim = SegmentClaimed | SegmentBusy | SegmentDuplicate | SegmentUnknown

CLAIM_NIGHTLY_RUN: Answer[NightlyClaim] = Answer("claim_nightly_run", NightlyClaim, tag="outcome")
CLAIM_CONTINUATION: Answer[SegmentClaim] = Answer("claim_continuation", SegmentClaim, tag="outcome")
PROCESS_EXPIRY_BATCH: Answer[BatchFenced | BatchProcessed] = Answer(
    "process_expiry_batch", BatchFenced | BatchProcessed, tag="fenced"
)
HANDOFF_RUN: Answer[Handoff] = Answer("handoff_run", Handoff)
COMPLETE_RUN: Answer[CompletionFenced | RunFinished] = Answer(
    "complete_run", CompletionFenced | RunFinished, tag="fenced"
)
GET_MISSED_AUTO_PAUSES: Answer[MissedAnswer] = Answer("get_missed_auto_pauses", MissedAnswer)
UPSERT_CRON_AUDIT: Answer[AuditUpserted] = Answer("upsert_cron_audit", AuditUpserted)
REMEDIATE_AUTO_PAUSES: Answer[RemediationAnswer] = Answer(
    "remediate_auto_pauses", RemediationAnswer
)
LIST_CRON_AUDIT: Answer[tuple[AuditSummary, ...]] = Answer(
    "list_cron_audit", tuple[AuditSummary, ...]
)
GET_CRON_AUDIT: Answer[AuditEntry | None] = Answer("get_cron_audit", AuditEntry | None)
RESOLVE_CRON_AUDIT: Answer[Resolution] = Answer("resolve_cron_audit", Resolution)
SCHEMA_VERSION_ANSWER: Answer[SchemaVersion] = Answer("schema_version", SchemaVersion)
PLAN_NIGHT: Answer[Plan] = Answer("plan_night", Plan)
NIGHT_HISTORY: Answer[tuple[Night, ...]] = Answer("night_history", tuple[Night, ...])
ACKNOWLEDGE_MISSED_NIGHTS: Answer[tuple[NightAck, ...]] = Answer(
    "acknowledge_missed_nights", tuple[NightAck, ...]
)
CLAIM_OUTBOX: Answer[OutboxClaim] = Answer("claim_outbox", OutboxClaim)
ACKNOWLEDGE_OUTBOX: Answer[OutboxAcknowledged] = Answer("acknowledge_outbox", OutboxAcknowledged)
FAIL_OUTBOX: Answer[OutboxFailed] = Answer("fail_outbox", OutboxFailed)
OUTBOX_BACKLOG: Answer[OutboxBacklog] = Answer("outbox_backlog", OutboxBacklog)

# Every RPC's answer, by name (the keys are RPC_SIGNATURES').
ANSWERS: Mapping[str, Answer[Any]] = {
    answer.rpc: answer
    for answer in (
        CLAIM_NIGHTLY_RUN,
        CLAIM_CONTINUATION,
        PROCESS_EXPIRY_BATCH,
        HANDOFF_RUN,
        COMPLETE_RUN,
        GET_MISSED_AUTO_PAUSES,
        UPSERT_CRON_AUDIT,
        REMEDIATE_AUTO_PAUSES,
        LIST_CRON_AUDIT,
        GET_CRON_AUDIT,
        RESOLVE_CRON_AUDIT,
        SCHEMA_VERSION_ANSWER,
        PLAN_NIGHT,
        NIGHT_HISTORY,
        ACKNOWLEDGE_MISSED_NIGHTS,
        CLAIM_OUTBOX,
        ACKNOWLEDGE_OUTBOX,
        FAIL_OUTBOX,
        OUTBOX_BACKLOG,
    )
}


def _literal_words(*types: Any) -> Iterator[str]:
    """The string values of Literal types (nested ones too)."""
    for found in types:
        for arg in get_args(found):
            if isinstance(arg, str):
                yield arg
            else:
                yield from _literal_words(arg)


# The contract's words may be logged as they are (operation, outcome, status): they are its own
# constants, never a value read at run time (certexpiry.redact's vocabulary).
WORDS.add(RPC_SIGNATURES)
WORDS.add(
    _literal_words(
        ClaimOutcome,
        NightState,
        NightAckOutcome,
        AuditStatus,
        OutboxKind,
        Literal["auto_pause", "reminder"],
    )
)
