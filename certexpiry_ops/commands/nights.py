"""`nights` and `nights ack`: the last nights as a cron monitor's history, and acknowledging a
missed night.

The verdict on each night (ok, running, failed, stopped, late, missed, acknowledged, ...) is the
SQL's (public.night_history); this module reads the schedule the verdict "late" is measured
against and shows the answer, in the organisation's time zone.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from certexpiry.store import OutboxBacklog
from certexpiry_ops.console import CliIO, Console, age_text, backlog_text
from certexpiry_ops.contract import NightAck
from certexpiry_ops.ops import (
    DEFAULT_NIGHTS,
    DEFAULT_SCHEDULE,
    DEFAULT_SCHEDULE_ZONE,
    LATE_AFTER_S,
    MAX_NIGHTS,
    Night,
)
from certexpiry_ops.target import Target, call_store, open_target
from certexpiry_ops.usage import (
    EXIT_OK,
    PROG,
    NotFoundError,
    UsageError,
    bounded_int,
)

# Where "late" is measured from: the Cloud Scheduler job's cron and time zone, which Terraform
# sets from var.schedule and var.time_zone (terraform/variables.tf) and this command cannot
# read. Their defaults are Terraform's; a deployment that changes them sets the same values here.
SCHEDULE_ENV = "CERTEXPIRY_SCHEDULE"
SCHEDULE_ZONE_ENV = "CERTEXPIRY_SCHEDULE_TIME_ZONE"
_CRON = re.compile(r"^([0-9]|[1-5][0-9]) ([0-9]|1[0-9]|2[0-3]) \* \* \*$")  # Terraform's rule
_ACK_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

_MARK = {
    "missed": "!",
    "late": "!",
    "failed": "!",
    "stopped": "!",
    "unresolved": "!",
    "unverified": "!",
    "running": "~",
}
_TIMES = ("expected_at", "started_at", "finished_at", "acknowledged_at")


@dataclass(frozen=True)
class Schedule:
    """The daily schedule the nightly trigger fires on, as Cloud Scheduler has it."""

    cron: str
    zone: str
    at: time
    late_after_s: int = LATE_AFTER_S


def schedule_from_env(environ: Mapping[str, str] | None = None) -> Schedule:
    """CERTEXPIRY_SCHEDULE ("MINUTE HOUR * * *") in CERTEXPIRY_SCHEDULE_TIME_ZONE, or
    Terraform's defaults; a value Terraform would refuse is a usage error naming the variable."""
    env = os.environ if environ is None else environ
    cron = " ".join((env.get(SCHEDULE_ENV) or DEFAULT_SCHEDULE).split())
    zone = (env.get(SCHEDULE_ZONE_ENV) or DEFAULT_SCHEDULE_ZONE).strip()
    match = _CRON.match(cron)
    if match is None:
        raise UsageError(
            f'{SCHEDULE_ENV} must be the scheduler\'s daily cron, "MINUTE HOUR * * *" '
            f'(Terraform\'s var.schedule, default "{DEFAULT_SCHEDULE}"), got {cron!r}'
        )
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"{SCHEDULE_ZONE_ENV} must be an IANA time zone (Terraform's var.time_zone, "
            f"default {DEFAULT_SCHEDULE_ZONE}), got {zone!r}"
        ) from None
    return Schedule(cron, zone, time(int(match.group(2)), int(match.group(1))))


