"""The SQL contract against the database: the RPC signatures as pg_proc has them, every answer
shape the SQL gives, and the privileges of the schema PostgREST exposes (only service_role,
only what the job uses, nothing from the default privileges of a hosted Supabase project)."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets
from certexpiry.store import AuditRow, RpcStore
from certexpiry.store.answers import AuditStatus
from certexpiry.store.postgres import PgTransport, as_api_role
from certexpiry.wiring import check_schema
from certexpiry_ops import schema
from certexpiry_ops.contract import ALL_ANSWERS, SIGNATURES
from certexpiry_ops.ops import OpsStore
from tests.seeding import add_cert, add_mentor

Conn = psycopg.Connection[Any]

# PostgREST's db-schemas. Supabase exposes public (and graphql_public, which holds only
# Supabase's own graphql() and is not part of this project; certexpiry is deliberately not).
EXPOSED_SCHEMAS = ["public"]
# Where the job's objects are: its RPCs and audit log in public, the rest in certexpiry. Of
# public, the app fixture's own objects are the app's business (test_install.py checks the job
# changes none of them); every other object there is the job's and must have its privileges
# decided here.
JOB_SCHEMAS = ["public", "certexpiry"]
APP_RELATIONS = ["courses", "peer_mentors", "certifications", "coordinators"]
APP_FUNCTIONS = ["my_certification_counts"]
API_ROLES = ("anon", "authenticated", "service_role")
PRIVILEGES_FILE = "90_privileges.sql"

# Table privileges (supabase/schemas/90_privileges.sql): what the SECURITY INVOKER functions of
# the SQL API do as service_role, and an ops admin's read and resolve of the audit log (rows
# filtered by its policies).
JOB_TABLE_GRANTS = {
    "certexpiry.schema_migrations": {},
    "certexpiry.certification_idempotency_log": {"service_role": {"SELECT", "INSERT"}},
    "certexpiry.notification_outbox": {"service_role": {"SELECT", "INSERT"}},
    "certexpiry.cron_runs": {"service_role": {"SELECT", "INSERT", "UPDATE"}},
    "certexpiry.night_acknowledgements": {"service_role": {"SELECT", "INSERT"}},
    "public.cron_audit_log": {
        "service_role": {"SELECT", "INSERT", "UPDATE"},
        "authenticated": {"SELECT"},
    },
}
JOB_COLUMN_GRANTS = {
    ("public.cron_audit_log", "resolved"): {"authenticated": {"UPDATE"}},
    # The sender's columns, for the outbox RPCs (supabase/schemas/75_outbox_api.sql).
    **{
        ("certexpiry.notification_outbox", column): {"service_role": {"UPDATE"}}
        for column in (
            "claimed_until",
            "attempts",
            "dispatched_at",
            "failed_at",
            "failure_code",
            "dropped_at",
        )
    },
}

_GRANTEE = "case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end"
# The job's objects: all of certexpiry, and what is in public but not the app's.
_JOB_RELATION = (
    "(n.nspname = 'certexpiry' or (n.nspname = 'public' and c.relname <> all (%(app)s)))"
)
_JOB_FUNCTION = (
    "(n.nspname = 'certexpiry' or (n.nspname = 'public' and p.proname <> all (%(app)s)))"
)


def _rows(db: Conn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return db.execute(query, params).fetchall()


def _functions(db: Conn) -> list[tuple[Any, ...]]:
    return _rows(
        db,
        """
        select p.proname, p.oid::regprocedure::text, coalesce(p.proargnames, '{}'),
               array(select format_type(t.type, null)
                     from unnest(p.proargtypes::oid[]) with ordinality t(type, n) order by n),
               p.proargmodes, format_type(p.prorettype, null), p.proretset, p.prokind,
               p.pronargs, p.pronargdefaults
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any (%s) and p.proname <> all (%s)
        """,
        (EXPOSED_SCHEMAS, APP_FUNCTIONS),
    )


def _function_grant_problems(db: Conn) -> list[str]:
    """Every function of the job that anyone but service_role may execute, or service_role
    may not (trigger functions: no one)."""
    rows = _rows(
        db,
        f"""
        select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where {_JOB_FUNCTION}
          and (has_function_privilege('service_role', p.oid, 'EXECUTE')
                   = (p.prorettype = 'trigger'::regtype)
               or has_function_privilege('anon', p.oid, 'EXECUTE')
               or has_function_privilege('authenticated', p.oid, 'EXECUTE')
               or exists (
                   select 1
                   from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                   where {_GRANTEE} not in (pg_get_userbyid(p.proowner), 'service_role')))
        """,
        {"app": APP_FUNCTIONS},
    )
    return sorted(row[0] for row in rows)


def _relation_grants(db: Conn, kinds: str) -> dict[str, dict[str, set[str]]]:
    """The job's relation -> grantee (not its owner) -> privileges, for these relkinds."""
    grants: dict[str, dict[str, set[str]]] = {}
    for name, grantee, privilege in _rows(
        db,
        f"""
        select n.nspname || '.' || c.relname, {_GRANTEE}, a.privilege_type
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        cross join lateral aclexplode(coalesce(
            c.relacl,
            acldefault((case when c.relkind = 'S' then 's' else 'r' end)::"char", c.relowner))) a
        where {_JOB_RELATION} and c.relkind = any (%(kinds)s) and a.grantee <> c.relowner
        """,
        {"app": APP_RELATIONS, "kinds": list(kinds)},
    ):
        grants.setdefault(name, {}).setdefault(grantee, set()).add(privilege)
    return grants


