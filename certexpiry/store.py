"""The store port: what the sweep needs from the database, as the SQL API defines it.

Every business rule lives in SQL (supabase/migrations). This module only names the RPCs, their
parameter types, and turns their JSON answers into typed values. The two adapters (direct
Postgres, Supabase HTTP) implement the one-method `RpcTransport`, so both call exactly the same
functions with exactly the same parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

# RPC name -> parameter name -> Postgres type. The Postgres adapter casts to these types; the
# Supabase adapter sends the same names as JSON, which PostgREST resolves the same way.
RPC_SIGNATURES: Mapping[str, Mapping[str, str]] = {
    "claim_nightly_run": {
        "p_run_id": "uuid",
        "p_timezone": "text",
        "p_lease_seconds": "integer",
    },
    "claim_continuation": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_lease_seconds": "integer",
    },
    "process_expiry_batch": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_cursor": "uuid",
        "p_limit": "integer",
        "p_reminder_days": "integer[]",
        "p_lease_seconds": "integer",
    },
    "handoff_run": {"p_run_id": "uuid", "p_segment": "integer", "p_lease_seconds": "integer"},
    "complete_run": {"p_run_id": "uuid", "p_segment": "integer"},
    "get_missed_auto_pauses": {"p_timezone": "text", "p_today": "date"},
    "upsert_cron_audit": {
        "p_run_id": "uuid",
        "p_missed_pause_count": "integer",
        "p_missed_ids": "jsonb",
        "p_status": "text",
        "p_nightly_key": "date",
        "p_segments": "integer",
        "p_totals": "jsonb",
        "p_duration_ms": "bigint",
    },
    "remediate_auto_pauses": {
        "p_run_id": "uuid",
        "p_certification_ids": "uuid[]",
        "p_timezone": "text",
    },
    # The ops command line (certexpiry_ops.ops, migration 20261128000400_ops_api.sql).
    "list_cron_audit": {"p_limit": "integer"},
    "get_cron_audit": {"p_run_id": "uuid"},
    "resolve_cron_audit": {"p_run_id": "uuid", "p_force": "boolean"},
}

ClaimOutcome = Literal["started", "resumed", "claimed", "busy", "duplicate", "completed", "unknown"]


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
    cursor: UUID | None = None
    today: date | None = None
    totals: Mapping[str, int] = field(default_factory=dict)
    abandoned: Sequence[UUID] = ()
    started_at: datetime | None = None

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
    message: str


@dataclass(frozen=True)
class BatchResult:
    """What one batch did, and where the next one starts."""

    fenced: bool
    counts: Mapping[str, int]
    next_cursor: UUID | None
    done: bool
    failures: Sequence[RecordFailure] = ()
    run_totals: Mapping[str, int] = field(default_factory=dict)


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
    """One row of cron_audit_log."""

    run_id: UUID
    missed_pause_count: int
    missed_ids: Sequence[str]
    status: str
    nightly_key: date | None
    segments: int | None
    totals: Mapping[str, int]
    duration_ms: int | None


COUNT_KEYS = (
    "mentors",
    "certifications",
    "reminders_queued",
    "reminders_superseded",
    "certifications_paused",
    "mentors_paused",
    "notices_queued",
    "failures",
    "batches",
)


def _uuid(value: Any) -> UUID | None:
    return None if value is None else UUID(str(value))


def parse_date(value: Any) -> date | None:
    """An RPC's ISO date (or null)."""
    return None if value is None else date.fromisoformat(str(value))


