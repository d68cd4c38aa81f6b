"""Drive the real function through functions-framework's HTTP server, as Pub/Sub would.

Starts `functions-framework --target nightly_sweep` as a child process with a fake Pub/Sub
gRPC server as its PUBSUB_EMULATOR_HOST, POSTs the nightly trigger as an Eventarc CloudEvent,
then POSTs every continuation the function publishes, until the chain ends. The end-to-end
tests and the demo both use it, so the demo shows exactly what production runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry_ops.local import pubsub_event_data
from certexpiry_ops.pubsub_fake import FakePubSub

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "projects/local-demo/topics/certexpiry-nightly"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Delivery:
    """One POST of a Pub/Sub message to the function."""

    body: bytes
    status: int
    seconds: float


@dataclass
class FunctionProcess:
    """The function served by functions-framework in a child process."""

    env: Mapping[str, str]
    on_line: Callable[[str, str], None] | None = None
    port: int = field(default_factory=_free_port)
    lines: list[tuple[str, str]] = field(default_factory=list)
    _process: subprocess.Popen[str] | None = None
    _readers: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 30.0) -> FunctionProcess:
        command = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            "nightly_sweep",
            "--signature-type",
            "cloudevent",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--source",
            str(ROOT / "main.py"),
        ]
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own process group, so a kill reaches gunicorn's worker and not just the master.
            start_new_session=True,
        )
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            reader = threading.Thread(target=self._read, args=(name, stream), daemon=True)
            reader.start()
            self._readers.append(reader)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("functions-framework exited during start-up")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("functions-framework did not start listening in time")

    def _read(self, name: str, stream: IO[str] | None) -> None:
        if stream is None:  # Popen was given PIPE for both streams
            return
        for line in stream:
            line = line.rstrip("\n")
            self.lines.append((name, line))
            if self.on_line is not None:
                self.on_line(name, line)

    def entries_until(
        self, code: str, *, after: int = 0, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """The JSON entries written after line `after`, once one with `code` has been read.

        The output is read by threads, so an HTTP answer can arrive before the last lines it
        wrote do; a test that reads the lines mid-process waits for the one it expects. On a
        timeout it returns what there is, and the caller's assertion says what is missing.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            entries = [json.loads(line) for _, line in self.lines[after:]]
            if any(e.get("error_code") == code for e in entries) or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the process group (master and worker): no clean-up, as a crashed instance."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._process is not None:  # a worker outliving its master must not linger
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=5)

    def deliver(
        self,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 600.0,
    ) -> Delivery:
        """POST a Pub/Sub message as Eventarc does (binary-mode CloudEvent)."""
        message_id = message_id or str(uuid.uuid4())
        ce_headers = {
            "ce-id": message_id,
            "ce-specversion": "1.0",
            "ce-type": PUBSUB_EVENT_TYPE,
            "ce-source": f"//pubsub.googleapis.com/{TOPIC}",
            "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "content-type": "application/json",
            **(headers or {}),
        }
        payload = json.dumps(pubsub_event_data(body, message_id=message_id)).encode()
        started = time.monotonic()
        response = httpx.post(self.url, content=payload, headers=ce_headers, timeout=timeout_s)
        return Delivery(body=body, status=response.status_code, seconds=time.monotonic() - started)


@dataclass
class ChainReport:
    """What following a chain of deliveries did."""

    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def segments(self) -> int:
        return sum(1 for d in self.deliveries if d.status == 200)


def follow_chain(
    function: FunctionProcess,
    pubsub: FakePubSub,
    *,
    first: bytes = b'{"kind":"nightly"}',
    max_deliveries: int = 1_000,
    retry_pause_s: float = 0.5,
) -> ChainReport:
    """Deliver `first`, then every continuation the function publishes, until none is left."""
    report = ChainReport()
    seen = 0
    pending = [first]
    while pending and len(report.deliveries) < max_deliveries:
        body = pending.pop(0)
        delivery = function.deliver(body)
        report.deliveries.append(delivery)
        if delivery.status != 200:
            pending.append(body)  # Pub/Sub redelivers a failed message
            time.sleep(retry_pause_s)
        new = pubsub.messages[seen:]
        seen += len(new)
        pending.extend(item.data for item in new)
    return report


def function_env(database_url: str, pubsub: FakePubSub, **settings: Any) -> dict[str, str]:
    """The environment a local function process needs (settings as upper-case names)."""
    env = {
        "DATABASE_URL": database_url,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "CONTINUATION_TOPIC": TOPIC,
        "GOOGLE_CLOUD_PROJECT": "local-demo",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({key.upper(): str(value) for key, value in settings.items()})
    return env
