"""The job as a guest in the app's database: installed into the app fixture (the peer-mentor
app's tables, statuses, policies, grants, RPC, hosted default privileges and migration history),
it changes nothing the app's users reach, runs a night that touches only what it owns, and
leaves the app's catalog as it found it when uninstalled."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.store import contract
from certexpiry.store.postgres import as_api_role
from certexpiry_ops import catalog, schema
from certexpiry_ops.contract import SIGNATURES
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.chain import NIGHTLY
from tests.clock import OrgDay
from tests.integration.sqlapi import NOW, TODAY, sweep_all

Conn = psycopg.Connection[Any]

MENTOR_USER = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_USER = uuid.UUID("22222222-2222-4222-8222-222222222222")
COORDINATOR = uuid.UUID("33333333-3333-4333-8333-333333333333")
OPS_ADMIN = uuid.UUID("44444444-4444-4444-8444-444444444444")


def _claims(user: uuid.UUID, **extra: str) -> dict[str, str]:
    return {"role": "authenticated", "sub": str(user), **extra}


MENTOR = ("authenticated", _claims(MENTOR_USER))
ADMIN = ("authenticated", _claims(OPS_ADMIN, user_role="ops_admin"))
ANON = ("anon", {"role": "anon"})


@pytest.fixture
def app_url(pg_admin_url: str) -> Iterator[str]:
    """A database holding the app alone (bootstrap + app fixture), as before the job arrives."""
    name = f"app_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.prepare_local(conn, bootstrap=True, app=True)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def _people(conn: Conn) -> dict[str, uuid.UUID]:
    """The app's people: a mentor with three certifications (one revoked), another mentor, an
    inactive mentor, and a coordinator of their region."""
    ids: dict[str, uuid.UUID] = {}

    def mentor(key: str, user: uuid.UUID | None, status: str = "active") -> uuid.UUID:
        row = conn.execute(
            "insert into public.peer_mentors (user_id, full_name, national_id, email, phone, status)"
            " values (%s, %s, '01017012345', 'a@example.org', '+47 912 34 567', %s) returning id",
            (user, f"Mentor {key}", status),
        ).fetchone()
        assert row is not None
        ids[key] = row[0]
        return ids[key]

    def cert(key: str, owner: uuid.UUID, days: int, status: str = "active") -> None:
        row = conn.execute(
            "insert into public.certifications (peer_mentor_id, expiry_date, status,"
            " certificate_number, course_id)"
            " values (%s, %s, %s, %s, (select id from public.courses limit 1)) returning id",
            (owner, TODAY + timedelta(days=days), status, f"NO-{key}"),
        ).fetchone()
        assert row is not None
        ids[key] = row[0]

    me = mentor("me", MENTOR_USER)
    cert("mine_expired", me, -3)
    cert("mine_soon", me, 5)
    cert("mine_revoked", me, -10, "revoked")
    other = mentor("other", OTHER_USER)
    cert("theirs", other, 20)
    inactive = mentor("inactive", None, "inactive")
    cert("inactive_expired", inactive, -2)
    conn.execute(
        "insert into public.coordinators (user_id, region) values (%s, 'oslo')", (COORDINATOR,)
    )
    return ids


def _as(conn: Conn, who: tuple[str, dict[str, str]], query: str, params: Any = None) -> Any:
    """One statement as an API role; the error's SQLSTATE instead of rows when refused."""
    role, claims = who
    try:
        with as_api_role(conn, role, claims):
            return [tuple(r) for r in conn.execute(query, params).fetchall()]
    except psycopg.errors.InsufficientPrivilege:
        return "42501"


def _what_users_reach(conn: Conn) -> dict[str, Any]:
    """What the app's users read and may do through the API, answered the same before and
    after the job is installed (the writes are rolled back, so both answers see the same rows)."""
    with conn.transaction(force_rollback=True):
        return _reach(conn)


def _reach(conn: Conn) -> dict[str, Any]:
    return {
        "mentor reads": sorted(
            r[0] for r in _as(conn, MENTOR, "select certificate_number from public.certifications")
        ),
        "mentor rpc": _as(conn, MENTOR, "select public.my_certification_counts()"),
        "mentor own row": _as(conn, MENTOR, "select full_name from public.peer_mentors"),
        "mentor writes": _as(
            conn, MENTOR, "update public.peer_mentors set phone = '+47 400 00 000' returning 1"
        ),
        "mentor adds": _as(
            conn,
            MENTOR,
            "insert into public.certifications (peer_mentor_id, expiry_date)"
            " select id, current_date + 400 from public.peer_mentors returning 1",
        ),
        "coordinator reads": len(
            _as(
                conn,
                ("authenticated", _claims(COORDINATOR)),
                "select id from public.certifications",
            )
        ),
        "anon courses": sorted(r[0] for r in _as(conn, ANON, "select title from public.courses")),
        "anon certifications": _as(conn, ANON, "select id from public.certifications"),
    }


