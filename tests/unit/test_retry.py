"""The bounded retry of transient store failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certexpiry.errors import DatabaseError, RpcError
from certexpiry.retry import RetryPolicy

FAST = RetryPolicy(attempts=3, max_seconds=60.0, initial_wait_s=0.001, max_wait_s=0.001)


def _failing(error: Exception) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise error

    return calls, call


def test_transient_failures_are_retried_up_to_the_bound() -> None:
    """A deadlock (40P01) is tried `attempts` times, then raised."""
    calls, call = _failing(DatabaseError("op", sqlstate="40P01"))
    with pytest.raises(DatabaseError):
        FAST.call(call)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error",
    [
        DatabaseError("op", sqlstate="57014"),
        RpcError("op", postgrest_code="57014", transient=True),
    ],
)
def test_statement_timeouts_are_not_retried_in_process(error: Exception) -> None:
    """A statement timeout is raised at once: a retry would cost the whole timeout again."""
    calls, call = _failing(error)
    with pytest.raises(type(error)):
        FAST.call(call)
    assert len(calls) == 1
