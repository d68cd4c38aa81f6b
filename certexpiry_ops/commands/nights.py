"""`nights`: the last nights like a cron monitor's history, missed nights included."""

from __future__ import annotations

import argparse
from typing import Any

from certexpiry.contract import OutboxBacklog
from certexpiry_ops.console import CliIO, Console, backlog_text
from certexpiry_ops.ops import DEFAULT_NIGHTS, MAX_NIGHTS, Night
from certexpiry_ops.target import Target, call_store, open_target
from certexpiry_ops.usage import EXIT_OK, PROG, UsageError, bounded_int

_MARK = {"missed": "!", "abandoned": "!", "running": "~", "handoff": "~"}


def cmd_nights(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    with open_target(args) as target:
        nights = call_store(target.ops.nights, target.settings.org_timezone, args.nights)
        backlog = _backlog(target, cli_io)
    for night in nights:
        console.data(night.model_dump(mode="json"))
    if backlog is not None:  # piped: one last object, {"outbox": {...}}
        console.data({"outbox": backlog.model_dump(mode="json")})
    if not console.json:
        for line in nights_text(nights):
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


def nights_text(nights: list[Night]) -> list[str]:
    """One row per night, newest first."""
    lines = [
        f"  {'NIGHT':<10}  {'STATUS':<16}  {'SEG':>3}  {'DURATION':>8}  {'REMINDERS':>9}  "
        f"{'PAUSED':>6}  {'MENTORS':>7}  {'FAILED':>6}  {'MISSED':>6}  RESOLVED"
    ]
    for night in nights:
        totals = night.totals
        ran = night.run_id is not None
        duration = f"{night.duration_ms / 1000:.1f} s" if night.duration_ms is not None else "-"
        missed = str(night.missed_pause_count) if night.missed_pause_count is not None else "-"
        resolved = "-" if not night.missed_pause_count else ("yes" if night.resolved else "NO")

        def count(key: str, *, shown: bool = ran, source: Any = totals) -> str:
            return f"{source[key]:,}" if shown else "-"

        lines.append(
            f"{_MARK.get(night.status, ' ')} {night.night!s:<10}  {night.status:<16}  "
            f"{night.segments if night.segments is not None else '-':>3}  {duration:>8}  "
            f"{count('reminders_queued'):>9}  {count('certifications_paused'):>6}  "
            f"{count('mentors_paused'):>7}  {count('failures'):>6}  {missed:>6}  {resolved}"
        )
    missed_nights = sum(1 for night in nights if night.status == "missed")
    if missed_nights:
        lines.append(
            f"\n! {missed_nights} night(s) without a run. The next run covers what they left "
            f"(superseded reminders are not sent late); `{PROG} plan` shows what it will do."
        )
    return lines


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `nights` to the command line."""
    nights = commands.add_parser(
        "nights",
        parents=[common, output],
        help="the last nights: run, duration, totals, missed",
        description="The last N organisation-local nights, newest first, like a cron "
        "monitor's history: each night's run status, segments, duration, reminders, pauses, "
        "failures, missed auto-pauses and whether they were resolved. A night with no run "
        "since the first run ever is shown as missed (tonight, before its run: pending). "
        "Then the outbox backlog (undelivered, the oldest's age, failed, dropped); piped, it is "
        'the last line, {"outbox": {...}}.',
        epilog="examples:\n  certexpiry nights\n  certexpiry nights --nights 30 --json",
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
