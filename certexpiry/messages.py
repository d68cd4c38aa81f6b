"""Decode the Pub/Sub CloudEvent into one of the two messages this function accepts.

Eventarc delivers `google.cloud.pubsub.topic.v1.messagePublished` with the Pub/Sub message in
`data.message` (`data` base64, `attributes`, `messageId`, `publishTime`). Anything that is not
a nightly trigger or one of our continuations raises InvalidMessage: the caller acknowledges
it and logs it once, so a bad message can never cause a retry loop or touch data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from certexpiry.errors import InvalidMessage
from certexpiry.redact import WORDS

MAX_BODY_BYTES = 4_096
# One replay window: the sweep topic keeps messages for 7 days (terraform/pubsub.tf,
# topic_message_retention, validated to at most this), so a subscription seeked back to any time
# the topic still holds redelivers messages this function accepts. A replayed nightly trigger
# runs tonight's night (the claim takes the date from the database's clock, not the message),
# and a replayed continuation of a finished run is a DUPLICATE_DELIVERY: nothing runs twice.
# Anything older could not have come from the topic, so it is refused.
MAX_AGE = timedelta(days=7)
PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


SqlState = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{5}$")]


class NightlyTrigger(BaseModel):
    """Cloud Scheduler's nightly message: start (or join) tonight's run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["nightly"] = "nightly"


# The sweep's checkpoint: a keyset token the SQL makes (certexpiry.cursor_after:
# `on-schedule/expiry_date/id` while it reads the schedule, `next_action_on/id` while it reads
# the marked certifications) and Python passes back as it came. Nothing else, so a message
# carries no free text.
Cursor = Annotated[
    str,
    StringConstraints(
        pattern=r"^(on-schedule/)?(-infinity|[0-9]{4}-[0-9]{2}-[0-9]{2})/"
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ),
]


class Resume(BaseModel):
    """A continuation the function published for itself: carry on with segment `segment`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["resume"]
    run_id: UUID
    # Strictly a whole number: "1", 1.0 or true is a message this function did not publish.
    segment: int = Field(ge=1, le=100_000, strict=True)
    cursor: Cursor | None
    # How the segment handing off was getting past a batch that failed as a whole (the sweep's
    # _Narrowing): its batch size (0: only pass the certifications that failed alone), and the
    # SQLSTATEs of the certifications right after the cursor that failed even alone (at most a
    # timed-out one and the one after it). Absent from a continuation that was not narrowing.
    batch_size: int | None = Field(default=None, ge=0, le=1000, strict=True)
    failed_ahead: tuple[SqlState, ...] = Field(default=(), max_length=2)

    def to_bytes(self) -> bytes:
        """The message body as published."""
        return self.model_dump_json().encode()


Message = Annotated[NightlyTrigger | Resume, Field(discriminator="kind")]
_MESSAGE = TypeAdapter(Message)
WORDS.update((PUBSUB_EVENT_TYPE, "on-schedule", "-infinity"))  # event_type; cursor parts


class Envelope(BaseModel):
    """What the function learned about the delivery, for logs (system fields only)."""

    model_config = ConfigDict(frozen=True)
    message_id: str | None
    publish_time: datetime | None
    attributes: Mapping[str, str]


def decode(
    event_type: str | None, data: Any, *, now: datetime | None = None
) -> tuple[Envelope, NightlyTrigger | Resume]:
    """Validate a CloudEvent's type and data; raise InvalidMessage with a reason otherwise."""
    try:
        return _decode(event_type, data, now)
    except RecursionError:  # a value nested deeper than Python recurses: not ours, whatever it is
        raise InvalidMessage("event data nested too deeply") from None


def _decode(  # noqa: C901  # one check per field of the envelope, each its own reason
    event_type: str | None, data: Any, now: datetime | None
) -> tuple[Envelope, NightlyTrigger | Resume]:
    envelope = _envelope(data)
    if event_type is not None and event_type != PUBSUB_EVENT_TYPE:
        raise _invalid("unexpected event type", envelope)
    if envelope.publish_time is not None:
        age = (now or datetime.now(UTC)) - envelope.publish_time
        if age > MAX_AGE:
            raise _invalid("message older than the topic's 7-day retention", envelope)
        if age < -timedelta(minutes=5):
            raise _invalid("message published in the future", envelope)
    raw = data["message"].get("data")
    if raw is None:  # no data at all: an attributes-only message, read as an empty body
        raw = ""
    if not isinstance(raw, str):
        raise _invalid("message data is not a base64 string", envelope)
    if len(raw) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise _invalid("message body too large", envelope)
    try:
        body = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("message data is not valid base64", envelope) from None
    if len(body) > MAX_BODY_BYTES:  # the length check above lets up to 2 bytes more through
        raise _invalid("message body too large", envelope)
    if not body.strip():
        return envelope, NightlyTrigger()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("message body is not UTF-8", envelope) from None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid("message body is not JSON", envelope) from None
    try:
        return envelope, _MESSAGE.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):  # never the value
            raise _invalid(
                "message body has no known kind: this function takes kind nightly or resume",
                envelope,
            ) from None
        # The path names our fields and list positions; a key the sender chose is its text.
        known = {*NightlyTrigger.model_fields, *Resume.model_fields, "nightly", "resume"}
        where = ".".join(
            str(part) if isinstance(part, int) or part in known else "?"
            for part in first.get("loc", ())
        )
        raise _invalid(
            f"message body has the wrong shape at {where or 'body'} ({first['type']})", envelope
        ) from None


def _envelope(data: Any) -> Envelope:
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise InvalidMessage("event data has no Pub/Sub message")
    message = data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    attributes = message.get("attributes") or {}
    # Pub/Sub's ids and attributes are strings: anything else is not its envelope, and is never
    # str()-ed (a nested value's text is as deep as the sender liked, and could be anything).
    if message_id is not None and not isinstance(message_id, str):
        raise InvalidMessage("message id is not a string")
    if not isinstance(attributes, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in attributes.items()
    ):
        raise InvalidMessage("message attributes are not strings", message_id and message_id[:100])
    publish_time = _publish_time(message.get("publishTime") or message.get("publish_time"))
    return Envelope(
        message_id=message_id[:100] if message_id is not None else None,
        publish_time=publish_time,
        attributes={key[:100]: value[:200] for key, value in list(attributes.items())[:20]},
    )


def _publish_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _invalid(reason: str, envelope: Envelope) -> InvalidMessage:
    return InvalidMessage(reason, envelope.message_id)