def _relations(db: Conn, kinds: str) -> set[str]:
    return {
        row[0]
        for row in _rows(
            db,
            "select n.nspname || '.' || c.relname from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            f" where {_JOB_RELATION} and c.relkind = any (%(kinds)s)",
            {"app": APP_RELATIONS, "kinds": list(kinds)},
        )
    }


def test_signatures_match_pg_proc(db: Conn) -> None:
    """SIGNATURES is every function of the exposed schemas, argument for argument in order,
    each with IN arguments only and one jsonb value as its answer."""
    functions = _functions(db)
    names = [row[0] for row in functions]
    assert len(names) == len(set(names)), "an overloaded RPC: PostgREST cannot tell them apart"
    in_database = {row[0]: list(zip(row[2], row[3], strict=True)) for row in functions}
    in_contract = {name: list(args.items()) for name, args in SIGNATURES.items()}
    assert in_database == in_contract
    for name, _, _, _, modes, returns, returns_set, kind, _, _ in functions:
        assert (modes, returns, returns_set, kind) == (None, "jsonb", False, "f"), name


class _Recorded(Exception):
    pass


class _RecordingTransport:
    def __init__(self) -> None:
        self.sent: dict[str, set[str]] = {}

    def call(self, operation: str, params: Any) -> Any:
        self.sent[operation] = set(params)
        raise _Recorded

    def close(self) -> None:
        pass


RUN = uuid.uuid4()
# Every call the job makes, one per RPC.
JOB_CALLS: list[Callable[[RpcStore, OpsStore], object]] = [
    lambda s, o: s.claim_nightly_run(RUN, "Europe/Oslo", 120),
    lambda s, o: s.claim_continuation(RUN, 1, 120),
    lambda s, o: s.process_batch(RUN, 0, None, 50, [30, 7, 1], 120),
    lambda s, o: s.handoff(RUN, 0, 120),
    lambda s, o: s.complete(RUN, 0),
    lambda s, o: s.missed_auto_pauses("Europe/Oslo", None, limit=1000),
    lambda s, o: s.upsert_audit(AuditRow(RUN, 0, [], "completed", None, 1, {}, 1)),
    lambda s, o: o.remediate(RUN, [], "Europe/Oslo"),
    lambda s, o: o.list_audit(),
    lambda s, o: o.get_audit(RUN),
    lambda s, o: o.resolve_audit(RUN),
    lambda s, o: check_schema(s.transport, JsonLogger(secrets=Secrets(), stream=io.StringIO())),
    lambda s, o: o.plan("Europe/Oslo", None, [30, 7, 1], 10),
    lambda s, o: o.nights(
        "Europe/Oslo", 14, schedule_time=time(1), schedule_zone="Etc/UTC", late_after_s=1800
    ),
    lambda s, o: o.acknowledge_nights([date(2026, 11, 27)], "Europe/Oslo", "scheduler_paused"),
    lambda s, o: o.claim_outbox(100, 60),
    lambda s, o: o.acknowledge_outbox([1]),
    lambda s, o: o.fail_outbox([1], "demo_failure"),
    lambda s, o: s.outbox_backlog(),
]


