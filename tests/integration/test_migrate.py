"""`certexpiry migrate` on an empty Postgres, and the function's cold-start schema check."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry import contract
from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.pg_store import PgTransport
from certexpiry.sanitize import Sanitizer
from certexpiry.wiring import SchemaNotReady, check_schema
from certexpiry_ops import schema
from tests.integration.test_cli import Result, invoke

Conn = psycopg.Connection[Any]


@pytest.fixture
def empty_url(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new database with nothing in it (not even the bootstrap), as DATABASE_URL."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)
    for variable in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def history(url: str) -> dict[str, tuple[str, list[str]]]:
    with psycopg.connect(url) as conn:
        return {
            version: (name, statements)
            for version, name, statements in conn.execute(
                "select version, name, statements from supabase_migrations.schema_migrations"
            )
        }


def migrate_json(*args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke("migrate", "--json", *args)
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    return result, json.loads(line)


def test_migrate_brings_an_empty_postgres_to_where_run_works(empty_url: str) -> None:
    """An unmigrated database gets an error that points to migrate; migrate bootstraps it and
    applies every migration in order, as the Supabase CLI records them; run then completes; a
    second migrate applies nothing."""
    before = invoke("check")
    assert before.code == 2
    assert "migrate" in before.err

    _, first = migrate_json()
    files = schema.migrations()
    assert first["bootstrapped"] is True
    assert first["applied"] == [m.version for m in files]
    assert first["latest"] == files[-1].version == contract.SCHEMA_VERSION
    recorded = history(empty_url)
    assert {v: name for v, (name, _) in recorded.items()} == {m.version: m.name for m in files}
    assert all(statements for _, statements in recorded.values())

    run = invoke("run", "--json")
    assert run.code == 0, run.err
    assert run.codes()[-1] == "RUN_COMPLETED"

    _, second = migrate_json()
    assert second["applied"] == []
    assert second["already_applied"] == len(files)
    assert second["bootstrapped"] is False  # the roles and auth schema are there now
    text = invoke("migrate", "--format", "text")
    assert "Nothing to apply" in text.out


def test_a_changed_applied_migration_is_refused_before_anything_is_written(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing an applied file stops migrate with a clear error; a pending migration beside it
    is not applied."""
    migrate_json()
    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\ncreate table public.sneaky (id int);\n")
    (copy / "29991231000000_later.sql").write_text("create table public.later (id int);\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", copy)
    before = history(empty_url)
    result = invoke("migrate")
    assert result.code == 2
    assert f"migration {first.name} was changed after it was applied" in result.err
    assert "new migration" in result.err
    assert history(empty_url) == before
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("select to_regclass('public.later')").fetchone() == (None,)


def test_history_written_by_the_supabase_cli_is_accepted(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Supabase CLI records each statement apart (trailing semicolon trimmed); migrate reads
    such a history as unchanged and applies only what is missing."""
    migrate_json()
    files = schema.migrations()
    with psycopg.connect(empty_url, autocommit=True) as conn:
        for migration in files:
            statements = [part.strip() for part in migration.text().split(";\n") if part.strip()]
            conn.execute(
                "update supabase_migrations.schema_migrations set statements = %s "
                "where version = %s",
                (statements, migration.version),
            )
    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, copy)
    (copy / "29991231000000_later.sql").write_text("create table public.later (id int);\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", copy)
    _, result = migrate_json()
    assert result["applied"] == ["29991231000000"]
    assert result["already_applied"] == len(files)


def _logger() -> tuple[JsonLogger, io.StringIO]:
    stream = io.StringIO()
    return JsonLogger(sanitizer=Sanitizer(), service="t", version="t", stream=stream), stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_schema_check_accepts_the_migrated_database(database_url: str) -> None:
    """On the migrated database the check answers its newest version and logs nothing."""
    log, stream = _logger()
    transport = PgTransport(database_url)
    try:
        assert check_schema(transport, log) == schema.migrations()[-1].version
    finally:
        transport.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("how", ["older", "no_function", "no_history"])
def test_schema_check_refuses_an_older_schema_with_one_error(database_url: str, how: str) -> None:
    """A database whose newest migration is older than the release (or that predates the
    schema_version function, or has no history) gets one SCHEMA_MISMATCH ERROR naming the
    versions and the migrate command."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if how == "older":
            conn.execute(
                "delete from supabase_migrations.schema_migrations where version >= %s",
                (contract.SCHEMA_VERSION,),
            )
        elif how == "no_function":
            conn.execute("drop function public.schema_version()")
        else:
            conn.execute("drop schema supabase_migrations cascade")
    log, stream = _logger()
    transport = PgTransport(database_url)
    try:
        with pytest.raises(SchemaNotReady):
            check_schema(transport, log)
    finally:
        transport.close()
    (line,) = _lines(stream)
    assert line["severity"] == "ERROR"
    assert line["error_code"] == Code.SCHEMA_MISMATCH
    assert contract.SCHEMA_VERSION in line["context"]["reason"]
    assert "migrate" in line["context"]["remediation"]


def test_schema_check_reports_an_unreachable_database_as_not_ready(tmp_path: Path) -> None:
    """A failure to read the version (no server) is logged with the call's own code, and the
    function is not ready either (503, checked again on the next delivery)."""
    log, stream = _logger()
    transport = PgTransport(f"postgresql://postgres@/none?host={tmp_path}&connect_timeout=1")
    try:
        with pytest.raises(SchemaNotReady):
            check_schema(transport, log)
    finally:
        transport.close()
    (line,) = _lines(stream)
    assert line["error_code"] == Code.DB_OPERATION_FAILED
    assert line["context"]["operation"] == "schema_version"


class _StopBefore(Exception):
    """Raised by on_apply to leave a database at an older version."""


def migrate_before(url: str, version: str) -> list[str]:
    """Apply the migrations older than `version` and stop there: the database an older release
    left behind, for an upgrade test (write data in the old shape, then `schema.migrate` to
    head and check what it means now). Returns the versions applied."""
    applied: list[str] = []

    def stop(migration: schema.Migration) -> None:
        if migration.version >= version:
            raise _StopBefore
        applied.append(migration.version)

    with contextlib.suppress(_StopBefore):
        schema.migrate(url, bootstrap=True, on_apply=stop)
    return applied


def test_an_upgrade_starts_from_the_migrations_before_it(empty_url: str) -> None:
    """The upgrade-test machinery, on today's history: stopping before the baseline applies
    nothing, and migrating from there reaches head. The first migration after the release
    (v1.0.0) gets its upgrade test as `migrate_before(url, its_version)`, old-shape data, then
    `schema.migrate(url)`."""
    baseline = schema.migrations()[0]
    assert baseline.name == schema.BASELINE_NAME
    assert migrate_before(empty_url, baseline.version) == []
    with psycopg.connect(empty_url, autocommit=True) as db:
        assert db.execute("select to_regproc('public.process_expiry_batch')").fetchone() == (None,)
    result = schema.migrate(empty_url)
    assert result.applied == [m.version for m in schema.migrations()]
    assert result.latest == contract.SCHEMA_VERSION