def cmd_nights(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    schedule = schedule_from_env()
    with open_target(args) as target:
        timezone = target.settings.org_timezone
        nights = call_store(
            target.ops.nights,
            timezone,
            args.nights,
            schedule_time=schedule.at,
            schedule_zone=schedule.zone,
            late_after_s=schedule.late_after_s,
        )
        backlog = _backlog(target, cli_io)
    zone = ZoneInfo(timezone)
    for night in nights:
        console.data(night_json(night, timezone, zone))
    console.data({"summary": summary(nights, timezone, schedule)})
    if backlog is not None:  # piped: one last object, {"outbox": {...}}
        console.data({"outbox": backlog.model_dump(mode="json")})
    if not console.json:
        for line in nights_text(nights, timezone, schedule):
            console.out(line)
        if backlog is not None:
            console.out("\n" + backlog_text(backlog))
    return EXIT_OK


def _backlog(target: Target, cli_io: CliIO) -> OutboxBacklog | None:
    """The outbox backlog; a failure to read it is a warning, the nights are shown anyway."""
    try:
        backlog: OutboxBacklog = call_store(target.store.outbox_backlog)
    except UsageError as exc:
        cli_io.stderr.write(f"{PROG}: warning: {exc}\n")
        return None
    return backlog


def night_json(night: Night, timezone: str, zone: tzinfo) -> dict[str, Any]:
    """One night as JSON: the SQL's answer, its times in the organisation's zone (named)."""
    data = night.model_dump(mode="json")
    for key in _TIMES:
        value: datetime | None = getattr(night, key)
        data[key] = value.astimezone(zone).isoformat() if value is not None else None
    data["timezone"] = timezone
    return data


def _dates(nights: Sequence[Night], *states: str) -> list[str]:
    return [night.night.isoformat() for night in nights if night.state in states]


def no_runs_yet(nights: Sequence[Night]) -> bool:
    """Every night shown is before the first run ever: the database has no run at all."""
    return all(night.state == "before_first_run" for night in nights)


def uncovered(nights: Sequence[Night]) -> list[Night]:
    """Nights without a run whose work no later run has swept yet (the next one will)."""
    return [
        night
        for night in nights
        if night.state in ("missed", "acknowledged") and night.covered_by is None
    ]


def summary(nights: Sequence[Night], timezone: str, schedule: Schedule) -> dict[str, Any]:
    """What the text says under the table, as facts: the same for JSON readers."""
    return {
        "timezone": timezone,
        "schedule": schedule.cron,
        "schedule_time_zone": schedule.zone,
        "late_after_s": schedule.late_after_s,
        "no_runs_yet": no_runs_yet(nights),
        "late": _dates(nights, "late"),
        "missed": _dates(nights, "missed"),
        "acknowledged": _dates(nights, "acknowledged"),
        "not_yet_covered": [night.night.isoformat() for night in uncovered(nights)],
    }


def _clock(value: datetime | None, night: date, zone: tzinfo, seconds: bool = True) -> str:
    """A time of the night in the organisation's zone; +Nd when on a later local date."""
    if value is None:
        return "-"
    local = value.astimezone(zone)
    text = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    days = (local.date() - night).days
    return text + (f"{days:+d}d" if days else "")


def _worked(night: Night) -> str:
    if night.worked_ms is None:
        return "-"
    return f"{night.worked_ms / 1000:.1f} s"


def nights_text(nights: Sequence[Night], timezone: str, schedule: Schedule) -> list[str]:
    """The table for a person, newest first, then what needs doing."""
    zone = ZoneInfo(timezone)
    late_min = schedule.late_after_s // 60
    lines = [
        f"Nights in {timezone} (ORG_TIMEZONE). Expected: {schedule.at:%H:%M} {schedule.zone} "
        f"daily ({SCHEDULE_ENV}), late {late_min} min after. WORKED: the segments' working "
        "time, without waits."
    ]
    if no_runs_yet(nights):
        tonight = nights[0]
        expected = _clock(tonight.expected_at, tonight.night, zone, seconds=False)
        lines.append(
            f"No runs yet: no night has a run. Tonight's ({tonight.night}) is expected at "
            f"{expected} {timezone}."
        )
        return lines
    lines.append(
        f"  {'NIGHT':<10}  {'STATE':<16}  {'EXPECTED':>8}  {'STARTED':>8}  {'ENDED':>8}  "
        f"{'WORKED':>8}  {'SEG':>3}  {'REMINDERS':>9}  {'PAUSED':>6}  {'FAILED':>6}  "
        f"{'MISSED':>6}"
    )
    for night in nights:
        ran = night.run_id is not None

        def count(key: str, *, shown: bool = ran, night: Night = night) -> str:
            return f"{night.totals[key]:,}" if shown else "-"

        missed = str(night.missed_pause_count) if night.missed_pause_count is not None else "-"
        segments = str(night.segments) if night.segments is not None else "-"
        lines.append(
            f"{_MARK.get(night.state, ' ')} {night.night!s:<10}  {night.state:<16}  "
            f"{_clock(night.expected_at, night.night, zone, seconds=False):>8}  "
            f"{_clock(night.started_at, night.night, zone):>8}  "
            f"{_clock(night.finished_at, night.night, zone):>8}  {_worked(night):>8}  "
            f"{segments:>3}  {count('reminders_queued'):>9}  "
            f"{count('certifications_paused'):>6}  {count('failures'):>6}  {missed:>6}"
        )
    lines.extend(_notes(nights))
    return lines


def _notes(nights: Sequence[Night]) -> list[str]:
    """What needs doing, each only while it is true."""
    notes: list[str] = []
    for night in nights:
        if night.state == "late" and night.expected_at is not None:
            notes.append(
                f"! Tonight ({night.night}) has no run yet; it was expected "
                f"{_since(night.expected_at)} ago. Check the Cloud Scheduler job (enabled, its "
                "last attempt) and the function's deploy."
            )
    missed = _dates(nights, "missed")
    if missed:
        notes.append(
            f"! {len(missed)} night(s) without a run, not acknowledged: {', '.join(missed)}. "
            f"Once looked into: `{PROG} nights ack DATE ...`."
        )
    waiting = uncovered(nights)
    if waiting:
        notes.append(
            f"  The next run covers what {len(waiting)} night(s) without a run left "
            f"(superseded reminders are not sent late); `{PROG} plan` shows what it will do."
        )
    for state, said in (
        ("failed", f"did not finish (crashed or superseded): `{PROG} logs RUN_ID`"),
        ("stopped", "stopped half-way (RUN_STOPPED): docs/operations.md, A night that stopped"),
        ("unresolved", f"left missed auto-pauses: `{PROG} audit list`"),
        ("unverified", f"have no monitoring answer: `{PROG} check`"),
    ):
        found = _dates(nights, state)
        if found:
            notes.append(f"! {len(found)} night(s) {said}.")
    return ["", *notes] if notes else []


def _since(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(moment.tzinfo) - moment).total_seconds()))
    return age_text(seconds)