def test_arguments_the_job_omits_have_sql_defaults(db: Conn) -> None:
    """Both adapters send only the arguments the job names; every other one has a default."""
    transport = _RecordingTransport()
    for call in JOB_CALLS:
        with pytest.raises(_Recorded):
            call(RpcStore(transport), OpsStore(transport))
    assert set(transport.sent) == set(SIGNATURES)
    for name, _, args, _, _, _, _, _, count, defaults in _functions(db):
        omitted = [i for i, arg in enumerate(args) if arg not in transport.sent[name]]
        assert all(i >= count - defaults for i in omitted), (name, omitted)


@pytest.fixture
def pg(database_url: str) -> Iterator[PgTransport]:
    transport = PgTransport(database_url, signatures=SIGNATURES)
    yield transport
    transport.close()


def test_every_answer_shape_the_sql_gives_parses(db: Conn, pg: PgTransport) -> None:
    """Each outcome of each RPC, produced on Postgres, fits the contract's models."""
    mentor = add_mentor(db)
    expired = add_cert(db, mentor, datetime.now(UTC).date() - timedelta(days=3))
    now = datetime.now(UTC)
    seen: dict[str, list[Any]] = {}

    def call(rpc: str, **params: Any) -> Any:
        answer = ALL_ANSWERS[rpc].parse(pg.call(rpc, params))
        seen.setdefault(rpc, []).append(answer)
        return answer

    def claim(at: datetime, lease: int = 60) -> Any:
        return call(
            "claim_nightly_run",
            p_run_id=str(uuid.uuid4()),
            p_timezone="Europe/Oslo",
            p_lease_seconds=lease,
            p_now=at,
        )

    def continuation(run_id: Any, segment: int, at: datetime) -> Any:
        return call(
            "claim_continuation",
            p_run_id=str(run_id),
            p_segment=segment,
            p_lease_seconds=60,
            p_now=at,
        )

    run = claim(now)
    assert run.outcome == "started"
    assert claim(now).outcome == "busy"
    assert claim(now + timedelta(seconds=61)).outcome == "resumed"
    assert continuation(uuid.uuid4(), 1, now).outcome == "unknown"
    batch_args = {"p_cursor": None, "p_limit": 50, "p_reminder_days": [30], "p_lease_seconds": 60}
    batch = call("process_expiry_batch", p_run_id=str(run.run_id), p_segment=0, **batch_args)
    assert batch.fenced is True
    assert batch.status == "running"
    lost = call("process_expiry_batch", p_run_id=str(uuid.uuid4()), p_segment=0, **batch_args)
    assert lost.segment is None
    batch = call(
        "process_expiry_batch",
        p_run_id=str(run.run_id),
        p_segment=1,
        **{**batch_args, "p_limit": 1},
    )
    assert batch.fenced is False
    assert batch.counts["certifications_paused"] == 1
    assert (
        call("handoff_run", p_run_id=str(run.run_id), p_segment=0, p_lease_seconds=120).fenced
        is True
    )
    assert (
        call("handoff_run", p_run_id=str(run.run_id), p_segment=1, p_lease_seconds=120).fenced
        is False
    )
    assert continuation(run.run_id, 2, now).outcome == "claimed"
    assert continuation(run.run_id, 2, now).outcome == "busy"
    assert continuation(run.run_id, 1, now).outcome == "duplicate"
    assert call("complete_run", p_run_id=str(run.run_id), p_segment=1).fenced is True
    done = call("complete_run", p_run_id=str(run.run_id), p_segment=2)
    assert done.fenced is False
    assert done.totals["batches"] == 1
    assert claim(now + timedelta(seconds=200)).outcome == "completed"
    missed = call("get_missed_auto_pauses", p_timezone="Europe/Oslo", p_today=None, p_limit=1000)
    assert missed.missed_pause_count == 0
    call(
        "upsert_cron_audit",
        p_run_id=str(run.run_id),
        p_missed_pause_count=1,
        p_missed_ids=[str(expired)],
        p_status="completed",
        p_nightly_key=run.today,
        p_segments=3,
        p_totals=dict(done.totals),
        p_duration_ms=5,
    )
    remediation = call(
        "remediate_auto_pauses",
        p_run_id=str(run.run_id),
        p_certification_ids=[str(expired)],
        p_timezone="Europe/Oslo",
    )
    assert remediation.counts["certifications_paused"] == 0  # already paused by the batch
    assert [e.run_id for e in call("list_cron_audit", p_limit=5)] == [run.run_id]
    assert call("get_cron_audit", p_run_id=str(run.run_id)).totals == done.totals
    assert call("get_cron_audit", p_run_id=str(uuid.uuid4())) is None
    assert call("resolve_cron_audit", p_run_id=str(run.run_id), p_force=False).resolved
    assert not call("resolve_cron_audit", p_run_id=str(uuid.uuid4()), p_force=False).found
    assert call("schema_version").latest == schema.migrations()[-1].version
    plan_args = {"p_timezone": "Europe/Oslo", "p_reminder_days": [30], "p_ids_limit": 5}
    assert call("plan_night", p_today=None, **plan_args).run.status == "completed"
    assert call("plan_night", p_today=date(2000, 1, 1), **plan_args).run is None
    nights = call(
        "night_history",
        p_timezone="Europe/Oslo",
        p_nights=3,
        p_schedule_time="01:00",
        p_schedule_zone="Etc/UTC",
        p_late_after_s=1800,
    )
    assert [n.state for n in nights] == ["ok", "before_first_run", "before_first_run"]
    (refused,) = call(
        "acknowledge_missed_nights",
        p_nights=[nights[0].night.isoformat()],
        p_timezone="Europe/Oslo",
        p_code=None,
    )
    assert refused.outcome == "has_run"
    waiting = call("outbox_backlog")  # the batch's pause notice
    assert (waiting.undelivered, waiting.claimed) == (1, 0)
    assert waiting.oldest_age_s is not None
    (notice,) = call("claim_outbox", p_limit=10, p_visibility_s=60).messages
    assert (notice.kind, notice.certification_id, notice.attempt) == ("pause_notice", expired, 1)
    assert call("outbox_backlog").claimed == 1
    assert call("acknowledge_outbox", p_ids=[notice.id]).acknowledged == 1
    assert call("acknowledge_outbox", p_ids=[notice.id]).already == 1
    failed = call("fail_outbox", p_ids=[notice.id, notice.id + 1000], p_code="demo_failure")
    assert (failed.failed, failed.already, failed.unknown) == (0, 1, 1)
    empty = call("claim_outbox", p_limit=10, p_visibility_s=60)
    assert (empty.messages, empty.dropped, empty.exhausted) == ((), 0, 0)
    drained = call("outbox_backlog")
    assert (drained.undelivered, drained.oldest_undelivered_at, drained.oldest_age_s) == (
        0,
        None,
        None,
    )
    assert set(seen) == set(SIGNATURES)


