"""The tests' organisation clock: a zone where it is midday, so no test's night turns over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.clock import StepClock, midday_zone


@pytest.mark.parametrize("hour", range(24))
def test_midday_zone_puts_any_instant_between_noon_and_one(hour: int) -> None:
    """For every UTC hour the chosen zone is a valid IANA zone whose local time is 12:xx."""
    instant = datetime(2026, 11, 28, hour, 59, 59, tzinfo=UTC)
    local = instant.astimezone(ZoneInfo(midday_zone(instant)))
    assert local.hour == 12
    assert (instant + timedelta(hours=11)).astimezone(local.tzinfo).date() == local.date()


def test_step_clock_advances_a_fixed_step_per_reading() -> None:
    """Each reading of the step clock is one step later than the previous one."""
    clock = StepClock(2.5)
    assert [clock() for _ in range(4)] == [0.0, 2.5, 5.0, 7.5]
