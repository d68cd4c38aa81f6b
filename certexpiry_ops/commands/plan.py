"""`plan`: what tonight's run would do, from the sweep's own SQL, without writing anything."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.contract import PlanList
from certexpiry_ops.ops import Plan
from certexpiry_ops.target import call_store, open_target
from certexpiry_ops.usage import EXIT_OK, PROG, UsageError, bounded_int

DEFAULT_IDS = 10
MAX_IDS = 100_000  # plan_night's own cap on a number (--all: none)


def cmd_plan(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    night = _night(args.date)
    limit: int | None = None if args.all else args.ids
    with open_target(args) as target:
        settings = target.settings
        console.progress_line("plan: applying tonight's effects in a transaction rolled back…")
        try:
            plan = call_store(
                target.ops.plan, settings.org_timezone, night, settings.reminder_days, limit
            )
        finally:
            console.finish()
    console.data(plan.model_dump(mode="json"))
    for line in plan_text(plan):
        console.out(line)
    return EXIT_OK


def _night(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--date must be a date like 2026-12-01, got {text!r}") from None


_PER_LINE = 2  # UUIDs on one line of the text


def id_lines(items: PlanList) -> list[str]:
    """Every ID the plan listed, a few to a line, then how many it did not list."""
    shown = [str(item) for item in items.ids]
    lines = [
        "      " + ", ".join(shown[at : at + _PER_LINE]) for at in range(0, len(shown), _PER_LINE)
    ]
    if items.count > len(shown):
        lines.append(f"      … and {items.count - len(shown):,} more (--all lists every one)")
    return lines


def plan_text(plan: Plan) -> list[str]:
    """The plan for a person: one line per list, every ID listed under it."""
    offsets = ", ".join(str(day) for day in plan.reminder_days)
    lines = [f"Plan for the night of {plan.today} (reminder offsets {offsets} days):"]
    if plan.run is not None and plan.run.status in ("completed", "abandoned"):
        lines.append(
            f"  Tonight's run {plan.run.run_id} is {plan.run.status}: a run now does nothing "
            "(what is listed is left for the next night)."
        )
    elif plan.run is not None:
        lines.append(
            f"  Tonight's run {plan.run.run_id} is in progress (segment {plan.run.segment}); "
            "it will do what is listed that it has not done yet."
        )
    lines.append(f"  {plan.certifications:,} certification(s) with an effect due")

    def listed(title: str, items: PlanList) -> None:
        lines.append(f"  {title:<28} {items.count:>7,}")
        lines.extend(id_lines(items))

    lines.append(f"  {'reminders queued':<28} {plan.reminders_queued:>7,}")
    for day in sorted(plan.reminders, key=int, reverse=True):
        listed(f"  at {day} days", plan.reminders[day])
    lines.append(f"  {'reminders superseded':<28} {plan.reminders_superseded:>7,}")
    for day in sorted(plan.superseded, key=int, reverse=True):
        listed(f"  at {day} days (not sent)", plan.superseded[day])
    listed("certifications paused", plan.certifications_paused)
    listed("mentors paused", plan.mentors_paused)
    listed("failures (would not apply)", plan.failures)
    lines.append(f"Nothing was written. Every ID: {PROG} plan --all (--json for JSON lines)")
    return lines


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `plan` to the command line."""
    plan = commands.add_parser(
        "plan",
        parents=[common, output],
        help="what tonight's run would do, without writing",
        description="What a run of tonight (or --date) would do, without doing it: reminders by "
        "offset, superseded reminders, certification and mentor pauses and failures, each "
        "counted, with the lowest --ids IDs (every one with --all). The database applies "
        "the sweep's own effects (plan_night: the same SQL, rules and triggers) in a "
        "transaction it always rolls back, so the plan is what the run does, id for id. "
        "Settings (ORG_TIMEZONE, REMINDER_DAYS) are read as the function reads them. Best run "
        "when no run is in progress.",
        epilog="examples:\n"
        "  certexpiry plan --demo\n"
        "  certexpiry plan --demo --date 2026-12-24 --ids 50\n"
        "  certexpiry plan --demo --json --all | jq '.certifications_paused.count'",
    )
    plan.add_argument(
        "--date", metavar="YYYY-MM-DD", help="the organisation-local night (default: tonight)"
    )
    listing = plan.add_mutually_exclusive_group()
    listing.add_argument(
        "--ids",
        type=bounded_int(1, MAX_IDS),
        default=DEFAULT_IDS,
        metavar="N",
        help=f"IDs listed per kind, lowest first (default {DEFAULT_IDS}, at most {MAX_IDS}); "
        "the counts are always whole",
    )
    listing.add_argument("--all", action="store_true", help="list every ID of each kind")
    plan.set_defaults(handler=cmd_plan)