def test_every_function_is_executable_by_service_role_only(db: Conn) -> None:
    """service_role may execute each function of the exposed schemas; anon, authenticated and
    PUBLIC may execute none (a new function that forgets its revoke fails here)."""
    assert _functions(db)
    assert _function_grant_problems(db) == []


def test_a_function_that_forgets_its_revoke_is_caught(db: Conn) -> None:
    """The check above is not vacuous: a function created the way a careless migration would
    (PUBLIC keeps Postgres' default EXECUTE) is reported."""
    db.execute(
        "create function public.careless() returns jsonb language sql as 'select null::jsonb'"
    )
    assert _function_grant_problems(db) == ["careless()"]


def test_table_privileges_are_what_the_job_uses(db: Conn) -> None:
    """Each of the job's tables grants exactly its listed privileges, to service_role and, on
    the audit log, to authenticated (an ops admin, by policy); no one else holds any, and the
    only column grants are the audit log's resolved and the outbox's sender columns."""
    tables = _relations(db, "rpvmf")
    assert tables == set(JOB_TABLE_GRANTS), "a new table needs its privileges decided"
    grants = _relation_grants(db, "rpvmf")
    assert grants == {table: g for table, g in JOB_TABLE_GRANTS.items() if g}
    columns = _rows(
        db,
        f"""
        select n.nspname || '.' || c.relname, t.attname, {_GRANTEE}, a.privilege_type
        from pg_attribute t join pg_class c on c.oid = t.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        cross join lateral aclexplode(t.attacl) a
        where {_JOB_RELATION} and t.attacl is not null
        """,
        {"app": APP_RELATIONS},
    )
    by_column: dict[tuple[str, str], dict[str, set[str]]] = {}
    for table, column, grantee, privilege in columns:
        by_column.setdefault((table, column), {}).setdefault(grantee, set()).add(privilege)
    assert by_column == JOB_COLUMN_GRANTS


