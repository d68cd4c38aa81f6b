"""`demo`: the real function over HTTP on a seeded local database (`make demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.embedded import default_data_dir
from certexpiry_ops.usage import positive_float, positive_int


def cmd_demo(args: argparse.Namespace, cli_io: CliIO) -> int:
    from certexpiry_ops.demo import DemoOptions, run_demo  # starts nothing until called

    options = DemoOptions(
        data_dir=Path(args.data_dir),
        mentors=args.mentors,
        seed=args.seed,
        fresh=args.fresh,
        with_failures=args.with_failures,
        stop_half_way=args.stop_half_way,
        time_budget_s=args.time_budget,
        batch_size=args.batch_size,
        monitoring_reserve_s=args.monitoring_reserve,
    )
    console = Console(cli_io, args.output, progress=True)
    try:
        return run_demo(options, console)
    finally:
        console.finish()


def register(
    commands: Any,
    common: argparse.ArgumentParser,  # its --data-dir help is wrong for demo
    output: argparse.ArgumentParser,
) -> None:
    """Add `demo` to the command line."""
    demo = commands.add_parser(
        "demo",
        parents=[output],
        help="run the real function on a seeded local database",
        description="Start the embedded PostgreSQL, seed a generated organisation if it is "
        "empty, and run main.nightly_sweep through functions-framework and a fake "
        "Pub/Sub: the nightly trigger, then every continuation. On a terminal: the "
        "function's log rendered one line per entry, a progress line, then a summary; "
        "piped or with --json: the function's JSON log lines, then the summary as one "
        "JSON object. The function's JSON lines are also appended to function-log.jsonl in "
        "--data-dir, which `logs RUN_ID --demo` reads. Always uses the embedded "
        "PostgreSQL: DATABASE_URL and SUPABASE_URL are ignored (and hidden from the "
        "function). Run it twice the same day to see that nothing new is sent.",
        epilog="examples:\n"
        "  certexpiry demo\n"
        "  certexpiry demo --fresh --with-failures\n"
        "  certexpiry demo --json | jq -c 'select(.summary)'",
    )
    demo.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        metavar="DIR",
        help="data directory of the embedded PostgreSQL (default: $CERTEXPIRY_DATA_DIR or "
        ".pgdata/ in the repository); the demo never uses DATABASE_URL or SUPABASE_URL",
    )
    demo.add_argument(
        "--mentors",
        type=positive_int,
        default=5_000,
        help="mentors to generate into an empty database (default 5000)",
    )
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    demo.add_argument(
        "--fresh", action="store_true", help="drop the demo database first and start over"
    )
    demo.add_argument(
        "--with-failures",
        action="store_true",
        help="install a trigger refusing to pause 2 certifications, so the run "
        "ends with MISSED_AUTO_PAUSE (remove it with remediate "
        "--drop-demo-trigger, or --fresh)",
    )
    demo.add_argument(
        "--stop-half-way",
        action="store_true",
        help="refuse the checkpoint of the night's middle batch once (SQLSTATE 42501), so the "
        "night stops half-way with RUN_STOPPED and exit 4; `run` then finishes it",
    )
    demo.add_argument(
        "--time-budget",
        type=positive_float,
        default=0.1,
        metavar="SECONDS",
        help="TIME_BUDGET_S of the function: small, so the run continues itself (default 0.1)",
    )
    demo.add_argument("--batch-size", type=positive_int, default=50, help="BATCH_SIZE (default 50)")
    demo.add_argument(
        "--monitoring-reserve",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="MONITORING_RESERVE_S (default 0.02)",
    )
    demo.set_defaults(handler=cmd_demo)
