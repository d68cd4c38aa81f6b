"""Install the job into a database: `supabase/migrations/`, recorded in the job's own ledger.

One runner for everything that migrates: `certexpiry migrate` (a Supabase database URL, a plain
Postgres, the demo database), the demo and the test suite's template. The job is a guest in
the app's database: the runner writes the job's objects and the job's ledger
(`certexpiry.schema_migrations`) and nothing of the app's, never its migration history
(`supabase_migrations`), so the app's own `supabase db push` keeps working. Each migration
records its own version in the ledger (the baseline's last statement), so the function's schema
check works whichever way the SQL was applied: this runner, `supabase db push` from the app's
repository (`export_to_app` writes the files there), or the SQL editor. The runner adds a
checksum to each row it applies and refuses, before writing anything, an applied file that
changed since.

What migrate does and what `migrate status` / `migrate --dry-run` report come from one
comparison of this release's files with the ledger (`compare`): each version applied, pending
(a file not in the ledger) or unknown to this release (in the ledger only: a newer release
migrated the database, which is then "ahead"). The reports read it in a read-only transaction
(`inspect`), so they cannot write.

A migration that is one `CONCURRENTLY` statement (an index on the app's table, built without
blocking the app's writes) runs outside a transaction (the Supabase CLI does so for a file that
holds one such statement from v2.109.0 on) and cannot record itself: the runner records it.
Every other migration runs in one transaction with a short lock timeout, retried when the app
holds a lock, so an install never queues the app's queries behind it for long.

`supabase/schemas/` is the readable truth; before the first release the migrations are
generated from it (`make baseline`: the baseline, then one migration per online index).

Local databases only: the bootstrap (roles, the `auth` schema, hosted default privileges) and
the app fixture (the peer-mentor app's tables, policies, RPC and history) are applied where
missing, never to a Supabase database, where the app made them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql

ROOT = Path(__file__).resolve().parent.parent
SUPABASE_DIR = ROOT / "supabase"
BOOTSTRAP = SUPABASE_DIR / "local" / "bootstrap.sql"
APP_FIXTURE = SUPABASE_DIR / "local" / "app_fixture.sql"
UNINSTALL = SUPABASE_DIR / "uninstall.sql"
MIGRATIONS_DIR = SUPABASE_DIR / "migrations"
SCHEMAS_DIR = SUPABASE_DIR / "schemas"

BASELINE_NAME = "baseline"
RELEASE_TAG = "v1.0.0"
EXPORT_MARK = "-- certexpiry migration "
_FILE_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")
_LOCK_KEY = 0x63657274  # pg_advisory_lock key: one migrate at a time per database
_NOT_SIGNIFICANT = re.compile(r"[\s;]+")
_CONCURRENTLY = re.compile(r"\bconcurrently\b", re.IGNORECASE)
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
# A migration waits at most this long for a lock the app holds, then is retried: the app's
# queries queue behind a waiting DDL statement, so the wait is what the app can feel.
LOCK_TIMEOUT = "1s"
LOCK_RETRIES = (1.0, 2.0, 4.0, 8.0)

_BASELINE_HEADER = f"""\
-- The baseline: the job's whole schema as of its first release, generated from
-- supabase/schemas/ (`make baseline`; do not edit by hand). Until the first release (tag
-- v1.0.0) it may be regenerated; from then on migrations are append-only and never edited: a
-- change goes into supabase/schemas/ and into a new migration (`make schema-diff` shows what
-- differs). tests/integration/test_schema_equal.py keeps the two equal.
--
-- It installs into the app's database (the app's tables must exist: 05_app_contract.sql) and
-- ends by recording itself in the job's ledger, certexpiry.schema_migrations. A lock the app
-- holds is waited for at most 1 s (the app's queries queue behind a waiting DDL statement):
-- then the migration fails whole, and is run again (`certexpiry migrate` retries by itself).

set local lock_timeout = '{LOCK_TIMEOUT}';
"""


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

    @property
    def online(self) -> bool:
        """One CONCURRENTLY statement: run outside a transaction, recorded by the runner."""
        return bool(_CONCURRENTLY.search(_without_comments(self.text())))


@dataclass
class MigrateResult:
    """What a migrate did: the versions applied now, those found already applied, and those
    the database holds that this release does not know (a newer release migrated it)."""

    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    bootstrapped: bool = False
    app_fixture: bool = False
    invalid_indexes: list[str] = field(default_factory=list)

    @property
    def latest(self) -> str | None:
        """The database's schema version after the migrate: its ledger's newest, as
        `public.schema_version()` answers it (so a database ahead says its own version, not
        this release's)."""
        versions = self.applied + self.already + self.unknown
        return max(versions) if versions else None

    @property
    def ahead(self) -> bool:
        """The database holds a version newer than every migration of this release."""
        return is_ahead(self.unknown)


@dataclass(frozen=True)
class LedgerRow:
    """One row of the job's ledger."""

    name: str
    applied_at: datetime | None
    checksum: str | None


APPLIED, PENDING, UNKNOWN = "applied", "pending", "unknown"
# How an applied file compares with what was applied: the same, changed since (migrate refuses),
# or not known (the row has no checksum: the SQL recorded itself, applied by the Supabase CLI
# or the SQL editor; migrate takes it as applied).
SAME, CHANGED, UNRECORDED = "same", "changed", "unrecorded"


@dataclass(frozen=True)
class VersionStatus:
    """One version as `supabase migration list` shows it (Local | Remote): in this release's
    files, in the database's ledger, or both."""

    version: str
    name: str
    state: str  # APPLIED (both), PENDING (file only), UNKNOWN (ledger only)
    applied_at: datetime | None = None
    checksum: str | None = None  # SAME, CHANGED or UNRECORDED when applied, else None

    @property
    def local(self) -> bool:
        return self.state != UNKNOWN

    @property
    def database(self) -> bool:
        return self.state != PENDING


def compare(files: list[Migration], recorded: dict[str, LedgerRow]) -> list[VersionStatus]:
    """Every version of this release's files and of the database's ledger, in version order:
    the one comparison both `migrate` and its status and dry run are made from, so what the
    dry run says is pending is what migrate applies."""
    rows = []
    for migration in files:
        row = recorded.get(migration.version)
        if row is None:
            rows.append(VersionStatus(migration.version, migration.name, PENDING))
            continue
        if row.checksum is None:
            state = UNRECORDED
        else:
            state = SAME if row.checksum == checksum(migration.text()) else CHANGED
        rows.append(
            VersionStatus(migration.version, migration.name, APPLIED, row.applied_at, state)
        )
    known = {migration.version for migration in files}
    rows += [
        VersionStatus(version, row.name, UNKNOWN, row.applied_at)
        for version, row in recorded.items()
        if version not in known
    ]
    return sorted(rows, key=lambda status: status.version)


def is_ahead(unknown: list[str]) -> bool:
    """A version unknown to this release and newer than all of its migrations: a newer
    release migrated the database (an unknown older one is a history this release lacks)."""
    files = migrations()
    return bool(unknown) and (not files or max(unknown) > files[-1].version)


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def checksum(text: str) -> str:
    """What must not change once applied: the SQL without whitespace and semicolons."""
    return hashlib.sha256(_NOT_SIGNIFICANT.sub("", text).encode()).hexdigest()


def migration_files() -> list[Path]:
    """The migrations in the order they apply (by timestamp prefix)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def migrations() -> list[Migration]:
    """The migration files as (version, name), as the Supabase CLI parses their names."""
    found = []
    for path in migration_files():
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration is named <timestamp>_<name>.sql")
        found.append(Migration(match.group(1), match.group(2), path))
    return found


def required_version() -> str:
    """The newest migration that records itself in the job's ledger: what the function's
    schema check requires (an online index cannot record itself: the Supabase CLI records it in
    the app's history only, and `certexpiry migrate` in the job's ledger)."""
    return [m for m in migrations() if not m.online][-1].version


# -- supabase/schemas/ and the baseline generated from it ------------------------------------


def schema_files() -> list[Path]:
    """The readable current schema (`supabase/schemas/`), in the order its files apply."""
    return sorted(SCHEMAS_DIR.glob("*.sql"))


def _online_statements(path: Path) -> list[str]:
    """The CONCURRENTLY statements of a schema file (each with the comment lines above it)."""
    parts = [p.strip() for p in _STATEMENT_END.split(path.read_text())]
    return [p + ";\n" for p in parts if _CONCURRENTLY.search(_without_comments(p))]


def _is_online(path: Path) -> bool:
    return bool(_online_statements(path))


def apply_schemas(conninfo: str, *, bootstrap: bool = True, app: bool = True) -> None:
    """Build the current schema from `supabase/schemas/` (no ledger row is written): the
    database the migrations must equal. The online files' statements run one by one after."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        prepare_local(conn, bootstrap=bootstrap, app=app)
        with conn.transaction():
            for path in schema_files():
                if not _is_online(path):
                    conn.execute(path.read_text())
        for path in schema_files():
            for statement in _online_statements(path):
                conn.execute(statement)


def baseline_files(version: str) -> list[tuple[str, str]]:
    """(file name, text) of the migrations generated from the schemas: the baseline (every
    file that runs in a transaction, then its ledger row), then one per online statement."""
    parts = [_BASELINE_HEADER]
    online: list[str] = []
    for path in schema_files():
        if _is_online(path):
            online += _online_statements(path)
            continue
        parts.append(f"\n-- ===== supabase/schemas/{path.name} =====\n\n{path.read_text()}")
    parts.append(
        "\n-- ===== the job's ledger =====\n\n"
        "insert into certexpiry.schema_migrations (version, name)\n"
        f"values ('{version}', '{BASELINE_NAME}')\n"
        "on conflict (version) do nothing;\n"
    )
    files = [(f"{version}_{BASELINE_NAME}.sql", "".join(parts))]
    for offset, statement in enumerate(online, start=1):
        index = re.search(r"if not exists (\w+)", statement)
        name = index.group(1) if index else f"online_{offset}"
        files.append((f"{int(version) + offset}_{name}.sql", statement))
    return files


def baseline_text() -> str:
    """The baseline migration as generated from `supabase/schemas/`."""
    return baseline_files(migrations()[0].version)[0][1]


def write_baseline(version: str | None = None) -> list[Path]:
    """Replace every migration by those generated from the schemas (allowed only before the
    first release: `make baseline` checks for the release tag). The version stays the current
    baseline's, so a local database made from an earlier baseline is refused as changed
    (MigrationChanged) instead of half-applied."""
    if version is None:
        current = [m for m in migrations() if m.name == BASELINE_NAME]
        version = current[0].version if current else time.strftime("%Y%m%d%H%M%S", time.gmtime())
    for old in migration_files():
        old.unlink()
    MIGRATIONS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in baseline_files(version):
        path = MIGRATIONS_DIR / name
        path.write_text(text)
        written.append(path)
    return written


# -- the runner --------------------------------------------------------------------------------


def needs_bootstrap(conn: psycopg.Connection[Any]) -> bool:
    """True where the Supabase roles or the auth schema are missing (a plain Postgres)."""
    row = conn.execute(
        "select exists (select from pg_roles where rolname = 'service_role')"
        " and to_regnamespace('auth') is not null"
        " and to_regprocedure('auth.jwt()') is not null"
    ).fetchone()
    return not (row and row[0])


def prepare_local(
    conn: psycopg.Connection[Any], *, bootstrap: bool | None, app: bool
) -> tuple[bool, bool]:
    """A local database made ready for the job: the bootstrap (None: where needed) and the app
    fixture (where the app's tables are missing). Returns (bootstrapped, app fixture applied)."""
    bootstrapped = bool(bootstrap or (bootstrap is None and needs_bootstrap(conn)))
    if bootstrapped:
        conn.execute(BOOTSTRAP.read_text())
    fixture = False
    if app and conn.execute("select to_regclass('public.certifications')").fetchone() == (None,):
        with conn.transaction():
            conn.execute(APP_FIXTURE.read_text())
        fixture = True
    return bootstrapped, fixture


def ledger(conn: psycopg.Connection[Any]) -> dict[str, LedgerRow]:
    """version -> its row, from the job's ledger (empty where the job is not installed)."""
    if conn.execute("select to_regclass('certexpiry.schema_migrations')").fetchone() == (None,):
        return {}
    return {
        str(version): LedgerRow(str(name), applied_at, digest)
        for version, name, applied_at, digest in conn.execute(
            "select version, name, applied_at, checksum from certexpiry.schema_migrations"
        )
    }


def invalid_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """The job's indexes a failed CONCURRENTLY build left invalid."""
    return [
        str(name)
        for (name,) in conn.execute(
            "select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid"
            " where not i.indisvalid and c.relname in"
            " ('certifications_on_schedule_idx', 'certifications_next_action_idx')"
        )
    ]


def _record(conn: psycopg.Connection[Any], migration: Migration) -> None:
    conn.execute(
        "insert into certexpiry.schema_migrations (version, name, checksum) values (%s, %s, %s)"
        " on conflict (version) do update set checksum = excluded.checksum",
        (migration.version, migration.name, checksum(migration.text())),
    )


class IndexBuildFailed(Exception):
    """An online index build left its index INVALID: the migration is not recorded."""

    def __init__(self, migration: Migration, names: list[str]) -> None:
        super().__init__(
            f"migration {migration.version}_{migration.name}.sql left index "
            f"{', '.join(names)} INVALID (a concurrent build failed, e.g. on a deadlock or a "
            "cancel); run migrate again: it drops the invalid index and builds it anew"
        )


def _apply_online(conn: psycopg.Connection[Any], migration: Migration) -> None:
    """One CONCURRENTLY build outside a transaction. An invalid index a failed build left is
    dropped first (`if not exists` would skip it), and a build that leaves one is not recorded,
    so running migrate again builds it."""
    for name in invalid_indexes(conn):
        if name in migration.text():
            conn.execute(
                sql.SQL("drop index concurrently if exists public.{}").format(sql.Identifier(name))
            )
    conn.execute(migration.text())
    left = [name for name in invalid_indexes(conn) if name in migration.text()]
    if left:
        raise IndexBuildFailed(migration, left)
    _record(conn, migration)


def _apply_one(conn: psycopg.Connection[Any], migration: Migration) -> None:
    """Apply one migration, retrying while the app holds a lock it needs."""
    for wait in (*LOCK_RETRIES, None):
        try:
            if migration.online:
                _apply_online(conn, migration)
            else:
                with conn.transaction():
                    conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
                    conn.execute(migration.text())
                    _record(conn, migration)
            return
        except errors.LockNotAvailable:
            if wait is None:
                raise
            time.sleep(wait)


def migrate(
    conninfo: str,
    *,
    bootstrap: bool | None = None,
    app_fixture: bool = False,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrateResult:
    """Apply every pending migration, in order, and record it in the job's ledger; refuse a
    changed applied file first. Locally: the bootstrap (None: where needed) and, with
    `app_fixture`, the app's tables where they are missing."""
    result = MigrateResult()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            result.bootstrapped, result.app_fixture = prepare_local(
                conn, bootstrap=bootstrap, app=app_fixture
            )
            files = migrations()
            statuses = compare(files, ledger(conn))
            refuse_changed(statuses)
            by_version = {m.version: m for m in files}
            for status in statuses:
                if status.state == UNKNOWN:
                    result.unknown.append(status.version)
                elif status.state == APPLIED:
                    result.already.append(status.version)
                else:
                    migration = by_version[status.version]
                    if on_apply is not None:
                        on_apply(migration)
                    _apply_one(conn, migration)
                    result.applied.append(status.version)
            result.invalid_indexes = invalid_indexes(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return result


def refuse_changed(statuses: list[VersionStatus]) -> None:
    """Raise MigrationChanged for the first applied migration whose file changed since."""
    for status in statuses:
        if status.checksum == CHANGED:
            raise MigrationChanged(status.version, status.name)


@dataclass
class Inspection:
    """What `migrate` would find and do on a database, read without writing anything: every
    version's status, and whether the bootstrap and the app fixture would be applied."""

    statuses: list[VersionStatus]
    would_bootstrap: bool
    would_app_fixture: bool
    app_tables: bool
    invalid_indexes: list[str]

    def versions(self, state: str) -> list[str]:
        return [status.version for status in self.statuses if status.state == state]

    @property
    def pending(self) -> list[VersionStatus]:
        """What migrate would apply, in the order it would apply them."""
        return [status for status in self.statuses if status.state == PENDING]

    @property
    def latest(self) -> str | None:
        """The database's schema version now (its ledger's newest), None without the job."""
        applied = [status.version for status in self.statuses if status.database]
        return max(applied) if applied else None

    @property
    def ahead(self) -> bool:
        return is_ahead(self.versions(UNKNOWN))


def inspect(
    conninfo: str, *, bootstrap: bool | None = None, app_fixture: bool = False
) -> Inspection:
    """The database as `migrate` would see it (the same comparison, the same bootstrap and
    fixture rules), read in one read-only transaction, so neither `migrate status` nor
    `migrate --dry-run` can write: Postgres itself refuses a write in it."""
    with psycopg.connect(conninfo) as conn:
        conn.read_only = True
        app_tables = conn.execute(
            "select to_regclass('public.certifications') is not null"
        ).fetchone() == (True,)
        inspection = Inspection(
            statuses=compare(migrations(), ledger(conn)),
            would_bootstrap=bool(bootstrap or (bootstrap is None and needs_bootstrap(conn))),
            would_app_fixture=app_fixture and not app_tables,
            app_tables=app_tables,
            invalid_indexes=invalid_indexes(conn),
        )
        conn.rollback()
    return inspection


def apply(conninfo: str, *, bootstrap: bool = True) -> list[str]:
    """A local database ready to run: the bootstrap, the app fixture where the app's tables are
    missing, and every pending migration; returns the versions applied."""
    return migrate(conninfo, bootstrap=bootstrap, app_fixture=True).applied


def uninstall(conninfo: str) -> None:
    """Remove the job's objects (supabase/uninstall.sql), in one transaction."""
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute(UNINSTALL.read_text())


# -- the primary path: the job's migrations pushed with the app's own ---------------------------


def exported_versions(app_dir: Path) -> dict[str, Path]:
    """The job's migrations already in the app's migrations folder, by the job's version."""
    found = {}
    for path in sorted(app_dir.glob("*.sql")):
        first = path.read_text().split("\n", 1)[0]
        if first.startswith(EXPORT_MARK):
            found[first[len(EXPORT_MARK) :].split("_", 1)[0]] = path
    return found


def export_to_app(app_dir: Path, *, now: float | None = None) -> list[Path]:
    """Write the job's migrations not yet in the app's `supabase/migrations` folder there, with
    versions after the app's newest (the Supabase CLI applies a folder in version order and
    refuses a remote history it does not hold locally, so the job's files live in the app's
    folder, pushed with the app's own). Each file starts with a line naming the job's migration,
    so a second export writes only what is new; the job's ledger still gets the job's version
    (the migration records itself). Returns the files written."""
    app_dir.mkdir(parents=True, exist_ok=True)
    already = exported_versions(app_dir)
    newest = max(
        (int(m.group(1)) for p in app_dir.glob("*.sql") if (m := _FILE_NAME.match(p.name))),
        default=0,
    )
    stamp = int(time.strftime("%Y%m%d%H%M%S", time.gmtime(now)))
    version = max(newest + 1, stamp)
    written = []
    for migration in migrations():
        if migration.version in already:
            continue
        path = app_dir / f"{version}_certexpiry_{migration.name}.sql"
        path.write_text(
            f"{EXPORT_MARK}{migration.version}_{migration.name} (from the certexpiry repository;"
            " do not edit)\n" + migration.text()
        )
        written.append(path)
        version += 1
    return written
