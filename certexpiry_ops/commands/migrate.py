"""`migrate`: install or upgrade the job in the target database (supabase/migrations/)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from certexpiry.contract import SCHEMA_VERSION
from certexpiry_ops import demo_seed, schema
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.embedded import open_embedded
from certexpiry_ops.usage import EXIT_OK, EXIT_USAGE, PROG, UsageError


def cmd_migrate(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    conninfo = os.environ.get("DATABASE_URL") or None
    if conninfo is None and os.environ.get("SUPABASE_URL"):
        raise UsageError(
            "`migrate` needs a direct Postgres connection: set DATABASE_URL to the project's "
            "database connection string (Supabase: Project Settings > Database), not its HTTP URL"
        )
    server = None
    if conninfo is None:
        server, conninfo = open_embedded(Path(args.data_dir), migrate=False)
    host = console.secrets.scrub(demo_seed.host_of(conninfo))
    bootstrap = True if args.bootstrap else (False if args.no_bootstrap else None)

    def applying(migration: schema.Migration) -> None:
        console.progress_line(f"migrate: applying {migration.path.name}")

    try:
        # The embedded default plays the app too (its fixture); a database named by
        # DATABASE_URL must hold the app already: the migrations check its contract.
        result = schema.migrate(
            conninfo, bootstrap=bootstrap, app_fixture=server is not None, on_apply=applying
        )
    except schema.MigrationChanged as exc:
        console.finish()
        cli_io.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    finally:
        console.finish()
        if server is not None:
            server.stop()
    console.data(
        {
            "host": host,
            "embedded": server is not None,
            "bootstrapped": result.bootstrapped,
            "applied": result.applied,
            "already_applied": len(result.already),
            "app_fixture": result.app_fixture,
            "invalid_indexes": result.invalid_indexes,
            "latest": result.latest,
            "required_by_runtime": SCHEMA_VERSION,
        }
    )
    _report(
        console,
        result,
        "the embedded database" if server is not None else f"the database on {host}",
    )
    return EXIT_OK


def _report(console: Console, result: schema.MigrateResult, where: str) -> None:
    """What the migrate did, for a person."""
    if result.bootstrapped:
        console.out(f"Bootstrapped {where} (Supabase roles and auth schema were missing).")
    if result.app_fixture:
        console.out(f"Created the app fixture in {where} (the peer-mentor app's tables).")
    if result.applied:
        console.out(f"Applied {len(result.applied)} migration(s) to {where}:")
        for version in result.applied:
            console.out(f"  {version}")
    else:
        console.out(f"Nothing to apply: {where} is up to date.")
    console.out(
        f"{len(result.already)} were already applied; schema version now {result.latest} "
        f"(this release needs {SCHEMA_VERSION} or newer)."
    )
    for index in result.invalid_indexes:
        console.out(
            f"Index {index} is INVALID (its build failed): drop index concurrently "
            f"public.{index}; then run migrate again."
        )


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `migrate` to the command line."""
    migrate = commands.add_parser(
        "migrate",
        parents=[common, output],
        help="install or upgrade the job in the database (supabase/migrations/)",
        description="Apply every migration of supabase/migrations/ not yet in the job's own "
        "ledger (certexpiry.schema_migrations) to the database (DATABASE_URL: the app's "
        "Supabase database or a plain Postgres holding the app's tables; else the embedded "
        "one, with the app fixture), in order, each in its own transaction with a 1 s lock "
        "timeout, retried while the app holds a lock; the online index builds run outside a "
        "transaction. Never writes the app's migration history. Idempotent. Refuses, before "
        "writing anything, when an applied migration's file was changed since. On a database "
        "without Supabase's roles (plain Postgres) it first applies supabase/local/bootstrap.sql.",
        epilog="examples:\n"
        "  DATABASE_URL=postgresql://... certexpiry migrate\n"
        "  certexpiry migrate --json",
    )
    choice = migrate.add_mutually_exclusive_group()
    choice.add_argument(
        "--bootstrap",
        action="store_true",
        help="apply supabase/local/bootstrap.sql even if the roles exist (never on Supabase)",
    )
    choice.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="never apply the bootstrap (default: only where service_role or auth is missing)",
    )
    migrate.set_defaults(handler=cmd_migrate)