def cmd_nights_ack(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    nights = [_night(text) for text in args.dates]
    if args.code is not None and not _ACK_CODE.match(args.code):
        raise UsageError(
            f"--code must be a code like scheduler_paused (a-z, 0-9, _), got {args.code!r}"
        )
    with open_target(args) as target:
        timezone = target.settings.org_timezone
        answers: list[NightAck] = call_store(
            target.ops.acknowledge_nights, nights, timezone, args.code
        )
    zone = ZoneInfo(timezone)
    for answer in answers:
        data = answer.model_dump(mode="json")
        if answer.acknowledged_at is not None:
            data["acknowledged_at"] = answer.acknowledged_at.astimezone(zone).isoformat()
        console.data(data)
        console.out(ack_text(answer, timezone))
    refused = [str(answer.night) for answer in answers if answer.outcome in _REFUSED]
    if refused:
        raise NotFoundError(
            f"not a missed night: {', '.join(refused)} (a night with a run, before the first "
            f"run, or not yet over: `{PROG} nights` shows which are missed)"
        )
    return EXIT_OK


_REFUSED = ("has_run", "not_missed")


def ack_text(answer: NightAck, timezone: str) -> str:
    """One acknowledged (or refused) night for a person; the time in the organisation's zone."""
    code = f" (code {answer.code})" if answer.code else ""
    when = ""
    if answer.acknowledged_at is not None:
        local = answer.acknowledged_at.astimezone(ZoneInfo(timezone))
        when = f"{local:%Y-%m-%d %H:%M:%S} {timezone}"
    if answer.outcome == "acknowledged":
        return f"{answer.night}  acknowledged at {when}{code}"
    if answer.outcome == "already":
        return f"{answer.night}  already acknowledged at {when}{code}"
    if answer.outcome == "has_run":
        return f"{answer.night}  has a run: nothing to acknowledge"
    return f"{answer.night}  is not a missed night (before the first run, or not over yet)"


def _night(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"DATE must be a date like 2026-11-29, got {text!r}") from None


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `nights` and `nights ack` to the command line."""
    nights = commands.add_parser(
        "nights",
        parents=[common, output],
        help="the last nights like a cron monitor: state, times, duration, totals, missed",
        description="The last N organisation-local nights, newest first, like a cron "
        "monitor's history: each night's state (ok, unresolved, unverified, running, failed, "
        "stopped; without a run: pending, late, missed, acknowledged, before_first_run), when "
        "the schedule expected it and when it started and ended in the organisation's time "
        "zone, the time its segments worked (without the waits between them), segments, "
        "reminders, pauses, failures and missed auto-pauses. 'late': tonight has no run "
        f"{LATE_AFTER_S // 60} min after the scheduler's time ({SCHEDULE_ENV}, default "
        f'"{DEFAULT_SCHEDULE}", in {SCHEDULE_ZONE_ENV}, default {DEFAULT_SCHEDULE_ZONE}: '
        "Terraform's var.schedule and var.time_zone). Then the outbox backlog. Piped: one "
        'object per night, then {"summary": {...}}, then {"outbox": {...}}.',
        epilog="examples:\n  certexpiry nights --demo\n"
        "  DATABASE_URL=postgresql://... certexpiry nights --nights 30 --json",
    )
    nights.add_argument(
        "--nights",
        "--limit",
        dest="nights",
        type=bounded_int(1, MAX_NIGHTS),
        default=DEFAULT_NIGHTS,
        metavar="N",
        help=f"nights to show, at most {MAX_NIGHTS} (default {DEFAULT_NIGHTS})",
    )
    nights.set_defaults(handler=cmd_nights)
    subcommands = nights.add_subparsers(dest="nights_command", metavar="[ack]")
    ack = subcommands.add_parser(
        "ack",
        parents=[common, output],
        help="acknowledge missed nights (kept for good)",
        description=textwrap.fill(
            "Acknowledge missed nights: nights after the first run ever, before tonight, with "
            "no run. Each is recorded once and kept (certexpiry.night_acknowledgements; never "
            "updated or deleted) and shows as 'acknowledged' in `nights`. A date that is not a "
            "missed night is refused (exit 3); the others are still acknowledged."
        ),
        epilog=f"examples:\n  {PROG} nights ack 2026-11-29\n"
        f"  {PROG} nights ack 2026-11-29 2026-11-30 --code scheduler_paused",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ack.add_argument("dates", nargs="+", metavar="DATE", help="organisation-local night(s)")
    ack.add_argument(
        "--code",
        metavar="CODE",
        help="why, as a code (a-z, 0-9, _; at most 40), e.g. scheduler_paused; never free text",
    )
    ack.set_defaults(handler=cmd_nights_ack)
