"""The nightly schedule exists every day: what the validation refuses, why its window is right
for every zone of the tz database, and what the default UTC schedule means in Oslo."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest

from tests.terraform.test_terraform_cli import needs_terraform
from tests.terraform.tfmodule import load_module, run_terraform, scratch_module

YEARS = range(2026, 2036)


def _plan(module: Path, *variables: str) -> tuple[int, str]:
    args = [
        "plan",
        "-input=false",
        "-no-color",
        "-refresh=false",
        "-var=project_id=certexpiry-test",
    ]
    result = run_terraform([*args, *(f"-var={v}" for v in variables)], module)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


@needs_terraform
@pytest.mark.parametrize(
    ("schedule", "zone"),
    [("0 2 * * *", "Europe/Oslo"), ("30 2 * * *", "Europe/Oslo"), ("0 23 * * *", "Europe/Oslo")],
)
def test_a_local_time_in_a_dst_change_is_refused(tmp_path: Path, schedule: str, zone: str) -> None:
    """`0 2 * * *` in Europe/Oslo (02:00-02:59 does not exist on the last Sunday of March) and
    other local night hours are refused with the reason and the way out."""
    module = scratch_module(tmp_path, "variables.tf")
    code, out = _plan(module, f"schedule={schedule}", f"time_zone={zone}")
    assert code != 0
    assert "can be skipped or repeated on the nights the clocks change" in out, out
    assert 'time_zone = "Etc/UTC"' in out


@needs_terraform
@pytest.mark.parametrize(
    ("schedule", "zone"),
    [("0 1 * * *", "Etc/UTC"), ("0 2 * * *", "UTC"), ("0 5 * * *", "Europe/Oslo")],
)
def test_utc_and_safe_local_hours_pass(tmp_path: Path, schedule: str, zone: str) -> None:
    """Any hour in UTC, and a local hour outside every DST change, pass the validation."""
    module = scratch_module(tmp_path, "variables.tf")
    code, out = _plan(module, f"schedule={schedule}", f"time_zone={zone}")
    assert code == 0, out


def _safe_local_hours() -> range:
    """The local hours the schedule validation lets through outside UTC, read from the HCL."""
    rules = load_module().variables["schedule"]["validation"]
    condition = next(r["condition"] for r in rules if "time_zone" in r["condition"])
    low = re.search(r">= (\d+)", condition)
    high = re.search(r"<= (\d+)", condition)
    assert low is not None, condition
    assert high is not None, condition
    return range(int(low.group(1)), int(high.group(1)) + 1)


def _changes(zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Each UTC-offset change of `zone` in YEARS: the local wall-clock interval skipped or
    repeated (naive local times, earliest first). Found day by day, then to the second."""
    out = []
    moment = datetime(YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(YEARS[-1] + 1, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        later = moment + timedelta(days=1)
        new = later.astimezone(zone).utcoffset()
        if new != offset:
            low, high = moment, later  # the offset is `offset` at low and `new` at high
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            assert offset is not None
            assert new is not None
            before, after = high.replace(tzinfo=None) + offset, high.replace(tzinfo=None) + new
            out.append((min(before, after), max(before, after)))
            offset = new
        moment = later
    return out


def test_the_safe_hours_avoid_every_dst_change_in_the_tz_database() -> None:
    """In every zone, every offset change of 2026-2035 skips or repeats only local times
    outside the hours the validation allows: a schedule it accepts exists once every day."""
    safe = _safe_local_hours()
    assert list(safe) == list(range(4, 21))
    hits = []
    for name in sorted(available_timezones()):
        for first, last in _changes(ZoneInfo(name)):
            moment = first
            while moment < last:
                if moment.hour in safe:
                    hits.append(f"{name} {first:%Y-%m-%d %H:%M}-{last:%H:%M}")
                    break
                moment += timedelta(minutes=15)
    assert hits == []


def test_oslo_has_no_2am_on_the_last_sunday_of_march() -> None:
    """The night the default used to miss: 02:30 on 28 March 2027 in Oslo does not exist."""
    zone = ZoneInfo("Europe/Oslo")
    wall = datetime(2027, 3, 28, 2, 30, tzinfo=zone)
    assert wall.astimezone(UTC).astimezone(zone).hour == 3


def test_the_default_utc_schedule_is_one_oslo_night_every_day() -> None:
    """01:00 UTC is 02:00 or 03:00 in Oslo, on the same date, every day of 2026-2035: one
    organisation-local night per run, none skipped, none twice."""
    module = load_module()
    assert module.variables["schedule"]["default"] == "0 1 * * *"
    assert module.variables["time_zone"]["default"] == "Etc/UTC"
    zone = ZoneInfo("Europe/Oslo")
    day = date(YEARS[0], 1, 1)
    nights = []
    while day.year <= YEARS[-1]:
        fire = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC).astimezone(zone)
        assert fire.hour in (2, 3), fire
        nights.append(fire.date())
        day += timedelta(days=1)
    assert nights == sorted(set(nights))
    assert (nights[-1] - nights[0]).days == len(nights) - 1


def test_the_run_not_completed_window_covers_the_default_schedule() -> None:
    """The 'run not completed' alert looks back over the default start time: deadline hour minus
    the lookback contains 01:00 UTC, and the deadline comes after it on the same night."""
    variables = load_module().variables
    start = int(variables["schedule"]["default"].split()[1])
    deadline = variables["completion_deadline_utc_hour"]["default"]
    lookback = variables["completion_lookback_hours"]["default"]
    window = {(deadline - back) % 24 for back in range(1, lookback + 1)}
    assert start in window
    assert (deadline - start) % 24 < lookback
