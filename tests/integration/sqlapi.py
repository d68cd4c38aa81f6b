"""Call the SQL API the way PostgREST does (service_role, request.jwt.claims), with a chosen now()."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from certexpiry.store.postgres import as_api_role

# The night the SQL tests run: 03:00 Oslo on 2026-11-28 (UTC+1 in winter), so the
# organisation-local today is 2026-11-28.
NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 28)


def rpc(conn: psycopg.Connection[Any], query: str, params: dict[str, Any] | None = None) -> Any:
    """One RPC in its own transaction as service_role; returns the JSON result."""
    with as_api_role(conn, "service_role", {"role": "service_role"}):
        row = conn.execute(query, params or {}).fetchone()
    assert row is not None
    return row[0]


def claim(
    conn: psycopg.Connection[Any],
    now: datetime,
    *,
    run_id: uuid.UUID | None = None,
    lease: int = 120,
) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        conn,
        "select public.claim_nightly_run(p_run_id => %(r)s, p_timezone => 'Europe/Oslo', "
        "p_lease_seconds => %(l)s, p_now => %(n)s)",
        {"r": run_id or uuid.uuid4(), "l": lease, "n": now},
    )
    return result


def batch(
    conn: psycopg.Connection[Any],
    run_id: Any,
    segment: int = 0,
    cursor: Any = None,
    limit: int = 50,
    days: list[int] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        conn,
        "select public.process_expiry_batch(p_run_id => %(r)s::uuid, p_segment => %(s)s, "
        "p_cursor => %(c)s, p_limit => %(l)s, p_reminder_days => %(d)s::integer[], "
        "p_lease_seconds => 120)",
        {"r": str(run_id), "s": segment, "c": cursor, "l": limit, "d": days or [30, 7, 1]},
    )
    return result


def sweep_all(
    conn: psycopg.Connection[Any], now: datetime, *, limit: int = 50, days: list[int] | None = None
) -> dict[str, Any]:
    """Claim tonight's run and page through every batch; returns the summed counts."""
    c = claim(conn, now)
    assert c["outcome"] in ("started", "resumed"), c
    cursor = c.get("cursor")
    totals: dict[str, Any] = {"failures_detail": []}
    while True:
        result = batch(conn, c["run_id"], c["segment"], cursor, limit, days)
        assert result["fenced"] is False
        for key, value in result.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
        totals["failures_detail"] += result["failures_detail"]
        cursor = result["next_cursor"]
        if result["done"]:
            break
    totals["run_id"] = c["run_id"]
    return totals


def missed(conn: psycopg.Connection[Any], today: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = rpc(
        conn,
        "select public.get_missed_auto_pauses(p_timezone => 'Europe/Oslo', p_today => %(t)s::date, p_limit => 1000)",
        {"t": today},
    )
    return result


def as_json(value: Any) -> str:
    return json.dumps(value)
