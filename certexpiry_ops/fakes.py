"""Hand-written in-memory stand-ins for the store and the publisher (tests, demo, CLI `run`).

The store fake is for unit tests of the sweep's sequencing.

It does not re-implement the SQL rules (integration tests run those on Postgres); it scripts
what the RPCs answer and records what was asked, and lets a test make any method raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, get_args
from uuid import UUID

from certexpiry.errors import ContractError
from certexpiry.store import (
    AuditRow,
    BatchResult,
    Busy,
    ClaimOutcome,
    Completed,
    Completion,
    ContinuationClaim,
    Counts,
    Duplicate,
    MissedReport,
    NightlyClaim,
    OutboxBacklog,
    Owned,
    Unknown,
)
from certexpiry.store.answers import ContinuationOutcome, NightlyOutcome

_OUTCOMES = {"claim_nightly_run": NightlyOutcome, "claim_continuation": ContinuationOutcome}

EMPTY_BACKLOG = OutboxBacklog(
    undelivered=0,
    claimed=0,
    oldest_undelivered_at=None,
    oldest_age_s=None,
    failed=0,
    dropped=0,
)


@dataclass
class FakeStore:
    """Answers claims with `claim_outcome` (the contract's word for it, so a test names the
    outcome it scripts), serves `pages` of batch results, records calls."""

    claim_outcome: ClaimOutcome = "started"
    pages: list[BatchResult] = field(
        default_factory=lambda: [
            BatchResult(
                fenced=False,
                counts=Counts(mentors=2, reminders_queued=1, certifications_paused=1, batches=1),
                next_cursor=f"2026-11-30/{uuid.uuid4()}",
                done=True,
            )
        ]
    )
    missed: MissedReport = field(default_factory=lambda: MissedReport(0, []))
    backlog: OutboxBacklog = EMPTY_BACKLOG
    handoff_ok: bool = True
    completion_fenced: bool = False
    raises: dict[str, BaseException] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    audits: list[AuditRow] = field(default_factory=list)
    run_id: UUID = field(default_factory=uuid.uuid4)
    on_call: Callable[[str], None] | None = None

    def _enter(self, name: str, args: Any) -> None:
        self.calls.append((name, args))
        if self.on_call is not None:
            self.on_call(name)
        if name in self.raises:
            raise self.raises[name]

    def _claim(self, rpc: str, segment: int) -> Owned | Completed | Busy | Duplicate | Unknown:
        """The scripted outcome as the port's value; one the RPC cannot answer is refused as
        RpcStore refuses it (ContractError), so a test cannot hand the sweep what no store can.
        A continuation of a run scripted as started or resumed is claimed."""
        owning = ("started", "resumed", "claimed")
        outcome = (
            "claimed"
            if rpc == "claim_continuation" and self.claim_outcome in owning
            else self.claim_outcome
        )
        if outcome not in get_args(_OUTCOMES[rpc]):
            raise ContractError(rpc, ["outcome (literal_error)"])
        today = date(2026, 11, 28)
        match self.claim_outcome:
            case "started" | "resumed" | "claimed":
                return Owned(
                    run_id=self.run_id,
                    segment=segment,
                    cursor=None,
                    today=today,
                    totals=Counts(),
                    started_at=datetime.now(UTC),
                    resumed=self.claim_outcome == "resumed",
                )
            case "completed":
                return Completed(self.run_id, segment, today)
            case "busy":
                return Busy(self.run_id, segment)
            case "duplicate":
                return Duplicate(self.run_id, segment)
            case "unknown":
                return Unknown(self.run_id, segment)

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> NightlyClaim:
        self._enter("claim_nightly_run", (run_id, timezone, lease_s))
        claim = self._claim("claim_nightly_run", 0)
        assert not isinstance(claim, Duplicate | Unknown)  # noqa: S101  # refused in _claim
        return claim

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> ContinuationClaim:
        self._enter("claim_continuation", (run_id, segment, lease_s))
        claim = self._claim("claim_continuation", segment)
        assert not isinstance(claim, Completed)  # noqa: S101  # refused in _claim
        return claim

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
        self._enter(
            "process_batch",
            (run_id, segment, cursor, limit, tuple(reminder_days), tuple(failed_ahead)),
        )
        return self.pages.pop(0)

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool:
        self._enter("handoff", (run_id, segment))
        return self.handoff_ok

    def complete(self, run_id: UUID, segment: int) -> Completion:
        self._enter("complete", (run_id, segment))
        return Completion(
            fenced=self.completion_fenced,
            totals=Counts(certifications_paused=1),
            segments=segment + 1,
            started_at=None,
            finished_at=None,
        )

    def missed_auto_pauses(self, timezone: str, today: date | None, *, limit: int) -> MissedReport:
        self._enter("missed_auto_pauses", (timezone, today, limit))
        return self.missed

    def upsert_audit(self, row: AuditRow) -> None:
        self._enter("upsert_audit", row)
        self.audits.append(row)

    def outbox_backlog(self) -> OutboxBacklog:
        self._enter("outbox_backlog", ())
        return self.backlog

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@dataclass
class InMemoryPublisher:
    """A local stand-in (demo, tests): messages wait in a list until the driver delivers them."""

    messages: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    _next_id: int = 0

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self._next_id += 1
        self.messages.append((topic, data, dict(attributes)))
        return f"local-{self._next_id}"
