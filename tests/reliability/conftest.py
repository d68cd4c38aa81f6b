"""Fixtures of the reliability suites (sizes and helpers are in support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certexpiry_ops.pubsub_fake import FakePubSub


@pytest.fixture
def pubsub() -> Iterator[FakePubSub]:
    server = FakePubSub().start()
    yield server
    server.stop()
