"""Fds 1 and 2 captured as text lines (standard library only: the logger imports this module)."""

import atexit
import codecs
import contextlib
import fcntl
import io
import math
import os
import select
import sys
import termios
import threading
import time
from collections.abc import Callable

THREAD_NAME = "certexpiry-fd-capture"  # the reader thread's name (one per installing process)
_WAIT_S = 2.0  # the exit hook's drain, and how long uninstall waits for the reader to end
_OnLine = Callable[[str, str], None]


def _unread(fd: int) -> int:
    """Bytes waiting in the pipe ``fd``; 0 when it cannot be asked."""
    answer = bytes(4)
    with contextlib.suppress(OSError):
        answer = fcntl.ioctl(fd, termios.FIONREAD, answer)
    return int.from_bytes(answer, sys.byteorder)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class _Stream:
    """One pipe's bytes in, its lines out to on_line."""

    def __init__(self, name: str, reader: "_Reader") -> None:
        self.name, self.reader, self.partial = name, reader, ""  # partial: after the last "\n"
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.due = math.inf  # idle_s after the last bytes (time.monotonic()), until final

    def feed(self, data: bytes, final: bool = False) -> None:
        """Pass on the lines ``data`` completes; final: the partial line too, as a line."""
        *lines, self.partial = (self.partial + self.decoder.decode(data, final)).split("\n")
        if final and self.partial:  # (an unfinished UTF-8 sequence is now U+FFFD)
            lines, self.partial = [*lines, self.partial], ""
        size, on_line = self.reader.max_line, self.reader.on_line
        for text in [line.removesuffix("\r") for line in lines]:
            for start in range(0, len(text) or 1, size):
                on_line(self.name, text[start : start + size])
        while len(self.partial) > size:  # a long line goes on in pieces before its newline
            on_line(self.name, self.partial[:size])
            self.partial = self.partial[size:]
        if data or final:  # a partial line still waiting at self.due goes on as a line
            self.due = math.inf if final else time.monotonic() + self.reader.idle_s


class _Reader(threading.Thread):
    """One installation: fds 1 and 2 made pipes, and the daemon thread that reads them. A drain
    asks for a round (``requested``): what FIONREAD shows then, partial lines as lines. An ended
    pipe (``wake_w`` closed, or fds 1 and 2) gets a last round, then ``done``."""

    def __init__(self, on_line: _OnLine, max_line: int, idle_s: float) -> None:
        super().__init__(name=THREAD_NAME, daemon=True)
        self.on_line, self.max_line, self.idle_s = on_line, max_line, idle_s
        self.forked_child = False  # True: the parent's thread reads the pipes, none runs here
        self.cond, self.requested, self.served, self.done = threading.Condition(), 0, 0, False
        with contextlib.ExitStack() as undo:
            fds: list[int] = []
            undo.callback(_close, fds)
            for fd in (1, 2):
                fds.append(os.dup(fd))
            for _ in range(3):
                fds += os.pipe()
            self.out, self.err, out_r, out_w, err_r, err_w, self.wake_r, self.wake_w = fds
            os.set_blocking(self.wake_w, False)
            for pipe_write_end in (out_w, err_w):
                with contextlib.suppress(OSError):  # a capped system keeps the default 64 KiB
                    fcntl.fcntl(pipe_write_end, fcntl.F_SETPIPE_SZ, 1 << 20)
            self.streams = {out_r: _Stream("stdout", self), err_r: _Stream("stderr", self)}
            self.start()
            undo.pop_all()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        _close([out_w, err_w])  # fds 1 and 2 are now the only write ends

    def run(self) -> None:
        poller, ending = select.poll(), False
        for fd in (*self.streams, self.wake_r):
            poller.register(fd, select.POLLIN)
        while not self.done:
            due = min(stream.due for stream in self.streams.values())
            wait = None if due == math.inf else max(0, math.ceil((due - time.monotonic()) * 1e3))
            for fd, _events in poller.poll(wait):
                data = os.read(fd, 1 << 16)  # a full default pipe buffer
                ending |= not data  # end of file: uninstall or the exit hook closed the write ends
                if fd in self.streams:  # else the wake-up pipe: its bytes only wake us
                    self.streams[fd].feed(data)
            target = self.requested  # (bumped under cond; reading an int needs no lock)
            asked = target > self.served or ending  # then: what each pipe holds now, too
            for fd, stream in self.streams.items():  # the partial lines: asked for, or left idle
                if asked or time.monotonic() >= stream.due:
                    stream.feed(os.read(fd, _unread(fd)) if asked else b"", final=True)
            with self.cond:
                self.served, self.done = target, ending
                self.cond.notify_all()
        _close([*self.streams, self.wake_r])


