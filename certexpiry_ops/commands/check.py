"""`check`: the monitoring query, now (exit 1 if missed auto-pauses remain), and the outbox
backlog as the night's OUTBOX_BACKLOG line has it (never changes the exit code). Its lines
belong to no run; the fix it names is the run whose audit row recorded the IDs, or `--ids`."""

from __future__ import annotations

import argparse
from typing import Any

from certexpiry.monitoring import report_backlog
from certexpiry.reports import report_missed
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.remedy import remediation_hint
from certexpiry_ops.target import call_store, open_target
from certexpiry_ops.usage import EXIT_MISSED, EXIT_OK


def cmd_check(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    with open_target(args) as target:
        settings = target.settings
        log = console.logger(settings)
        report = call_store(
            target.store.missed_auto_pauses,
            settings.org_timezone,
            None,
            limit=settings.missed_ids_limit,
        )
        hint = remediation_hint(target.ops, report.missed_ids) if report.missed_pause_count else ""
        report_missed(log, report, hint)
        report_backlog(target.store, log)  # a failure is a MONITORING_FAILED line, not an exit
    return EXIT_MISSED if report.missed_pause_count else EXIT_OK


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `check` to the command line."""
    check = commands.add_parser(
        "check",
        parents=[common, output],
        help="run the monitoring query now",
        description="The monitoring query the sweep runs at its end (get_missed_auto_pauses), "
        "now: expired certifications that are neither paused nor recorded as "
        "auto-paused. Exit 1 if there are any. Then the outbox backlog (OUTBOX_BACKLOG: "
        "undelivered, claimed, the oldest's age, failed, dropped), as the night logs it; it "
        "does not change the exit code. Writes nothing.",
        epilog="examples:\n"
        "  certexpiry check\n"
        "  certexpiry check --json | jq -c 'select(.error_code == \"MISSED_AUTO_PAUSE\")'",
    )
    check.set_defaults(handler=cmd_check)
