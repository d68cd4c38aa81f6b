"""Publishing the continuation message to the function's own topic.

The real publisher wraps google-cloud-pubsub's PublisherClient: one client per instance,
created on first use so a cold start that never continues does not pay for it, honouring
PUBSUB_EMULATOR_HOST. The client's default retry runs for 600 s, longer than the function
lives, so every publish here has a short, bounded retry and waits for the server's
confirmation (the message id) before the function reports success.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from certexpiry.errors import PublishError

PUBLISH_DEADLINE_S = 20.0


class Publisher(Protocol):
    """Publishes one message and returns the server's message id (raises PublishError)."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...


class PubSubPublisher:
    """google-cloud-pubsub, with a bounded retry and a confirmed result."""

    def __init__(self, deadline_s: float = PUBLISH_DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        with self._lock:
            if self._client is None:
                # Heavy: imported on the first continuation, not at cold start.
                from google.cloud.pubsub_v1 import PublisherClient

                self._client = PublisherClient()
            return self._client

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry

        retry = gretry.Retry(
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=self.deadline_s,
            predicate=gretry.if_exception_type(
                gexc.ServiceUnavailable,
                gexc.DeadlineExceeded,
                gexc.InternalServerError,
                gexc.Aborted,
                gexc.ResourceExhausted,
                gexc.Unknown,
            ),
        )
        try:
            future = self._publisher().publish(
                topic, data, retry=retry, timeout=self.deadline_s, **dict(attributes)
            )
            return str(future.result(timeout=self.deadline_s + 5))
        except Exception as exc:  # any failure to publish means the same thing
            raise PublishError(topic, type(exc).__name__) from exc
