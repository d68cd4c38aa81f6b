"""The ops side of the SQL API: reading the audit log and acknowledging a remediated run, the
plan and the night history (acknowledging a missed night), and the outbox RPCs the toy sender
(`certexpiry deliver`) uses as the app's sender would.

Typed wrappers over the RPCs of supabase/schemas/70_ops_api.sql, over the same
`RpcTransport` the sweep uses (direct Postgres or Supabase), so the command line touches data
only through SQL API functions. Their answers are the contract's models (certexpiry.contract),
checked on arrival: a shape the contract does not allow is a ContractError. Remediation itself
and the monitoring query are the sweep's own RPCs (`RpcStore.remediate`,
`RpcStore.missed_auto_pauses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Any, TypeVar
from uuid import UUID

from certexpiry import contract
from certexpiry.contract import AuditEntry as AuditEntry
from certexpiry.contract import AuditSummary as AuditSummary
from certexpiry.contract import Night as Night
from certexpiry.contract import NightAck as NightAck
from certexpiry.contract import OutboxAcknowledged as OutboxAcknowledged
from certexpiry.contract import OutboxClaim as OutboxClaim
from certexpiry.contract import OutboxFailed as OutboxFailed
from certexpiry.contract import OutboxMessage as OutboxMessage
from certexpiry.contract import Plan as Plan
from certexpiry.contract import Resolution as Resolution
from certexpiry.store import RpcTransport

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000  # list_cron_audit's own cap
DEFAULT_NIGHTS = 14
MAX_NIGHTS = 366  # night_history's own cap
# The scheduler job's cron and time zone as Terraform sets them by default (var.schedule,
# var.time_zone): tonight's expected time, unless the caller says otherwise.
DEFAULT_SCHEDULE = "0 1 * * *"
DEFAULT_SCHEDULE_TIME = time(1, 0)
DEFAULT_SCHEDULE_ZONE = "Etc/UTC"
# Tonight is late when no run has claimed it this long after the expected time: the scheduler
# job retries a failed publish for up to 1800 s (terraform/scheduler.tf, max_retry_duration),
# and a run claims its night at its first step.
LATE_AFTER_S = 1800
MAX_CLAIM = 1000  # claim_outbox's own caps
MAX_VISIBILITY_S = 3600

T = TypeVar("T")


class OpsStore:
    """The ops RPCs over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def _call(self, answer: contract.Answer[T], params: Mapping[str, Any]) -> T:
        return answer.parse(self.transport.call(answer.rpc, params))

    def list_audit(self, limit: int = DEFAULT_LIST_LIMIT) -> list[AuditSummary]:
        """The newest `limit` audit rows (1..1000), newest first, without their missed_ids."""
        entries = self._call(contract.LIST_CRON_AUDIT, {"p_limit": limit})
        return list(entries)

    def get_audit(self, run_id: UUID) -> AuditEntry | None:
        """One audit row with its missed_ids and still_missed; None if there is none."""
        return self._call(contract.GET_CRON_AUDIT, {"p_run_id": str(run_id)})

    def resolve_audit(self, run_id: UUID, *, force: bool = False) -> Resolution:
        """Mark a run resolved; refused (no write) while IDs are still missed, unless force."""
        return self._call(contract.RESOLVE_CRON_AUDIT, {"p_run_id": str(run_id), "p_force": force})

    def plan(
        self, timezone: str, today: date | None, reminder_days: Sequence[int], ids_limit: int | None
    ) -> Plan:
        """What a run of `today` (None: today in `timezone`) would do; writes nothing. The lists
        hold the lowest `ids_limit` IDs (None: every one)."""
        return self._call(
            contract.PLAN_NIGHT,
            {
                "p_timezone": timezone,
                "p_today": today.isoformat() if today is not None else None,
                "p_reminder_days": list(reminder_days),
                "p_ids_limit": ids_limit,
            },
        )

    def nights(
        self,
        timezone: str,
        nights: int = DEFAULT_NIGHTS,
        *,
        schedule_time: time = DEFAULT_SCHEDULE_TIME,
        schedule_zone: str = DEFAULT_SCHEDULE_ZONE,
        late_after_s: int = LATE_AFTER_S,
    ) -> list[Night]:
        """The last `nights` organisation-local nights (1..366), newest first; tonight is late
        `late_after_s` after the daily schedule (`schedule_time` in `schedule_zone`) fired."""
        answer: tuple[Night, ...] = self._call(
            contract.NIGHT_HISTORY,
            {
                "p_timezone": timezone,
                "p_nights": nights,
                "p_schedule_time": schedule_time.isoformat(),
                "p_schedule_zone": schedule_zone,
                "p_late_after_s": late_after_s,
            },
        )
        return list(answer)

    def acknowledge_nights(
        self, nights: Sequence[date], timezone: str, code: str | None
    ) -> list[NightAck]:
        """Acknowledge missed nights (kept for good), oldest first; a night that had a run or
        was not missed is answered as such and nothing is written for it."""
        answer: tuple[NightAck, ...] = self._call(
            contract.ACKNOWLEDGE_MISSED_NIGHTS,
            {
                "p_nights": [night.isoformat() for night in nights],
                "p_timezone": timezone,
                "p_code": code,
            },
        )
        return list(answer)

    def claim_outbox(self, limit: int, visibility_s: int) -> OutboxClaim:
        """Up to `limit` undelivered messages, hidden from other claims for `visibility_s`."""
        return self._call(contract.CLAIM_OUTBOX, {"p_limit": limit, "p_visibility_s": visibility_s})

    def acknowledge_outbox(self, ids: Sequence[int]) -> OutboxAcknowledged:
        """These messages were delivered (idempotent)."""
        return self._call(contract.ACKNOWLEDGE_OUTBOX, {"p_ids": list(ids)})

    def fail_outbox(self, ids: Sequence[int], code: str) -> OutboxFailed:
        """These messages can never be delivered; `code` matches ^[a-z][a-z0-9_]{0,39}$."""
        return self._call(contract.FAIL_OUTBOX, {"p_ids": list(ids), "p_code": code})
