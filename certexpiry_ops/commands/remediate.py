"""`remediate`: auto-pause exactly the certifications a run missed, through the sweep's SQL."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from certexpiry.codes import Code
from certexpiry.reports import log_record_failures, report_missed
from certexpiry_ops import demo_seed
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.remedy import remediation_hint
from certexpiry_ops.target import Target, call_store, connection_failed, open_target
from certexpiry_ops.usage import EXIT_MISSED, EXIT_OK, PROG, NotFoundError, UsageError, parse_uuid


def cmd_remediate(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = parse_uuid(args.run_id) if args.run_id else None
    ids = [
        str(parse_uuid(item, "--ids entry")) for item in (args.ids or "").split(",") if item.strip()
    ]
    if run_id is None and not ids:
        raise UsageError("give a RUN_ID (its missed certifications) or --ids a,b,c")
    with open_target(args, direct=args.drop_demo_trigger) as target:
        settings = target.settings
        log = console.logger(settings)  # without a run: NO_RUN, never an id of its own
        if run_id is not None:
            entry = call_store(target.ops.get_audit, run_id)
            if entry is None:
                raise NotFoundError(
                    f"no audit row for run {run_id} (`{PROG} audit list` shows the runs; "
                    f"`{PROG} remediate --ids ID,ID,...` pauses certifications without one)"
                )
            targets = ids or list(entry.missed_ids)
            log = log.bind(run_id=str(run_id))
        else:
            targets = ids
        if args.drop_demo_trigger:
            _drop_demo_trigger(target, console)
        # The run's id is recorded on the auto_pause rows; without a run, none (null).
        result = call_store(target.ops.remediate, run_id, targets, settings.org_timezone)
        log_record_failures(log, result.failures)
        counts = {
            key: result.counts.get(key, 0)
            for key in ("certifications_paused", "mentors_paused", "failures")
        }
        log.info(
            Code.REMEDIATION_DONE,
            f"Remediation auto-paused {counts['certifications_paused']} of "
            f"{len(targets)} certifications.",
            remediation="auto_pause",
            certifications_paused=counts["certifications_paused"],
            mentors_paused=counts["mentors_paused"],
            failures=counts["failures"],
            missed_ids=targets,
        )
        report = call_store(
            target.store.missed_auto_pauses,
            settings.org_timezone,
            None,
            limit=settings.missed_ids_limit,
        )
        hint = remediation_hint(target.ops, report.missed_ids) if report.missed_pause_count else ""
        report_missed(log, report, hint)
    left = set(report.missed_ids)
    of_run = [item for item in targets if item in left]
    console.out("")
    console.out(
        f"Remediated {counts['certifications_paused']} of {len(targets)} certification(s) "
        f"({counts['mentors_paused']} mentor(s) paused); monitoring now finds "
        f"{report.missed_pause_count} missed auto-pause(s), {len(of_run)} of them among "
        "the certifications remediated here."
    )
    untouched = len(targets) - counts["certifications_paused"] - counts["failures"]
    if untouched:
        console.out(
            f"{untouched} of the {len(targets)} were left alone: no active, expired certification "
            "without an auto-pause has that ID (unknown, renewed, or already paused)."
        )
    if run_id is not None and not of_run:
        console.out(f"Next: {PROG} audit resolve {run_id}")
    return EXIT_MISSED if report.missed_pause_count else EXIT_OK


def _drop_demo_trigger(target: Target, console: Console) -> None:
    if target.conninfo is None:
        raise UsageError("--drop-demo-trigger needs a direct Postgres connection: set DATABASE_URL")
    if not demo_seed.is_local(target.conninfo):
        raise UsageError("--drop-demo-trigger only works on a local database")
    try:
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            dropped = demo_seed.drop_refusal(conn)
    except psycopg.Error as exc:
        raise connection_failed(target.where, exc) from None
    console.out("Dropped the demo trigger." if dropped else "No demo trigger to drop.")


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `remediate` to the command line."""
    remediate = commands.add_parser(
        "remediate",
        parents=[common, output],
        help="auto-pause exactly the certifications a run missed",
        description="Auto-pause the certifications a run reported as missed (or those given "
        "with --ids) through the same SQL as the sweep (remediate_auto_pauses; "
        "idempotent: only those still expired and active are touched), then re-run "
        "the monitoring query. Exit 1 if it still finds missed auto-pauses.",
        epilog="examples:\n"
        "  certexpiry remediate RUN_ID\n"
        "  certexpiry remediate --ids ID,ID\n"
        "  certexpiry remediate RUN_ID --drop-demo-trigger",
    )
    remediate.add_argument(
        "run_id", metavar="RUN_ID", nargs="?", help="the run whose missed_ids to remediate"
    )
    remediate.add_argument(
        "--ids", metavar="ID,ID,...", help="only these certification IDs (comma-separated)"
    )
    remediate.add_argument(
        "--drop-demo-trigger",
        action="store_true",
        help="first remove the trigger `demo --with-failures` installed (local databases only)",
    )
    remediate.set_defaults(handler=cmd_remediate)
