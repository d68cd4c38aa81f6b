"""`deliver`: the toy sender, draining the outbox through the sender's RPCs (ids and kinds only)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from certexpiry_ops import demo_seed
from certexpiry_ops.console import CliIO, Console, backlog_text
from certexpiry_ops.ops import MAX_CLAIM, MAX_VISIBILITY_S
from certexpiry_ops.sender import (
    DEFAULT_LIMIT,
    DEFAULT_VISIBILITY_S,
    FAIL_CODE,
    Delivery,
    SenderResult,
    drain,
)
from certexpiry_ops.target import call_store, open_target
from certexpiry_ops.usage import EXIT_OK, PROG, UsageError, bounded_int


def cmd_deliver(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    _refuse_remote(args, console)

    def show(item: Delivery) -> None:
        console.data(item.data())
        console.out(delivery_line(item))

    with open_target(args) as target:
        result: SenderResult = call_store(
            drain,
            target.ops,
            limit=args.limit,
            visibility_s=args.visibility,
            fail_every=args.fail_every,
            on_delivery=show,
        )
        backlog = call_store(target.store.outbox_backlog)
    console.data(
        {"summary": "deliver", **result.data(), "backlog": backlog.model_dump(mode="json")}
    )
    for line in summary_text(result):
        console.out(line)
    console.out(backlog_text(backlog))
    return EXIT_OK


def _refuse_remote(args: argparse.Namespace, console: Console) -> None:
    """The toy sender acknowledges what it never sent: on the app's database the mentors would
    never hear of those messages. Local databases only, unless --allow-remote."""
    if args.allow_remote:
        return
    conninfo = os.environ.get("DATABASE_URL") or None
    if conninfo is None and os.environ.get("SUPABASE_URL"):
        raise UsageError(
            "refusing to drain a Supabase project's outbox with the toy sender (it sends "
            "nothing, so the mentors would never hear of those messages); pass --allow-remote "
            "if this is a test project"
        )
    if conninfo is not None and not demo_seed.is_local(conninfo):
        raise UsageError(
            f"refusing to drain the outbox of a database that is not local (host "
            f"{console.secrets.scrub(demo_seed.host_of(conninfo))}) with the toy sender (it "
            "sends nothing, so the mentors would never hear of those messages); pass "
            "--allow-remote if this is a test database"
        )


def delivery_line(item: Delivery) -> str:
    """One message for a person: ids, kind, payload keys; what the toy sender did with it."""
    done = "delivered" if item.delivered else f"FAILED ({FAIL_CODE})"
    keys = ", ".join(item.payload_keys) or "-"
    return (
        f"  #{item.id:<8} {item.kind:<12}  certification {item.certification_id}  "
        f"payload: {keys}  attempt {item.attempt}  {done}"
    )


def summary_text(result: SenderResult) -> list[str]:
    by_kind = ", ".join(f"{kind} {count:,}" for kind, count in result.by_kind().items())
    lines = [
        "",
        f"Delivered {len(result.delivered):,} message(s)"
        + (f" ({by_kind})" if by_kind else "")
        + f" in {result.batches} batch(es), acknowledged through acknowledge_outbox.",
        f"Dropped {result.dropped:,} (reminders of certifications changed since queued), "
        f"exhausted {result.exhausted:,} (claimed too often without an acknowledgement), "
        f"failed {result.failed:,} (--fail-every).",
    ]
    if not result.handled:
        lines[1] = "Nothing to deliver: no claimable message in the outbox."
    return lines


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `deliver` to the command line."""
    deliver = commands.add_parser(
        "deliver",
        parents=[common, output],
        help="the toy sender: drain the outbox through the sender's RPCs",
        description="Do what the app's sender does, without sending anything: claim a batch of "
        "the outbox (claim_outbox), 'deliver' each message by printing its id, kind, "
        "certification id and payload keys (never a name: the outbox has none), acknowledge "
        "them (acknowledge_outbox), and repeat until a claim comes back empty; then the "
        "totals and the backlog. What it acknowledges is gone from the outbox for good, so it "
        "refuses a database that is not local (Unix socket, localhost) unless --allow-remote. "
        f"The backlog alone: `{PROG} check`.",
        epilog="examples:\n  certexpiry deliver\n  certexpiry deliver --limit 10 --fail-every 5",
    )
    deliver.add_argument(
        "--limit",
        type=bounded_int(1, MAX_CLAIM),
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"messages per claim, at most {MAX_CLAIM} (default {DEFAULT_LIMIT})",
    )
    deliver.add_argument(
        "--visibility",
        type=bounded_int(1, MAX_VISIBILITY_S),
        default=DEFAULT_VISIBILITY_S,
        metavar="SECONDS",
        help="how long a claimed message is hidden from other claims, at most "
        f"{MAX_VISIBILITY_S} (default {DEFAULT_VISIBILITY_S})",
    )
    deliver.add_argument(
        "--fail-every",
        type=bounded_int(0),
        default=0,
        metavar="N",
        help=f"report every Nth message as failed for good (fail_outbox, code {FAIL_CODE}) "
        "instead of delivering it, to show the failure path (default 0: never)",
    )
    deliver.add_argument(
        "--allow-remote",
        action="store_true",
        help="drain a database that is not local (a test project only: what it acknowledges "
        "is never sent)",
    )
    deliver.set_defaults(handler=cmd_deliver)
