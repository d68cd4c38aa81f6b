"""The outbox's interface to the app's sender (supabase/schemas/75_outbox_api.sql), against the
real database: claim (skip locked, visibility timeout, attempts exhausted, stale reminders
dropped), acknowledge, fail, the backlog ops watch, and who may call them.

The messages are queued by the night's real effects (certexpiry.apply_effects, as the owner);
the senders call the RPCs as service_role, the way PostgREST does. Time is moved by updating a
row's claimed_until or created_at as the owner, never by sleeping.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from certexpiry.store.postgres import as_api_role
from tests.integration.sqlapi import TODAY
from tests.seeding import add_cert, add_mentor

Conn = psycopg.Connection[Any]

MESSAGE_KEYS = {
    "id",
    "kind",
    "peer_mentor_id",
    "certification_id",
    "payload",
    "attempt",
    "created_at",
}
CLAIM_KEYS = {"messages", "dropped", "exhausted"}
BACKLOG_KEYS = {
    "undelivered",
    "claimed",
    "oldest_undelivered_at",
    "oldest_age_s",
    "failed",
    "dropped",
}
SIGNATURES = {
    "claim_outbox": "select public.claim_outbox(10, 30)",
    "acknowledge_outbox": "select public.acknowledge_outbox('{1}'::bigint[])",
    "fail_outbox": "select public.fail_outbox('{1}'::bigint[], 'no_address')",
    "outbox_backlog": "select public.outbox_backlog()",
}
API_CLAIMS = {
    "anon": {"role": "anon"},
    "authenticated": {"role": "authenticated", "sub": str(uuid.uuid4())},
    "service_role": {"role": "service_role"},
}


def call(conn: Conn, query: str, params: Any = None) -> Any:
    """One RPC in its own transaction as service_role; its JSON answer."""
    with as_api_role(conn, "service_role", API_CLAIMS["service_role"]):
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def claim(conn: Conn, limit: int = 100, visibility: int = 30, max_attempts: int = 5) -> Any:
    return call(
        conn,
        "select public.claim_outbox(p_limit => %s, p_visibility_s => %s, p_max_attempts => %s)",
        (limit, visibility, max_attempts),
    )


def ack(conn: Conn, ids: list[int | None] | list[int] | None) -> Any:
    return call(conn, "select public.acknowledge_outbox(%s::bigint[])", (ids,))


def fail(conn: Conn, ids: list[int], code: str | None) -> Any:
    return call(conn, "select public.fail_outbox(%s::bigint[], %s)", (ids, code))


def backlog(conn: Conn) -> Any:
    return call(conn, "select public.outbox_backlog()")


def night(db: Conn, *cert_ids: uuid.UUID, today: date = TODAY) -> None:
    """The night's real effects on these certifications (as the owner)."""
    db.execute(
        "select certexpiry.apply_effects(gen_random_uuid(), %s, '{30,7,1}', %s::uuid[])",
        (today, list(cert_ids)),
    )


def queue_reminder(db: Conn, mentor: uuid.UUID | None = None, days: int = 7) -> uuid.UUID:
    mentor = mentor or add_mentor(db)
    cert = add_cert(db, mentor, TODAY + timedelta(days=days))
    night(db, cert)
    return cert


def queue_pause_notice(db: Conn) -> uuid.UUID:
    cert = add_cert(db, add_mentor(db), TODAY - timedelta(days=1))
    night(db, cert)
    return cert


def ids_of(answer: dict[str, Any]) -> list[int]:
    return [m["id"] for m in answer["messages"]]


def outbox_row(db: Conn, message_id: int) -> dict[str, Any]:
    cursor = db.execute(
        "select dispatched_at, failed_at, failure_code, dropped_at, attempts, claimed_until"
        " from certexpiry.notification_outbox where id = %s",
        (message_id,),
    )
    row = cursor.fetchone()
    assert row is not None
    return dict(zip([c.name for c in cursor.description or []], row, strict=True))


def lapse(db: Conn, *message_ids: int) -> None:
    """The sender holding these claims crashed and their visibility timeout passed."""
    db.execute(
        "update certexpiry.notification_outbox set claimed_until = now() - interval '1 second'"
        " where id = any (%s)",
        (list(message_ids),),
    )


# -- claim ---------------------------------------------------------------------------------------


