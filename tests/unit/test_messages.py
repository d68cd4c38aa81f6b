"""Decoding Pub/Sub CloudEvents into the nightly trigger or a continuation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from certexpiry.errors import InvalidMessage
from certexpiry.messages import PUBSUB_EVENT_TYPE, NightlyTrigger, Resume, decode
from certexpiry.redact import WITHHELD, allowed
from certexpiry_ops.local import pubsub_event_data

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def _data(body: bytes, **kwargs: object) -> dict[str, object]:
    return pubsub_event_data(body, message_id="m-42", publish_time=NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b"", b"  ", b"\n", b'{"kind": "nightly"}'])
def test_scheduler_bodies_are_the_nightly_trigger(body: bytes) -> None:
    """An empty or blank body, or {"kind": "nightly"}, is the nightly trigger."""
    envelope, message = decode(PUBSUB_EVENT_TYPE, _data(body), now=NOW)
    assert message == NightlyTrigger()
    assert envelope.message_id == "m-42"


def test_empty_json_object_is_not_a_trigger() -> None:
    """`{}` names no kind, so it is an InvalidMessage saying which kinds there are, not the
    nightly trigger."""
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, _data(b"{}"), now=NOW)
    assert caught.value.log_context() == {
        "reason": "message body has no known kind: this function takes kind nightly or resume",
        "message_id": "m-42",  # kept raw here: the log's message_id form withholds it
    }
    assert allowed("message_id", "m-42") == WITHHELD


def test_continuation_round_trips() -> None:
    """A Resume published by the function decodes back to the same Resume."""
    original = Resume(
        kind="resume", run_id=uuid.uuid4(), segment=3, cursor=f"2026-11-30/{uuid.uuid4()}"
    )
    _, message = decode(PUBSUB_EVENT_TYPE, _data(original.to_bytes()), now=NOW)
    assert message == original


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"message": {"data": "not base64!!", "messageId": "1"}}, "not valid base64"),
        (_data(b"\xff\xfe"), "not UTF-8"),
        (_data(b"{nope"), "not JSON"),
        (
            _data(b'{"kind": "resume", "run_id": "x", "segment": 1, "cursor": null}'),
            "wrong shape at resume.run_id",
        ),
        (
            _data(
                b'{"kind": "resume", "run_id": "%s", "segment": 1, "cursor": "zzz"}'
                % str(uuid.uuid4()).encode()
            ),
            "wrong shape",
        ),
        (
            _data(
                b'{"kind": "resume", "run_id": "%s", "segment": 1, "cursor": "%s"}'
                % (str(uuid.uuid4()).encode(), str(uuid.uuid4()).encode())
            ),
            "wrong shape",
        ),
        (_data(b'{"kind": "nightly", "extra": 1}'), "wrong shape"),
        (_data(b'{"kind": "weekly"}'), "no known kind: this function takes kind nightly or resume"),
        (_data(b"[1, 2]"), "wrong shape"),
        (_data(b"[" * 100_000), "too large"),
        (_data(b"[" * 3000), "not JSON"),
        ({"no": "message"}, "no Pub/Sub message"),
        ("a string", "no Pub/Sub message"),
        ({"message": {"data": 12}}, "not a base64 string"),
    ],
)
def test_bad_messages_raise_invalid_message(data: object, reason: str) -> None:
    """Every malformed message raises InvalidMessage with a reason naming what is wrong."""
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, data, now=NOW)
    assert reason in caught.value.reason


def test_old_and_future_messages_are_rejected() -> None:
    """A message older than the topic's 7-day retention, or from the future, is not acted on."""
    old = pubsub_event_data(b"", publish_time=NOW - timedelta(days=7, seconds=1))
    future = pubsub_event_data(b"", publish_time=NOW + timedelta(hours=1))
    with pytest.raises(InvalidMessage, match="7-day retention"):
        decode(PUBSUB_EVENT_TYPE, old, now=NOW)
    with pytest.raises(InvalidMessage, match="future"):
        decode(PUBSUB_EVENT_TYPE, future, now=NOW)


