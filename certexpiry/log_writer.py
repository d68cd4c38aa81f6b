"""Bounded-time, whole-line writes of log text to a stream, a pipe or a socket.

Split out of ``certexpiry.log`` so the one piece that touches file descriptors (``poll``,
``os.write`` in ``PIPE_BUF`` chunks, a per-stream writer cache) stands alone: both the
logger (``certexpiry.log``) and the captured stdout/stderr (``certexpiry.log_capture``)
write through ``_put``, and share ``_EMITTING`` to tell their own writes from a caller's.
"""

from __future__ import annotations

import math
import os
import select
import stat
import threading
import time
from typing import TextIO, cast

__all__ = ["WRITE_BUDGET_S"]

WRITE_BUDGET_S = 0.05
"""Longest a single line may wait for a stalled pipe, or for another thread's write."""

_EMITTING: set[int] = set()  # threads inside a logger write (a set beats threading.local)


class _FdWriter:
    """Bounded-time writes of whole lines to a pipe or socket.

    ``poll`` for writability, then ``os.write`` at most ``PIPE_BUF`` bytes: such a write
    never blocks once poll says the pipe has room.  Whatever of a line is not written
    within the budget is kept as a tail and written before the next line, so lines stay
    whole.  After a timeout the writer is "stalled" and waits no more until a write
    succeeds, so a stuck reader costs one budget, not one budget per line.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.tail = b""
        self.stalled = False
        self._poller = select.poll()
        self._poller.register(fd, select.POLLOUT)

    def write(self, data: bytes) -> bool:
        """Write ``data`` (whole or started); False if nothing of it could be written."""
        if not self.lock.acquire(timeout=WRITE_BUDGET_S):
            return False
        try:
            deadline = time.monotonic() + (0.0 if self.stalled else WRITE_BUDGET_S)
            if self.tail:
                self.tail = self._drain(self.tail, deadline)
                if self.tail:
                    self.stalled = True
                    return False
            rest = self._drain(data, deadline)
            self.stalled = bool(rest)
            if len(rest) == len(data):
                return False
            self.tail = rest
            return True
        except OSError:  # broken pipe, closed fd: nothing more will get through
            self.tail = b""
            return False
        finally:
            self.lock.release()

    def _drain(self, data: bytes, deadline: float) -> bytes:
        """Write as much of ``data`` as the deadline allows; return the unwritten rest."""
        while data:
            wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not self._poller.poll(wait_ms):
                break
            try:
                data = data[os.write(self.fd, data[: select.PIPE_BUF]) :]
            except BlockingIOError:  # O_NONBLOCK set by someone else and full after all
                if time.monotonic() >= deadline:
                    break
        return data


_FD_WRITERS: dict[int, tuple[object, _FdWriter | None]] = {}  # id(stream) -> (stream, writer)
_FD_WRITERS_MAX = 64


def _fd_writer(stream: object) -> _FdWriter | None:
    """The bounded writer for ``stream`` if it is backed by a pipe or socket, else None."""
    known = _FD_WRITERS.get(id(stream))
    if known is not None and known[0] is stream:
        return known[1]
    writer = None
    try:
        fd = cast(TextIO, stream).fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            writer = _FdWriter(fd)
    except Exception:  # noqa: BLE001  # no fileno (StringIO, capture), closed, odd object
        writer = None
    if len(_FD_WRITERS) >= _FD_WRITERS_MAX:
        _FD_WRITERS.clear()
    _FD_WRITERS[id(stream)] = (stream, writer)
    return writer


def _put(stream: object, text: str) -> bool:
    """Write ``text`` to ``stream`` in one call and flush; False if it did not go out."""
    writer = _fd_writer(stream)
    if writer is not None:
        return writer.write(text.encode("utf-8", "backslashreplace"))
    try:
        stream.write(text)  # type: ignore[attr-defined]  # any object with write/flush
        stream.flush()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  # whatever the stream raises, the line is dropped
        return False
    return True
