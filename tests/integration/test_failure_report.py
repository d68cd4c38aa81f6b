"""The per-row failure report (certexpiry.failure_detail, issues 11 and 22): the certification,
its mentor, the operation and the SQLSTATE, and of the error's names only those the database's
catalog has (certexpiry.error_names). No text of the error's: no message, detail or hint, and
no name a trigger made up."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from certexpiry.errors import DIAGNOSTIC_NAMES
from certexpiry.store.answers import RecordFailure
from tests import faults
from tests.integration.sqlapi import NOW, TODAY, claim, rpc, sweep_all
from tests.seeding import add_cert

Conn = psycopg.Connection[Any]
NAME = "Ragnhild Plantedottir"
NATIONAL_ID = "01019012345"
EMAIL = "ragnhild@example.no"
NAME_KEYS = ("constraint_name", "schema_name", "table_name", "column_name", "datatype_name")


def _mentor(db: Conn) -> uuid.UUID:
    mentor = uuid.uuid4()
    db.execute(
        "insert into public.peer_mentors (id, full_name, national_id, email) values (%s, %s, %s, %s)",
        (mentor, NAME, NATIONAL_ID, EMAIL),
    )
    return mentor


def _refuse(db: Conn, cert: uuid.UUID, raise_sql: str) -> None:
    """The certification's pause refused by `raise_sql`, which may quote its mentor `m`."""
    faults.inject(
        db,
        "certifications",
        f"select * into m from public.peer_mentors where id = new.peer_mentor_id; {raise_sql}",
        name="attack_refuse",
        ids=[cert],
        when="new.status = 'paused'",
        declare="m record;",
    )


def test_a_raise_quoting_the_mentor_reports_structure_and_no_value(db: Conn) -> None:
    """A trigger quoting the row and its mentor in its message and detail: the failure has its
    SQLSTATE, the names it gave that the catalog has, its routine, and no text at all."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    _refuse(
        db,
        cert,
        "raise exception using errcode = '23514', "
        "message = format('row %s of %s (%s) violates %s', new, m.full_name, lower(m.full_name), "
        "repeat('x', 490) || m.national_id || ' ' || m.email), "
        "detail = 'Failing row contains ' || new::text, hint = m.email, "
        "constraint = 'certifications_attack_check', "
        "table = 'certifications', schema = 'public', column = 'status', datatype = 'text'",
    )
    totals = sweep_all(db, NOW)
    (failure,) = totals["failures_detail"]
    routine = failure.pop("routine")
    assert failure == {
        "certification_id": str(cert),
        "peer_mentor_id": failure["peer_mentor_id"],
        "operation": "auto_pause",
        "sqlstate": "23514",
        # certifications_attack_check is the trigger's invention: no such constraint.
        "schema_name": "public",
        "table_name": "certifications",
        "column_name": "status",
        "datatype_name": "text",
    }
    assert routine.split(" < ")[0] == "public.attack_refuse"
    text = json.dumps(failure) + routine
    for value in (NAME, "Ragnhild", "plantedottir", NATIONAL_ID, EMAIL, "xxx", "violates"):
        assert value.lower() not in text.lower()
    model = RecordFailure.model_validate({**failure, "routine": routine})
    assert not hasattr(model, "message")
    assert model.names() == {
        key: value
        for key, value in {**failure, "routine": routine}.items()
        if key in DIAGNOSTIC_NAMES
    }


def test_names_a_trigger_made_up_are_not_reported(db: Conn) -> None:
    """RAISE ... USING COLUMN = 'kari', CONSTRAINT = 'Kari Nordmann', ...: the failure names
    none of them (the catalog has none); its routine names the trigger's function."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    _refuse(
        db,
        cert,
        "raise exception 'x' using column = 'kari', constraint = 'Kari Nordmann', "
        "table = 'nordmann', schema = 'ola', datatype = 'åse'",
    )
    (failure,) = sweep_all(db, NOW)["failures_detail"]
    assert failure["sqlstate"] == "P0001"
    assert not set(NAME_KEYS) & set(failure)
    assert "message" not in failure
    chain = failure["routine"].split(" < ")
    assert chain[0] == "public.attack_refuse"
    assert chain[-1] == "public.process_expiry_batch"
    assert "Kari" not in json.dumps(failure)


def test_routine_names_only_existing_functions(db: Conn) -> None:
    """Every function a failure's routine names is one pg_proc has, innermost first: the
    trigger's, then the job's that led to it, up to the RPC."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    _refuse(db, cert, "raise exception 'no'")
    (failure,) = sweep_all(db, NOW)["failures_detail"]
    chain = failure["routine"].split(" < ")
    assert chain[:2] == ["public.attack_refuse", "certexpiry.apply_auto_pauses"]
    assert "certexpiry.apply_effects_isolated" in chain
    assert chain[-1] == "public.process_expiry_batch"
    for name in chain:
        schema, _, function = name.rpartition(".")
        row = db.execute(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where p.proname = %s and (%s = '' or n.nspname = %s)",
            (function, schema, schema),
        ).fetchone()
        assert row is not None
        assert row[0] >= 1, name


def test_a_passed_certification_is_reported_without_names(db: Conn) -> None:
    """A certification the sweep passes after it failed alone (p_failed_ahead) is reported with
    the SQLSTATE the sweep gave and nothing else: no names, no message."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    run = claim(db, NOW)
    result = rpc(
        db,
        "select public.process_expiry_batch(p_run_id => %(r)s::uuid, p_segment => 0, "
        "p_cursor => null, p_limit => 0, p_reminder_days => '{30,7,1}', "
        "p_lease_seconds => 120, p_failed_ahead => '{P0001}')",
        {"r": run["run_id"]},
    )
    (failure,) = result["failures_detail"]
    assert failure == {
        "certification_id": str(cert),
        "peer_mentor_id": failure["peer_mentor_id"],
        "operation": "auto_pause",
        "sqlstate": "P0001",
    }


def test_the_contract_refuses_a_message() -> None:
    """A failure with a `message` key is outside the contract: the job never takes one in."""
    failure = {
        "certification_id": str(uuid.uuid4()),
        "peer_mentor_id": str(uuid.uuid4()),
        "operation": "auto_pause",
        "sqlstate": "P0001",
    }
    assert RecordFailure.model_validate(failure).routine is None
    with pytest.raises(ValidationError, match="message"):
        RecordFailure.model_validate({**failure, "message": "no pause for Ola Fremmedsen"})
