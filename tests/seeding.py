"""Small helpers to seed and inspect the test database (superuser connection)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import psycopg


def add_mentor(
    conn: psycopg.Connection[Any], *, status: str = "active", name: str = "Kari Nordmann"
) -> uuid.UUID:
    mentor_id = uuid.uuid4()
    conn.execute(
        "insert into public.peer_mentors (id, full_name, national_id, email, status) values (%s, %s, %s, %s, %s)",
        (mentor_id, name, "01017012345", "kari@example.org", status),
    )
    return mentor_id


def add_cert(
    conn: psycopg.Connection[Any], mentor_id: uuid.UUID, expiry: date, *, status: str = "active"
) -> uuid.UUID:
    """A certification as the app writes it. Before the job's first night it stands for data
    the app had when the job was installed (on the schedule: next_action_on null); after it, for
    one the app inserts later (the column's default, -infinity: looked at once)."""
    cert_id = uuid.uuid4()
    conn.execute(
        "insert into public.certifications (id, peer_mentor_id, expiry_date, status) values (%s, %s, %s, %s)",
        (cert_id, mentor_id, expiry, status),
    )
    conn.execute(
        "update public.certifications set next_action_on = null"
        " where id = %s and not exists (select from certexpiry.cron_runs)",
        (cert_id,),
    )
    return cert_id


def status_of(conn: psycopg.Connection[Any], table: str, row_id: uuid.UUID) -> str:
    assert table in ("certifications", "peer_mentors")
    row = conn.execute(f"select status from public.{table} where id = %s", (row_id,)).fetchone()
    assert row is not None
    return str(row[0])


def actions_of(conn: psycopg.Connection[Any], cert_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select action, outcome from certexpiry.certification_idempotency_log where certification_id = %s order by action",
        (cert_id,),
    ).fetchall()
    return [(str(a), str(o)) for a, o in rows]


def outbox_of(conn: psycopg.Connection[Any], cert_id: uuid.UUID) -> list[tuple[str, Any]]:
    rows = conn.execute(
        "select kind, payload from certexpiry.notification_outbox where certification_id = %s order by id",
        (cert_id,),
    ).fetchall()
    return [(str(k), p) for k, p in rows]


# The specification's missed auto-pause, word for word: expired, not paused, no auto_pause record
# for its expiry date. The monitoring query skips the record probe where next_action_on proves it
# (certexpiry.missed_auto_pauses); the tests compare its answer with this one.
SPEC_MISSED = """
    select c.id from public.certifications c
    where c.expiry_date < %(today)s and c.status <> 'paused'
      and not exists (select 1 from certexpiry.certification_idempotency_log l
                      where l.certification_id = c.id and l.action = 'auto_pause'
                        and l.expiry_date = c.expiry_date)
"""
