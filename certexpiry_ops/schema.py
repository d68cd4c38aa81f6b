"""Bring a database to the project's schema: the local bootstrap, then `supabase/migrations/`.

One runner for everything that migrates: `certexpiry migrate` (embedded default, plain Postgres,
a Supabase database URL), the embedded server of the demo and the test suite's template. It
records what it applied the way the Supabase CLI does (`supabase_migrations.schema_migrations`:
version, name, statements), so `supabase db push` and this runner agree on what is applied,
and the function's cold-start check (`public.schema_version`) reads the same table whichever
of the two applied it.

Applied migrations are never edited: before applying anything, each applied file is compared
with the statements recorded for it (whitespace and semicolons aside, so the CLI's
statement-by-statement record and ours compare equal), and a changed one stops the run with
`MigrationChanged` before anything is written. The bootstrap (`supabase/local/`) supplies what a
hosted Supabase project already has (roles, the `auth` schema); it is applied only where those
are missing, never to a Supabase database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "supabase" / "local" / "bootstrap.sql"
MIGRATIONS_DIR = ROOT / "supabase" / "migrations"
SCHEMAS_DIR = ROOT / "supabase" / "schemas"

# As the Supabase CLI creates its history table (pkg/migration/history.go), column by column,
# so an older table made by either gains the columns the other writes.
_TRACKING = (
    "create schema if not exists supabase_migrations",
    "create table if not exists supabase_migrations.schema_migrations"
    " (version text not null primary key)",
    "alter table supabase_migrations.schema_migrations add column if not exists statements text[]",
    "alter table supabase_migrations.schema_migrations add column if not exists name text",
)
_FILE_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")
_LOCK_KEY = 0x63657274  # pg_advisory_lock key: one migrate at a time per database
_NOT_SIGNIFICANT = re.compile(r"[\s;]+")


class MigrationChanged(Exception):
    """An applied migration's file differs from what was applied: refuse to go on."""

    def __init__(self, version: str, name: str) -> None:
        super().__init__(
            f"migration {version}_{name}.sql was changed after it was applied to this database; "
            "from the first release (tag v1.0.0) on, migrations are append-only and never "
            "edited: restore the file (git checkout) and put the change in a new migration. "
            "Before that release the baseline may be regenerated (`make baseline`): recreate a "
            "local database made from an earlier baseline"
        )
        self.version = version


@dataclass(frozen=True)
class Migration:
    """One file of supabase/migrations/."""

    version: str
    name: str
    path: Path

    def text(self) -> str:
        return self.path.read_text()


@dataclass
class MigrateResult:
    """What a migrate did: the versions applied now and those found already applied."""

    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    bootstrapped: bool = False

    @property
    def latest(self) -> str | None:
        versions = self.applied + self.already
        return max(versions) if versions else None


def migration_files() -> list[Path]:
    """The migrations in the order the Supabase CLI applies them (by timestamp prefix)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def schema_files() -> list[Path]:
    """The readable current schema (`supabase/schemas/`), in the order its files apply."""
    return sorted(SCHEMAS_DIR.glob("*.sql"))


def apply_schemas(conninfo: str, *, bootstrap: bool = True) -> None:
    """Build the current schema from `supabase/schemas/` (no migration history is written):
    the database the baseline migration must equal, and the source it is generated from."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if bootstrap:
            conn.execute(BOOTSTRAP.read_text())
        with conn.transaction():
            for path in schema_files():
                conn.execute(path.read_text())


BASELINE_NAME = "baseline"
RELEASE_TAG = "v1.0.0"
_BASELINE_HEADER = """\
-- The baseline: the job's whole schema as of its first release, generated from
-- supabase/schemas/ (`make baseline`; do not edit by hand). Until the first release (tag
-- v1.0.0) it may be regenerated; from then on migrations are append-only and never edited: a
-- change goes into supabase/schemas/ and into a new migration (`make schema-diff` shows what
-- differs). tests/integration/test_schema_equal.py keeps the two equal.
"""


