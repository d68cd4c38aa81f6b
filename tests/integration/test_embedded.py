"""The embedded Postgres: the pgserver default and the initdb/pg_ctl fallback for Python 3.13."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from certexpiry_ops import embedded, schema


@pytest.mark.skipif(
    shutil.which("initdb") is None or shutil.which("pg_ctl") is None,
    reason="initdb/pg_ctl not on PATH: the Python 3.13 fallback was NOT exercised",
)
def test_fallback_server_from_path_applies_the_schema(tmp_path: Path) -> None:
    """Without pgserver, a server from initdb/pg_ctl starts and takes bootstrap + migrations."""
    server = embedded.start_from_path(tmp_path)
    try:
        applied = schema.apply(server.uri)
        assert applied == [path.stem.partition("_")[0] for path in schema.migration_files()]
        assert schema.apply(server.uri) == []  # applying twice is harmless
        with psycopg.connect(server.uri) as conn:
            row = conn.execute(
                "select to_regprocedure('public.get_missed_auto_pauses(text, date, integer)')"
            ).fetchone()
        assert row is not None
        assert row[0] is not None
    finally:
        server.stop()


def test_schema_apply_is_idempotent(pg_admin_url: str, database_url: str) -> None:
    """Re-applying the migrations to an up-to-date database applies nothing."""
    assert schema.apply(database_url) == []