def parse_datetime(value: Any) -> datetime | None:
    """An RPC's ISO timestamp (or null); psycopg may already hand back a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {key: int(value.get(key, 0) or 0) for key in COUNT_KEYS if key in value}


def _failures(data: Mapping[str, Any]) -> list[RecordFailure]:
    """The rows an RPC could not process (`failures_detail`), the rest having been kept."""
    return [
        RecordFailure(
            certification_id=str(item["certification_id"]),
            peer_mentor_id=str(item["peer_mentor_id"]),
            operation=str(item["operation"]),
            sqlstate=str(item["sqlstate"]),
            message=str(item["message"]),
        )
        for item in data.get("failures_detail") or []
    ]


@dataclass(frozen=True)
class Remediation:
    """What a remediation paused, and the certifications it could not."""

    counts: Mapping[str, int]
    failures: Sequence[RecordFailure]


class Store(Protocol):
    """What the sweep needs from the database (RpcStore over either adapter; fakes in tests)."""

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> Claim: ...

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> Claim: ...

    def process_batch(
        self,
        run_id: UUID,
        segment: int,
        cursor: UUID | None,
        limit: int,
        reminder_days: Sequence[int],
        lease_s: int,
    ) -> BatchResult: ...

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool: ...

    def complete(self, run_id: UUID, segment: int) -> Completion: ...

    def missed_auto_pauses(self, timezone: str, today: date | None) -> MissedReport: ...

    def upsert_audit(self, row: AuditRow) -> None: ...


class RpcStore:
    """The store the sweep uses: typed methods over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> Claim:
        data = self.transport.call(
            "claim_nightly_run",
            {"p_run_id": str(run_id), "p_timezone": timezone, "p_lease_seconds": lease_s},
        )
        return self._claim(data)

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> Claim:
        data = self.transport.call(
            "claim_continuation",
            {"p_run_id": str(run_id), "p_segment": segment, "p_lease_seconds": lease_s},
        )
        return self._claim(data)

    @staticmethod
    def _claim(data: Any) -> Claim:
        return Claim(
            outcome=data["outcome"],
            run_id=UUID(str(data["run_id"])),
            segment=int(data.get("segment") or 0),
            cursor=_uuid(data.get("cursor")),
            today=parse_date(data.get("today")),
            totals=_counts(data.get("totals")),
            abandoned=[UUID(str(item)) for item in data.get("abandoned") or []],
            started_at=parse_datetime(data.get("started_at")),
        )

    def process_batch(
        self,
        run_id: UUID,
        segment: int,
        cursor: UUID | None,
        limit: int,
        reminder_days: Sequence[int],
        lease_s: int,
    ) -> BatchResult:
        data = self.transport.call(
            "process_expiry_batch",
            {
                "p_run_id": str(run_id),
                "p_segment": segment,
                "p_cursor": None if cursor is None else str(cursor),
                "p_limit": limit,
                "p_reminder_days": list(reminder_days),
                "p_lease_seconds": lease_s,
            },
        )
        if data.get("fenced"):
            return BatchResult(fenced=True, counts={}, next_cursor=cursor, done=False)
        return BatchResult(
            fenced=False,
            counts=_counts(data),
            next_cursor=_uuid(data.get("next_cursor")),
            done=bool(data["done"]),
            failures=_failures(data),
            run_totals=_counts(data.get("run_totals")),
        )

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool:
        """Mark the run as handed to the next segment; False when fenced out."""
        data = self.transport.call(
            "handoff_run",
            {"p_run_id": str(run_id), "p_segment": segment, "p_lease_seconds": lease_s},
        )
        return not data["fenced"]

    def complete(self, run_id: UUID, segment: int) -> Completion:
        data = self.transport.call("complete_run", {"p_run_id": str(run_id), "p_segment": segment})
        return Completion(
            fenced=bool(data["fenced"]),
            totals=_counts(data.get("totals")),
            segments=int(data.get("segments") or 0),
            started_at=parse_datetime(data.get("started_at")),
            finished_at=parse_datetime(data.get("finished_at")),
        )

    def missed_auto_pauses(self, timezone: str, today: date | None) -> MissedReport:
        data = self.transport.call(
            "get_missed_auto_pauses",
            {"p_timezone": timezone, "p_today": None if today is None else today.isoformat()},
        )
        return MissedReport(
            missed_pause_count=int(data["missed_pause_count"]),
            missed_ids=[str(item) for item in data["missed_ids"]],
        )

    def upsert_audit(self, row: AuditRow) -> None:
        self.transport.call(
            "upsert_cron_audit",
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
        self, run_id: UUID, certification_ids: Sequence[str], timezone: str
    ) -> Remediation:
        data = self.transport.call(
            "remediate_auto_pauses",
            {
                "p_run_id": str(run_id),
                "p_certification_ids": list(certification_ids),
                "p_timezone": timezone,
            },
        )
        return Remediation(counts=_counts(data), failures=_failures(data))
