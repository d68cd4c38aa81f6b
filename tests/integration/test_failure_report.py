"""The per-row failure report (certexpiry.apply_effects_isolated, issue 11): structured fields,
the failing mentor's own values replaced by value in SQL, nothing cut before redaction, and
only the message's template past the contract."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg

from certexpiry.contract import RecordFailure
from tests import faults
from tests.integration.sqlapi import NOW, TODAY, sweep_all
from tests.seeding import add_cert

Conn = psycopg.Connection[Any]
NAME = "Ragnhild Plantedottir"
NATIONAL_ID = "01019012345"
EMAIL = "ragnhild@example.no"


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
    """A trigger quoting the row and its mentor (upper- and lower-case, past 500 characters)
    is reported with its SQLSTATE, the names it gave and its routine; the mentor's own
    values are gone from the message, which is whole (not cut at 500)."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    _refuse(
        db,
        cert,
        "raise exception using errcode = '23514', "
        "message = format('row %s of %s (%s) violates %s', new, m.full_name, lower(m.full_name), "
        "repeat('x', 490) || m.national_id || ' ' || m.email), "
        "detail = 'Failing row contains ' || new::text, constraint = 'certifications_attack_check', "
        "table = 'certifications', schema = 'public', column = 'status', datatype = 'text'",
    )
    totals = sweep_all(db, NOW)
    (failure,) = totals["failures_detail"]
    message = failure.pop("message")
    assert failure == {
        "certification_id": str(cert),
        "peer_mentor_id": failure["peer_mentor_id"],
        "operation": "auto_pause",
        "sqlstate": "23514",
        "constraint_name": "certifications_attack_check",
        "schema_name": "public",
        "table_name": "certifications",
        "column_name": "status",
        "datatype_name": "text",
        "routine": "public.attack_refuse",
    }
    assert len(message) > 500
    for value in (NAME, NAME.lower(), "Ragnhild", "plantedottir", NATIONAL_ID, EMAIL):
        assert value not in message
    model = RecordFailure.model_validate({**failure, "message": message})
    assert model.message is not None
    assert "ragnhild" not in model.message.lower()
    assert str(cert) not in model.message  # the row literal is a parenthesised value
    assert model.message.startswith("row (?) of [REDACTED:mentor] (?) violates xxx")
    assert model.message.endswith("x[REDACTED:mentor] [REDACTED:mentor]")


def test_a_p0001_message_is_dropped_whole_past_the_contract(db: Conn) -> None:
    """RAISE EXCEPTION text (P0001) is free text: the contract keeps none of it."""
    cert = add_cert(db, _mentor(db), TODAY - timedelta(days=2))
    _refuse(db, cert, "raise exception 'no pause for Ola Fremmedsen'")
    (failure,) = sweep_all(db, NOW)["failures_detail"]
    assert failure["sqlstate"] == "P0001"
    assert RecordFailure.model_validate(failure).message == (
        "[message raised by a database function]"
    )
