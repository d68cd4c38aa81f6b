"""The ops side of the SQL API: reading the audit log and acknowledging a remediated run, the
plan and the night history (acknowledging a missed night), and the outbox RPCs the toy sender
(`certexpiry deliver`) uses as the app's sender would.

Typed wrappers over the RPCs of supabase/schemas/70_ops_api.sql, over the same
`RpcTransport` the sweep uses (direct Postgres or Supabase), so the command line touches data
only through SQL API functions, called as the sweep calls its own (certexpiry.store.call).
Their answers are the toolkit's contract's models (certexpiry_ops.contract), checked on
arrival: a shape the contract does not allow is a ContractError. The monitoring query is the
sweep's own RPC (`RpcStore.missed_auto_pauses`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from uuid import UUID

from certexpiry.store import RecordFailure, RpcTransport, call, record_failures
from certexpiry_ops import contract
from certexpiry_ops.contract import AuditEntry as AuditEntry
from certexpiry_ops.contract import AuditSummary as AuditSummary
from certexpiry_ops.contract import Night as Night
from certexpiry_ops.contract import NightAck as NightAck
from certexpiry_ops.contract import OutboxAcknowledged as OutboxAcknowledged
from certexpiry_ops.contract import OutboxClaim as OutboxClaim
from certexpiry_ops.contract import OutboxFailed as OutboxFailed
from certexpiry_ops.contract import OutboxMessage as OutboxMessage
from certexpiry_ops.contract import Plan as Plan
from certexpiry_ops.contract import Resolution as Resolution

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


@dataclass(frozen=True)
class Remediation:
    """What a remediation paused, and the certifications it could not."""

    counts: Mapping[str, int]
    failures: Sequence[RecordFailure]


class OpsStore:
    """The ops RPCs over one SQL API transport."""

    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    def list_audit(self, limit: int = DEFAULT_LIST_LIMIT) -> list[AuditSummary]:
        """The newest `limit` audit rows (1..1000), newest first, without their missed_ids."""
        entries: tuple[AuditSummary, ...] = call(
            self.transport, contract.LIST_CRON_AUDIT, limit=limit
        )
        return list(entries)

    def get_audit(self, run_id: UUID) -> AuditEntry | None:
        """One audit row with its missed_ids and still_missed; None if there is none."""
        return call(self.transport, contract.GET_CRON_AUDIT, run_id=run_id)

    def resolve_audit(self, run_id: UUID, *, force: bool = False) -> Resolution:
        """Mark a run resolved; refused (no write) while IDs are still missed, unless force."""
        return call(self.transport, contract.RESOLVE_CRON_AUDIT, run_id=run_id, force=force)

    def remediate(
        self, run_id: UUID | None, certification_ids: Sequence[str], timezone: str
    ) -> Remediation:
        """Auto-pause exactly these certifications (those still expired and active); their
        auto_pause records carry `run_id`, or none (null) for a remediation outside a run."""
        answer = call(
            self.transport,
            contract.REMEDIATE_AUTO_PAUSES,
            run_id=run_id,
            certification_ids=certification_ids,
            timezone=timezone,
        )
        return Remediation(counts=answer.counts, failures=record_failures(answer.failures_detail))

    def plan(
        self, timezone: str, today: date | None, reminder_days: Sequence[int], ids_limit: int | None
    ) -> Plan:
        """What a run of `today` (None: today in `timezone`) would do; writes nothing. The lists
        hold the lowest `ids_limit` IDs (None: every one)."""
        return call(
            self.transport,
            contract.PLAN_NIGHT,
            timezone=timezone,
            today=today,
            reminder_days=reminder_days,
            ids_limit=ids_limit,
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
        answer = call(
            self.transport,
            contract.NIGHT_HISTORY,
            timezone=timezone,
            nights=nights,
            schedule_time=schedule_time,
            schedule_zone=schedule_zone,
            late_after_s=late_after_s,
        )
        return list(answer)

    def acknowledge_nights(
        self, nights: Sequence[date], timezone: str, code: str | None
    ) -> list[NightAck]:
        """Acknowledge missed nights (kept for good), oldest first; a night that had a run or
        was not missed is answered as such and nothing is written for it."""
        answer = call(
            self.transport,
            contract.ACKNOWLEDGE_MISSED_NIGHTS,
            nights=nights,
            timezone=timezone,
            code=code,
        )
        return list(answer)

    def claim_outbox(self, limit: int, visibility_s: int) -> OutboxClaim:
        """Up to `limit` undelivered messages, hidden from other claims for `visibility_s`."""
        return call(self.transport, contract.CLAIM_OUTBOX, limit=limit, visibility_s=visibility_s)

    def acknowledge_outbox(self, ids: Sequence[int]) -> OutboxAcknowledged:
        """These messages were delivered (idempotent)."""
        return call(self.transport, contract.ACKNOWLEDGE_OUTBOX, ids=ids)

    def fail_outbox(self, ids: Sequence[int], code: str) -> OutboxFailed:
        """These messages can never be delivered; `code` matches ^[a-z][a-z0-9_]{0,39}$."""
        return call(self.transport, contract.FAIL_OUTBOX, ids=ids, code=code)
