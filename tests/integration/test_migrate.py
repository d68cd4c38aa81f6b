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
from certexpiry.redact import Secrets
from certexpiry.wiring import SchemaNotReady, check_schema
from certexpiry_ops import schema
from tests.integration.test_cli import Result, invoke

Conn = psycopg.Connection[Any]


@pytest.fixture
def empty_url(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app's database before the job arrives (the Supabase roles and the app fixture's
    tables, policies and history), as DATABASE_URL."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.prepare_local(conn, bootstrap=True, app=True)
    for variable in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def history(url: str) -> dict[str, tuple[str, str | None]]:
    """The job's ledger: version -> (name, checksum)."""
    with psycopg.connect(url) as conn:
        return {
            version: (name, digest)
            for version, name, digest in conn.execute(
                "select version, name, checksum from certexpiry.schema_migrations"
            )
        }


def app_history(url: str) -> list[str]:
    """The app's own migration history, which the job never writes."""
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version"
            )
        ]


def migrate_json(*args: str) -> tuple[Result, dict[str, Any]]:
    result = invoke("migrate", "--json", *args)
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    return result, json.loads(line)


def test_migrate_brings_an_empty_postgres_to_where_run_works(empty_url: str) -> None:
    """An app database without the job gets an error that points to migrate; migrate applies
    every migration in order, each recorded with its checksum
    in the job's ledger and none in the app's history; run then completes; a second migrate
    applies nothing."""
    before = invoke("check")
    assert before.code == 2
    assert "migrate" in before.err
    apps = app_history(empty_url)

    _, first = migrate_json()
    files = schema.migrations()
    assert first["bootstrapped"] is False  # Supabase's roles and auth schema are there
    assert first["app_fixture"] is False  # DATABASE_URL: the app's tables are the app's
    assert first["applied"] == [m.version for m in files]
    assert first["latest"] == files[-1].version
    assert first["required_by_runtime"] == contract.SCHEMA_VERSION == schema.required_version()
    recorded = history(empty_url)
    assert {v: name for v, (name, _) in recorded.items()} == {m.version: m.name for m in files}
    assert all(recorded[m.version][1] == schema.checksum(m.text()) for m in files)
    assert app_history(empty_url) == apps

    run = invoke("run", "--json")
    assert run.code == 0, run.err
    assert run.codes()[-1] == "RUN_COMPLETED"

    _, second = migrate_json()
    assert second["applied"] == []
    assert second["already_applied"] == len(files)
    assert second["bootstrapped"] is False
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
    """A migration applied by other means (`supabase db push` from the app's repository, the
    SQL editor) records itself without a checksum; migrate takes it as applied and applies only
    what is missing."""
    migrate_json()
    files = schema.migrations()
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("update certexpiry.schema_migrations set checksum = null")
    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, copy)
    (copy / "29991231000000_later.sql").write_text("create table public.later (id int);\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", copy)
    _, result = migrate_json()
    assert result["applied"] == ["29991231000000"]
    assert result["already_applied"] == len(files)


def _logger() -> tuple[JsonLogger, io.StringIO]:
    stream = io.StringIO()
    return JsonLogger(secrets=Secrets(), service="t", version="t", stream=stream), stream


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
    """A database whose newest job migration is older than the release (or without the
    schema_version function, or with an empty ledger) gets one SCHEMA_MISMATCH ERROR naming the
    versions and the migrate command. A newer migration of the app's own never satisfies it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if how == "older":
            conn.execute(
                "delete from certexpiry.schema_migrations where version >= %s",
                (contract.SCHEMA_VERSION,),
            )
            conn.execute(
                "insert into certexpiry.schema_migrations (version, name) values ('1', 'older')"
            )
        elif how == "no_function":
            conn.execute("drop function public.schema_version()")
        else:
            conn.execute("delete from certexpiry.schema_migrations")
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name)"
            " values ('29991231000000', 'an_app_migration')"
        )
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
    assert result.latest == schema.migrations()[-1].version
