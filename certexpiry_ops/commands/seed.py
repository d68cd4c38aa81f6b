"""`seed`: generate a demo organisation into an empty local database."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from certexpiry_ops import demo_seed
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.target import connection_failed, open_target, resolve
from certexpiry_ops.usage import EXIT_OK, UsageError, positive_int


def cmd_seed(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    conninfo = resolve(args, direct=True).conninfo  # None: --demo, local by construction
    if conninfo is not None and not demo_seed.is_local(conninfo) and not args.allow_remote:
        raise UsageError(
            f"refusing to seed a database that is not local (host "
            f"{console.secrets.scrub(demo_seed.host_of(conninfo))}); pass --allow-remote if "
            "you really mean to write generated people into it"
        )
    with open_target(args, direct=True) as target:
        if target.conninfo is None:  # open_target(direct=True) refuses Supabase's HTTP API
            raise UsageError("`seed` needs a direct Postgres connection: set DATABASE_URL")
        try:
            with psycopg.connect(target.conninfo, autocommit=True) as conn:
                if not demo_seed.is_empty(conn):
                    raise UsageError(
                        "the database already has peer mentors; `seed` only fills an "
                        "empty one (`demo --fresh` starts the local one over)"
                    )
                today = datetime.now(ZoneInfo(target.settings.org_timezone)).date()
                report = demo_seed.seed(conn, mentors=args.mentors, seed=args.seed, today=today)
        except psycopg.Error as exc:
            raise connection_failed(target.where, exc) from None
    console.data(asdict(report))
    console.out(
        f"Seeded {report.mentors:,} mentors and {report.certifications:,} certifications "
        f"in {report.seconds:.2f} s (seed {args.seed}): {report.already_paused:,} already "
        f"paused, {report.to_pause_tonight:,} to pause tonight, {report.renewed:,} "
        "renewed."
    )
    return EXIT_OK


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `seed` to the command line."""
    seed = commands.add_parser(
        "seed",
        parents=[common, output],
        help="generate a demo organisation into an empty local database",
        description="Generate peer mentors and certifications (Norwegian-style fake people) into "
        "an empty database. Refuses a database that is not local (Unix socket, "
        "localhost, 127.0.0.1, ::1) unless --allow-remote.",
        epilog="examples:\n"
        "  certexpiry seed --mentors 200\n"
        "  certexpiry seed --mentors 5000 --seed 7",
    )
    seed.add_argument(
        "--mentors", type=positive_int, default=5_000, help="mentors to generate (default 5000)"
    )
    seed.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    seed.add_argument(
        "--allow-remote", action="store_true", help="allow a database that is not on this machine"
    )
    seed.set_defaults(handler=cmd_seed)
