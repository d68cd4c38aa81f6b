"""The Pub/Sub publisher against a fake gRPC Pub/Sub server (the real client, unpatched)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from certexpiry.errors import PublishError
from certexpiry.publisher import PubSubPublisher
from certexpiry_ops.pubsub_fake import FakePubSub

TOPIC = "projects/test-project/topics/certexpiry-nightly"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePubSub]:
    server = FakePubSub().start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.host)
    yield server
    server.stop()


def test_publish_returns_the_server_message_id(fake: FakePubSub) -> None:
    """A publish waits for the server's confirmation and returns its message id."""
    message_id = PubSubPublisher(deadline_s=5).publish(
        TOPIC, b'{"kind": "resume"}', {"cron_run_id": "r-1"}
    )
    assert message_id == "1"
    assert fake.messages[0].topic == TOPIC
    assert fake.messages[0].data == b'{"kind": "resume"}'
    assert fake.messages[0].attributes == {"cron_run_id": "r-1"}


def test_transient_failures_are_retried(fake: FakePubSub) -> None:
    """UNAVAILABLE twice, then success: the bounded retry gets the message through once."""
    fake.failures = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    PubSubPublisher(deadline_s=5).publish(TOPIC, b"x", {})
    assert fake.calls == 3
    assert len(fake.messages) == 1


def test_permanent_failure_raises_publish_error(fake: FakePubSub) -> None:
    """PERMISSION_DENIED is not retried and surfaces as PublishError naming the topic."""
    fake.failures = [grpc.StatusCode.PERMISSION_DENIED] * 5
    with pytest.raises(PublishError) as caught:
        PubSubPublisher(deadline_s=5).publish(TOPIC, b"x", {})
    assert caught.value.topic == TOPIC
    assert fake.calls == 1


def test_retry_is_bounded_by_the_deadline(fake: FakePubSub) -> None:
    """A server that keeps failing transiently makes publish give up within its short deadline."""
    fake.failures = [grpc.StatusCode.UNAVAILABLE] * 10_000
    with pytest.raises(PublishError):
        PubSubPublisher(deadline_s=1.0).publish(TOPIC, b"x", {})
    assert fake.messages == []
