"""A fake Pub/Sub server speaking the real gRPC protocol, for tests and the local demo.

It serves `google.pubsub.v1.Publisher/Publish` with the google.pubsub_v1 message types, so the
real PublisherClient (pointed at it with PUBSUB_EMULATOR_HOST) is exercised unpatched: its
serialisation, retry and confirmation. Failures can be scripted per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.pubsub_v1.types import PublishRequest, PublishResponse


@dataclass
class Published:
    """One message as the server received it."""

    topic: str
    data: bytes
    attributes: dict[str, str]
    message_id: str


@dataclass
class FakePubSub:
    """Start with `start()`; `host` is what PUBSUB_EMULATOR_HOST must be set to."""

    messages: list[Published] = field(default_factory=list)
    # Each call pops the next scripted failure (a grpc.StatusCode) if any; None means succeed.
    failures: list[grpc.StatusCode | None] = field(default_factory=list)
    on_publish: Callable[[Published], None] | None = None
    calls: int = 0
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakePubSub:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "Publish": grpc.unary_unary_rpc_method_handler(
                    self._publish,
                    request_deserializer=PublishRequest.deserialize,
                    response_serializer=PublishResponse.serialize,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def _publish(self, request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        with self._lock:
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
            if failure is not None:
                context.abort(failure, f"scripted failure {failure.name}")
            ids = []
            for message in request.messages:
                published = Published(
                    topic=request.topic,
                    data=bytes(message.data),
                    attributes=dict(message.attributes),
                    message_id=str(len(self.messages) + 1),
                )
                self.messages.append(published)
                ids.append(published.message_id)
        if self.on_publish is not None:
            for item in self.messages[-len(ids) :]:
                self.on_publish(item)
        return PublishResponse(message_ids=ids)
