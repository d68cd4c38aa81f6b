"""The ops side of the SQL API: reading the audit log and acknowledging a remediated run.

Typed wrappers over the RPCs of supabase/migrations/20261128000400_ops_api.sql, over the same
`RpcTransport` the sweep uses (direct Postgres or Supabase), so the command line touches data
only through SQL API functions. Remediation itself and the monitoring query are the sweep's own
RPCs (`RpcStore.remediate`, `RpcStore.missed_auto_pauses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from certexpiry.store import COUNT_KEYS, RpcTransport, parse_date, parse_datetime

DEFAULT_LIST_LIMIT = 20


@dataclass(frozen=True)
class AuditEntry:
    """One cron_audit_log row as the ops RPCs return it."""

    run_id: UUID
    run_at: datetime | None
    nightly_key: date | None
    status: str
    segments: int | None
    missed_pause_count: int
    resolved: bool
    resolved_at: datetime | None
    duration_ms: int | None
    totals: Mapping[str, int] = field(default_factory=dict)
    missed_ids: Sequence[str] = ()
    # Which missed_ids are still expired, unpaused and unrecorded now (get_cron_audit only).
    still_missed: Sequence[str] | None = None

    @property
    def unresolved(self) -> bool:
        """True when the run reported missed auto-pauses and ops has not resolved it."""
        return self.missed_pause_count > 0 and not self.resolved


@dataclass(frozen=True)
class Resolution:
    """The answer of resolve_cron_audit."""

    found: bool
    resolved: bool
    refused: bool
    forced: bool
    still_missed: Sequence[str]
    resolved_at: datetime | None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _totals(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {key: int(value[key] or 0) for key in COUNT_KEYS if key in value}


def _entry(data: Mapping[str, Any]) -> AuditEntry:
    still = data.get("still_missed")
    return AuditEntry(
        run_id=UUID(str(data["run_id"])),
        run_at=parse_datetime(data.get("run_at")),
        nightly_key=parse_date(data.get("nightly_key")),
        status=str(data.get("status") or ""),
        segments=_int(data.get("segments")),
        missed_pause_count=int(data.get("missed_pause_count") or 0),
        resolved=bool(data.get("resolved")),
        resolved_at=parse_datetime(data.get("resolved_at")),
        duration_ms=_int(data.get("duration_ms")),
        totals=_totals(data.get("totals")),
        missed_ids=tuple(str(item) for item in data.get("missed_ids") or ()),
        still_missed=None if still is None else tuple(str(item) for item in still),
    )


class OpsStore:
    """The ops RPCs over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def list_audit(self, limit: int = DEFAULT_LIST_LIMIT) -> list[AuditEntry]:
        """The newest `limit` audit rows (1..1000), newest first, without their missed_ids."""
        data = self.transport.call("list_cron_audit", {"p_limit": limit})
        return [_entry(item) for item in data or []]

    def get_audit(self, run_id: UUID) -> AuditEntry | None:
        """One audit row with its missed_ids and still_missed; None if there is none."""
        data = self.transport.call("get_cron_audit", {"p_run_id": str(run_id)})
        return None if data is None else _entry(data)

    def resolve_audit(self, run_id: UUID, *, force: bool = False) -> Resolution:
        """Mark a run resolved; refused (no write) while IDs are still missed, unless force."""
        data = self.transport.call(
            "resolve_cron_audit", {"p_run_id": str(run_id), "p_force": force}
        )
        return Resolution(
            found=bool(data["found"]),
            resolved=bool(data["resolved"]),
            refused=bool(data["refused"]),
            forced=bool(data.get("forced")),
            still_missed=tuple(str(item) for item in data.get("still_missed") or ()),
            resolved_at=parse_datetime(data.get("resolved_at")),
        )
