"""Bad input: Pub/Sub payloads and attributes from hypothesis, through `handle_event` with a
real store on the embedded database. Every case must be acknowledged with exactly one JSON
line, INVALID_MESSAGE (a well-formed continuation of an unknown run included), or
DUPLICATE_DELIVERY for a forged continuation of tonight's completed run; no exception, and no
table may change.

    reduced: 300 cases; full (marked slow, deselected by default): CERTEXPIRY_FUZZ_EXAMPLES
    (default 10,000) with .venv/bin/python -m pytest tests/reliability -m slow
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from certexpiry.messages import MAX_AGE, MAX_BODY_BYTES, PUBSUB_EVENT_TYPE
from certexpiry.store import RpcStore
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Outcome, handle_event
from certexpiry_ops.local import pubsub_event_data
from tests.chain import NIGHTLY
from tests.clock import OrgDay
from tests.jobs import make_job
from tests.logcapture import CapturedLog
from tests.reliability.support import report, seed_night, sized, variants

Conn = psycopg.Connection[Any]
INVALID = frozenset({"INVALID_MESSAGE"})
Case = tuple[str, str | None, Any, frozenset[str]]  # (category, event type, data, codes allowed)


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def _valid_b64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
noise_attributes = st.one_of(
    st.dictionaries(st.text(max_size=30), json_values, max_size=30),
    json_values,
    st.just({"cron_run_id": str(uuid.uuid4()), "googclient_schemaencoding": "JSON"}),
)
# hypothesis takes naive bounds and attaches the zone from `timezones`.
near_times = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda when: when.isoformat().replace("+00:00", "Z"))
recent_times = st.timedeltas(min_value=timedelta(hours=-20), max_value=timedelta(minutes=2)).map(
    lambda delta: (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")
)
uuid_texts = (
    st.uuids().map(str)
    | st.uuids().map(lambda u: u.hex)
    | st.uuids().map(lambda u: "{" + str(u).upper() + "}")
    | st.uuids().map(lambda u: u.urn)
)


@st.composite
def envelope(
    draw: st.DrawFn, data_field: Any, *, time: Any = None, with_data: bool = True
) -> dict[str, Any]:
    """A Pub/Sub push body around `data_field`, with random system-field noise."""
    message: dict[str, Any] = {}
    if with_data:
        message["data"] = data_field
    if draw(st.booleans()):
        message["attributes"] = draw(noise_attributes)
    if draw(st.booleans()):
        message[draw(st.sampled_from(["messageId", "message_id"]))] = draw(
            json_values | st.text(max_size=300)
        )
    if time is not None:
        message["publishTime"] = time
    elif draw(st.booleans()):
        message["publishTime"] = draw(recent_times | st.text(max_size=30) | json_values)
    data: dict[str, Any] = {"message": message}
    if draw(st.booleans()):
        data["subscription"] = draw(st.text(max_size=60))
    return data


@st.composite
def not_a_pubsub_event(draw: st.DrawFn) -> Case:
    data = draw(
        st.one_of(
            json_values.filter(lambda v: not isinstance(v, dict)),
            st.binary(max_size=64),
            st.dictionaries(
                st.text(max_size=10).filter(lambda k: k != "message"), json_values, max_size=5
            ),
            st.fixed_dictionaries(
                {"message": json_values.filter(lambda v: not isinstance(v, dict))}
            ),
        )
    )
    return ("not a Pub/Sub event", PUBSUB_EVENT_TYPE, data, INVALID)


@st.composite
def data_of_wrong_type(draw: st.DrawFn) -> Case:
    value = draw(json_values.filter(lambda v: v is not None and not isinstance(v, str)))
    return ("data of a wrong type", PUBSUB_EVENT_TYPE, draw(envelope(value)), INVALID)


@st.composite
def bad_base64(draw: st.DrawFn) -> Case:
    text = draw(st.text(min_size=1, max_size=200).filter(lambda t: not _valid_b64(t)))
    return ("bad base64", PUBSUB_EVENT_TYPE, draw(envelope(text)), INVALID)


@st.composite
def not_utf8(draw: st.DrawFn) -> Case:
    body = draw(st.binary(min_size=1, max_size=200))
    try:
        body.decode("utf-8")
        body = b"\xff\xfe" + body  # never valid UTF-8
    except UnicodeDecodeError:
        pass
    assume(body.strip())
    return ("not UTF-8", PUBSUB_EVENT_TYPE, draw(envelope(b64(body))), INVALID)


@st.composite
def huge(draw: st.DrawFn) -> Case:
    size = draw(st.integers(min_value=MAX_BODY_BYTES + 1, max_value=400_000))
    filler = draw(st.sampled_from([b" ", b"{", b"x", b'{"kind":"nightly"}']))
    body = (filler * (size // len(filler) + 1))[:size]
    raw = b64(body) if draw(st.booleans()) else "A" * (size * 2)
    return ("huge body", PUBSUB_EVENT_TYPE, draw(envelope(raw)), INVALID)


@st.composite
def deep_json(draw: st.DrawFn) -> Case:
    depth = draw(st.integers(min_value=50, max_value=2_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"kind":', "}"), ('{"run_id":[', "]}")]))
    body = (opener * depth + "1" + closer * depth).encode()[:MAX_BODY_BYTES]
    return ("deep JSON", PUBSUB_EVENT_TYPE, draw(envelope(b64(body))), INVALID)


@st.composite
def wrong_shape(draw: st.DrawFn) -> Case:
    value = draw(
        json_values
        | st.dictionaries(
            st.sampled_from(["kind", "run_id", "segment", "cursor", "x"]), json_values, max_size=5
        )
    )
    assume(value != {"kind": "nightly"})
    text = json.dumps(value) if draw(st.booleans()) else draw(st.text(min_size=1, max_size=100))
    assume(text.strip())
    with contextlib.suppress(ValueError):
        assume(json.loads(text) != {"kind": "nightly"})
    return (
        "JSON of the wrong shape",
        PUBSUB_EVENT_TYPE,
        draw(envelope(b64(text.encode()))),
        INVALID,
    )


@st.composite
def resume_with_wrong_types(draw: st.DrawFn) -> Case:
    fields: dict[str, Any] = {
        "kind": draw(
            st.sampled_from(["resume", "Resume", "RESUME", "resume ", "nightly", ""]) | json_values
        ),
        "run_id": draw(uuid_texts | json_values),
        "segment": draw(st.integers(min_value=-10, max_value=10**12) | json_values),
        "cursor": draw(uuid_texts | st.none() | json_values),
    }
    if draw(st.booleans()):
        fields[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    for key in draw(st.sets(st.sampled_from(sorted(fields)), max_size=2)):
        fields.pop(key, None)
    assume(fields != {"kind": "nightly"})
    return (
        "continuation with wrong types",
        PUBSUB_EVENT_TYPE,
        draw(envelope(b64(_json(fields)))),
        INVALID,
    )


@st.composite
def forged_continuation(draw: st.DrawFn, known_run: str) -> Case:
    """Well-formed: an unknown run id is INVALID_MESSAGE; tonight's completed run a duplicate."""
    forged_known = draw(st.booleans())
    body = {
        "kind": "resume",
        "run_id": known_run if forged_known else draw(uuid_texts),
        "segment": draw(st.integers(min_value=1, max_value=100_000)),
        "cursor": draw(st.none() | uuid_texts),
    }
    allowed = frozenset({"INVALID_MESSAGE", "DUPLICATE_DELIVERY"}) if forged_known else INVALID
    return ("forged continuation", PUBSUB_EVENT_TYPE, draw(envelope(b64(_json(body)))), allowed)


