"""Whole lines out in bounded time, to a text stream or to a pipe or socket by its fd: a stalled
log reader must not block the job (docs/logging.md, "Failures of the log itself")."""

import contextlib
import math
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO, cast

WRITE_BUDGET_S = 0.05
"""Longest a single line may wait for a stalled pipe, or for another thread's write."""


def _is_pipe(fd: int) -> bool:
    """A pipe or a socket: what a stalled reader can make a write wait on."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class FdWriter:
    """Whole lines to an fd; to a pipe or socket after ``poll``, ``PIPE_BUF`` bytes a write. Stalled
    after a timeout, it waits no more until a write succeeds; a line's unwritten part goes first."""

    def __init__(self, fd: int) -> None:
        self.fd, self.tail, self.stalled = fd, b"", False
        self._poller: select.poll | None = None
        if _is_pipe(fd):
            self._poller = select.poll()
            self._poller.register(fd, select.POLLOUT)

    def write(self, data: bytes) -> bool:
        """Write ``data`` (whole or started); False if nothing of it could be written."""
        deadline = time.monotonic() + (0.0 if self.stalled else WRITE_BUDGET_S)
        try:
            self.tail = self._drain(self.tail, deadline)
            rest = data if self.tail else self._drain(data, deadline)
        except OSError:  # broken pipe, closed fd: nothing more will get through
            self.tail, rest = b"", data
        self.stalled = bool(rest)
        if len(rest) == len(data):
            return False
        self.tail = rest
        return True

    def _drain(self, data: bytes, deadline: float) -> bytes:
        """Write as much of ``data`` as the deadline allows; return the unwritten rest."""
        while data:
            if self._poller is not None:
                wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
                if not self._poller.poll(wait_ms):
                    break
            try:
                data = data[os.write(self.fd, data[: select.PIPE_BUF]) :]
            except BlockingIOError:  # O_NONBLOCK set by someone else, and full after all
                if time.monotonic() >= deadline:
                    break
        return data


class Output:
    """Where a logger's lines go, one at a time: its stream, else the real stdout once captured,
    else ``sys.stdout`` as it is at each line; a line that does not go out is counted."""

    def __init__(self, target: TextIO | None) -> None:
        self.target = target
        self.captured: FdWriter | None = None
        self.dropped = self.unreported = 0
        self._lock, self._count_lock = threading.Lock(), threading.Lock()
        self._stream: object = None  # the last text stream seen, and its bounded writer
        self._stream_writer: FdWriter | None = None

    def write(self, line: str, notice: Callable[[int], str]) -> None:
        """``line``, after ``notice(count)`` if lines were dropped; never raises. Dropped: a line
        that fails, stalls, waits on another thread's write, or is logged by the stream itself."""
        sent = False
        if self._lock.acquire(timeout=WRITE_BUDGET_S):  # a line the stream logs waits for itself
            try:
                pending = self.unreported
                if not pending or self._put(notice(pending)):
                    self._count(0, -pending)
                    sent = self._put(line)
            finally:
                self._lock.release()
        if not sent:
            self._count(1, 1)

    def _count(self, dropped: int, unreported: int) -> None:
        with self._count_lock:
            self.dropped += dropped
            self.unreported += unreported

    def _put(self, line: str) -> bool:
        """Write one line; False if it did not go out."""
        target = self.target if self.target is not None else self.captured or sys.stdout
        writer = target if isinstance(target, FdWriter) else self._writer_of(target)
        if writer is not None:
            return writer.write(f"{line}\n".encode("utf-8", "backslashreplace"))
        with contextlib.suppress(Exception):  # whatever the stream raises, the line is dropped
            cast(TextIO, target).write(f"{line}\n")  # None fails like a broken stream
            cast(TextIO, target).flush()
            return True
        return False

    def _writer_of(self, stream: TextIO) -> FdWriter | None:
        """The bounded writer of a text stream over a pipe or a socket, else None."""
        if stream is not self._stream:
            self._stream, self._stream_writer = stream, None
            with contextlib.suppress(Exception):  # no fileno (StringIO, None), closed: plain
                fd = stream.fileno()
                if _is_pipe(fd):
                    stream.flush()  # what it buffered goes first
                    self._stream_writer = FdWriter(fd)
        return self._stream_writer
