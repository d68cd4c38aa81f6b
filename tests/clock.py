"""Time for tests: the organisation's night, taken from the database, and a stepping clock.

The job's date is the database's, never the machine's: `claim_nightly_run` takes the night from
its own `now()` in the organisation's time zone (ORG_TIMEZONE), and every batch of the run uses
that date. A test that seeds "expired yesterday" and "due in 7 days" relative to another clock,
or to the database's clock a moment before the run starts, fails when midnight falls in between.

So a test's organisation lives in a fixed-offset zone (`Etc/GMT-N`) where the database's clock
reads between 12:00 and 13:00, and the test reads "today" from the database in that zone: the
date it seeds against is the date the run claims, and it cannot change for the next eleven
hours. The job, the function processes and the command line are given the same zone
(`Settings(org_timezone=...)`, ORG_TIMEZONE).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg


def midday_zone(utc_now: datetime) -> str:
    """The IANA fixed-offset zone in which `utc_now` falls between 12:00 and 13:00."""
    offset = 12 - utc_now.astimezone(UTC).hour  # -11 .. +12 hours, all of them tz names
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX sign: GMT-2 is UTC+2


@dataclass(frozen=True)
class OrgDay:
    """The organisation's time zone and its date now, safe from midnight for eleven hours."""

    timezone: str
    today: date


def org_day(conn: psycopg.Connection[Any]) -> OrgDay:
    """The zone where the database's clock reads midday, and today there (by the database)."""
    row = conn.execute("select now()").fetchone()
    assert row is not None
    timezone = midday_zone(row[0])
    today = conn.execute("select certexpiry.org_today(%s)", (timezone,)).fetchone()
    assert today is not None
    return OrgDay(timezone, today[0])


def machine_org_day() -> OrgDay:
    """The same, from this machine's clock: for a process that brings its own database (the
    demo's embedded server reads the same clock)."""
    timezone = midday_zone(datetime.now(UTC))
    return OrgDay(timezone, datetime.now(ZoneInfo(timezone)).date())


class StepClock:
    """A monotonic clock that advances a fixed step on every reading (forces many segments)."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self.step = step

    def __call__(self) -> float:
        return next(self._ticks) * self.step