def test_a_replayed_trigger_within_the_retention_is_accepted() -> None:
    """A nightly trigger replayed from six days back (a subscription seek) decodes as a nightly
    trigger: it runs tonight's night."""
    replayed = pubsub_event_data(b'{"kind":"nightly"}', publish_time=NOW - timedelta(days=6))
    assert decode(PUBSUB_EVENT_TYPE, replayed, now=NOW)[1] == NightlyTrigger()


def test_wrong_event_type_is_rejected() -> None:
    """Only Pub/Sub messagePublished events are accepted."""
    with pytest.raises(InvalidMessage, match="event type"):
        decode("google.cloud.storage.object.v1.finalized", _data(b""), now=NOW)


def test_message_id_is_carried_in_the_error() -> None:
    """The InvalidMessage carries the message id for the log line, where the message_id form
    withholds it unless it has Pub/Sub's shape (decimal digits) or a UUID's: an invalid
    message's id is anyone's text."""
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, _data(b"{bad"), now=NOW)
    assert caught.value.log_context() == {
        "reason": "message body is not JSON",
        "message_id": "m-42",  # kept raw here: the log's message_id form withholds it
    }
    assert allowed("message_id", "m-42") == WITHHELD


@pytest.mark.parametrize("segment", [0, -1])
def test_segment_bounds(segment: int) -> None:
    """A continuation's segment must be a positive whole number: 0 or below is refused at the
    segment field, not somewhere else in the body."""
    body = json.dumps(
        {"kind": "resume", "run_id": str(uuid.uuid4()), "segment": segment, "cursor": None}
    ).encode()
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, _data(body), now=NOW)
    assert caught.value.reason.startswith("message body has the wrong shape at resume.segment (")


@pytest.mark.parametrize("segment", ["1", 1.0, True, "01", " 1"])
def test_segment_is_strictly_an_integer(segment: object) -> None:
    """A continuation's segment is a JSON integer: "1", 1.0 or true is not one of ours (issue
    28), while the function's own 1 still decodes."""
    run_id = str(uuid.uuid4())
    body = json.dumps({"kind": "resume", "run_id": run_id, "segment": segment, "cursor": None})
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, _data(body.encode()), now=NOW)
    assert caught.value.reason.startswith("message body has the wrong shape at resume.segment (")
    own = json.dumps({"kind": "resume", "run_id": run_id, "segment": 1, "cursor": None})
    _, message = decode(PUBSUB_EVENT_TYPE, _data(own.encode()), now=NOW)
    assert isinstance(message, Resume)
    assert message.segment == 1


def _nested(depth: int) -> list[object]:
    """A list `depth` levels deep, built without recursion."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("attributes", "message attributes are not strings"),
        ("messageId", "message id is not a string"),
    ],
)
def test_a_nested_envelope_is_one_invalid_message(field: str, reason: str) -> None:
    """A 10,000-level nested value where Pub/Sub puts strings is an InvalidMessage, never a
    RecursionError (the str() of it used to raise one; issue 28)."""
    data = _data(b'{"kind": "nightly"}')
    message = data["message"]
    assert isinstance(message, dict)
    message[field] = {"key": _nested(10_000)} if field == "attributes" else _nested(10_000)
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, data, now=NOW)
    assert caught.value.reason == reason


def test_any_recursion_while_decoding_is_an_invalid_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever part of the envelope recurses too deep, decode answers InvalidMessage."""
    import certexpiry.messages as messages

    def deep(_value: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(messages, "_publish_time", deep)
    with pytest.raises(InvalidMessage) as caught:
        decode(PUBSUB_EVENT_TYPE, _data(b""), now=NOW)
    assert caught.value.reason == "event data nested too deeply"
