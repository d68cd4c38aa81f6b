"""`migrate`, `migrate --dry-run` and `migrate status`: install or upgrade the job in the
target database (supabase/migrations/), say what that would do, or list every version as
applied, pending or unknown to this release.

A database ahead of this release (a newer release migrated it) is said to be ahead, with its
own schema version, and `migrate` on it exits 0 with a warning on stderr: nothing of this
release is missing there, the function accepts a newer schema, and a rollback's pipeline runs
this release's `migrate` before deploying it, so failing would stop the rollback an on-call
engineer is making (docs/operations.md, `migrate`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from certexpiry.store.contract import SCHEMA_VERSION
from certexpiry_ops import demo_seed, schema
from certexpiry_ops.console import CliIO, Console
from certexpiry_ops.target import probe, resolve, started
from certexpiry_ops.usage import EXIT_OK, PROG, UsageError


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """(conninfo, embedded): the database the command line names (DATABASE_URL, or the demo's
    embedded one with --demo, started for the command and stopped after it; Supabase's HTTP API
    cannot run DDL, so it is refused), announced and reached once within the connect timeout."""
    with started(resolve(args, direct=True), migrate=False) as where:
        probe(where)  # within the connect timeout, saying what it waits for
        yield where.conninfo or "", where.kind == "demo"


def _where(console: Console, conninfo: str, embedded: bool) -> tuple[str, str]:
    """(host for JSON, words for a person), the host scrubbed of any secret."""
    host = console.secrets.scrub(demo_seed.host_of(conninfo))
    return host, "the demo database" if embedded else f"the database on {host}"


def _bootstrap(args: argparse.Namespace) -> bool | None:
    return True if args.bootstrap else (False if args.no_bootstrap else None)


def _release_latest() -> str | None:
    files = schema.migrations()
    return files[-1].version if files else None


def _warn_ahead(cli_io: CliIO, unknown: list[str], latest: str | None) -> None:
    """The one line an on-call engineer must not miss, on stderr in either output mode."""
    cli_io.stderr.write(
        f"{PROG}: warning: the database is ahead of this release: schema version {latest}, "
        f"this release's newest is {_release_latest()}; {len(unknown)} applied migration(s) "
        f"are not in this release ({', '.join(unknown)}). This release's function accepts a "
        "newer schema; to move the database forward, migrate with the newer release\n"
    )


def cmd_migrate(args: argparse.Namespace, cli_io: CliIO) -> int:
    if args.dry_run:
        return _dry_run(args, cli_io)
    console = Console(cli_io, args.output)

    def applying(migration: schema.Migration) -> None:
        console.progress_line(f"migrate: applying {migration.path.name}")

    with _database(args) as (conninfo, embedded):
        host, where = _where(console, conninfo, embedded)
        try:
            # The demo database plays the app too (its fixture); a database named by
            # DATABASE_URL must hold the app already: the migrations check its contract.
            result = schema.migrate(
                conninfo, bootstrap=_bootstrap(args), app_fixture=embedded, on_apply=applying
            )
        except schema.MigrationChanged as exc:
            raise UsageError(str(exc)) from None
        finally:
            console.finish()
    console.data(
        {
            "host": host,
            "embedded": embedded,
            "bootstrapped": result.bootstrapped,
            "applied": result.applied,
            "already_applied": len(result.already),
            "unknown": result.unknown,
            "ahead": result.ahead,
            "app_fixture": result.app_fixture,
            "invalid_indexes": result.invalid_indexes,
            "latest": result.latest,
            "release_latest": _release_latest(),
            "required_by_runtime": SCHEMA_VERSION,
        }
    )
    _report(console, result, where)
    if result.ahead:
        _warn_ahead(cli_io, result.unknown, result.latest)
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
    elif result.ahead:
        console.out(f"Nothing to apply: {where} is ahead of this release.")
    else:
        console.out(f"Nothing to apply: {where} is up to date.")
    unknown = f", {len(result.unknown)} not in this release" if result.unknown else ""
    console.out(
        f"{len(result.already)} were already applied{unknown}; schema version now "
        f"{result.latest} (this release needs {SCHEMA_VERSION} or newer)."
    )
    _report_invalid(console, result.invalid_indexes)


def _report_invalid(console: Console, indexes: list[str]) -> None:
    for index in indexes:
        console.out(
            f"Index {index} is INVALID (its build failed): drop index concurrently "
            f"public.{index}; then run migrate again."
        )


def _inspect(args: argparse.Namespace, console: Console) -> tuple[schema.Inspection, str, str]:
    """The database as migrate would see it, read only: (inspection, host, words)."""
    with _database(args) as (conninfo, embedded):
        host, where = _where(console, conninfo, embedded)
        inspection = schema.inspect(conninfo, bootstrap=_bootstrap(args), app_fixture=embedded)
    return inspection, host, where


def _dry_run(args: argparse.Namespace, cli_io: CliIO) -> int:
    """What `migrate` would apply, in order, without applying anything; refused as migrate
    would refuse it (a changed applied file, exit 2)."""
    console = Console(cli_io, args.output)
    inspection, host, where = _inspect(args, console)
    try:
        schema.refuse_changed(inspection.statuses)
    except schema.MigrationChanged as exc:
        raise UsageError(str(exc)) from None
    pending = inspection.pending
    unknown = inspection.versions(schema.UNKNOWN)
    console.data(
        {
            "host": host,
            "dry_run": True,
            "would_bootstrap": inspection.would_bootstrap,
            "would_app_fixture": inspection.would_app_fixture,
            "would_apply": [status.version for status in pending],
            "already_applied": len(inspection.versions(schema.APPLIED)),
            "unknown": unknown,
            "ahead": inspection.ahead,
            "invalid_indexes": inspection.invalid_indexes,
            "latest": inspection.latest,
            "release_latest": _release_latest(),
            "required_by_runtime": SCHEMA_VERSION,
        }
    )
    console.out(f"Dry run: nothing is written to {where}.")
    if inspection.would_bootstrap:
        console.out("Would bootstrap it first (Supabase roles and auth schema are missing).")
    if inspection.would_app_fixture:
        console.out("Would create the app fixture (the peer-mentor app's tables).")
    elif not inspection.app_tables:
        console.out(
            "The app's tables (public.certifications) are missing: the baseline would stop "
            "on its check of the app's contract."
        )
    if pending:
        console.out(f"Would apply {len(pending)} migration(s), in this order:")
        for status in pending:
            console.out(f"  {status.version}  {status.name}")
    elif inspection.ahead:
        console.out(f"Nothing to apply: {where} is ahead of this release.")
    else:
        console.out(f"Nothing to apply: {where} is up to date.")
    console.out(
        f"Schema version now {inspection.latest or 'none'} (this release needs "
        f"{SCHEMA_VERSION} or newer)."
    )
    _report_invalid(console, inspection.invalid_indexes)
    if inspection.ahead:
        _warn_ahead(cli_io, unknown, inspection.latest)
    return EXIT_OK


_STATE_WORDS = {
    schema.APPLIED: "applied",
    schema.PENDING: "pending",
    schema.UNKNOWN: "unknown to this release",
}


def cmd_migrate_status(args: argparse.Namespace, cli_io: CliIO) -> int:
    """Every version, applied / pending / unknown: a report, exit 0 whatever it finds."""
    console = Console(cli_io, args.output)
    inspection, _, where = _inspect(args, console)
    for status in inspection.statuses:
        console.data(
            {
                "version": status.version,
                "name": status.name,
                "state": status.state,
                "local": status.local,
                "database": status.database,
                "applied_at": status.applied_at,
                "checksum": status.checksum,
            }
        )
    if console.json:
        return EXIT_OK
    console.out(f"Migrations of this release and of {where}:")
    console.out(
        f"  {'VERSION':<14}  {'NAME':<32}  {'LOCAL':<5}  {'DATABASE':<8}  "
        f"{'APPLIED AT (UTC)':<19}  STATE"
    )
    for status in inspection.statuses:
        applied_at = (
            status.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            if status.applied_at
            else ""
        )
        state = _STATE_WORDS[status.state]
        if status.checksum == schema.CHANGED:
            state += ", FILE CHANGED since"
        console.out(
            f"  {status.version:<14}  {status.name:<32}  {'yes' if status.local else '-':<5}  "
            f"{'yes' if status.database else '-':<8}  {applied_at:<19}  {state}"
        )
    _status_summary(console, inspection)
    return EXIT_OK


def _status_summary(console: Console, inspection: schema.Inspection) -> None:
    """The counts, the schema version, and the next command, for a person."""
    counts = {state: len(inspection.versions(state)) for state in _STATE_WORDS}
    console.out(
        f"\n{counts[schema.APPLIED]} applied, {counts[schema.PENDING]} pending, "
        f"{counts[schema.UNKNOWN]} unknown to this release; schema version "
        f"{inspection.latest or 'none'}, this release's newest {_release_latest()}."
    )
    if any(status.checksum == schema.CHANGED for status in inspection.statuses):
        console.out(
            "An applied migration's file changed since it was applied: migrate refuses until "
            "the file is restored (git checkout)."
        )
    if inspection.ahead:
        console.out(
            "The database is ahead of this release (a newer release migrated it): "
            f"`{PROG} migrate` of this release applies only its own pending migrations; to "
            "move the database forward, migrate with the newer release."
        )
    if counts[schema.PENDING]:
        console.out(
            f"Next: `{PROG} migrate --dry-run` shows the order, `{PROG} migrate` applies them."
        )


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `migrate` and `migrate status` to the command line."""
    migrate = commands.add_parser(
        "migrate",
        parents=[common, output],
        help="install or upgrade the job in the database (supabase/migrations/); "
        "`migrate status` lists every version",
        description="Apply every migration of supabase/migrations/ not yet in the job's own ledger "
        "(certexpiry.schema_migrations) to the database (DATABASE_URL: the app's Supabase "
        "database or a plain Postgres holding the app's tables; or with --demo the embedded "
        "one, with the app fixture), in order, each in its own transaction with a 1 s lock "
        "timeout, retried while the app holds a lock; the online index builds run outside a "
        "transaction. Never writes the app's migration history. Idempotent. Refuses, before "
        "writing anything, when an applied migration's file was changed since (exit 2). On a "
        "database without Supabase's roles (plain Postgres) it first applies "
        "supabase/local/bootstrap.sql. A database ahead of this release (migrated by a newer "
        "one) gets nothing applied and a warning on stderr, exit 0.",
        epilog="examples:\n"
        "  DATABASE_URL=postgresql://... certexpiry migrate --dry-run\n"
        "  DATABASE_URL=postgresql://... certexpiry migrate\n"
        "  certexpiry migrate status --demo",
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be applied, in order, and apply nothing (read-only transaction)",
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
    subcommands = migrate.add_subparsers(dest="migrate_command", metavar="SUBCOMMAND")
    status = subcommands.add_parser(
        "status",
        parents=[common, output],
        help="every version: applied, pending, or unknown to this release",
        description="Every migration version of this release (supabase/migrations/) and of "
        "the database's job ledger, like `supabase migration list`: applied (in both), pending "
        "(this release's file, not in the database), unknown to this release (in the database "
        "only: a newer release migrated it), with when it was applied and whether its file "
        "changed since. Reads in a read-only transaction; a report, so exit 0 whatever it finds.",
        epilog="examples:\n"
        "  DATABASE_URL=postgresql://... certexpiry migrate status\n"
        "  certexpiry migrate status --demo --json | jq -r 'select(.state != \"applied\")'",
    )
    status.set_defaults(handler=cmd_migrate_status)
