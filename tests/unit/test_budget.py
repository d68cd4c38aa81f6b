"""The time-budget guard: when a segment must stop and hand off."""

from __future__ import annotations

from certexpiry.budget import TimeBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_batch_always_runs() -> None:
    """A segment always runs its first batch, so a chain can never be all empty segments."""
    clock = FakeClock()
    budget = TimeBudget(budget_s=1.0, reserve_s=5.0, clock=clock)
    assert budget.can_start_batch()


def test_stops_when_next_batch_and_reserve_would_overrun() -> None:
    """With the slowest batch at 10 s (estimate 20 s) and a 15 s reserve, it stops at 386 s of 420."""
    clock = FakeClock()
    budget = TimeBudget(budget_s=420, reserve_s=15, clock=clock)
    budget.record_batch(10.0)
    clock.now = 385.0
    assert budget.can_start_batch()
    clock.now = 385.1
    assert not budget.can_start_batch()
    assert budget.next_batch_estimate_s() == 20.0


def test_estimate_follows_the_slowest_batch() -> None:
    """The estimate is the slowest batch seen, times the safety factor."""
    budget = TimeBudget(budget_s=420, reserve_s=15, clock=FakeClock())
    assert budget.next_batch_estimate_s() == budget.first_batch_estimate_s
    for duration in (0.2, 1.5, 0.3):
        budget.record_batch(duration)
    assert budget.next_batch_estimate_s() == 3.0
    assert budget.batches == 3


def test_elapsed() -> None:
    """Elapsed time is measured from the start of the segment."""
    clock = FakeClock()
    clock.now = 100.0
    budget = TimeBudget(budget_s=420, reserve_s=15, clock=clock)
    clock.now = 130.0
    assert budget.elapsed_s() == 30.0
