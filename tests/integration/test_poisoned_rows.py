"""Issue 28, "No row stops the night": a certification whose effects the app's database refuses,
with whatever error class its triggers, constraints or locks raise, fails alone. The night
completes with every other certification done, the row is reported by id with its SQLSTATE
(failures_detail, plan_night's failures, the audit row's missed auto-pauses), and the same
happens every night until the app fixes it; the first night after the fix does its work."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests import faults
from tests.integration.sqlapi import NOW, TODAY, claim, missed, rpc, sweep_all
from tests.integration.test_night_work import next_action
from tests.seeding import actions_of, add_cert, add_mentor, outbox_of, status_of

Conn = psycopg.Connection[Any]
Install = Callable[[Conn, str, uuid.UUID], contextlib.AbstractContextManager[None]]


def _trigger(table: str, body: str, *, setup: str = "", deferred: bool = False) -> Install:
    """A trigger of the app's on `table` that runs `body` on every update of the chosen row
    (a certification or a mentor); the app's fix drops it. `deferred`: a constraint trigger
    deferred to the end of the transaction, fired at commit, outside any subtransaction: it
    would fail the whole batch, unless the job fires deferred constraints at each statement's
    end."""

    @contextlib.contextmanager
    def install(db: Conn, url: str, row_id: uuid.UUID) -> Iterator[None]:
        if setup:
            db.execute(setup)
        with faults.inject(db, table, body, name="poisoned", ids=[row_id], deferred=deferred):
            yield

    return install


@contextlib.contextmanager
def _check_constraint(db: Conn, url: str, row_id: uuid.UUID) -> Iterator[None]:
    """A check constraint the app adds, which the chosen certification meets only while active."""
    db.execute(
        f"alter table public.certifications add constraint certifications_poisoned_check "
        f"check (id <> '{row_id}' or status = 'active')"
    )
    yield
    db.execute("alter table public.certifications drop constraint certifications_poisoned_check")


def _locked(
    table: str, lock: str = "select 1 from public.{table} where id = %s for update"
) -> Install:
    """The chosen row locked by another connection's open transaction, held across the nights
    (as in test_night_work's test_a_row_locked_elsewhere_fails_fast_and_alone, without a thread:
    the holder waits for nothing); the fix is that transaction ending."""

    @contextlib.contextmanager
    def hold(db: Conn, url: str, row_id: uuid.UUID) -> Iterator[None]:
        with psycopg.connect(url) as other:
            other.execute(lock.format(table=table), (row_id,))
            yield
            other.rollback()

    return hold


@dataclass(frozen=True)
class Poison:
    install: Install
    sqlstate: str
    routine: str = "public.poisoned"  # the innermost function the failure's routine names
    names: dict[str, str] = field(default_factory=dict)  # the error's names the catalog has
    on_mentor: bool = False  # the chosen row is the certification's mentor
    sibling_fails: bool = False  # the mentor's other certification's reminder fails too
    any_update: bool = False  # refuses every update of the certification, the job's marks too


PAUSE = "certexpiry.apply_auto_pauses"
POISONS = {
    "raise": Poison(
        _trigger("certifications", "raise exception 'refused by the app'"), "P0001", any_update=True
    ),
    "assert": Poison(
        _trigger("certifications", "assert false, 'the app never updates this row'"),
        "P0004",
        any_update=True,
    ),
    "division_by_zero": Poison(
        _trigger("certifications", "new.updated_at := now() + interval '1 day' / 0"),
        "22012",
        any_update=True,
    ),
    "deferred_constraint_trigger": Poison(
        _trigger("certifications", "raise exception 'refused at commit'", deferred=True),
        "P0001",
        any_update=True,
    ),
    "check_violation": Poison(
        _check_constraint,
        "23514",
        routine=PAUSE,
        names={
            "constraint_name": "certifications_poisoned_check",
            "schema_name": "public",
            "table_name": "certifications",
        },
    ),
    "foreign_key_violation": Poison(
        _trigger(
            "certifications",
            "insert into public.certification_events (certification_id, course_id) "
            "values (new.id, gen_random_uuid())",
            setup="create table public.certification_events ("
            " certification_id uuid not null references public.certifications (id),"
            " course_id uuid not null references public.courses (id))",
        ),
        "23503",
        names={
            "constraint_name": "certification_events_course_id_fkey",
            "schema_name": "public",
            "table_name": "certification_events",
        },
        any_update=True,
    ),
    "lock_timeout": Poison(_locked("certifications"), "55P03", routine=PAUSE),
    "mentor_raise": Poison(
        _trigger("peer_mentors", "raise exception 'mentor refused by the app'"),
        "P0001",
        on_mentor=True,
    ),
    # select ... for update conflicts with the key-share lock the outbox's foreign key takes on
    # the mentor, so the reminder of the mentor's other certification waits and fails too.
    "mentor_lock_timeout": Poison(
        _locked("peer_mentors"), "55P03", routine=PAUSE, on_mentor=True, sibling_fails=True
    ),
    # The app's own update of the mentor, in flight: a no-key-update lock, which only the pause
    # of the mentor waits for.
    "mentor_update_in_flight": Poison(
        _locked("peer_mentors", "update public.peer_mentors set updated_at = now() where id = %s"),
        "55P03",
        routine=PAUSE,
        on_mentor=True,
    ),
}


@dataclass
class Night:
    """The seeded certifications: the poisoned one and its mentor (with a reminder due on
    another certification), others due tonight, one more the second night, one never."""

    poisoned: uuid.UUID
    mentor: uuid.UUID
    sibling: uuid.UUID  # the poisoned mentor's other certification, a reminder due tonight
    expired: list[uuid.UUID]
    reminders: dict[uuid.UUID, str]  # certification: the reminder due tonight
    expires_tonight: uuid.UUID  # valid through tonight: paused the second night


def _seed(db: Conn) -> Night:
    mentor = add_mentor(db)
    poisoned = add_cert(db, mentor, TODAY - timedelta(days=2))
    sibling = add_cert(db, mentor, TODAY + timedelta(days=5))
    expired = [add_cert(db, add_mentor(db), TODAY - timedelta(days=1 + i % 3)) for i in range(5)]
    expires_tonight = add_cert(db, add_mentor(db), TODAY)
    reminders = {
        add_cert(db, add_mentor(db), TODAY + timedelta(days=days)): action
        for days, action in ((6, "reminder_7d"), (20, "reminder_30d"))
    }
    reminders[sibling] = "reminder_7d"
    reminders[expires_tonight] = "reminder_1d"
    add_cert(db, add_mentor(db), TODAY + timedelta(days=90))  # nothing due
    return Night(poisoned, mentor, sibling, expired, reminders, expires_tonight)


def _oslo_day(now: datetime) -> str:
    return (now + timedelta(hours=1)).date().isoformat()  # Europe/Oslo, UTC+1 in winter


@pytest.fixture(autouse=True)
def _short_lock_waits(db: Conn) -> None:
    """Rows held locked are waited out 200 ms instead of 3 s per bisection level."""
    faults.shorten_lock_timeout(db)


def _night(db: Conn, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole night as the sweep runs it: every batch (pages of 4, so the poisoned row shares
    one with others), the run completed, the monitoring query and the audit row from its answer;
    returns the batches' totals and the audit row."""
    totals = sweep_all(db, now, limit=4)
    rpc(db, "select public.complete_run(%(r)s::uuid, 0)", {"r": totals["run_id"]})
    report = missed(db, _oslo_day(now))
    rpc(
        db,
        "select public.upsert_cron_audit(p_run_id => %(r)s::uuid, "
        "p_missed_pause_count => %(n)s, p_missed_ids => %(ids)s::jsonb, p_status => 'completed', "
        "p_nightly_key => %(t)s::date, p_segments => 1, p_totals => %(totals)s::jsonb)",
        {
            "r": totals["run_id"],
            "n": report["missed_pause_count"],
            "ids": json.dumps(report["missed_ids"]),
            "t": _oslo_day(now),
            "totals": json.dumps({k: v for k, v in totals.items() if isinstance(v, int)}),
        },
    )
    row = db.execute(
        "select missed_pause_count, missed_ids from public.cron_audit_log where run_id = %s",
        (totals["run_id"],),
    ).fetchone()
    assert row is not None
    return totals, {"missed_pause_count": row[0], "missed_ids": row[1]}