@st.composite
def out_of_time(draw: st.DrawFn) -> Case:
    """A valid nightly trigger published before the topic's retention (MAX_AGE) or more than
    5 min ahead."""
    late = draw(
        st.timedeltas(min_value=MAX_AGE + timedelta(seconds=1), max_value=timedelta(days=3650))
    )
    early = draw(
        st.timedeltas(min_value=timedelta(minutes=5, seconds=30), max_value=timedelta(days=3650))
    )
    when = datetime.now(UTC) + (early if draw(st.booleans()) else -late)
    stamp = when.isoformat()
    if draw(st.booleans()):
        stamp = stamp.replace("+00:00", "Z")
    body = draw(st.sampled_from([NIGHTLY, b"", b"  \n"]))
    return (
        "old or future message",
        PUBSUB_EVENT_TYPE,
        draw(envelope(b64(body), time=stamp)),
        INVALID,
    )


@st.composite
def wrong_event_type(draw: st.DrawFn) -> Case:
    event_type = draw(
        st.text(max_size=80).filter(lambda t: t != PUBSUB_EVENT_TYPE)
        | st.sampled_from(
            [
                "google.cloud.storage.object.v1.finalized",
                "google.cloud.pubsub.topic.v1.messagePublished ",
                "GOOGLE.CLOUD.PUBSUB.TOPIC.V1.MESSAGEPUBLISHED",
            ]
        )
    )
    return ("wrong event type", event_type, draw(envelope(b64(NIGHTLY))), INVALID)