def test_claim_answers_ids_kinds_and_payloads_never_names(db: Conn) -> None:
    mentor = add_mentor(db, name="Ingrid Solberg")
    reminded = queue_reminder(db, mentor)
    paused = queue_pause_notice(db)

    answer = claim(db)

    assert set(answer) == CLAIM_KEYS
    assert answer["dropped"] == 0
    assert answer["exhausted"] == 0
    messages = answer["messages"]
    assert [set(m) for m in messages] == [MESSAGE_KEYS, MESSAGE_KEYS]
    assert ids_of(answer) == sorted(ids_of(answer))
    by_kind = {m["kind"]: m for m in messages}
    reminder, notice = by_kind["reminder"], by_kind["pause_notice"]
    assert (reminder["peer_mentor_id"], reminder["certification_id"]) == (
        str(mentor),
        str(reminded),
    )
    assert reminder["payload"] == {
        "offset_days": 7,
        "days_left": 7,
        "expiry_date": (TODAY + timedelta(days=7)).isoformat(),
    }
    assert notice["certification_id"] == str(paused)
    assert notice["payload"] == {
        "reason": "certification_expired",
        "expiry_date": (TODAY - timedelta(days=1)).isoformat(),
    }
    assert all(m["attempt"] == 1 and isinstance(m["id"], int) for m in messages)
    assert all(isinstance(m["created_at"], str) for m in messages)
    text = json.dumps(answer).lower()
    for personal in ("ingrid", "solberg", "kari", "nordmann", "01017012345", "@example.org"):
        assert personal not in text


def test_claim_takes_the_oldest_first_and_answers_by_id(db: Conn) -> None:
    for _ in range(4):
        queue_reminder(db)
    # The newest id is the oldest message (created_at), then the first id.
    db.execute(
        "update certexpiry.notification_outbox set created_at = created_at - interval '1 day'"
        " where id = (select max(id) from certexpiry.notification_outbox)"
    )
    all_ids = [
        r[0] for r in db.execute("select id from certexpiry.notification_outbox order by id")
    ]

    first = claim(db, limit=2)

    assert ids_of(first) == [all_ids[0], all_ids[3]]
    assert ids_of(claim(db, limit=10)) == all_ids[1:3]
    assert claim(db, limit=10)["messages"] == []


def test_a_live_claim_is_not_handed_out_again(db: Conn) -> None:
    queue_reminder(db)
    assert len(claim(db, visibility=3600)["messages"]) == 1
    assert claim(db) == {"messages": [], "dropped": 0, "exhausted": 0}


def test_two_open_transactions_never_get_the_same_message(database_url: str, db: Conn) -> None:
    for _ in range(6):
        queue_reminder(db)
    with (
        psycopg.connect(database_url, autocommit=True) as first,
        psycopg.connect(database_url, autocommit=True) as second,
        as_api_role(first, "service_role", API_CLAIMS["service_role"]),
    ):
        # The first sender's claim is still open (its locks held) when the second claims.
        row = first.execute("select public.claim_outbox(4, 30)").fetchone()
        assert row is not None
        mine = ids_of(row[0])
        theirs = ids_of(claim(second, limit=10))
    assert len(mine) == 4
    assert len(theirs) == 2
    assert not set(mine) & set(theirs)


def test_concurrent_senders_in_threads_share_nothing_and_miss_nothing(
    database_url: str, db: Conn
) -> None:
    mentor = add_mentor(db)
    for _ in range(60):
        queue_reminder(db, mentor)
    everything = {r[0] for r in db.execute("select id from certexpiry.notification_outbox")}
    start = threading.Barrier(4)

    def sender() -> list[int]:
        got: list[int] = []
        try:
            conn = psycopg.connect(database_url, autocommit=True)
        except psycopg.Error:
            start.abort()  # the other senders stop waiting for this one
            raise
        with conn:
            start.wait()
            while batch := ids_of(claim(conn, limit=3, visibility=3600)):
                got += batch
                ack(conn, batch)
        return got

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(sender) for _ in range(4)]
        got = [future.result() for future in futures]  # a sender's error is raised here

    claimed = [i for ids in got for i in ids]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == everything
    assert backlog(db)["undelivered"] == 0


