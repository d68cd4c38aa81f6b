"""Issue 28 end to end: certifications the app's database refuses, one for each error class a
trigger, a constraint or a lock can raise on the job's writes, served by the real function
process (functions-framework) and driven like Pub/Sub would. Each night completes with every
other certification done; each poisoned one is reported by id with its SQLSTATE (a
DB_OPERATION_FAILED line) and counted in the audit row; the next night reports them again
without stopping; once the app is fixed the night after does their work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests import faults
from tests.chain import over_http
from tests.clock import OrgDay
from tests.reliability.support import shift_runs_to_yesterday
from tests.seeding import add_cert, add_mentor, status_of

Conn = psycopg.Connection[Any]

# Each poison: the SQLSTATE its certification is reported with, and how the app refuses it.
# The triggers' bodies run, by tests/faults.py, on their kind's certification only.
TRIGGER_BODIES = {
    "raise": ("P0001", "raise exception 'refused by the app'"),
    "assert": ("P0004", "assert false, 'the app never updates this row'"),
    "division_by_zero": ("22012", "new.updated_at := now() + interval '1 day' / 0"),
    "foreign_key_violation": (
        "23503",
        "insert into public.certification_events (certification_id, course_id) "
        "values (new.id, gen_random_uuid())",
    ),
}
OTHER_POISONS = {
    "check_violation": "23514",  # a check constraint the row meets only while active
    "deferred_constraint_trigger": "P0001",  # fired at commit unless made immediate
    "mentor_refused": "P0001",  # the certification is fine; its mentor's update is refused
    "lock_timeout": "55P03",  # the row locked by the app's open transaction
}
SQLSTATES = {kind: state for kind, (state, _) in TRIGGER_BODIES.items()} | OTHER_POISONS


def _install_poisons(
    db: Conn, poisoned: dict[str, uuid.UUID], mentor: uuid.UUID
) -> list[faults.Fault]:
    """The app's refusals: a trigger per kind on its certification (or mentor), and the check
    constraint; `_fix` removes them."""
    db.execute(
        "create table public.certification_events ("
        " certification_id uuid not null references public.certifications (id),"
        " course_id uuid not null references public.courses (id))"
    )
    installed = [
        faults.inject(db, "certifications", body, name=f"poisoned_{kind}", ids=[poisoned[kind]])
        for kind, (_, body) in TRIGGER_BODIES.items()
    ]
    installed.append(
        faults.refuse(
            db,
            "certifications",
            [poisoned["deferred_constraint_trigger"]],
            message="refused at commit",
            name="refuse_at_commit",
            deferred=True,
        )
    )
    installed.append(
        faults.refuse(
            db, "peer_mentors", [mentor], message="mentor refused by the app", name="refuse_mentor"
        )
    )
    db.execute(
        "alter table public.certifications add constraint certifications_poisoned_check "
        f"check (id <> '{poisoned['check_violation']}' or status = 'active')"
    )
    return installed


def _fix(db: Conn, installed: list[faults.Fault]) -> None:
    for fault in installed:
        fault.remove()
    db.execute("alter table public.certifications drop constraint certifications_poisoned_check")


@contextmanager
def _locked(url: str, cert: uuid.UUID) -> Iterator[None]:
    """The certification locked by another connection's open transaction, across nights."""
    with psycopg.connect(url) as other:
        other.execute("select 1 from public.certifications where id = %s for update", (cert,))
        yield
        other.rollback()


@dataclass
class Seeded:
    poisoned: dict[str, uuid.UUID]  # kind: an expired certification the app refuses
    mentor_refused: uuid.UUID  # the mentor of poisoned["mentor_refused"]
    healthy: list[uuid.UUID]  # expired, nothing refuses them
    reminders: list[uuid.UUID]  # a reminder due tonight


def _seed(db: Conn, org: OrgDay) -> Seeded:
    expired = org.today - timedelta(days=2)
    poisoned = {kind: add_cert(db, add_mentor(db), expired) for kind in SQLSTATES}
    mentor = db.execute(
        "select peer_mentor_id from public.certifications where id = %s",
        (poisoned["mentor_refused"],),
    ).fetchone()
    assert mentor is not None
    healthy = [add_cert(db, add_mentor(db), expired) for _ in range(12)]
    reminders = [add_cert(db, add_mentor(db), org.today + timedelta(days=7)) for _ in range(4)]
    return Seeded(poisoned, mentor[0], healthy, reminders)


