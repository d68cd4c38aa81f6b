"""The toy sender: drains the outbox through the RPCs exactly as the app's sender would
(claim a batch, deliver each message, acknowledge what was delivered, report what never can be),
but "delivers" a message by handing its ids and kind to a callback: it sends nothing.

What it sees of a message is what the contract gives a sender: ids, the kind, the payload (dates
and numbers) and the attempt; it keeps only the payload's keys, and no message has a name or a
contact detail to show. Used by `certexpiry deliver` and `make demo`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from certexpiry_ops.ops import OpsStore, OutboxMessage

DEFAULT_LIMIT = 100
DEFAULT_VISIBILITY_S = 60
FAIL_CODE = "demo_failure"  # fail_outbox's code for the messages --fail-every picks


@dataclass(frozen=True)
class Delivery:
    """One message as the toy sender handled it: ids, kind and the payload's keys only."""

    id: int
    kind: str
    certification_id: UUID
    payload_keys: tuple[str, ...]
    attempt: int
    delivered: bool  # False: reported as failed for good (--fail-every)

    @classmethod
    def of(cls, message: OutboxMessage, *, delivered: bool) -> Delivery:
        return cls(
            id=message.id,
            kind=message.kind,
            certification_id=message.certification_id,
            payload_keys=tuple(sorted(message.payload)),
            attempt=message.attempt,
            delivered=delivered,
        )

    def data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "certification_id": str(self.certification_id),
            "payload_keys": list(self.payload_keys),
            "attempt": self.attempt,
            "outcome": "delivered" if self.delivered else "failed",
        }


@dataclass
class SenderResult:
    """What one drain did, across its batches."""

    handled: list[Delivery] = field(default_factory=list)
    batches: int = 0
    acknowledged: int = 0  # newly delivered, as acknowledge_outbox counted them
    failed: int = 0  # newly failed, as fail_outbox counted them
    dropped: int = 0  # reminders the claims dropped (certification changed since queued)
    exhausted: int = 0  # messages the claims failed (attempts exhausted)

    @property
    def delivered(self) -> list[Delivery]:
        return [item for item in self.handled if item.delivered]

    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(item.kind for item in self.delivered).items()))

    def data(self) -> dict[str, Any]:
        return {
            "delivered": len(self.delivered),
            "by_kind": self.by_kind(),
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "dropped": self.dropped,
            "exhausted": self.exhausted,
            "batches": self.batches,
        }


def drain(
    ops: OpsStore,
    *,
    limit: int = DEFAULT_LIMIT,
    visibility_s: int = DEFAULT_VISIBILITY_S,
    fail_every: int = 0,
    on_delivery: Callable[[Delivery], None] | None = None,
) -> SenderResult:
    """Claim, deliver, acknowledge until a claim comes back empty.

    `fail_every` N > 0: every Nth message is reported as failed for good (fail_outbox,
    FAIL_CODE) instead of delivered, to show the failure path. Each claimed message is either
    acknowledged or failed, so no claim hands it out again and the loop ends once the outbox
    holds nothing claimable.
    """
    result = SenderResult()
    seen = 0
    while True:
        claim = ops.claim_outbox(limit, visibility_s)
        result.dropped += claim.dropped
        result.exhausted += claim.exhausted
        if not claim.messages:
            return result
        result.batches += 1
        sent: list[int] = []
        failing: list[int] = []
        for message in claim.messages:
            seen += 1
            delivered = not (fail_every and seen % fail_every == 0)
            item = Delivery.of(message, delivered=delivered)
            (sent if delivered else failing).append(message.id)
            result.handled.append(item)
            if on_delivery is not None:
                on_delivery(item)
        if sent:
            result.acknowledged += ops.acknowledge_outbox(sent).acknowledged
        if failing:
            result.failed += ops.fail_outbox(failing, FAIL_CODE).failed
