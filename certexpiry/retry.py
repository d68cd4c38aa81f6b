"""One bounded retry policy for transient store failures.

Every RPC is idempotent, so retrying a POST is safe. The bound matters more than the count:
a retry must never eat the time budget the sweep has left, so attempts stop after a few tries
or a few seconds, whichever comes first, and the error surfaces to the sweep.

Every retry is reported to the listener the caller set for its context (`retries_reported_to`:
the sweep's invocation, which logs one TRANSIENT_RETRY line each), so a night that survived a
database restart says so. The transports are built once per instance and shared; a context
variable keeps each invocation's listener to the thread (and context) that runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from certexpiry.errors import StoreError

T = TypeVar("T")

RetryListener = Callable[[StoreError, int], None]
"""Told of each transient failure about to be retried: the error and its attempt (1 = first)."""

_LISTENER: ContextVar[RetryListener | None] = ContextVar("certexpiry_retry_listener", default=None)


@contextmanager
def retries_reported_to(listener: RetryListener) -> Iterator[None]:
    """Report every retry made in this context to `listener` until the block ends."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def _report(state: RetryCallState) -> None:
    """tenacity's before_sleep: a transient failure is about to be retried."""
    listener = _LISTENER.get()
    error = state.outcome.exception() if state.outcome is not None else None
    if listener is not None and isinstance(error, StoreError):
        listener(error, state.attempt_number)


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
            before_sleep=_report,
            reraise=True,
        )
        return retrying(func)


DEFAULT_RETRY = RetryPolicy()