def _app_history(conn: Conn) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "select version, name from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    ]


def _job_key(key: str) -> bool:
    """A catalog key of an object the job owns (or adds to the app's certifications)."""
    return any(
        part in key
        for part in (
            "certexpiry",
            "cron_audit_log",
            "next_action",
            "certifications_on_schedule_idx",
            *(f"public.{name}(" for name in SIGNATURES),
        )
    )


def test_the_install_changes_nothing_the_app_owns(app_url: str) -> None:
    """Only the job's objects appear; of the app's, only certifications' column list changes
    (the one column the job adds); ACLs, policies, default privileges, the app's RPC and its
    migration history are the same, and what its users reach is too."""
    with psycopg.connect(app_url, autocommit=True) as conn:
        _people(conn)
        before, history = catalog.snapshot(conn), _app_history(conn)
        reach = _what_users_reach(conn)
    result = schema.migrate(app_url)
    assert result.applied == [m.version for m in schema.migrations()]
    with psycopg.connect(app_url, autocommit=True) as conn:
        after = catalog.snapshot(conn)
        assert _app_history(conn) == history
        assert _what_users_reach(conn) == reach
        assert reach["mentor reads"] == ["NO-mine_expired", "NO-mine_revoked", "NO-mine_soon"]
        assert reach["anon certifications"] == []
    changed = {key for key in before if after.get(key) != before[key]}
    assert changed == {"table public.certifications"}
    assert "next_action_on date default '-infinity'::date" in after["table public.certifications"]
    added = set(after) - set(before)
    assert added
    assert sorted(k for k in added if not _job_key(k)) == []
    assert not [k for k in added if k.startswith("default privileges")]


def test_a_table_the_app_creates_later_still_gets_its_api_grants(app_url: str) -> None:
    """The hosted default privileges are untouched: a table the app adds after the job is
    installed is granted to anon and authenticated as before."""
    schema.migrate(app_url)
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute("create table public.events (id bigint primary key, title text)")
        grants = conn.execute(
            "select has_table_privilege('anon', 'public.events', 'SELECT'),"
            " has_table_privilege('authenticated', 'public.events', 'INSERT')"
        ).fetchone()
    assert grants == (True, True)


def test_the_audit_log_is_for_service_role_and_ops_admins(app_url: str) -> None:
    """An ops admin (JWT claim user_role = ops_admin) reads cron_audit_log and may set resolved,
    nothing else; a mentor reads no row, anon is refused; neither runs any of the job's RPCs."""
    schema.migrate(app_url)
    with psycopg.connect(app_url, autocommit=True) as conn:
        run = uuid.uuid4()
        conn.execute(
            "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids)"
            " values (%s, now(), 1, '[]')",
            (run,),
        )
        assert _as(conn, ADMIN, "select run_id from public.cron_audit_log") == [(run,)]
        assert _as(conn, MENTOR, "select run_id from public.cron_audit_log") == []
        assert _as(conn, ANON, "select run_id from public.cron_audit_log") == "42501"
        assert _as(
            conn, ADMIN, "update public.cron_audit_log set resolved = true returning resolved"
        ) == [(True,)]
        stamped = conn.execute(
            "select resolved_at is not null from public.cron_audit_log"
        ).fetchone()
        assert stamped == (True,)
        assert (
            _as(conn, ADMIN, "update public.cron_audit_log set missed_pause_count = 0 returning 1")
            == "42501"
        )
        assert (
            _as(conn, MENTOR, "update public.cron_audit_log set resolved = false returning 1") == []
        )
        for who in (MENTOR, ANON, ADMIN):
            for name in SIGNATURES:
                allowed = conn.execute(
                    "select has_function_privilege(%s, p.oid, 'EXECUTE') from pg_proc p"
                    " where p.proname = %s and p.pronamespace = 'public'::regnamespace",
                    (who[0], name),
                ).fetchone()
                assert allowed == (False,), (who[0], name)
        reachable = conn.execute(
            "select count(*) from pg_class c where c.relnamespace = 'certexpiry'::regnamespace"
            " and (has_table_privilege('anon', c.oid, 'SELECT')"
            "      or has_table_privilege('authenticated', c.oid, 'SELECT'))"
            " and c.relkind = 'r'"
        ).fetchone()
        assert reachable == (0,)


