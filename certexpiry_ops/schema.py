"""Apply the local bootstrap and the versioned migrations to a database.

Migrations are tracked like the Supabase CLI tracks them
(`supabase_migrations.schema_migrations`), so applying twice is harmless and a database
made by `supabase start` keeps the same bookkeeping. The bootstrap (`supabase/local/`) supplies
what a hosted Supabase project already has (roles, the `auth` schema) and is only for local and
test databases.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "supabase" / "local" / "bootstrap.sql"
MIGRATIONS_DIR = ROOT / "supabase" / "migrations"

_TRACKING = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text primary key,
    name text,
    statements text[]
);
"""


def migration_files() -> list[Path]:
    """The migrations in the order the Supabase CLI applies them (by timestamp prefix)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def apply(conninfo: str, *, bootstrap: bool = True) -> list[str]:
    """Apply the bootstrap (optional) and every pending migration; return the new versions."""
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if bootstrap:
            conn.execute(BOOTSTRAP.read_text())
        conn.execute(_TRACKING)
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for path in migration_files():
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name)"
                    " values (%s, %s)",
                    (version, name),
                )
            applied.append(version)
    return applied