def _plan(db: Conn, now: datetime) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        db,
        "select public.plan_night(p_timezone => 'Europe/Oslo', p_today => %(t)s::date, "
        "p_reminder_days => '{30,7,1}', p_ids_limit => 100)",
        {"t": _oslo_day(now)},
    )
    return result


def _done(db: Conn, cert: uuid.UUID) -> list[str]:
    return [action for action, outcome in actions_of(db, cert) if outcome == "done"]


NAME_KEYS = ("constraint_name", "schema_name", "table_name", "column_name", "datatype_name")


def _innermost(failure: dict[str, Any]) -> str:
    """The innermost function a failure's routine names (it names them innermost first, up to
    the RPC), after checking that it has no message and ends at the RPC."""
    assert "message" not in failure
    chain: list[str] = failure["routine"].split(" < ")
    assert chain[-1] == "public.process_expiry_batch"
    return chain[0]


def _failed(failures: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None]]:
    """The failures by certification id: operation, SQLSTATE, innermost routine."""
    found: dict[str, tuple[str, str, str | None]] = {
        f["certification_id"]: (f["operation"], f["sqlstate"], _innermost(f)) for f in failures
    }
    assert len(found) == len(failures)  # each certification reported once
    return found


def _expected(poison: Poison, night: Night) -> dict[str, tuple[str, str, str | None]]:
    expected: dict[str, tuple[str, str, str | None]] = {
        str(night.poisoned): ("auto_pause", poison.sqlstate, poison.routine)
    }
    if poison.sibling_fails:
        expected[str(night.sibling)] = ("reminder", poison.sqlstate, "certexpiry.apply_reminders")
    return expected