def cases(known_run: str) -> st.SearchStrategy[Case]:
    return st.one_of(
        not_a_pubsub_event(),
        data_of_wrong_type(),
        bad_base64(),
        not_utf8(),
        huge(),
        deep_json(),
        wrong_shape(),
        resume_with_wrong_types(),
        forged_continuation(known_run),
        out_of_time(),
        wrong_event_type(),
    )


# --------------------------------------------------------------------------- the test


def fingerprint(db: Conn) -> tuple[Any, ...]:
    row = db.execute(
        """
        select (select count(*) from certexpiry.cron_runs),
               (select string_agg(status || segment || coalesce(cursor::text, '') || lease_until::text, ',')
                from certexpiry.cron_runs),
               (select count(*) from public.cron_audit_log),
               (select max(updated_at) from public.cron_audit_log),
               (select count(*) from certexpiry.notification_outbox),
               (select count(*) from certexpiry.certification_idempotency_log),
               (select count(*) from public.certifications where status = 'paused'),
               (select count(*) from public.peer_mentors where status = 'paused')
        """
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture
def store(database_url: str) -> Iterator[RpcStore]:
    opened = pg_store(database_url)
    yield opened
    opened.close()


@pytest.mark.parametrize("variant", variants())
def test_bad_messages_are_invalid_once_and_change_nothing(
    variant: str, db: Conn, store: RpcStore, org: OrgDay
) -> None:
    """Every generated bad message is acknowledged with exactly one INVALID_MESSAGE (or
    DUPLICATE_DELIVERY) line, and no table changes."""
    examples = sized(variant, 300, 10_000, env="CERTEXPIRY_FUZZ_EXAMPLES")
    seed_night(db, 8, org.today)
    base = make_job(store, CapturedLog(), org_timezone=org.timezone)
    # Tonight's run exists and is complete, so forged continuations can name a real run.
    assert handle_event(base, PUBSUB_EVENT_TYPE, pubsub_event_data(NIGHTLY)) is Outcome.ACK
    run = db.execute("select run_id::text from certexpiry.cron_runs").fetchone()
    assert run is not None
    before = fingerprint(db)
    seen: dict[str, int] = {}

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases(run[0]))
    def check(case: Case) -> None:
        category, event_type, data, allowed = case
        log = CapturedLog()
        outcome = handle_event(dataclasses.replace(base, log=log.logger), event_type, data)
        lines = log.raw_lines
        assert outcome is Outcome.ACK, (category, outcome)
        assert len(lines) == 1, (category, lines)
        entry = json.loads(lines[0])
        assert entry["error_code"] in allowed, (category, entry)
        if entry["error_code"] == "INVALID_MESSAGE":
            assert entry["severity"] == "ERROR", entry
            assert "reason" in entry["context"] or "segment" in entry["context"], entry
        assert fingerprint(db) == before, category
        seen[category] = seen.get(category, 0) + 1

    check()
    report("fuzz", {"variant": variant, "examples": sum(seen.values()), "by_category": seen})
    assert len(seen) == 11, seen  # every category was exercised


@pytest.mark.parametrize("value", [0, False, [], {}, 0.0])
def test_falsy_data_of_a_wrong_type_is_invalid(value: Any, db: Conn, store: RpcStore) -> None:
    """`message.data` of 0, false, [] or {} is not a base64 string: INVALID_MESSAGE, no run.

    It used to be read as an empty body (`data or ""`), i.e. as a nightly trigger."""
    log = CapturedLog()
    job = make_job(store, log)
    assert handle_event(job, PUBSUB_EVENT_TYPE, {"message": {"data": value}}) is Outcome.ACK
    assert log.codes() == ["INVALID_MESSAGE"]
    assert db.execute("select count(*) from certexpiry.cron_runs").fetchone() == (0,)


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 2, MAX_BODY_BYTES + 3])
@pytest.mark.parametrize("filler", [b" ", b"{"], ids=["blank", "json"])
def test_body_just_over_the_limit_is_too_large(
    size: int, filler: bytes, db: Conn, store: RpcStore
) -> None:
    """A body of 4,097-4,099 bytes is over MAX_BODY_BYTES: INVALID_MESSAGE "too large".

    The base64 length check alone let 4,097 and 4,098 bytes through (found by the fuzz run:
    4,097 spaces were read as an empty body, i.e. a nightly trigger)."""
    log = CapturedLog()
    job = make_job(store, log)
    data = {"message": {"data": b64(filler * size)}}
    assert handle_event(job, PUBSUB_EVENT_TYPE, data) is Outcome.ACK
    assert log.codes() == ["INVALID_MESSAGE"]
    assert log.entries[0]["context"]["reason"] == "message body too large"
    assert db.execute("select count(*) from certexpiry.cron_runs").fetchone() == (0,)