def test_no_one_may_delete_or_truncate(db: Conn) -> None:
    """No API role may DELETE (audit rows are never deleted) or TRUNCATE anything."""
    for table in _relations(db, "rpvmf"):
        for role in API_ROLES:
            assert db.execute(
                "select has_table_privilege(%s, %s, 'DELETE, TRUNCATE')", (role, table)
            ).fetchone() == (False,), (role, table)


def test_sequences_are_revoked_from_the_api_roles(db: Conn) -> None:
    """No grant on any sequence (the identity column needs none to insert)."""
    assert _relations(db, "S") == {"certexpiry.notification_outbox_id_seq"}
    assert _relation_grants(db, "S") == {}


def test_anon_cannot_move_the_outbox_sequence(db: Conn) -> None:
    """`set role anon; select setval(...)` succeeded with the hosted default privileges."""
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        as_api_role(db, "anon", {"role": "anon"}),
    ):
        db.execute("select setval('certexpiry.notification_outbox_id_seq', 1)")


def _anon_reaches_the_audit_log(conn: Conn) -> bool:
    return bool(
        conn.execute(
            "select has_table_privilege('anon', 'public.cron_audit_log', 'SELECT')"
            " or has_function_privilege('anon', 'public.schema_version()', 'EXECUTE')"
        ).fetchone()
        == (True,)
    )


def test_the_privileges_file_closes_what_hosted_defaults_open(pg_admin_url: str) -> None:
    """On a database with the hosted default privileges (supabase/local/bootstrap.sql), the
    job's objects alone are open to anon (its audit log, its RPCs); its privileges file takes
    each back, one object at a time."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(make_conninfo(pg_admin_url, dbname=name), autocommit=True) as conn:
            schema.prepare_local(conn, bootstrap=True, app=True)
            files = schema.schema_files()
            at = [path.name for path in files].index(PRIVILEGES_FILE)
            with conn.transaction():
                for path in files[:at]:
                    conn.execute(path.read_text())
                assert _anon_reaches_the_audit_log(conn)
                conn.execute(files[at].read_text())
                assert not _anon_reaches_the_audit_log(conn)
                assert _function_grant_problems(conn) == []
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.mark.parametrize("status", [*get_args(AuditStatus), "bogus"])
def test_audit_status_check_matches_the_contract(db: Conn, status: str) -> None:
    """cron_audit_log.status takes exactly the contract's AuditStatus values."""
    insert = (
        "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids, "
        "status) values (gen_random_uuid(), now(), 0, '[]', %s)"
    )
    if status in get_args(AuditStatus):
        db.execute(insert, (status,))
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(insert, (status,))


def test_no_sql_default_repeats_a_setting(db: Conn) -> None:
    """No function of the SQL API defaults the organisation's time zone or the lease: the
    settings say what they are, and a caller that forgot one fails instead of running on a
    guess."""
    rows = db.execute(
        """
        select p.oid::regprocedure::text, pg_get_expr(p.proargdefaults, 0)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('public', 'certexpiry') and p.proargdefaults is not null
        """
    ).fetchall()
    guesses = [
        (name, defaults)
        for name, defaults in rows
        if "Europe/Oslo" in defaults or re.search(r"\b120\b", defaults)
    ]
    assert guesses == []