def test_a_crashed_senders_claim_comes_back_after_the_timeout(db: Conn) -> None:
    queue_reminder(db)
    (message,) = claim(db, visibility=1)["messages"]
    assert claim(db)["messages"] == []  # the claim is live

    lapse(db, message["id"])
    (again,) = claim(db)["messages"]

    assert again["id"] == message["id"]
    assert again["attempt"] == 2
    assert again["payload"] == message["payload"]


def test_the_visibility_timeout_is_the_one_asked_for(db: Conn) -> None:
    queue_reminder(db)
    with as_api_role(db, "service_role", API_CLAIMS["service_role"]):
        row = db.execute("select public.claim_outbox(1, 90), now()").fetchone()
    assert row is not None
    (message,) = row[0]["messages"]
    assert outbox_row(db, message["id"])["claimed_until"] == row[1] + timedelta(seconds=90)


def test_exhausted_attempts_fail_and_never_come_back(db: Conn) -> None:
    queue_reminder(db)
    (message,) = claim(db, max_attempts=2)["messages"]
    lapse(db, message["id"])
    assert ids_of(claim(db, max_attempts=2)) == [message["id"]]

    # Claimed twice, its second claim still live: left to that sender.
    assert claim(db, max_attempts=2) == {"messages": [], "dropped": 0, "exhausted": 0}
    lapse(db, message["id"])
    assert claim(db, max_attempts=2) == {"messages": [], "dropped": 0, "exhausted": 1}

    row = outbox_row(db, message["id"])
    assert row["failed_at"] is not None
    assert row["failure_code"] == "attempts_exhausted"
    assert row["attempts"] == 2
    assert row["dispatched_at"] is None
    # Not even for a sender that would try more often.
    assert claim(db, max_attempts=100) == {"messages": [], "dropped": 0, "exhausted": 0}
    assert ack(db, [message["id"]]) == {"acknowledged": 0, "already": 0, "unknown": 1}
    assert backlog(db)["failed"] == 1


# -- a certification changed since its message was queued ----------------------------------------


def test_a_renewed_certifications_reminder_is_dropped(db: Conn) -> None:
    renewed = queue_reminder(db)
    kept = queue_reminder(db)
    db.execute(
        "update public.certifications set expiry_date = expiry_date + 365 where id = %s",
        (renewed,),
    )

    answer = claim(db)

    assert answer["dropped"] == 1
    assert [m["certification_id"] for m in answer["messages"]] == [str(kept)]
    row = db.execute(
        "select id from certexpiry.notification_outbox where certification_id = %s", (renewed,)
    ).fetchone()
    assert row is not None
    dropped_id = row[0]
    assert outbox_row(db, dropped_id)["dropped_at"] is not None
    assert claim(db)["dropped"] == 0  # dropped once, for good
    assert ack(db, [dropped_id]) == {"acknowledged": 0, "already": 0, "unknown": 1}


@pytest.mark.parametrize("status", ["paused", "revoked"])
def test_a_reminder_of_a_certification_no_longer_active_is_dropped(db: Conn, status: str) -> None:
    cert = queue_reminder(db)
    db.execute("update public.certifications set status = %s where id = %s", (status, cert))
    assert claim(db) == {"messages": [], "dropped": 1, "exhausted": 0}


def test_a_pause_notice_of_a_renewed_certification_is_still_delivered(db: Conn) -> None:
    cert = queue_pause_notice(db)
    db.execute(
        "update public.certifications set expiry_date = expiry_date + 365, status = 'active'"
        " where id = %s",
        (cert,),
    )

    answer = claim(db)

    assert answer["dropped"] == 0
    assert [(m["kind"], m["certification_id"]) for m in answer["messages"]] == [
        ("pause_notice", str(cert))
    ]


def test_dropped_reminders_do_not_shrink_the_batch_to_nothing(db: Conn) -> None:
    stale = [queue_reminder(db) for _ in range(3)]
    fresh = queue_reminder(db)
    db.execute(
        "update public.certifications set expiry_date = expiry_date + 365 where id = any (%s)",
        (stale,),
    )

    answer = claim(db, limit=1)

    assert answer["dropped"] == 3
    assert [m["certification_id"] for m in answer["messages"]] == [str(fresh)]


# -- acknowledge and fail ------------------------------------------------------------------------


