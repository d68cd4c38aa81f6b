"""`export-migrations` and `uninstall`: the job entering and leaving the app's database.

The primary install path puts the job's migrations into the app's own `supabase/migrations`
folder, after the app's newest, so the app's `supabase db push` applies them with its own and
the Supabase CLI's history keeps matching the app's folder (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from certexpiry_ops import demo_seed, schema
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.target import probe, resolve
from certexpiry_ops.usage import EXIT_OK, UsageError


def cmd_export(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    target = Path(args.app_migrations)
    if not target.is_dir():
        raise UsageError(
            f"{target} is not a folder: pass the app's supabase/migrations folder "
            "(`supabase init` creates it)"
        )
    written = schema.export_to_app(target)
    already = schema.exported_versions(target)
    console.data(
        {
            "folder": str(target),
            "written": [path.name for path in written],
            "already_there": len(already) - len(written),
        }
    )
    if written:
        console.out(f"Wrote {len(written)} migration(s) of certexpiry into {target}:")
        for path in written:
            console.out(f"  {path.name}")
        console.out(
            "Review them with the app's own, then push them with the app's migrations "
            "(`supabase db push` from the app's repository)."
        )
    else:
        console.out(f"Nothing to write: {target} already holds every certexpiry migration.")
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    if not os.environ.get("DATABASE_URL", "").strip():
        raise UsageError("`uninstall` needs DATABASE_URL: the database to remove the job from")
    where = resolve(args, direct=True)
    conninfo = where.conninfo or ""
    if not args.yes:
        raise UsageError(
            "`uninstall` removes the job and its history (idempotency log, outbox, runs, audit "
            f"log) from the database on {console.secrets.scrub(demo_seed.host_of(conninfo))}; "
            "pass --yes to go on"
        )
    where.announce()
    probe(where)
    schema.uninstall(conninfo)
    console.data({"host": demo_seed.host_of(conninfo), "uninstalled": True})
    console.out(
        "Removed certexpiry from the database; the app's tables, grants and policies are as "
        "they were before it was installed."
    )
    return EXIT_OK


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `export-migrations` and `uninstall` to the command line."""
    export = commands.add_parser(
        "export-migrations",
        parents=[common, output],
        help="write the job's migrations into the app's supabase/migrations folder",
        description="Copy each migration of this release that the app's folder does not hold "
        "yet into it, numbered after the app's newest, each marked with the job's own version "
        "on its first line. The app then pushes them with its own migrations.",
        epilog="examples:\n  certexpiry export-migrations ../peer-mentor-app/supabase/migrations",
    )
    export.add_argument("app_migrations", metavar="APP_MIGRATIONS_DIR")
    export.set_defaults(handler=cmd_export)
    uninstall = commands.add_parser(
        "uninstall",
        parents=[common, output],
        help="remove the job from the database (DATABASE_URL), leaving the app as it was",
        description="Run supabase/uninstall.sql in one transaction: the job's trigger, column "
        "and indexes on certifications, its RPCs, its audit log and its schema go; the app's "
        "tables, grants, policies and default privileges are untouched.",
        epilog="examples:\n  DATABASE_URL=postgresql://... certexpiry uninstall --yes",
    )
    uninstall.add_argument("--yes", action="store_true", help="really remove it")
    uninstall.set_defaults(handler=cmd_uninstall)
