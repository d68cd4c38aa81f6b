"""When to stop a segment: the time-budget guard, kept apart from any I/O so it can be reasoned
about and tested on its own.

A segment may start another batch only if the time used so far, plus a pessimistic estimate of
that batch, plus the reserve for the end of the run (monitoring, audit, or the checkpoint and
publish of a continuation), stays within TIME_BUDGET_S. The estimate is the slowest batch seen
so far times a safety factor, and a conservative guess before any batch has been measured.
The first batch of a segment always runs: a segment that handed off without doing any work
would start an endless chain of empty continuations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TimeBudget:
    """Tracks one invocation's elapsed time and measured batch durations."""

    budget_s: float
    reserve_s: float
    first_batch_estimate_s: float = 2.0
    safety_factor: float = 2.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    _slowest_s: float | None = field(init=False, default=None)
    batches: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def record_batch(self, duration_s: float) -> None:
        """Remember a batch's duration so the next estimate follows reality."""
        self.batches += 1
        self._slowest_s = (
            duration_s if self._slowest_s is None else max(self._slowest_s, duration_s)
        )

    def next_batch_estimate_s(self) -> float:
        if self._slowest_s is None:
            return self.first_batch_estimate_s
        return self._slowest_s * self.safety_factor

    def can_start_batch(self) -> bool:
        """True if another batch and the end-of-run reserve still fit in the budget."""
        if self.batches == 0:
            return True
        return self.elapsed_s() + self.next_batch_estimate_s() + self.reserve_s <= self.budget_s