def test_the_install_refuses_a_database_without_the_apps_tables(pg_admin_url: str) -> None:
    """Without the app's tables the install stops at once with one error naming what is
    missing, and leaves nothing behind."""
    name = f"noapp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)
    try:
        with pytest.raises(psycopg.Error) as refused:
            schema.migrate(url, bootstrap=True)
        assert refused.value.sqlstate == "CX001"
        assert "public.certifications.expiry_date (date)" in str(refused.value)
        with psycopg.connect(url) as conn:
            assert conn.execute("select to_regnamespace('certexpiry')").fetchone() == (None,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def test_uninstall_leaves_the_app_as_it_was(app_url: str) -> None:
    """Install, run a night, uninstall: the app's catalog (ACLs, policies, default privileges,
    columns, triggers, indexes) equals the one before, and its rows keep their values."""
    with psycopg.connect(app_url, autocommit=True) as conn:
        _people(conn)
        before = catalog.snapshot(conn)
    schema.migrate(app_url)
    with psycopg.connect(app_url, autocommit=True) as conn:
        totals = sweep_all(conn, NOW)
        assert totals["certifications_paused"] == 2
    schema.uninstall(app_url)
    with psycopg.connect(app_url, autocommit=True) as conn:
        assert catalog.diff(before, catalog.snapshot(conn)) == []


def test_a_night_changes_only_what_the_job_owns(
    app_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """The real function's night pauses the active expired certifications and only the active
    mentors among theirs; a revoked certification and an inactive mentor keep their status and
    are not reported missed; the app's own columns keep their values."""
    with psycopg.connect(app_url, autocommit=True) as conn:
        ids = _people(conn)
        conn.execute(
            "update public.certifications set expiry_date = expiry_date - %s + %s",
            (TODAY, org.today),
        )
        app_columns = conn.execute(
            "select id, certificate_number, course_id, issued_on from public.certifications order by id"
        ).fetchall()
    schema.migrate(app_url)
    function = FunctionProcess(
        env=function_env(app_url, pubsub, org_timezone=org.timezone, time_budget_s=30)
    ).start()
    try:
        assert function.deliver(NIGHTLY).status == 200
    finally:
        function.stop()
    with psycopg.connect(app_url, autocommit=True) as conn:
        status: dict[uuid.UUID, str] = dict(
            conn.execute(
                "select id, status from public.certifications"
                " union all select id, status from public.peer_mentors"
            ).fetchall()
        )
        assert (
            conn.execute(
                "select id, certificate_number, course_id, issued_on from public.certifications order by id"
            ).fetchall()
            == app_columns
        )
    assert status[ids["mine_expired"]] == "paused"
    assert status[ids["me"]] == "paused"
    assert status[ids["mine_revoked"]] == "revoked"
    assert status[ids["inactive_expired"]] == "paused"
    assert status[ids["inactive"]] == "inactive"
    assert status[ids["other"]] == "active"
    entries = [json.loads(line) for _, line in function.lines]
    completed = [e for e in entries if e.get("error_code") == "RUN_COMPLETED"]
    assert completed
    assert completed[0]["context"]["certifications_paused"] == 2
    assert completed[0]["context"]["mentors_paused"] == 1
    assert not [e for e in entries if e.get("error_code") == "MISSED_AUTO_PAUSE"]


def _push_like_the_cli(url: str, folder: Path) -> None:
    """Apply a migrations folder as `supabase db push` does: each file not in the app's history,
    in version order, in one transaction (a lone CONCURRENTLY statement alone), then its row in
    supabase_migrations.schema_migrations."""
    with psycopg.connect(url, autocommit=True) as conn:
        done = {
            r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")
        }
        for path in sorted(folder.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            text = path.read_text()
            if "concurrently" in text.lower():
                conn.execute(text)
            else:
                with conn.transaction():
                    conn.execute(text)
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements)"
                " values (%s, %s, %s)",
                (version, name, [text]),
            )


def test_the_jobs_migrations_go_with_the_apps_own(app_url: str, tmp_path: Path) -> None:
    """export_to_app writes the job's migrations into the app's folder after its newest (a
    second export writes nothing); pushed as the Supabase CLI pushes them, the job's ledger
    holds the job's version, so the schema check passes; `certexpiry migrate` then only records
    the online indexes, and never writes the app's history."""
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    for version, name in (
        ("20250115090000", "app_init"),
        ("20261001080000", "certificate_numbers"),
    ):
        (folder / f"{version}_{name}.sql").write_text("select 1;\n")
    written = schema.export_to_app(folder)
    assert [p.name.split("_", 1)[1] for p in written] == [
        f"certexpiry_{m.name}.sql" for m in schema.migrations()
    ]
    assert min(p.name for p in written) > "20261001080000"
    assert schema.export_to_app(folder) == []
    _push_like_the_cli(app_url, folder)
    with psycopg.connect(app_url, autocommit=True) as conn:
        history = [
            r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")
        ]
        with as_api_role(conn):
            answer = conn.execute("select public.schema_version()").fetchone()
    assert answer is not None
    assert answer[0]["latest"] == contract.SCHEMA_VERSION
    result = schema.migrate(app_url)
    assert result.applied == [m.version for m in schema.migrations() if m.online]
    with psycopg.connect(app_url, autocommit=True) as conn:
        assert [
            r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")
        ] == history
