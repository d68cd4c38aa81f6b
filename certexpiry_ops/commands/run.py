"""`run`: tonight's sweep in this process, the nightly trigger then every continuation."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from certexpiry.sweep import Job
from certexpiry_ops.console import CliIO, Console, totals_text
from certexpiry_ops.fakes import InMemoryPublisher
from certexpiry_ops.local import run_chain
from certexpiry_ops.remedy import remediation_hint
from certexpiry_ops.target import Target, call_store, open_target
from certexpiry_ops.usage import EXIT_FAILED, EXIT_MISSED, EXIT_OK, PROG, positive_int

# Lines that show the chain is moving (a run that logs errors without them is failing).
_PROGRESS_CODES = frozenset(
    {
        "RUN_STARTED",
        "RUN_RESUMED",
        "SEGMENT_STARTED",
        "BATCH_DONE",
        "CONTINUATION_PUBLISHED",
        "RUN_COMPLETED",
        "DUPLICATE_DELIVERY",
        "RUN_BUSY",
    }
)
_FAILED_INVOCATIONS_LIMIT = 3
LEASE_MARGIN_S = 0.5  # after the lease's end, so the retry finds it lapsed


class _ChainFailing(Exception):
    """Several invocations in a row logged errors without progress: stop retrying."""


def lease_waiter(console: Console, target: Target) -> Callable[[], None]:
    """What `run` does when tonight's run is held by a live invocation (RUN_BUSY): wait until
    its lease lapses, with one line counting down on a terminal, then retry the trigger, which
    takes the run over from its checkpoint."""

    def wait() -> None:
        busy = next(e for e in reversed(console.entries) if e.get("error_code") == "RUN_BUSY")
        context = busy.get("context") or {}
        nights = call_store(target.ops.nights, target.settings.org_timezone, 1)
        left = (nights[0].lease_left_s or 0.0) if nights else 0.0
        deadline = time.monotonic() + left + LEASE_MARGIN_S
        while (remaining := deadline - time.monotonic()) > 0:
            console.progress_line(
                f"waiting: tonight's run {context.get('run_id', '')} (segment "
                f"{context.get('segment', '?')}) is held by another invocation; its lease "
                f"ends in {math.ceil(remaining)} s"
            )
            time.sleep(min(1.0, remaining))

    return wait


def cmd_run(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output, progress=True)
    with open_target(args) as target:
        settings = target.settings
        call_store(  # can we talk to it? (exit 4 naming the target if not)
            target.store.missed_auto_pauses,
            settings.org_timezone,
            None,
            limit=settings.missed_ids_limit,
        )
        publisher = InMemoryPublisher()
        job = Job(
            settings=settings, store=target.store, publisher=publisher, log=console.logger(settings)
        )
        seen = 0
        strikes = 0

        def watch(_invocations: int) -> None:
            nonlocal seen, strikes
            new, seen = console.entries[seen:], len(console.entries)
            progressed = any(e.get("error_code") in _PROGRESS_CODES for e in new)
            failed = any(e.get("severity") == "ERROR" for e in new)
            strikes = strikes + 1 if failed and not progressed else 0
            if strikes >= _FAILED_INVOCATIONS_LIMIT:
                raise _ChainFailing

        try:
            run_chain(
                job,
                publisher,
                on_invocation=watch,
                on_retry=lease_waiter(console, target),
                max_invocations=args.max_invocations,
            )
        except _ChainFailing:
            console.finish()
            cli_io.stderr.write(f"{PROG}: error: the run keeps failing; see the ERROR lines\n")
            return EXIT_FAILED
        finally:
            console.finish()
        codes = [e.get("error_code") for e in console.entries]
        run_id = next(
            (
                e.get("cron_run_id")
                for e in reversed(console.entries)
                if e.get("error_code") in ("RUN_COMPLETED", "DUPLICATE_DELIVERY")
            ),
            None,
        )
        if run_id is None:
            cli_io.stderr.write(f"{PROG}: error: the run did not complete; see the ERROR lines\n")
            return EXIT_FAILED
        left = call_store(
            target.store.missed_auto_pauses,
            settings.org_timezone,
            None,
            limit=settings.missed_ids_limit,
        )
        audit = call_store(target.ops.get_audit, UUID(str(run_id)))
        hint = remediation_hint(target.ops, left.missed_ids) if left.missed_pause_count else ""
        if not console.json:
            console.out("")
            if "RUN_COMPLETED" in codes and audit is not None:
                console.out(
                    f"Run {run_id} completed: {audit.segments} segment(s), "
                    f"{(audit.duration_ms or 0) / 1000:.2f} s."
                )
                console.out("  " + totals_text(audit.totals))
            else:
                console.out(f"Tonight's run {run_id} had already completed: nothing was done.")
            console.out(f"  missed auto-pauses now: {left.missed_pause_count}")
            console.out(f"Next: {PROG} audit show {run_id}")
            if hint:  # the run(s) whose audit rows recorded what is missed now, or --ids
                console.out(f"      {hint}")
        return EXIT_MISSED if left.missed_pause_count else EXIT_OK


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `run` to the command line."""
    run = commands.add_parser(
        "run",
        parents=[common, output],
        help="one sweep, in process, on the configured database",
        description="Run tonight's sweep in this process with an in-memory publisher: the "
        "nightly trigger, then every continuation, exactly as the deployed function "
        "handles them (settings from the environment, as the function reads them). "
        "A second run the same night is a no-op. Exit 1 if missed auto-pauses remain.",
        epilog="examples:\n"
        "  DATABASE_URL=postgresql://... certexpiry run\n"
        "  certexpiry run --json | jq -c 'select(.severity != \"INFO\")'",
    )
    run.add_argument(
        "--max-invocations",
        type=positive_int,
        default=10_000,
        help="stop after this many invocations (default 10000)",
    )
    run.set_defaults(handler=cmd_run)
