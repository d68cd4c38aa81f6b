"""One bounded retry policy for transient store failures.

Every RPC is idempotent, so retrying a POST is safe. The bound matters more than the count:
a retry must never eat the time budget the sweep has left, so attempts stop after a few tries
or a few seconds, whichever comes first, and the error surfaces to the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from certexpiry.errors import StoreError

T = TypeVar("T")


def _is_transient(exc: BaseException) -> bool:
    # A statement timeout is not retried here: each try would cost the whole timeout. The sweep
    # shrinks a timed-out batch; anything else is redelivered by Pub/Sub.
    return isinstance(exc, StoreError) and exc.transient and not exc.statement_timeout


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry a transient failure before giving up."""

    attempts: int = 4
    max_seconds: float = 20.0
    initial_wait_s: float = 0.2
    max_wait_s: float = 5.0

    def call(self, func: Callable[[], T]) -> T:
        """Run `func`, retrying transient StoreErrors with jittered exponential backoff."""
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=wait_exponential_jitter(
                multiplier=self.initial_wait_s, max=self.max_wait_s, jitter=self.initial_wait_s
            ),
            reraise=True,
        )
        return retrying(func)


DEFAULT_RETRY = RetryPolicy()
