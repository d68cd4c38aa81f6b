"""The one chain driver of the tests: Pub/Sub as the tests play it.

`Chain.run` delivers the nightly trigger (or the messages given), then every continuation the
function publishes, one message at a time, until nothing is pending. A delivery the function
refuses (RETRY, HTTP 503) is redelivered later, after `on_retry` (e.g. expiring the leases:
what waiting LEASE_S would do), or, with `stop_on_retry`, left pending for the test. The
function is reached in process (`in_process`: `handle_event`, as main.py calls it) or over HTTP
(`over_http`: a functions-framework process); what it published is read back from the
in-memory publisher or from the fake Pub/Sub server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

import httpx

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.sweep import Job, Outcome, handle_event
from certexpiry_ops.harness import FunctionProcess
from certexpiry_ops.local import pubsub_event_data
from certexpiry_ops.pubsub_fake import FakePubSub

NIGHTLY = b'{"kind":"nightly"}'
R = TypeVar("R")


class InstanceDied(Exception):
    """The function instance went away during a delivery (the connection was lost)."""


@runtime_checkable
class RecordingPublisher(Protocol):
    """A publisher that keeps what it published: (topic, data, attributes)."""

    @property
    def messages(self) -> Sequence[tuple[str, bytes, Mapping[str, str]]]: ...


class Subscription:
    """The messages published since the last pull (Pub/Sub now holds them for delivery).

    Only what is published after the subscription is made counts."""

    def __init__(self, read: Callable[[], Sequence[bytes]]) -> None:
        self._read = read
        self._seen = len(read())

    @classmethod
    def to_publisher(cls, publisher: RecordingPublisher) -> Subscription:
        """What an in-memory (recording) publisher published."""
        return cls(lambda: [data for _topic, data, _attributes in list(publisher.messages)])

    @classmethod
    def to_pubsub(cls, pubsub: FakePubSub) -> Subscription:
        """What the fake Pub/Sub server received."""
        return cls(lambda: [item.data for item in list(pubsub.messages)])

    def pull(self) -> list[bytes]:
        messages = self._read()
        new = list(messages[self._seen :])
        self._seen = len(messages)
        return new


@dataclass
class Chain(Generic[R]):
    """Delivers messages one at a time and queues what the function publishes.

    `results` holds what each delivery answered (an Outcome, an HTTP status), `delivered` the
    bodies of those deliveries; after an instance died, `in_flight` is the body it died on.
    """

    deliver: Callable[[bytes], R]
    acknowledged: Callable[[R], bool]
    published: Subscription
    on_retry: Callable[[], None] | None = None
    after_delivery: Callable[[], None] | None = None
    max_deliveries: int = 500  # per run: a chain that has not settled by then is a failure
    results: list[R] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)
    in_flight: bytes | None = None
    died: bool = False
    _queue: list[tuple[bytes, int]] = field(default_factory=list)  # (body, copies to deliver)

    @property
    def pending(self) -> list[bytes]:
        """What Pub/Sub still holds for delivery, in delivery order."""
        return [body for body, _copies in self._queue]

    @property
    def deliveries(self) -> int:
        return len(self.results)

    def pull(self) -> list[bytes]:
        """Messages published since the last pull, not yet queued."""
        return self.published.pull()

    def run(
        self,
        first: Iterable[bytes] = (NIGHTLY,),
        *,
        copies: int = 1,
        stop_on_retry: bool = False,
        max_deliveries: int | None = None,
    ) -> list[R]:
        """Deliver `first` (after anything still pending) and every message published, until
        nothing is pending; return what this run's deliveries answered.

        Each new message is delivered `copies` times in a row (a duplicating Pub/Sub); each
        refused delivery is redelivered once more later. With `stop_on_retry` the run stops at
        the first refusal, which stays pending first. If the instance dies, the run stops with
        `died` set and the message it died on in `in_flight`.
        """
        limit = self.max_deliveries if max_deliveries is None else max_deliveries
        start = len(self.results)
        self._queue.extend((body, copies) for body in first)
        while self._queue:
            if len(self.results) - start >= limit:
                raise AssertionError(f"the chain did not settle in {limit} deliveries")
            body, times = self._queue.pop(0)
            redeliver: list[tuple[bytes, int]] = []
            for _ in range(times):
                self.in_flight = body
                try:
                    result = self.deliver(body)
                except InstanceDied:
                    self.died = True
                    return self.results[start:]
                self.in_flight = None
                self.results.append(result)
                self.delivered.append(body)
                if self.after_delivery is not None:
                    self.after_delivery()
                if self.acknowledged(result):
                    continue
                if stop_on_retry:
                    self._queue.insert(0, (body, 1))
                    self._queue.extend((message, copies) for message in self.pull())
                    return self.results[start:]
                if self.on_retry is not None:
                    self.on_retry()
                redeliver.append((body, 1))
            self._queue.extend(redeliver)
            self._queue.extend((message, copies) for message in self.pull())
        return self.results[start:]


def in_process(
    job: Job,
    published: Subscription | None = None,
    *,
    on_retry: Callable[[], None] | None = None,
) -> Chain[Outcome]:
    """A chain through `handle_event`; by default the job's publisher must keep its messages
    (the in-memory publisher)."""
    if published is None:
        publisher = job.publisher
        if not isinstance(publisher, RecordingPublisher):
            raise TypeError("give a Subscription: the job's publisher keeps no messages")
        published = Subscription.to_publisher(publisher)

    def deliver(body: bytes) -> Outcome:
        return handle_event(job, PUBSUB_EVENT_TYPE, pubsub_event_data(body))

    return Chain(deliver, lambda outcome: outcome is Outcome.ACK, published, on_retry)


def over_http(
    function: FunctionProcess,
    pubsub: FakePubSub,
    *,
    on_retry: Callable[[], None] | None = None,
    timeout_s: float = 120.0,
) -> Chain[int]:
    """A chain of HTTP POSTs to a function process; its continuations come from `pubsub`."""

    def deliver(body: bytes) -> int:
        try:
            return function.deliver(body, timeout_s=timeout_s).status
        except httpx.TransportError as exc:
            raise InstanceDied(str(exc)) from exc

    return Chain(deliver, lambda status: status == 200, Subscription.to_pubsub(pubsub), on_retry)


class LockedPublisher:
    """An in-memory publisher safe for concurrent instances (threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._messages: list[tuple[str, bytes, Mapping[str, str]]] = []

    @property
    def messages(self) -> list[tuple[str, bytes, Mapping[str, str]]]:
        with self.lock:
            return list(self._messages)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        with self.lock:
            self._messages.append((topic, data, dict(attributes)))
            return f"local-{len(self._messages)}"
