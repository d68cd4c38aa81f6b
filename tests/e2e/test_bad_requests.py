"""Request bodies functions-framework's CloudEvent parser raises on, through the real function
process (issue 28): one INVALID_MESSAGE line and 200, never a 500 that Pub/Sub retries to the
dead letter. No database is needed: the request never reaches the function's settings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry_ops.harness import TOPIC, FunctionProcess

DEPTH = 10_000
MESSAGE_ID = "4242"


def _headers(content_type: str = "application/json") -> dict[str, str]:
    """Eventarc's binary-mode CloudEvent headers."""
    return {
        "ce-id": MESSAGE_ID,
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_EVENT_TYPE,
        "ce-source": f"//pubsub.googleapis.com/{TOPIC}",
        "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "content-type": content_type,
    }


@pytest.fixture(scope="module")
def function() -> Iterator[FunctionProcess]:
    env = {
        # Never connected to: every request here is refused before the settings are read.
        "DATABASE_URL": "postgresql://certexpiry@127.0.0.1:9/none",
        "CONTINUATION_TOPIC": TOPIC,
        "GOOGLE_CLOUD_PROJECT": "local-demo",
        "PYTHONUNBUFFERED": "1",
    }
    process = FunctionProcess(env=env).start()
    yield process
    process.stop()


def _lines_after(function: FunctionProcess, before: int) -> list[dict[str, Any]]:
    """The entries the process wrote after line `before`: its output is read by a thread, so
    wait for the first, then a moment more for any that would follow it."""
    deadline = time.monotonic() + 10
    while len(function.lines) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    return [json.loads(line) for _, line in function.lines[before:]]


NESTED_ATTRIBUTES = (
    '{"message": {"data": "", "messageId": "1", "attributes": {"a": '
    + "[" * DEPTH
    + "]" * DEPTH
    + "}}}"
).encode()
NESTED_BODY = ("[" * DEPTH + "]" * DEPTH).encode()
LONG_NUMBER = ('{"message": {"data": "", "messageId": ' + "9" * 5_000 + "}}").encode()
STRUCTURED = (
    json.dumps(
        {"specversion": "1.0", "id": MESSAGE_ID, "type": PUBSUB_EVENT_TYPE, "source": "//x"}
    )[:-1]
    + ', "data": '
    + "[" * DEPTH
    + "]" * DEPTH
    + "}"
)


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (NESTED_ATTRIBUTES, _headers(), "event body nested too deeply"),
        (NESTED_BODY, _headers(), "event body nested too deeply"),
        (
            STRUCTURED.encode(),
            _headers("application/cloudevents+json"),
            "event body nested too deeply",
        ),
        (LONG_NUMBER, _headers(), "a number too long"),
    ],
    ids=["nested-envelope", "nested-body", "nested-structured", "long-number"],
)
def test_an_unparseable_body_is_one_invalid_message_and_200(
    function: FunctionProcess, body: bytes, headers: dict[str, str], reason: str
) -> None:
    """The framework's parser raises on these before the function runs; the function's error
    handler answers 200 with exactly one INVALID_MESSAGE line, no stack trace."""
    before = len(function.lines)
    response = httpx.post(function.url, content=body, headers=headers, timeout=60)
    assert response.status_code == 200
    entries = _lines_after(function, before)
    assert [entry["error_code"] for entry in entries] == ["INVALID_MESSAGE"]
    (entry,) = entries
    assert entry["severity"] == "ERROR"
    assert reason in entry["context"]["reason"]
    assert entry["context"]["message_id"] == MESSAGE_ID
    assert "stack_trace" not in entry