def test_acknowledging_twice_is_harmless_and_counted_as_already(db: Conn) -> None:
    queue_reminder(db)
    queue_reminder(db)
    ids = ids_of(claim(db))

    assert ack(db, ids) == {"acknowledged": 2, "already": 0, "unknown": 0}
    stamped = [outbox_row(db, i)["dispatched_at"] for i in ids]
    assert ack(db, [*ids, ids[0], 999_999, None]) == {"acknowledged": 0, "already": 2, "unknown": 1}

    assert [outbox_row(db, i)["dispatched_at"] for i in ids] == stamped
    assert claim(db)["messages"] == []
    assert backlog(db)["undelivered"] == 0
    assert ack(db, []) == {"acknowledged": 0, "already": 0, "unknown": 0}
    assert ack(db, None) == {"acknowledged": 0, "already": 0, "unknown": 0}


def test_an_ack_after_the_claim_lapsed_still_counts(db: Conn) -> None:
    queue_reminder(db)
    (slow,) = ids_of(claim(db))
    lapse(db, slow)
    assert ids_of(claim(db)) == [slow]  # another sender has it now

    assert ack(db, [slow]) == {"acknowledged": 1, "already": 0, "unknown": 0}
    assert ack(db, [slow]) == {"acknowledged": 0, "already": 1, "unknown": 0}  # the second sender
    lapse(db, slow)
    assert claim(db)["messages"] == []


def test_fail_keeps_the_failure_and_ends_the_message(db: Conn) -> None:
    queue_reminder(db)
    queue_reminder(db)
    failing, delivered = ids_of(claim(db))
    ack(db, [delivered])

    assert fail(db, [failing, delivered, 424242], "no_contact_address") == {
        "failed": 1,
        "already": 1,
        "unknown": 1,
    }
    row = outbox_row(db, failing)
    assert row["failed_at"] is not None
    assert row["failure_code"] == "no_contact_address"
    assert outbox_row(db, delivered)["failure_code"] is None

    assert fail(db, [failing], "another_code") == {"failed": 0, "already": 1, "unknown": 0}
    assert outbox_row(db, failing)["failure_code"] == "no_contact_address"
    assert ack(db, [failing]) == {"acknowledged": 0, "already": 0, "unknown": 1}
    lapse(db, failing)
    assert claim(db)["messages"] == []
    assert backlog(db)["failed"] == 1


@pytest.mark.parametrize(
    "code",
    [
        "Mailbox full for Kari Nordmann",
        "no address",
        "Bounced",
        "9_lives",
        "_code",
        "",
        "a" * 41,
        "bounce\n",
        None,
    ],
)
def test_fail_refuses_anything_but_a_code(db: Conn, code: str | None) -> None:
    queue_reminder(db)
    (message,) = ids_of(claim(db))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_code"):
        fail(db, [message], code)
    assert outbox_row(db, message)["failed_at"] is None


def test_fail_takes_the_longest_code(db: Conn) -> None:
    queue_reminder(db)
    (message,) = ids_of(claim(db))
    assert fail(db, [message], "a" + "b_9" * 13)["failed"] == 1


# -- the backlog ---------------------------------------------------------------------------------


def test_the_backlog_counts_each_state_and_the_oldest_age(db: Conn) -> None:
    empty = backlog(db)
    assert empty == {
        "undelivered": 0,
        "claimed": 0,
        "oldest_undelivered_at": None,
        "oldest_age_s": None,
        "failed": 0,
        "dropped": 0,
    }
    certs = [queue_reminder(db) for _ in range(6)]
    ids = [r[0] for r in db.execute("select id from certexpiry.notification_outbox order by id")]
    db.execute("update public.certifications set status = 'revoked' where id = %s", (certs[5],))
    assert ids_of(claim(db)) == ids[:5]  # the revoked one's reminder dropped
    lapse(db, ids[0])  # its sender crashed: undelivered, no live claim
    ack(db, [ids[3]])
    fail(db, [ids[4]], "no_contact_address")
    db.execute(
        "update certexpiry.notification_outbox set created_at = '2026-11-01T00:00:00Z'"
        " where id = %s",
        (ids[1],),
    )

    with as_api_role(db, "service_role", API_CLAIMS["service_role"]):
        row = db.execute("select public.outbox_backlog(), now()").fetchone()
    assert row is not None
    answer, now = row
    oldest = db.execute(
        "select created_at from certexpiry.notification_outbox where id = %s", (ids[1],)
    ).fetchone()
    assert oldest is not None
    assert set(answer) == BACKLOG_KEYS
    assert answer["undelivered"] == 3  # ids 0, 1, 2
    assert answer["claimed"] == 2  # ids 1 and 2
    assert answer["failed"] == 1
    assert answer["dropped"] == 1
    assert answer["oldest_undelivered_at"] == oldest[0].isoformat()
    assert answer["oldest_age_s"] == int((now - oldest[0]).total_seconds())