class FdCapture:
    """Everything written to fds 1 and 2 (gRPC's C core, ``os.write``, children, threads at exit
    write below ``sys.stdout``) as ``on_line(stream, text)`` calls from one reader thread: UTF-8,
    a trailing "\\r" dropped, in pieces of ``max_line``, a partial line idle ``idle_flush_s`` as
    a line. on_line writes to ``output_fd`` (the original fd 1), never to fds 1/2, nor waits for
    a lock their writer may hold. A forked child runs no reader (docs/logging.md, "Nothing else
    reaches the log")."""

    def __init__(
        self, on_line: _OnLine, *, idle_flush_s: float = 0.2, max_line: int = 16_000
    ) -> None:
        self.callback_failures = 0  # calls of on_line that raised (the line dropped, reader on)
        self._on_line, self._idle_flush_s, self._max_line = on_line, idle_flush_s, max_line
        self._reader: _Reader | None = None
        os.register_at_fork(after_in_child=self.after_fork_in_child)  # keeps self alive for good

    @property
    def output_fd(self) -> int | None:
        """The duplicate of the original fd 1 if installed, else None."""
        return None if self._reader is None else self._reader.out

    def install(self) -> int:
        """Capture fds 1 and 2 (once); return ``output_fd``."""
        if self._reader is None:
            self._reader = _Reader(self._deliver, self._max_line, self._idle_flush_s)
            for stream in (sys.stdout, sys.stderr):  # line-buffered: or print() waits for 8 KiB
                if isinstance(stream, io.TextIOWrapper):
                    with contextlib.suppress(OSError, ValueError):
                        stream.reconfigure(line_buffering=True)
            atexit.register(self._at_exit)
        return self._reader.out

    def drain(self, timeout_s: float = 1.0) -> None:
        """Wait (at most timeout_s) until what fds 1 and 2 got so far is handed on (a forked
        child: until the pipes are empty); at once on the reader thread. Never raises."""
        reader = self._reader
        if reader is None or reader is threading.current_thread():
            return
        if reader.forked_child:  # wait until the parent's thread has emptied the pipes
            deadline = time.monotonic() + timeout_s
            while sum(map(_unread, reader.streams)) > 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            return
        with reader.cond:
            reader.requested += 1
            target = reader.requested
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                os.write(reader.wake_w, b"\0")
            reader.cond.wait_for(lambda: reader.done or reader.served >= target, timeout_s)

    def uninstall(self) -> None:
        """For tests: hand on what is left, put fds 1 and 2 back; a stuck reader ends alone."""
        reader, self._reader = self._reader, None
        if reader is not None:
            os.dup2(reader.out, 1)
            os.dup2(reader.err, 2)
            os.close(reader.wake_w)  # the reader's signal for a last round (on_line may write)
            reader.join(_WAIT_S)
            _close([reader.out, reader.err])
            atexit.unregister(self._at_exit)

    def after_fork_in_child(self) -> None:
        """In a forked child: no reader here (the parent's reads the pipes)."""
        if self._reader is not None:
            self._reader.forked_child = True

    def _deliver(self, stream: str, text: str) -> None:
        try:
            self._on_line(stream, text)
        except BaseException:  # noqa: BLE001  # no failure of a callback may end the reader
            self.callback_failures += 1

    def _at_exit(self) -> None:
        """Fds 1 and 2 to /dev/null, then drain: not the originals (later bytes would reach them
        as plain text), not the pipes (unread, a writer holding sys.stdout's lock would block)."""
        for stream in (sys.stdout, sys.stderr):  # what Python's streams hold goes to fds 1 and 2
            with contextlib.suppress(AttributeError, OSError, ValueError):  # None, broken, closed
                stream.flush()
        with contextlib.suppress(OSError):  # no /dev/null: fds 1 and 2 stay the pipes, unread
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
        self.drain(_WAIT_S)
