"""The ops RPCs (list/get/resolve cron_audit) through OpsStore as service_role, on Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from certexpiry.errors import ContractError
from certexpiry.store import Counts
from certexpiry.store.postgres import PgTransport, as_api_role
from certexpiry_ops.contract import SIGNATURES
from certexpiry_ops.ops import AuditEntry, OpsStore
from tests.seeding import add_cert, add_mentor, status_of

Conn = psycopg.Connection[Any]


_TODAY: date | None = None


@pytest.fixture(autouse=True)
def _today_from_the_database(db: Conn) -> None:
    """Today as the SQL judges it (the audit RPCs use the database's clock, Europe/Oslo)."""
    global _TODAY
    row = db.execute("select certexpiry.org_today('Europe/Oslo')").fetchone()
    assert row is not None
    _TODAY = row[0]


def _today() -> date:
    assert _TODAY is not None
    return _TODAY


@pytest.fixture
def ops(database_url: str) -> Iterator[OpsStore]:
    transport = PgTransport(database_url, signatures=SIGNATURES)
    yield OpsStore(transport)
    transport.close()


def add_audit(
    db: Conn,
    *,
    missed: list[Any] | None = None,
    run_at: datetime | None = None,
    resolved: bool = False,
) -> uuid.UUID:
    """One cron_audit_log row (as the sweep writes them) with these missed IDs."""
    run_id = uuid.uuid4()
    ids = [str(item) for item in missed or []]
    db.execute(
        "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids, "
        "resolved, nightly_key, segments, totals, duration_ms) "
        "values (%s, %s, %s, %s::jsonb, %s, %s, 2, %s::jsonb, 1234)",
        (
            run_id,
            run_at or datetime.now(UTC),
            len(ids),
            json.dumps(ids),
            resolved,
            _today(),
            json.dumps({"reminders_queued": 3, "certifications_paused": 1}),
        ),
    )
    return run_id


def missed_cert(db: Conn) -> uuid.UUID:
    """An expired, active certification with no auto_pause record: a missed auto-pause."""
    return add_cert(db, add_mentor(db), _today() - timedelta(days=3))


def test_list_is_newest_first_and_capped(db: Conn, ops: OpsStore) -> None:
    """list_cron_audit returns the newest rows first, at most p_limit, without missed_ids."""
    now = datetime.now(UTC)
    older = add_audit(db, run_at=now - timedelta(days=2))
    newest = add_audit(db, run_at=now, missed=[uuid.uuid4()])
    middle = add_audit(db, run_at=now - timedelta(days=1))
    entries = ops.list_audit(10)
    assert [e.run_id for e in entries] == [newest, middle, older]
    assert entries[0].missed_pause_count == 1
    assert not isinstance(entries[0], AuditEntry)
    assert entries[0].unresolved
    assert not entries[1].unresolved
    assert entries[0].totals == Counts(reminders_queued=3, certifications_paused=1)
    assert [e.run_id for e in ops.list_audit(2)] == [newest, middle]
    assert len(ops.list_audit(0)) == 1  # clamped to at least one row
    assert ops.list_audit(5000) == ops.list_audit(1000)


def test_get_reports_which_missed_ids_are_still_missed(db: Conn, ops: OpsStore) -> None:
    """get_cron_audit lists missed_ids and still_missed; paused or renewed ones drop out."""
    still, paused, renewed = missed_cert(db), missed_cert(db), missed_cert(db)
    db.execute("update public.certifications set status = 'paused' where id = %s", (paused,))
    db.execute(
        "update public.certifications set expiry_date = %s where id = %s",
        (_today() + timedelta(days=300), renewed),
    )
    run_id = add_audit(db, missed=[still, paused, renewed])
    entry = ops.get_audit(run_id)
    assert entry is not None
    assert sorted(entry.missed_ids) == sorted(map(str, (still, paused, renewed)))
    assert entry.still_missed == (still,)
    assert entry.segments == 2
    assert entry.duration_ms == 1234
    assert entry.nightly_key == _today()
    assert ops.get_audit(uuid.uuid4()) is None


def test_get_ignores_malformed_missed_ids(db: Conn, ops: OpsStore) -> None:
    """Elements of missed_ids that are not UUID strings are ignored by still_missed, not an
    error in SQL; through OpsStore a non-string element is outside the contract."""
    cert = missed_cert(db)
    run_id, odd_run_id = uuid.uuid4(), uuid.uuid4()
    for run, ids in ((run_id, [str(cert), "not-a-uuid"]), (odd_run_id, [str(cert), 42])):
        db.execute(
            "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids) "
            "values (%s, now(), 2, %s::jsonb)",
            (run, json.dumps(ids)),
        )
    entry = ops.get_audit(run_id)
    assert entry is not None
    assert entry.still_missed == (cert,)
    raw = ops.transport.call("get_cron_audit", {"p_run_id": str(odd_run_id)})
    assert raw["still_missed"] == [str(cert)]
    with pytest.raises(ContractError, match=r"get_cron_audit .*missed_ids\[1\] \(string_type\)"):
        ops.get_audit(odd_run_id)


def test_resolve_refuses_while_missed_then_resolves(db: Conn, ops: OpsStore) -> None:
    """resolve_cron_audit refuses (writes nothing) while an ID is unpaused, then resolves once."""
    cert = missed_cert(db)
    run_id = add_audit(db, missed=[cert])
    refused = ops.resolve_audit(run_id)
    assert refused.found
    assert refused.refused
    assert not refused.resolved
    assert refused.still_missed == (cert,)
    assert db.execute(
        "select resolved, resolved_at from public.cron_audit_log where run_id = %s", (run_id,)
    ).fetchone() == (False, None)

    db.execute("update public.certifications set status = 'paused' where id = %s", (cert,))
    done = ops.resolve_audit(run_id)
    assert done.resolved
    assert not done.refused
    assert not done.forced
    assert done.still_missed == ()
    assert done.resolved_at is not None
    again = ops.resolve_audit(run_id)
    assert again.resolved
    assert again.resolved_at == done.resolved_at
    assert status_of(db, "certifications", cert) == "paused"


def test_resolve_with_force_and_unknown_run(db: Conn, ops: OpsStore) -> None:
    """p_force resolves despite unpaused IDs (reported as forced); an unknown run is not found."""
    cert = missed_cert(db)
    run_id = add_audit(db, missed=[cert])
    forced = ops.resolve_audit(run_id, force=True)
    assert forced.resolved
    assert forced.forced
    assert forced.still_missed == (cert,)
    missing = ops.resolve_audit(uuid.uuid4())
    assert not missing.found
    assert not missing.resolved


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_only_service_role_may_call_the_ops_rpcs(db: Conn, role: str) -> None:
    """anon and authenticated cannot execute the ops RPCs."""
    for statement in (
        "select public.list_cron_audit(5)",
        "select public.get_cron_audit(gen_random_uuid())",
        "select public.resolve_cron_audit(gen_random_uuid(), false)",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            as_api_role(db, role, {"role": role}),
        ):
            db.execute(statement)