def test_the_backlog_and_the_claim_read_no_delivered_row(db: Conn) -> None:
    """On a table of delivered messages the backlog and the claim read the partial indexes,
    never the whole table (no sequential scan)."""
    cert = queue_reminder(db)
    db.execute(
        """
        insert into certexpiry.notification_outbox
            (peer_mentor_id, certification_id, kind, payload, dispatched_at)
        select c.peer_mentor_id, c.id, 'reminder', '{}', now()
        from public.certifications c, generate_series(1, 20000)
        where c.id = %s
        """,
        (cert,),
    )
    db.execute("analyze certexpiry.notification_outbox")

    def seq_scans() -> int:
        db.execute("select pg_stat_force_next_flush()")
        db.execute("select pg_stat_clear_snapshot()")
        row = db.execute(
            "select seq_scan from pg_stat_user_tables"
            " where relid = 'certexpiry.notification_outbox'::regclass"
        ).fetchone()
        assert row is not None
        return int(row[0])

    before = seq_scans()
    assert backlog(db)["undelivered"] == 1
    assert len(claim(db)["messages"]) == 1
    assert seq_scans() == before
    # The counter counts: a query no index serves reads the whole table.
    db.execute("select count(*) from certexpiry.notification_outbox where payload = '{}'")
    assert seq_scans() == before + 1


# -- who may call, and with what -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("function", sorted(SIGNATURES))
def test_the_api_roles_cannot_call_the_outbox(db: Conn, role: str, function: str) -> None:
    queue_reminder(db)
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        as_api_role(db, role, API_CLAIMS[role]),
    ):
        db.execute(SIGNATURES[function])
    assert outbox_row(db, 1)["attempts"] == 0


@pytest.mark.parametrize("function", sorted(SIGNATURES))
def test_service_role_can_call_the_outbox(db: Conn, function: str) -> None:
    queue_reminder(db)
    assert isinstance(call(db, SIGNATURES[function]), dict)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_the_api_roles_cannot_read_or_write_the_outbox_itself(db: Conn, role: str) -> None:
    queue_reminder(db)
    for statement in (
        "select id from certexpiry.notification_outbox",
        "update certexpiry.notification_outbox set dispatched_at = now()",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            as_api_role(db, role, API_CLAIMS[role]),
        ):
            db.execute(statement)


def test_service_role_updates_only_the_senders_columns(db: Conn) -> None:
    queue_reminder(db)
    for column, value in (("payload", "'{}'::jsonb"), ("kind", "'pause_notice'")):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            as_api_role(db, "service_role", API_CLAIMS["service_role"]),
        ):
            db.execute(f"update certexpiry.notification_outbox set {column} = {value}")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ("0, 30", "p_limit"),
        ("1001, 30", "p_limit"),
        ("null, 30", "p_limit"),
        ("10, 0", "p_visibility_s"),
        ("10, 3601", "p_visibility_s"),
        ("10, null", "p_visibility_s"),
        ("10, 30, 0", "p_max_attempts"),
        ("10, 30, 101", "p_max_attempts"),
        ("10, 30, null", "p_max_attempts"),
    ],
)
def test_claim_refuses_arguments_out_of_range(db: Conn, arguments: str, named: str) -> None:
    queue_reminder(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=named):
        call(db, f"select public.claim_outbox({arguments})")
    assert outbox_row(db, 1)["attempts"] == 0


@pytest.mark.parametrize("arguments", ["1, 1", "1000, 3600, 100", "1, 1, 1"])
def test_claim_takes_the_bounds(db: Conn, arguments: str) -> None:
    assert call(db, f"select public.claim_outbox({arguments})") == {
        "messages": [],
        "dropped": 0,
        "exhausted": 0,
    }
