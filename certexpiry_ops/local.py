"""Run the job locally the way Pub/Sub drives it: a nightly trigger, then every continuation.

The CLI's `run`, the demo and the tests use this driver with the in-memory publisher, so that
the same `handle_event` the deployed function runs is exercised end to end, continuations
included, without Google Cloud.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.sweep import Job, Outcome, handle_event
from certexpiry_ops.fakes import InMemoryPublisher

LOCAL_TOPIC = "projects/local/topics/certexpiry-nightly"
_ids = itertools.count(1)


def pubsub_event_data(
    body: bytes,
    *,
    message_id: str | None = None,
    publish_time: datetime | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The `data` of the CloudEvent Eventarc delivers for a Pub/Sub message."""
    when = publish_time or datetime.now(UTC)
    return {
        "message": {
            "data": base64.b64encode(body).decode(),
            "messageId": message_id or f"local-trigger-{next(_ids)}",
            "publishTime": when.isoformat().replace("+00:00", "Z"),
            "attributes": attributes or {},
        },
        "subscription": "projects/local/subscriptions/eventarc-local",
    }


@dataclass
class ChainResult:
    """What a local chain of invocations did."""

    invocations: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def run_chain(
    job: Job,
    publisher: InMemoryPublisher,
    *,
    max_invocations: int = 10_000,
    retry_delay_s: float = 1.0,
    on_invocation: Callable[[int], None] | None = None,
    on_retry: Callable[[], None] | None = None,
) -> ChainResult:
    """Deliver the nightly trigger, then every published continuation, until none is left.

    A delivery answered RETRY is redelivered after `on_retry()` returns (default: a pause of
    `retry_delay_s`, so a held lease can lapse)."""
    result = ChainResult()
    pending: list[bytes] = [b'{"kind": "nightly"}']
    while pending and result.invocations < max_invocations:
        body = pending.pop(0)
        outcome = handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(body))
        result.invocations += 1
        result.outcomes.append(outcome)
        if on_invocation is not None:
            on_invocation(result.invocations)
        if outcome is Outcome.RETRY:
            # As Pub/Sub does: redeliver later, with a pause so a held lease can lapse.
            pending.append(body)
            if on_retry is not None:
                on_retry()
            else:
                time.sleep(retry_delay_s)
        while publisher.messages:
            _topic, data, _attributes = publisher.messages.pop(0)
            pending.append(data)
    return result
