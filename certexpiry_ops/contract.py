"""The toolkit's own part of the SQL contract: the RPCs only the ops command line calls, with
their signatures and answers (audit list/show/resolve, remediation, plan, night history, the
outbox as the app's sender sees it).

They build on the function's contract (certexpiry.store.contract: the same `Answer`, base model
and counts) and are called the same way (certexpiry.store.call); the function never ships them.
tests/integration/test_contract.py holds `OPS_SIGNATURES`, with the function's, against
`pg_proc`. A Postgres transport the toolkit builds is given `SIGNATURES`, both lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, StrictBool

from certexpiry.redact import WORDS
from certexpiry.store.answers import (
    AuditStatus,
    ContractModel,
    Count,
    CountedAnswer,
    Counts,
    RecordFailure,
    RunStatus,
    Segment,
)
from certexpiry.store.contract import ANSWERS, RPC_SIGNATURES, Answer, Signatures, literal_words

OPS_SIGNATURES: Signatures = {
    # certexpiry remediate (supabase/schemas/70_ops_api.sql).
    "remediate_auto_pauses": {
        "p_run_id": "uuid",
        "p_certification_ids": "uuid[]",
        "p_timezone": "text",
    },
    # The ops command line (certexpiry_ops.ops, supabase/schemas/70_ops_api.sql).
    "list_cron_audit": {"p_limit": "integer"},
    "get_cron_audit": {"p_run_id": "uuid"},
    "resolve_cron_audit": {"p_run_id": "uuid", "p_force": "boolean"},
    # The ops console (supabase/schemas/70_ops_api.sql).
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
    # The outbox as the app's sender sees it (supabase/schemas/75_outbox_api.sql), for the
    # toolkit's toy sender (certexpiry deliver); the backlog is the function's.
    "claim_outbox": {
        "p_limit": "integer",
        "p_visibility_s": "integer",
        "p_max_attempts": "integer",
    },
    "acknowledge_outbox": {"p_ids": "bigint[]"},
    "fail_outbox": {"p_ids": "bigint[]", "p_code": "text"},
}

SIGNATURES: Signatures = {**RPC_SIGNATURES, **OPS_SIGNATURES}
"""Every RPC of the SQL API: the function's and the toolkit's."""


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


REMEDIATE_AUTO_PAUSES: Answer[RemediationAnswer] = Answer(
    "remediate_auto_pauses", RemediationAnswer, signatures=OPS_SIGNATURES
)
LIST_CRON_AUDIT: Answer[tuple[AuditSummary, ...]] = Answer(
    "list_cron_audit", tuple[AuditSummary, ...], signatures=OPS_SIGNATURES
)
GET_CRON_AUDIT: Answer[AuditEntry | None] = Answer(
    "get_cron_audit", AuditEntry | None, signatures=OPS_SIGNATURES
)
RESOLVE_CRON_AUDIT: Answer[Resolution] = Answer(
    "resolve_cron_audit", Resolution, signatures=OPS_SIGNATURES
)
PLAN_NIGHT: Answer[Plan] = Answer("plan_night", Plan, signatures=OPS_SIGNATURES)
NIGHT_HISTORY: Answer[tuple[Night, ...]] = Answer(
    "night_history", tuple[Night, ...], signatures=OPS_SIGNATURES
)
ACKNOWLEDGE_MISSED_NIGHTS: Answer[tuple[NightAck, ...]] = Answer(
    "acknowledge_missed_nights", tuple[NightAck, ...], signatures=OPS_SIGNATURES
)
CLAIM_OUTBOX: Answer[OutboxClaim] = Answer("claim_outbox", OutboxClaim, signatures=OPS_SIGNATURES)
ACKNOWLEDGE_OUTBOX: Answer[OutboxAcknowledged] = Answer(
    "acknowledge_outbox", OutboxAcknowledged, signatures=OPS_SIGNATURES
)
FAIL_OUTBOX: Answer[OutboxFailed] = Answer("fail_outbox", OutboxFailed, signatures=OPS_SIGNATURES)

OPS_ANSWERS: Mapping[str, Answer[Any]] = {
    answer.rpc: answer
    for answer in (
        REMEDIATE_AUTO_PAUSES,
        LIST_CRON_AUDIT,
        GET_CRON_AUDIT,
        RESOLVE_CRON_AUDIT,
        PLAN_NIGHT,
        NIGHT_HISTORY,
        ACKNOWLEDGE_MISSED_NIGHTS,
        CLAIM_OUTBOX,
        ACKNOWLEDGE_OUTBOX,
        FAIL_OUTBOX,
    )
}
ALL_ANSWERS: Mapping[str, Answer[Any]] = {**ANSWERS, **OPS_ANSWERS}
"""Every RPC's answer, by name (the keys are SIGNATURES')."""

# The toolkit's words may be logged as they are (its operations, a night's state, an outbox
# message's kind): its own constants, never a value read at run time.
WORDS.update(OPS_SIGNATURES)
WORDS.update(literal_words(NightState, NightAckOutcome, OutboxKind))
