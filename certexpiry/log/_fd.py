"""Capture of file descriptors 1 and 2: every byte the process writes there becomes a text line.

Python's own streams are not the only writers of stdout and stderr: gRPC's C core logs straight
to fd 2, C extensions and ``os.write`` skip ``sys.stdout``, a shell started with ``os.system``
inherits fd 1, and a daemon thread may still be printing while the interpreter exits. Replacing
``sys.stdout``/``sys.stderr`` catches none of that, so ``FdCapture`` works one level below:
fds 1 and 2 become the write ends of two pipes, one daemon thread reads both read ends and
hands each complete line to a callback, and the callback (the JSON logger) writes its own lines
to a duplicate of the original fd 1. No plain byte reaches the real stdout or stderr.

Standard library only: nothing of ``certexpiry`` is imported here (the logger imports this).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import dataclasses
import fcntl
import io
import math
import os
import select
import sys
import termios
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["THREAD_NAME", "FdCapture"]

THREAD_NAME = "certexpiry-fd-capture"
"""The reader thread's name (one per process that installed a capture)."""

_CHUNK = 1 << 16  # bytes per read: a full default pipe buffer
_POLL_CAP_S = 1.0  # the longest poll, so that a lost wake-up costs at most this
_JOIN_S = 5.0  # how long uninstall waits for the reader (a callback may be stuck)
_EXIT_DRAIN_S = 2.0  # how long the exit hook waits for the reader to catch up
_CHILD_POLL_S = 0.005  # a forked child's drain: interval between two FIONREAD checks
_FLUSH_ERRORS = (AttributeError, OSError, ValueError)  # None, broken or closed streams


def _unread(fd: int) -> int:
    """Bytes waiting in the pipe ``fd`` (FIONREAD); 0 when the fd cannot be asked."""
    answer = bytes(4)
    with contextlib.suppress(OSError):
        answer = fcntl.ioctl(fd, termios.FIONREAD, answer)
    return int.from_bytes(answer, sys.byteorder, signed=True)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _flush_std() -> None:
    """Push what Python's text streams hold down to fds 1 and 2 (never raises)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(*_FLUSH_ERRORS):
            stream.flush()


def _line_buffer_std() -> None:
    """Make print() reach the pipe at each newline instead of at 8 KiB (a pipe is no tty)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(line_buffering=True)


