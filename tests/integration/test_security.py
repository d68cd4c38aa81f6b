"""Grants and row level security, checked through the roles PostgREST would use."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from certexpiry.store.postgres import as_api_role

Conn = psycopg.Connection[Any]

ROLES = {
    "anon": ("anon", {"role": "anon"}),
    "authenticated": ("authenticated", {"role": "authenticated", "sub": str(uuid.uuid4())}),
    "ops_admin": (
        "authenticated",
        {"role": "authenticated", "sub": str(uuid.uuid4()), "user_role": "ops_admin"},
    ),
    "service_role": ("service_role", {"role": "service_role"}),
}

# What each role may do to cron_audit_log: "rows" = sees or changes the row, "none" = allowed
# but the policies show no row, "denied" = permission error. service_role runs the job; an ops
# admin (JWT claim user_role = ops_admin) reads it and may set resolved, nothing else; a signed-
# in user without the claim (a mentor) sees nothing; no one deletes (audit rows are kept).
EXPECTED = {
    ("anon", "select"): "denied",
    ("anon", "insert"): "denied",
    ("anon", "update"): "denied",
    ("anon", "delete"): "denied",
    ("authenticated", "select"): "none",
    ("authenticated", "insert"): "denied",
    ("authenticated", "update"): "none",
    ("authenticated", "delete"): "denied",
    ("ops_admin", "select"): "rows",
    ("ops_admin", "insert"): "denied",
    ("ops_admin", "update"): "rows",
    ("ops_admin", "delete"): "denied",
    ("service_role", "select"): "rows",
    ("service_role", "insert"): "rows",
    ("service_role", "update"): "rows",
    ("service_role", "delete"): "denied",
}

STATEMENTS = {
    "select": "select count(*) from public.cron_audit_log",
    "insert": "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids) values (gen_random_uuid(), now(), 0, '[]')",
    "update": "update public.cron_audit_log set resolved = true",
    "delete": "delete from public.cron_audit_log",
}


def _attempt(conn: Conn, role_key: str, operation: str) -> str:
    role, claims = ROLES[role_key]
    try:
        with as_api_role(conn, role, claims):
            cursor = conn.execute(STATEMENTS[operation])
            if operation == "select":
                row = cursor.fetchone()
                assert row is not None
                return "rows" if row[0] > 0 else "none"
            return "rows" if cursor.rowcount > 0 else "none"
    except psycopg.errors.InsufficientPrivilege:
        return "denied"


@pytest.mark.parametrize(("role_key", "operation"), sorted(EXPECTED))
def test_cron_audit_log_role_matrix(db: Conn, role_key: str, operation: str) -> None:
    """Each API role can do exactly what the spec allows on cron_audit_log."""
    db.execute(
        "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids) values (gen_random_uuid(), now(), 1, '[\"x\"]')"
    )
    assert _attempt(db, role_key, operation) == EXPECTED[(role_key, operation)]


@pytest.mark.parametrize(
    "table",
    [
        "certexpiry.schema_migrations",
        "certexpiry.certification_idempotency_log",
        "certexpiry.notification_outbox",
        "certexpiry.cron_runs",
        "certexpiry.night_acknowledgements",
        "public.cron_audit_log",
    ],
)
def test_anon_sees_nothing_anywhere(db: Conn, table: str) -> None:
    """anon has no privilege on any table of the job."""
    role, claims = ROLES["anon"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_api_role(db, role, claims):
        db.execute(f"select 1 from {table} limit 1")


def test_rls_enabled_on_every_table(db: Conn) -> None:
    """Row level security is on for every table in public (the app's and the job's) and in the
    job's schema."""
    rows = db.execute(
        "select relname from pg_class where relnamespace in ('public'::regnamespace,"
        " 'certexpiry'::regnamespace) and relkind = 'r' and not relrowsecurity"
    ).fetchall()
    assert rows == []


@pytest.mark.parametrize("role_key", ["anon", "authenticated"])
def test_api_roles_cannot_call_the_sweep_rpcs(db: Conn, role_key: str) -> None:
    """Only service_role may execute the job's RPCs."""
    role, claims = ROLES[role_key]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_api_role(db, role, claims):
        db.execute("select public.get_missed_auto_pauses('Europe/Oslo', null, 1000)")


def test_rpcs_pin_an_empty_search_path(db: Conn) -> None:
    """Every public RPC of the job sets search_path = '' (no search-path hijacking)."""
    rows = db.execute(
        """
        select p.proname, p.proconfig from pg_proc p
        where p.pronamespace = 'public'::regnamespace
        """
    ).fetchall()
    assert rows, "no RPCs found"
    # Besides the search path, only the lock_timeout of the functions that apply effects (a
    # locked row fails fast): the batch, and the plan that applies them and rolls back.
    allowed = {
        name: ['search_path=""', "lock_timeout=3s"]
        for name in ("process_expiry_batch", "plan_night")
    }
    for name, config in rows:
        assert config == allowed.get(name, ['search_path=""']), (name, config)