@pytest.mark.parametrize("poison", list(POISONS.values()), ids=list(POISONS))
def test_a_poisoned_row_fails_alone_every_night_until_fixed(
    db: Conn, database_url: str, poison: Poison
) -> None:
    """One certification whose auto-pause the app refuses (its own row or its mentor's), of
    each error class: every night completes with everything else done, reports it by id with
    its SQLSTATE and counts it as a missed auto-pause, until the app's fix; then it is paused."""
    night = _seed(db)
    with poison.install(db, database_url, night.mentor if poison.on_mentor else night.poisoned):
        first, audit = _night(db, NOW)
        assert _failed(first["failures_detail"]) == _expected(poison, night)
        (failure,) = [f for f in first["failures_detail"] if f["operation"] == "auto_pause"]
        assert failure["peer_mentor_id"] == str(night.mentor)
        assert {key: failure[key] for key in NAME_KEYS if key in failure} == poison.names
        assert first["failures"] == len(first["failures_detail"])
        assert first["certifications_paused"] == len(night.expired)
        assert {status_of(db, "certifications", c) for c in night.expired} == {"paused"}
        assert status_of(db, "certifications", night.poisoned) == "active"
        assert status_of(db, "peer_mentors", night.mentor) == "active"
        assert actions_of(db, night.poisoned) == []
        for cert, action in night.reminders.items():
            expected = [] if poison.sibling_fails and cert == night.sibling else [action]
            assert _done(db, cert) == expected, action
        assert audit == {"missed_pause_count": 1, "missed_ids": [str(night.poisoned)]}
        assert next_action(db, night.poisoned) is None  # a failed auto-pause: on the schedule
        # A failed reminder is marked for the next night (not tonight's marked pages again).
        assert next_action(db, night.sibling) == (
            TODAY + timedelta(days=1) if poison.sibling_fails else None
        )

        # What the second night will do, as ops see it before it runs.
        tomorrow = NOW + timedelta(days=1)
        plan = _plan(db, tomorrow)
        assert plan["failures"]["ids"] == sorted(_expected(poison, night))
        assert plan["certifications_paused"]["ids"] == [str(night.expires_tonight)]

        second, audit = _night(db, tomorrow)
        assert _failed(second["failures_detail"]) == _expected(poison, night)
        assert second["certifications_paused"] == 1
        assert status_of(db, "certifications", night.expires_tonight) == "paused"
        assert audit == {"missed_pause_count": 1, "missed_ids": [str(night.poisoned)]}

    # The app fixed: the next night pauses it (and its mentor), and nothing is missed.
    third, audit = _night(db, NOW + timedelta(days=2))
    assert third["failures_detail"] == []
    assert status_of(db, "certifications", night.poisoned) == "paused"
    assert status_of(db, "peer_mentors", night.mentor) == "paused"
    assert actions_of(db, night.poisoned) == [("auto_pause", "done")]
    assert _done(db, night.sibling) == ["reminder_7d"]  # retried, where it failed
    assert audit == {"missed_pause_count": 0, "missed_ids": []}


@pytest.mark.parametrize(
    "poison",
    [p for p in POISONS.values() if p.any_update],
    ids=[name for name, p in POISONS.items() if p.any_update],
)
def test_a_mark_the_app_refuses_fails_alone_every_night_until_fixed(
    db: Conn, database_url: str, poison: Poison
) -> None:
    """A certification the app added after the job's first night (marked: looked at once) whose
    every update the app refuses: its reminder is queued, the mark that puts it back on the
    schedule fails alone, reported as its reminder's failure, and the page's others are done.
    It keeps its mark, so each night reads it again and reports it, without a second reminder,
    until the app's fix lets the mark be written."""
    claim(db, NOW - timedelta(days=1))  # a run exists: certifications added now are marked
    mentor = add_mentor(db)
    refused = add_cert(db, mentor, TODAY + timedelta(days=5))
    others = [add_cert(db, add_mentor(db), TODAY + timedelta(days=5)) for _ in range(5)]
    expired = [add_cert(db, add_mentor(db), TODAY - timedelta(days=1)) for _ in range(2)]
    with poison.install(db, database_url, refused):
        for day in range(2):
            totals, audit = _night(db, NOW + timedelta(days=day))
            (failure,) = totals["failures_detail"]
            assert failure["certification_id"] == str(refused)
            assert failure["peer_mentor_id"] == str(mentor)
            assert failure["operation"] == "reminder"
            assert failure["sqlstate"] == poison.sqlstate
            assert _innermost(failure) == poison.routine
            assert {key: failure[key] for key in NAME_KEYS if key in failure} == poison.names
            assert totals["failures"] == 1
            assert _done(db, refused) == ["reminder_7d"]
            assert next_action(db, refused) == "-infinity"  # read again the next night
            assert {_done(db, c)[0] for c in others} == {"reminder_7d"}
            assert {next_action(db, c) for c in others} == {None}
            assert {status_of(db, "certifications", c) for c in expired} == {"paused"}
            assert audit["missed_pause_count"] == 0
    third, _ = _night(db, NOW + timedelta(days=2))
    assert third["failures_detail"] == []
    assert next_action(db, refused) is None
    assert [kind for kind, _ in outbox_of(db, refused)] == ["reminder"]  # one reminder, queued