def _retire_std_fds() -> None:
    """Point fds 1 and 2 at /dev/null (the exit hook's first step, see ``FdCapture``)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return  # then fds 1 and 2 stay the pipes: later bytes stay there, unread
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


class _Splitter:
    """The bytes of one stream in, its lines out: UTF-8 (errors replaced), at most max_line."""

    def __init__(self, name: str, fd: int, max_line: int) -> None:
        self.name = name
        self.fd = fd
        self.last_data = 0.0  # time.monotonic() of the last bytes fed
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # decoded text after the last newline

    @property
    def pending(self) -> bool:
        """Whether a partial line (or a partial UTF-8 sequence) waits for its end."""
        return bool(self._partial) or bool(self._decoder.getstate()[0])

    def feed(self, data: bytes, now: float) -> list[str]:
        self.last_data = now
        *complete, partial = (self._partial + self._decoder.decode(data)).split("\n")
        lines: list[str] = []
        for line in complete:
            lines += self._pieces(line.removesuffix("\r"))
        while len(partial) > self._max_line:
            lines.append(partial[: self._max_line])
            partial = partial[self._max_line :]
        self._partial = partial
        return lines

    def flush(self) -> list[str]:
        """The partial line as a line of its own (an incomplete UTF-8 sequence becomes U+FFFD)."""
        if not self.pending:
            return []
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return self._pieces(text.removesuffix("\r"))

    def _pieces(self, line: str) -> list[str]:
        size = self._max_line
        return [line[start : start + size] for start in range(0, len(line), size)] or [""]


class _Reader:
    """The thread that reads both pipes and hands their lines on, and its progress counter.

    ``caught_up`` asks for everything written so far: the reader reads, per pipe, the bytes
    FIONREAD reported when it took the request (so a writer that never pauses cannot hold it),
    passes any partial line as a line, and then marks the request served.
    """

    def __init__(
        self,
        splitters: list[_Splitter],
        wake: tuple[int, int],
        deliver: Callable[[str, str], None],
        idle_flush_s: float,
    ) -> None:
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._open = {splitter.fd: splitter for splitter in splitters}
        self._wake_r, self._wake_w = wake
        self._deliver = deliver
        self._idle_flush_s = idle_flush_s
        self._cond = threading.Condition()
        self._requested = 0
        self._served = 0
        self._stopping = False
        self._done = False
        self._poller = select.poll()

    def start(self) -> None:
        self.thread.start()

    def caught_up(self, timeout_s: float) -> None:
        """Wait (at most timeout_s) until the bytes written before this call are handed on."""
        with self._cond:
            self._requested += 1
            target = self._requested
        self._wake()
        with self._cond:
            self._cond.wait_for(lambda: self._done or self._served >= target, timeout_s)

    def stop(self, timeout_s: float) -> bool:
        """Ask the reader to hand on what is left and end; whether it ended within timeout_s."""
        with self._cond:
            self._stopping = True
        self._wake()
        self.thread.join(timeout_s)
        return not self.thread.is_alive()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        for fd in (*self._open, self._wake_r):
            self._poller.register(fd, select.POLLIN)
        while True:
            for fd, _events in self._poller.poll(self._timeout_ms()):
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, _CHUNK)
                else:
                    self._read(fd)
            with self._cond:
                target, stopping = self._requested, self._stopping
            if stopping or target > self._served:
                self._catch_up()
                with self._cond:
                    self._served = target
                    self._done = stopping
                    self._cond.notify_all()
            else:
                self._flush_idle()
            if stopping:
                return

    def _timeout_ms(self) -> int:
        wait = _POLL_CAP_S
        now = time.monotonic()
        for splitter in self._open.values():
            if splitter.pending:
                wait = min(wait, splitter.last_data + self._idle_flush_s - now)
        return max(0, math.ceil(wait * 1000))

    def _read(self, fd: int) -> int:
        """One read of ``fd``; its lines handed on. Returns the bytes read (0: the pipe ended)."""
        data = b""
        with contextlib.suppress(OSError):  # an unreadable pipe ends like a closed one
            data = os.read(fd, _CHUNK)
        splitter = self._open[fd]
        if data:
            self._hand_on(splitter, splitter.feed(data, time.monotonic()))
        else:  # every write end is closed: the stream is over, its partial line is a line
            self._poller.unregister(fd)
            del self._open[fd]
            self._hand_on(splitter, splitter.flush())
        return len(data)

    def _catch_up(self) -> None:
        for fd in list(self._open):
            left = _unread(fd)
            while left > 0 and fd in self._open:
                left -= self._read(fd)
        for splitter in list(self._open.values()):
            self._hand_on(splitter, splitter.flush())

    def _flush_idle(self) -> None:
        now = time.monotonic()
        for splitter in self._open.values():
            if splitter.pending and now - splitter.last_data >= self._idle_flush_s:
                self._hand_on(splitter, splitter.flush())

    def _hand_on(self, splitter: _Splitter, lines: list[str]) -> None:
        for line in lines:
            self._deliver(splitter.name, line)


@dataclasses.dataclass
class _Installed:
    """The fds of one installation, and its reader (None in a forked child)."""

    out: int  # duplicate of the original fd 1: where the caller writes its own lines
    err: int  # duplicate of the original fd 2 (for uninstall)
    read_ends: tuple[int, int]  # of the stdout pipe and of the stderr pipe
    wake: tuple[int, int]  # the reader's wake-up pipe
    reader: _Reader | None


class FdCapture:
    """Everything written to fds 1 and 2, by anyone in the process, handed on as text lines.

    Why: gRPC's C core writes its log straight to fd 2, C extensions and ``os.write`` bypass
    ``sys.stdout``, child processes inherit fds 1 and 2, and daemon threads still write while
    the interpreter exits; all of these are below Python's streams, so only capturing the fds
    themselves keeps plain text off a stdout that Cloud Logging reads as one JSON object a line.

    How: ``install`` keeps duplicates of the original fds 1 and 2, makes fds 1 and 2 the write
    ends of two pipes, and starts one daemon thread (``THREAD_NAME``) that polls both read ends.
    It splits what it reads into lines (UTF-8, errors replaced; a trailing ``"\\r"`` dropped;
    longer than ``max_line`` characters: pieces of ``max_line``; a partial line without new
    bytes for ``idle_flush_s``: passed as a line) and calls ``on_line(stream, text)`` with
    stream ``"stdout"`` or ``"stderr"``. ``on_line`` runs on the reader thread only; what it
    raises is counted in ``callback_failures`` and otherwise ignored. It must write to
    ``output_fd`` (the original fd 1), never to fds 1/2 (its own lines would come back to it),
    and must not wait for a lock that a writer to fds 1/2 may hold while writing: once a pipe
    is full that writer waits for the reader.

    Fork: functions-framework imports our code in gunicorn's master and then forks the worker.
    Threads do not survive a fork, and the child's fds 1 and 2 are the same pipes, which the
    parent's reader keeps reading; a second reader in the child would split lines between two
    processes. So, in the child (``os.register_at_fork``), the capture gets a fresh lock and
    forgets the reader: ``install`` returns the same ``output_fd`` and starts nothing, ``drain``
    only waits (up to its timeout) until FIONREAD reports both pipes empty, i.e. the parent has
    read them. The parent's reader must outlive its children's writes (gunicorn's master waits
    for its workers). Lines written by parent and child at once may interleave within a line
    when a write is longer than PIPE_BUF (4 KiB) or a line is written in several pieces.

    Exit: an ``atexit`` hook flushes ``sys.stdout``/``sys.stderr``, points fds 1 and 2 at
    /dev/null and drains: everything written before that is handed on, and anything written
    afterwards (a daemon thread at shutdown) is lost; it never reaches the real stream as
    plain text, and it never blocks the exit on a pipe nobody reads any more.
    """

    def __init__(
        self,
        on_line: Callable[[str, str], None],
        *,
        idle_flush_s: float = 0.2,
        max_line: int = 16_000,
    ) -> None:
        if not idle_flush_s > 0:
            raise ValueError(f"idle_flush_s must be positive, not {idle_flush_s!r}")
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line!r}")
        self.callback_failures = 0
        """How many calls of on_line raised (the line is dropped, the reader goes on)."""
        self._on_line = on_line
        self._idle_flush_s = idle_flush_s
        self._max_line = max_line
        self._lock = threading.Lock()
        self._state: _Installed | None = None
        _LIVE.add(self)

    @property
    def output_fd(self) -> int | None:
        """The duplicate of the original fd 1 (the caller writes there) if installed, else None."""
        state = self._state
        return None if state is None else state.out

    def install(self) -> int:
        """Capture fds 1 and 2 (see the class); return ``output_fd``. Again: the same fd, no change.

        Duplicates the original fds 1 and 2 (kept open), starts the reader over two new pipes,
        makes fds 1 and 2 the pipes' write ends, switches ``sys.stdout``/``sys.stderr`` to line
        buffering (when they are ``io.TextIOWrapper``s), and registers the exit hook. Text that
        Python's streams still buffer from before goes to the pipes too.
        """
        with self._lock:
            if self._state is not None:
                return self._state.out
            with contextlib.ExitStack() as undo:
                opened: list[int] = []
                undo.callback(_close_all, opened)
                opened.append(os.dup(1))
                opened.append(os.dup(2))
                for _ in range(3):
                    opened.extend(os.pipe())
                out, err, out_r, out_w, err_r, err_w, wake_r, wake_w = opened
                os.set_blocking(wake_r, False)
                os.set_blocking(wake_w, False)
                splitters = [
                    _Splitter("stdout", out_r, self._max_line),
                    _Splitter("stderr", err_r, self._max_line),
                ]
                reader = _Reader(splitters, (wake_r, wake_w), self._deliver, self._idle_flush_s)
                reader.start()
                undo.callback(reader.stop, _JOIN_S)  # runs before the fds close
                undo.callback(os.dup2, out, 1)  # and, before that, the originals come back
                undo.callback(os.dup2, err, 2)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                undo.pop_all()
            _close_all([out_w, err_w])  # fds 1 and 2 are now the write ends
            self._state = _Installed(out, err, (out_r, err_r), (wake_r, wake_w), reader)
            _line_buffer_std()
            atexit.register(self._at_exit)
            return out

    def drain(self, timeout_s: float = 1.0) -> None:
        """Wait (at most timeout_s) until what fds 1 and 2 got so far is handed to on_line.

        The reader takes the request, reads what FIONREAD then shows in each pipe, passes a
        last partial line as a line, and reports its progress. In a forked child (no reader
        here): until FIONREAD shows both pipes empty, i.e. read by the parent's reader. Returns
        at once on the reader thread itself (it cannot wait for itself) and when not installed.
        Safe from any thread; never raises.
        """
        state = self._state
        if state is None:
            return
        reader = state.reader
        if reader is None:
            deadline = time.monotonic() + timeout_s
            while sum(map(_unread, state.read_ends)) > 0 and time.monotonic() < deadline:
                time.sleep(_CHILD_POLL_S)
        elif threading.current_thread() is not reader.thread:
            reader.caught_up(timeout_s)

    def uninstall(self) -> None:
        """For tests: hand on what is left and put the original fds 1 and 2 back.

        Flushes ``sys.stdout``/``sys.stderr``, drains, restores fds 1 and 2, stops the reader,
        closes the pipes and the duplicates, unregisters the exit hook. Not installed: no-op.
        A reader still stuck in on_line after a few seconds keeps its pipes (they leak rather
        than close under it).
        """
        with self._lock:
            state = self._state
            if state is None:
                return
            _flush_std()
            self.drain()
            os.dup2(state.out, 1)
            os.dup2(state.err, 2)
            stopped = state.reader is None or state.reader.stop(_JOIN_S)
            pipes = [*state.read_ends, *state.wake] if stopped else []
            _close_all([state.out, state.err, *pipes])
            atexit.unregister(self._at_exit)
            self._state = None

    def _deliver(self, stream: str, text: str) -> None:
        try:
            self._on_line(stream, text)
        except BaseException:  # noqa: BLE001  # no failure of a callback may end the reader
            self.callback_failures += 1

    def _at_exit(self) -> None:
        _flush_std()
        # The original fds are never restored here: a daemon thread still writing after the
        # drain would put plain text on the real stream. Its bytes are lost instead. Pointing
        # fds 1 and 2 at /dev/null (rather than leaving the pipes) also keeps such a writer
        # from filling a pipe nobody reads once the interpreter stops the reader thread: it
        # would block holding sys.stdout's lock, and the final flush of sys.stdout would then
        # end the process with "Fatal Python error: could not acquire lock". What was written
        # before this point is in the pipes, and the drain hands it on.
        _retire_std_fds()
        self.drain(_EXIT_DRAIN_S)

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh lock; the parent's reader (gone here) keeps the pipes."""
        self._lock = threading.Lock()
        if self._state is not None:
            self._state.reader = None


_LIVE: weakref.WeakSet[FdCapture] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for capture in list(_LIVE):
        capture.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