def baseline_text() -> str:
    """The baseline migration as generated from `supabase/schemas/`, file by file."""
    parts = [_BASELINE_HEADER]
    for path in schema_files():
        parts.append(f"\n-- ===== supabase/schemas/{path.name} =====\n\n{path.read_text()}")
    return "".join(parts)


def write_baseline(version: str | None = None) -> Path:
    """Replace every migration by one baseline `<version>_baseline.sql` made from the schemas
    (allowed only before the first release: `make baseline` checks for the release tag). The
    version stays the current baseline's, so a local database made from an earlier baseline is
    refused as changed (MigrationChanged) instead of half-applied."""
    if version is None:
        current = [m for m in migrations() if m.name == BASELINE_NAME]
        version = current[0].version if current else time.strftime("%Y%m%d%H%M%S", time.gmtime())
    for old in migration_files():
        old.unlink()
    MIGRATIONS_DIR.mkdir(parents=True, exist_ok=True)
    path = MIGRATIONS_DIR / f"{version}_{BASELINE_NAME}.sql"
    path.write_text(baseline_text())
    return path


def migrations() -> list[Migration]:
    """The migration files as (version, name), as the Supabase CLI parses their names."""
    found = []
    for path in migration_files():
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration is named <timestamp>_<name>.sql")
        found.append(Migration(match.group(1), match.group(2), path))
    return found


def fingerprint(text: str) -> str:
    """The SQL without whitespace and semicolons: what must not change once applied."""
    return _NOT_SIGNIFICANT.sub("", text)


def needs_bootstrap(conn: psycopg.Connection[Any]) -> bool:
    """True where the Supabase roles or the auth schema are missing (a plain Postgres)."""
    row = conn.execute(
        "select exists (select from pg_roles where rolname = 'service_role')"
        " and to_regnamespace('auth') is not null"
        " and to_regprocedure('auth.jwt()') is not null"
    ).fetchone()
    return not (row and row[0])


def applied_statements(conn: psycopg.Connection[Any]) -> dict[str, list[str] | None]:
    """version -> recorded statements, from the history table (empty when there is none)."""
    if conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone() == (
        None,
    ):
        return {}
    return {
        str(version): statements
        for version, statements in conn.execute(
            "select version, statements from supabase_migrations.schema_migrations"
        )
    }


def migrate(
    conninfo: str,
    *,
    bootstrap: bool | None = None,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrateResult:
    """Apply the bootstrap (None: only where needed) and every pending migration, in order,
    each in its own transaction with its history row; refuse a changed applied file first."""
    result = MigrateResult()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if bootstrap or (bootstrap is None and needs_bootstrap(conn)):
                conn.execute(BOOTSTRAP.read_text())
                result.bootstrapped = True
            for statement in _TRACKING:
                conn.execute(statement)
            done = applied_statements(conn)
            files = migrations()
            for migration in files:
                # No statements recorded (`supabase migration repair`): nothing to compare.
                recorded = done.get(migration.version) or []
                if recorded and fingerprint("".join(recorded)) != fingerprint(migration.text()):
                    raise MigrationChanged(migration.version, migration.name)
            for migration in files:
                if migration.version in done:
                    result.already.append(migration.version)
                    continue
                if on_apply is not None:
                    on_apply(migration)
                text = migration.text()
                with conn.transaction():
                    conn.execute(text)
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations"
                        " (version, name, statements) values (%s, %s, %s)",
                        (migration.version, migration.name, [text.strip().rstrip(";")]),
                    )
                result.applied.append(migration.version)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return result


def apply(conninfo: str, *, bootstrap: bool = True) -> list[str]:
    """Apply the bootstrap (optional) and every pending migration; return the new versions."""
    return migrate(conninfo, bootstrap=bootstrap).applied
