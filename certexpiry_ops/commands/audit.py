"""`audit list|show|resolve`: the cron_audit_log rows, and acknowledging a remediated run."""

from __future__ import annotations

import argparse
from datetime import UTC
from typing import Any

from certexpiry_ops.console import CliIO, Console, totals_text
from certexpiry_ops.ops import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, AuditSummary
from certexpiry_ops.target import call_store, open_target
from certexpiry_ops.usage import EXIT_MISSED, EXIT_OK, PROG, NotFoundError, bounded_int, parse_uuid


def entry_dict(entry: AuditSummary) -> dict[str, Any]:
    data = entry.model_dump()
    data["unresolved"] = entry.unresolved
    return data


def cmd_audit_list(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    with open_target(args) as target:
        entries = call_store(target.ops.list_audit, args.limit)
    if console.json:
        for entry in entries:
            console.data(entry_dict(entry))
        return EXIT_OK
    if not entries:
        console.out("No audit rows yet.")
        return EXIT_OK
    header = (
        f"  {'RUN AT (UTC)':<19}  {'RUN ID':<36}  {'NIGHT':<10}  {'STATUS':<17}  "
        f"{'SEG':>3}  {'MISSED':>6}  RESOLVED"
    )
    console.out(header)
    for entry in entries:
        mark = "!" if entry.unresolved else " "
        run_at = entry.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if entry.run_at else ""
        resolved = "yes" if entry.resolved else ("NO" if entry.unresolved else "-")
        night = str(entry.nightly_key or "")
        console.out(
            f"{mark} {run_at:<19}  {entry.run_id!s:<36}  {night:<10}  "
            f"{entry.status:<17}  {entry.segments or 0:>3}  "
            f"{entry.missed_pause_count:>6}  {resolved}"
        )
    if any(entry.unresolved for entry in entries):
        console.out(f"\n! = missed auto-pauses not yet resolved: {PROG} audit show RUN_ID")
    return EXIT_OK


def cmd_audit_show(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = parse_uuid(args.run_id)
    with open_target(args) as target:
        entry = call_store(target.ops.get_audit, run_id)
    if entry is None:
        raise NotFoundError(f"no audit row for run {run_id}")
    still = {str(cert_id) for cert_id in entry.still_missed}
    console.data(entry_dict(entry))
    duration = f"{entry.duration_ms / 1000:.2f} s" if entry.duration_ms is not None else "-"
    console.out(f"Run          {entry.run_id}")
    console.out(
        f"Run at       {entry.run_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        if entry.run_at
        else "Run at       -"
    )
    console.out(f"Night        {entry.nightly_key or '-'}")
    console.out(f"Status       {entry.status}")
    console.out(f"Segments     {entry.segments if entry.segments is not None else '-'}")
    console.out(f"Duration     {duration}")
    console.out(f"Totals       {totals_text(entry.totals)}")
    console.out(
        f"Missed       {entry.missed_pause_count} auto-pause(s) at the end of the run; "
        f"{len(still)} still missed now"
    )
    for cert_id in entry.missed_ids:
        console.out(f"             {cert_id}  {'STILL MISSED' if cert_id in still else 'done'}")
    if entry.missed_nights:
        nights = ", ".join(str(night) for night in entry.missed_nights)
        console.out(f"No run on    {len(entry.missed_nights)} night(s) before this one: {nights}")
    resolved = (
        f"yes, at {entry.resolved_at:%Y-%m-%d %H:%M:%S %Z}"
        if entry.resolved and entry.resolved_at
        else ("yes" if entry.resolved else "no")
    )
    console.out(f"Resolved     {resolved}")
    if still:
        console.out(f"Next         {PROG} remediate {entry.run_id}")
    elif entry.unresolved:
        console.out(f"Next         {PROG} audit resolve {entry.run_id}")
    return EXIT_MISSED if still else EXIT_OK


def cmd_audit_resolve(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = parse_uuid(args.run_id)
    with open_target(args) as target:
        result = call_store(target.ops.resolve_audit, run_id, force=args.force)
    if not result.found:
        raise NotFoundError(f"no audit row for run {run_id}")
    console.data({"run_id": str(run_id), **result.model_dump()})
    if result.refused:
        cli_io.stderr.write(
            f"{PROG}: refusing to resolve run {run_id}: {len(result.still_missed)} of its missed "
            f"certifications are still not paused ({', '.join(map(str, result.still_missed[:5]))}"
            f"{' ...' if len(result.still_missed) > 5 else ''}).\n"
            f"Run `{PROG} remediate {run_id}` first, or pass --force to acknowledge anyway.\n"
        )
        return EXIT_MISSED
    when = f" at {result.resolved_at:%Y-%m-%d %H:%M:%S %Z}" if result.resolved_at else ""
    console.out(f"Run {run_id} resolved{when}.")
    if result.forced:
        console.out(
            f"Forced: {len(result.still_missed)} certification(s) of this run are still not paused."
        )
    return EXIT_OK


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `audit` to the command line."""
    audit = commands.add_parser(
        "audit",
        help="the cron_audit_log rows: list, show, resolve",
        description="Read the audit log (one row per run) and acknowledge remediated runs.",
        epilog="examples:\n"
        "  certexpiry audit list\n"
        "  certexpiry audit show RUN_ID\n"
        "  certexpiry audit resolve RUN_ID",
    )
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    listing = audit_commands.add_parser(
        "list",
        parents=[common, output],
        help="the newest runs, unresolved ones marked",
        description="The newest audit rows, newest first; '!' marks runs with missed "
        "auto-pauses not yet resolved.",
        epilog="examples:\n"
        "  certexpiry audit list --limit 50\n"
        "  certexpiry --json audit list | jq -r 'select(.unresolved) | .run_id'",
    )
    listing.add_argument(
        "--limit",
        type=bounded_int(1, MAX_LIST_LIMIT),
        default=DEFAULT_LIST_LIMIT,
        help=f"rows to show, at most {MAX_LIST_LIMIT} (default {DEFAULT_LIST_LIMIT})",
    )
    listing.set_defaults(handler=cmd_audit_list)
    show = audit_commands.add_parser(
        "show",
        parents=[common, output],
        help="one run, with its missed IDs",
        description="One audit row: totals, missed certification IDs and which of them are "
        "still missed now. Exit 1 if any still is.",
        epilog="examples:\n"
        "  certexpiry audit show RUN_ID\n"
        "  certexpiry audit show RUN_ID --json | jq .missed_ids",
    )
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(handler=cmd_audit_show)
    resolve = audit_commands.add_parser(
        "resolve",
        parents=[common, output],
        help="mark a run resolved after remediation",
        description="Set resolved = true (and resolved_at) on a run's audit row. Refused (exit "
        "1) while any of the run's missed certifications is still expired and not "
        "paused, unless --force.",
        epilog="examples:\n"
        "  certexpiry audit resolve RUN_ID\n"
        "  certexpiry audit resolve RUN_ID --force",
    )
    resolve.add_argument("run_id", metavar="RUN_ID")
    resolve.add_argument(
        "--force",
        action="store_true",
        help="resolve even though some missed certifications are still unpaused",
    )
    resolve.set_defaults(handler=cmd_audit_resolve)