def _night(function: FunctionProcess, pubsub: FakePubSub) -> list[dict[str, Any]]:
    """One night through HTTP, every continuation included; the lines it logged."""
    before = len(function.lines)
    statuses = over_http(function, pubsub).run()
    assert statuses == [200] * len(statuses)  # no delivery refused, none stopped the night
    entries = function.entries_until("RUN_COMPLETED", after=before)
    assert [e["error_code"] for e in entries].count("RUN_COMPLETED") == 1
    return entries


def _reported(entries: list[dict[str, Any]]) -> dict[str, str]:
    """certification id: SQLSTATE, from the night's per-certification failure lines."""
    found = [
        e["context"]
        for e in entries
        if e["error_code"] == "DB_OPERATION_FAILED" and "certification_id" in e["context"]
    ]
    reported = {c["certification_id"]: c["sqlstate"] for c in found}
    assert len(reported) == len(found)  # each certification reported once a night
    return reported


def _audit(db: Conn) -> tuple[str, int, list[str]]:
    row = db.execute(
        "select status, missed_pause_count, missed_ids from public.cron_audit_log "
        "order by run_at desc limit 1"
    ).fetchone()
    assert row is not None
    return row[0], row[1], sorted(row[2])


def test_every_error_class_fails_alone_every_night_until_fixed(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    seeded = _seed(db, org)
    installed = _install_poisons(db, seeded.poisoned, seeded.mentor_refused)
    faults.shorten_lock_timeout(db)  # the locked row waited out 200 ms, not 3 s, per level
    expected = {str(seeded.poisoned[kind]): state for kind, state in SQLSTATES.items()}
    function = FunctionProcess(
        env=function_env(
            database_url, pubsub, org_timezone=org.timezone, batch_size=2, monitoring_reserve_s=0
        )
    ).start()
    try:
        with _locked(database_url, seeded.poisoned["lock_timeout"]):
            for night in range(2):
                entries = _night(function, pubsub)
                assert _reported(entries) == expected, night
                assert _audit(db) == ("completed", len(expected), sorted(expected))
                assert {status_of(db, "certifications", c) for c in seeded.healthy} == {"paused"}
                assert {status_of(db, "certifications", c) for c in seeded.poisoned.values()} == {
                    "active"
                }
                missed = [e for e in entries if e["error_code"] == "MISSED_AUTO_PAUSE"]
                assert sorted(missed[0]["context"]["missed_ids"]) == sorted(expected)
                shift_runs_to_yesterday(db)
        assert db.execute(
            "select count(*) from certexpiry.certification_idempotency_log "
            "where action = 'reminder_7d' and certification_id = any(%s)",
            (seeded.reminders,),
        ).fetchone() == (len(seeded.reminders),)
        _fix(db, installed)
        entries = _night(function, pubsub)
    finally:
        function.stop()
    assert _reported(entries) == {}
    assert _audit(db) == ("completed", 0, [])
    assert {status_of(db, "certifications", c) for c in seeded.poisoned.values()} == {"paused"}
    assert status_of(db, "peer_mentors", seeded.mentor_refused) == "paused"


def test_a_row_outliving_the_statement_timeout_alone_is_passed_every_night_until_fixed(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """A certification whose update the app's trigger makes slower than the statement timeout
    (a real one, STATEMENT_TIMEOUT_S): the batches around it are narrowed down to it, the next
    batch passes it as failed (57014) and the night completes; again the next night; after
    the fix it is paused."""
    expired = org.today - timedelta(days=1)
    slow = add_cert(db, add_mentor(db), expired)
    healthy = [add_cert(db, add_mentor(db), expired) for _ in range(9)]
    slowed = faults.slow(db, "certifications", 5, [slow])
    function = FunctionProcess(
        env=function_env(
            database_url,
            pubsub,
            org_timezone=org.timezone,
            batch_size=4,
            statement_timeout_s=0.5,
            monitoring_reserve_s=0,
        )
    ).start()
    try:
        for _night_number in range(2):
            entries = _night(function, pubsub)
            assert _reported(entries) == {str(slow): "57014"}
            codes = [e["error_code"] for e in entries]
            assert "BATCH_SHRUNK" in codes
            assert codes.count("ROW_FAILED_ALONE") == 1
            assert _audit(db) == ("completed", 1, [str(slow)])
            assert {status_of(db, "certifications", c) for c in healthy} == {"paused"}
            shift_runs_to_yesterday(db)
        slowed.remove()
        entries = _night(function, pubsub)
    finally:
        function.stop()
    assert _reported(entries) == {}
    assert status_of(db, "certifications", slow) == "paused"
    assert _audit(db) == ("completed", 0, [])
