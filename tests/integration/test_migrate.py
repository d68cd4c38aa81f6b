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

from certexpiry.codes import Code
from certexpiry.errors import SchemaNotReady
from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets
from certexpiry.store import contract
from certexpiry.store.postgres import PgTransport
from certexpiry.wiring import check_schema
from certexpiry_ops import catalog, schema
from certexpiry_ops.usage import EXIT_FAILED, EXIT_USAGE
from tests.integration.test_cli import Result, errors_only, invoke
from tests.leak_plugin import register_secret

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
    assert before.code == 4  # the database refused the work: the job is not installed
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


# -- migrate status, migrate --dry-run, a database ahead of this release (issue 24, item 5) ----

FUTURE = "29990101000000"  # a version a newer release would have written


def status_rows(*args: str) -> list[dict[str, Any]]:
    result = invoke("migrate", "status", "--json", *args)
    assert result.code == 0, result.err
    assert errors_only(result.err) == ""
    return [json.loads(line) for line in result.out.splitlines()]


def states(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {row["version"]: row["state"] for row in rows}


def dry_run() -> tuple[Result, dict[str, Any]]:
    result = invoke("migrate", "--dry-run", "--json")
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    return result, json.loads(line)


def everything(url: str) -> tuple[object, ...]:
    """What a dry run or a status must leave as it was: the catalog (every object, grant and
    comment), the job's ledger and the app's history."""
    with psycopg.connect(url) as conn:
        return catalog.snapshot(conn), schema.ledger(conn), app_history(url)


def add_future_version(url: str) -> None:
    """A newer release's migration, as it records itself (no checksum: its own last statement)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into certexpiry.schema_migrations (version, name) values (%s, 'from_later')",
            (FUTURE,),
        )


def test_status_on_a_database_without_the_job_lists_every_version_pending(
    empty_url: str,
) -> None:
    """Fresh (the app's tables, no job): every file of this release pending, none in the
    database; the text table says so and points to the dry run; exit 0."""
    files = schema.migrations()
    rows = status_rows()
    assert [row["version"] for row in rows] == [m.version for m in files]
    assert [row["name"] for row in rows] == [m.name for m in files]
    assert all(row["state"] == "pending" for row in rows)
    assert all(row["local"] and not row["database"] for row in rows)
    assert all(row["applied_at"] is None and row["checksum"] is None for row in rows)

    text = invoke("migrate", "status", "--format", "text")
    assert text.code == 0
    assert f"0 applied, {len(files)} pending, 0 unknown to this release" in text.out
    assert "schema version none" in text.out
    assert "migrate --dry-run" in text.out
    for migration in files:
        (line,) = [
            line for line in text.out.splitlines() if line.startswith(f"  {migration.version}")
        ]
        assert line.split()[-1] == "pending"


def test_status_on_a_migrated_database_lists_every_version_applied(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrated: every version applied by this runner (checksum the same), with its time."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    rows = status_rows()
    assert states(rows) == {m.version: "applied" for m in schema.migrations()}
    assert all(row["local"] and row["database"] for row in rows)
    assert all(row["checksum"] == "same" and row["applied_at"] for row in rows)
    text = invoke("migrate", "status", "--format", "text")
    latest = schema.migrations()[-1].version
    assert f"{len(rows)} applied, 0 pending, 0 unknown to this release" in text.out
    assert f"schema version {latest}, this release's newest {latest}" in text.out
    assert "Next:" not in text.out


def test_one_pending_migration_is_listed_dry_run_and_applied_alike(empty_url: str) -> None:
    """All but the last applied (an older release's database): status lists the last pending,
    the dry run names it and writes nothing, and migrate then applies exactly what the dry run
    said."""
    files = schema.migrations()
    last = files[-1]
    assert migrate_before(empty_url, last.version) == [m.version for m in files[:-1]]
    assert states(status_rows()) == {
        **{m.version: "applied" for m in files[:-1]},
        last.version: "pending",
    }

    before = everything(empty_url)
    _, planned = dry_run()
    assert everything(empty_url) == before
    assert planned["dry_run"] is True
    assert planned["would_apply"] == [last.version]
    assert planned["already_applied"] == len(files) - 1
    assert planned["would_bootstrap"] is False
    assert planned["ahead"] is False
    assert planned["latest"] == files[-2].version
    text = invoke("migrate", "--dry-run", "--format", "text")
    assert f"Would apply 1 migration(s), in this order:\n  {last.version}  {last.name}" in (
        text.out
    )

    _, done = migrate_json()
    assert done["applied"] == planned["would_apply"]
    assert done["latest"] == last.version
    assert states(status_rows()) == {m.version: "applied" for m in files}


def test_a_dropped_ledger_row_is_pending_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last ledger row removed (the index built by `supabase db push`, which records it only
    in the app's history): pending; migrate records it again, its index already there."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    last = schema.migrations()[-1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from certexpiry.schema_migrations where version = %s", (last.version,))
    assert states(status_rows())[last.version] == "pending"
    assert dry_run()[1]["would_apply"] == [last.version]
    assert migrate_json()[1]["applied"] == [last.version]
    assert states(status_rows())[last.version] == "applied"


def test_a_database_ahead_of_this_release_is_reported_as_ahead(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer release's version in the ledger: status lists it unknown to this release;
    migrate applies nothing, reports the database's own schema version (not this release's, and
    not "up to date") and warns on stderr, exit 0; the dry run says the same."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    add_future_version(database_url)
    rows = status_rows()
    future = rows[-1]
    assert future == {
        "version": FUTURE,
        "name": "from_later",
        "state": "unknown",
        "local": False,
        "database": True,
        "applied_at": future["applied_at"],
        "checksum": None,
    }
    assert future["applied_at"]
    assert all(row["state"] == "applied" for row in rows[:-1])
    status_text = invoke("migrate", "status", "--format", "text")
    assert "1 unknown to this release" in status_text.out
    assert "ahead of this release" in status_text.out

    result, done = migrate_json()
    assert done["applied"] == []
    assert done["unknown"] == [FUTURE]
    assert done["ahead"] is True
    assert done["latest"] == FUTURE
    assert done["release_latest"] == schema.migrations()[-1].version
    assert "warning: the database is ahead of this release" in result.err
    assert FUTURE in result.err

    text = invoke("migrate", "--format", "text")
    assert text.code == 0
    assert "up to date" not in text.out
    assert "is ahead of this release" in text.out
    assert f"schema version now {FUTURE}" in text.out
    assert "warning: the database is ahead" in text.err

    _, planned = dry_run()
    assert (planned["would_apply"], planned["ahead"], planned["latest"]) == ([], True, FUTURE)
    assert history(database_url)[FUTURE] == ("from_later", None)


def test_an_unknown_older_version_is_unknown_but_not_ahead(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version older than this release's newest that this release lacks (another line of
    releases) is listed unknown, and migrate does not call the database ahead."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into certexpiry.schema_migrations (version, name) values ('20200101000000', 'x')"
        )
    assert states(status_rows())["20200101000000"] == "unknown"
    result, done = migrate_json()
    assert (done["ahead"], done["unknown"]) == (False, ["20200101000000"])
    assert errors_only(result.err) == ""


def test_a_dry_run_on_a_plain_postgres_writes_nothing(
    pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare database (no Supabase roles' schema, no app, no job): the dry run says it would
    bootstrap and apply every migration, names the missing app tables, and the catalog is the
    same after it."""
    name = f"p_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        with psycopg.connect(url) as conn:
            before = catalog.snapshot(conn)
        _, planned = dry_run()
        assert planned["would_bootstrap"] is True
        assert planned["would_apply"] == [m.version for m in schema.migrations()]
        assert planned["latest"] is None
        text = invoke("migrate", "--dry-run", "--format", "text")
        assert "Would bootstrap it first" in text.out
        assert "public.certifications) are missing" in text.out
        with psycopg.connect(url) as conn:
            assert catalog.snapshot(conn) == before
            assert conn.execute("select to_regnamespace('auth')").fetchone() == (None,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def test_status_and_dry_run_read_in_a_read_only_transaction(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guarantee behind "applies nothing": a write attempted on the connection the
    inspection reads with is refused by Postgres itself."""
    refused: list[str] = []
    reader = schema.invalid_indexes

    def write_then_read(conn: Conn) -> list[str]:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("delete from certexpiry.schema_migrations")
        refused.append("delete")
        conn.rollback()
        return reader(conn)

    monkeypatch.setattr(schema, "invalid_indexes", write_then_read)
    inspection = schema.inspect(database_url)
    assert refused == ["delete"]
    assert len(inspection.versions(schema.APPLIED)) == len(schema.migrations())
    assert len(history(database_url)) == len(schema.migrations())


def test_a_changed_file_is_shown_by_status_and_refused_by_the_dry_run(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An applied file edited since: status marks it changed (exit 0, a report); the dry run
    refuses it as migrate would (exit 2), before printing a plan."""
    migrate_json()
    copy = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\ncreate table public.sneaky (id int);\n")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", copy)
    rows = status_rows()
    assert rows[0]["checksum"] == "changed"
    assert all(row["checksum"] == "same" for row in rows[1:])
    text = invoke("migrate", "status", "--format", "text")
    assert "FILE CHANGED since" in text.out
    refused = invoke("migrate", "--dry-run")
    assert refused.code == 2
    assert refused.out == ""
    assert f"migration {first.name} was changed after it was applied" in refused.err


def test_migrate_and_its_status_answer_help_with_examples() -> None:
    """`migrate --help` names the dry run and the status; `migrate status --help` has its own
    examples; neither needs a database."""
    whole = invoke("migrate", "--help")
    assert whole.code == 0
    assert "--dry-run" in whole.out
    assert "status" in whole.out
    status = invoke("migrate", "status", "--help")
    assert status.code == 0
    assert "examples:" in status.out
    assert "migrate status --demo --json" in status.out


@pytest.mark.parametrize("args", [("status",), ("--dry-run",)], ids=["status", "dry-run"])
def test_status_and_dry_run_print_no_part_of_a_bad_dsn(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """The reports fail like every command on a database they cannot use: the project's words
    for libpq's error, never libpq's text (which echoes the password read as a host)."""
    secret = "Pa55wdStatus"
    register_secret(secret)
    for variable in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:{secret}@{secret}@127.0.0.1:1/x")
    result = invoke("migrate", *args)
    # 2 today; the team's table makes an unreachable database 4 (cli.main, not this command).
    assert result.code in (EXIT_USAGE, EXIT_FAILED)
    assert secret not in result.err + result.out
    assert "cannot use the database" in result.err
    assert result.out == ""
