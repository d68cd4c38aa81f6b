"""certexpiry.log._fd.FdCapture: every byte written to fds 1 and 2 comes back as a text line.

In-process tests install the capture over whatever pytest has on fds 1 and 2 (its capture
files, or the terminal with -s) and uninstall it afterwards, which puts those back; they write
with ``os.write`` (pytest points ``sys.stdout`` at its own file, not at fd 1). They use the
public interface only: the exit hook is the function install hands to ``atexit.register``, the
fork hook is ``after_fork_in_child``. The end-to-end promises (print, C-level writes, a shell
child, a daemon thread at exit, fork) are checked on real child processes that load ``_fd.py``
by path, so they need nothing else of certexpiry.
"""

from __future__ import annotations

import ast
import atexit
import errno
import inspect
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certexpiry.log._fd import THREAD_NAME, FdCapture

DEADLINE_S = 30.0  # generous: only how long a test waits for something that should arrive
MODULE_PATH = Path(inspect.getfile(FdCapture))


class Lines:
    """An on_line callback that records (stream, text) pairs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        with self._lock:
            self.items.append((stream, text))

    def texts(self, stream: str | None = None) -> list[str]:
        with self._lock:
            return [text for name, text in self.items if stream in (None, name)]

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"never arrived: {what}; got {self.items!r}")
            time.sleep(0.01)


def identity(fd: int) -> tuple[int, int]:
    """What file an fd is (device, inode)."""
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


def open_fds() -> set[int]:
    """The fds open in this process (the one that listed /proc/self/fd is closed again)."""
    listed = {int(name) for name in os.listdir("/proc/self/fd")}
    return {fd for fd in listed if is_open(fd)}


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def lines() -> Lines:
    return Lines()


def install_keeping_the_exit_hook(
    capture: FdCapture, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], None]:
    """Install; return the exit hook install registered, kept from atexit to be called here."""
    hooks: list[Callable[[], None]] = []
    with monkeypatch.context() as patch:
        patch.setattr(atexit, "register", hooks.append)
        capture.install()
    (hook,) = hooks
    return hook


@pytest.fixture
def make_capture() -> Iterator[Callable[..., FdCapture]]:
    """FdCapture's constructor; every capture made is uninstalled after the test."""
    made: list[FdCapture] = []

    def make(on_line: Callable[[str, str], None], **options: Any) -> FdCapture:
        capture = FdCapture(on_line, **options)
        made.append(capture)
        return capture

    yield make
    for capture in made:
        capture.uninstall()


# --- in-process: lines, streams, splitting -------------------------------------------------


def test_bytes_written_to_fds_1_and_2_come_back_as_lines_of_their_stream(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines)
    capture.install()
    os.write(1, b"one\ntwo\n")
    os.write(2, b"err one\n")
    capture.drain(DEADLINE_S)
    assert lines.texts("stdout") == ["one", "two"]
    assert lines.texts("stderr") == ["err one"]


def test_no_captured_byte_reaches_the_original_fds_and_output_fd_is_the_original_fd_1(
    lines: Lines, make_capture: Callable[..., FdCapture], capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    capture = make_capture(lines)
    output = capture.install()
    os.write(1, b"captured stdout\n")
    os.write(2, b"captured stderr\n")
    os.write(output, b"the caller's own line\n")
    capture.drain(DEADLINE_S)
    capture.uninstall()
    seen = capfd.readouterr()
    assert seen.out == "the caller's own line\n"
    assert seen.err == ""
    assert lines.items == [("stdout", "captured stdout"), ("stderr", "captured stderr")]


def test_a_process_started_with_inherited_fds_is_captured_too(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines)
    capture.install()
    subprocess.run(["sh", "-c", "echo from a child; echo child error >&2"], check=True)
    capture.drain(DEADLINE_S)
    assert lines.texts("stdout") == ["from a child"]
    assert lines.texts("stderr") == ["child error"]


def test_drain_passes_a_partial_line_as_a_line(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines, idle_flush_s=600)
    capture.install()
    os.write(1, b"no newline")
    capture.drain(DEADLINE_S)
    assert lines.items == [("stdout", "no newline")]


def test_a_partial_line_left_idle_is_passed_as_a_line_without_any_drain(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines, idle_flush_s=0.05)
    capture.install()
    os.write(2, b"half a line")
    lines.wait_for(lambda: lines.items == [("stderr", "half a line")], "the idle partial line")


def test_carriage_returns_empty_lines_and_invalid_utf8(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines, idle_flush_s=600)
    capture.install()
    os.write(1, b"dos\r\n\n\xff ok\ncaf\xc3")
    os.write(1, b"\xa9\n")
    capture.drain(DEADLINE_S)
    assert lines.texts() == ["dos", "", "\ufffd ok", "caf\u00e9"]


def test_a_line_longer_than_max_line_comes_in_pieces_even_before_its_newline(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines, idle_flush_s=600, max_line=5)
    capture.install()
    os.write(1, b"abcdefghijkl\n")
    capture.drain(DEADLINE_S)
    assert lines.texts() == ["abcde", "fghij", "kl"]
    os.write(1, b"mnopqrstuvw")  # 11 characters, no newline, no drain, no idle flush
    lines.wait_for(lambda: lines.texts()[3:] == ["mnopq", "rstuv"], "the full pieces")
    capture.drain(DEADLINE_S)
    assert lines.texts()[3:] == ["mnopq", "rstuv", "w"]


def test_piece_boundaries_and_partial_lines_passed_on_at_a_drain(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    capture = make_capture(lines, idle_flush_s=600, max_line=3)
    capture.install()
    drained_after = [
        [b"abc\n"],  # exactly max_line: one piece, nothing left to pass on at the drain
        [b"abcd", b"\r\n"],  # a piece goes on before its newline, the rest without its "\r"
        [b"x\xe2\x82"],  # a partial line ending in an unfinished character
        [b"\xc3"],  # nothing but an unfinished character
        [b"\r"],  # a partial line that is only "\r"
        [],  # nothing pending: no line
    ]
    for writes in drained_after:
        for data in writes:
            os.write(1, data)
        capture.drain(DEADLINE_S)
    assert lines.texts() == ["abc", "abc", "d", "x\ufffd", "\ufffd", ""]


# --- in-process: callback failures, drain, install/uninstall --------------------------------


def test_a_failing_callback_is_counted_and_the_reader_goes_on(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    def on_line(stream: str, text: str) -> None:
        if text == "boom":
            raise RuntimeError(text)
        if text == "exit":
            raise SystemExit(3)
        lines(stream, text)

    capture = make_capture(on_line)
    capture.install()
    os.write(1, b"boom\nexit\nafter\n")
    capture.drain(DEADLINE_S)
    assert capture.callback_failures == 2
    assert lines.texts() == ["after"]
    assert [thread.is_alive() for thread in readers()] == [True]


def test_drain_covers_the_bytes_still_in_the_pipe_behind_a_busy_callback(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    entered, release = threading.Event(), threading.Event()

    def on_line(stream: str, text: str) -> None:
        lines(stream, text)
        if text == "hold":
            entered.set()
            release.wait(DEADLINE_S)

    capture = make_capture(on_line, idle_flush_s=600)
    capture.install()
    os.write(1, b"hold\n")
    assert entered.wait(DEADLINE_S)
    os.write(1, b"queued\nqueued partial")
    capture.drain(0.01)  # the request stays registered although this call gives up
    assert lines.texts() == ["hold"]
    release.set()
    capture.drain(DEADLINE_S)
    assert lines.texts() == ["hold", "queued", "queued partial"]


def test_drain_on_the_reader_thread_returns_at_once(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    def on_line(stream: str, text: str) -> None:
        if text == "drain me":
            capture.drain(timeout_s=600)  # waiting for itself would take the full 600 s
            lines(stream, "drained")

    capture = make_capture(on_line)
    capture.install()
    os.write(1, b"drain me\n")
    lines.wait_for(lambda: lines.texts() == ["drained"], "the callback's return from drain")


def test_drain_and_uninstall_are_no_ops_when_not_installed(lines: Lines) -> None:
    capture = FdCapture(lines)
    before = identity(1)
    capture.drain()
    capture.uninstall()
    assert capture.output_fd is None
    assert identity(1) == before


def test_install_again_changes_nothing_and_uninstall_puts_the_original_fds_back(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    before = identity(1), identity(2)
    capture = make_capture(lines)
    output = capture.install()
    assert (identity(1), identity(2)) != before
    assert identity(output) == before[0]
    assert capture.install() == output
    assert capture.output_fd == output
    assert [(thread.daemon, thread.is_alive()) for thread in readers()] == [(True, True)]
    capture.uninstall()
    assert (identity(1), identity(2)) == before
    assert capture.output_fd is None
    assert readers() == []
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(output)
    capture.uninstall()  # again: nothing
    capture.install()  # and a second installation works like the first
    os.write(1, b"second round\n")
    capture.drain(DEADLINE_S)
    assert lines.texts() == ["second round"]


def test_uninstall_hands_on_what_was_left_in_the_pipes_while_output_fd_is_open(
    make_capture: Callable[..., FdCapture], capfd: pytest.CaptureFixture[str]
) -> None:
    """on_line writes to output_fd, as the logger does: the last lines must still get there."""

    def on_line(stream: str, text: str) -> None:
        os.write(output, f"{stream}: {text}\n".encode())

    capfd.readouterr()
    capture = make_capture(on_line, idle_flush_s=600)
    output = capture.install()
    os.write(1, b"complete\npartial at uninstall")
    os.write(2, b"partial error")
    capture.uninstall()
    assert sorted(capfd.readouterr().out.splitlines()) == [
        "stderr: partial error",
        "stdout: complete",
        "stdout: partial at uninstall",
    ]


def test_python_text_streams_are_switched_to_line_buffering(
    lines: Lines, make_capture: Callable[..., FdCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper = io.TextIOWrapper(io.BytesIO(), line_buffering=False)
    closed = io.TextIOWrapper(io.BytesIO())
    closed.close()
    monkeypatch.setattr(sys, "stdout", wrapper)
    monkeypatch.setattr(sys, "stderr", closed)  # reconfigure and flush raise: ignored
    capture = make_capture(lines)
    capture.install()
    assert wrapper.line_buffering
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # no reconfigure at all
    monkeypatch.setattr(sys, "stderr", None)  # as under pythonw
    capture.uninstall()
    capture.install()
    capture.uninstall()
    assert capture.output_fd is None


def test_install_and_uninstall_leave_no_fd_behind(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    before = open_fds()
    capture = make_capture(lines)
    capture.install()
    assert len(open_fds() - before) == 6  # the originals' duplicates, read ends, wake-up pipe
    os.write(2, b"in flight\n")
    capture.uninstall()
    assert open_fds() == before
    assert lines.texts() == ["in flight"]


def test_an_install_that_fails_leaves_no_fd_open_and_fds_1_and_2_as_they_were(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pipe, made = os.pipe, list[tuple[int, int]]()

    def pipe() -> tuple[int, int]:
        if len(made) == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        made.append(real_pipe())
        return made[-1]

    before = open_fds(), identity(1), identity(2)
    monkeypatch.setattr(os, "pipe", pipe)
    capture = FdCapture(lines)
    with pytest.raises(OSError, match="Too many open files"):
        capture.install()
    assert (open_fds(), identity(1), identity(2)) == before
    assert capture.output_fd is None
    assert readers() == []


def test_uninstall_leaves_a_reader_stuck_in_its_callback_to_end_and_close_its_pipes_itself(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    entered, release = threading.Event(), threading.Event()

    def on_line(stream: str, text: str) -> None:
        entered.set()
        release.wait(DEADLINE_S)
        lines(stream, text)

    before, fds_before = identity(1), open_fds()
    capture = make_capture(on_line)
    capture.install()
    os.write(1, b"stuck\n")
    assert entered.wait(DEADLINE_S)
    capture.drain(0.01)  # returns at its timeout although the reader is busy
    capture.uninstall()  # waits a moment for the reader, then leaves it
    assert identity(1) == before
    assert capture.output_fd is None
    (reader,) = readers()
    left = open_fds() - fds_before
    assert len(left) == 3  # the read ends and the wake-up pipe's: not closed under the reader
    assert all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in left)
    release.set()
    reader.join(DEADLINE_S)
    assert not reader.is_alive()
    assert lines.texts() == ["stuck"]
    assert open_fds() == fds_before  # the reader closed them as it ended


# --- in-process: the fork hook and the exit hook --------------------------------------------


def test_after_fork_the_child_reads_nothing_and_drain_waits_for_the_parents_reader(
    lines: Lines, make_capture: Callable[..., FdCapture]
) -> None:
    """os.fork's child handler, run in this process: the thread already running stands for the
    parent's reader (which keeps reading the shared pipes); the capture is now the child's."""
    entered, release = threading.Event(), threading.Event()

    def on_line(stream: str, text: str) -> None:
        lines(stream, text)
        if text == "hold":
            entered.set()
            release.wait(DEADLINE_S)

    before = identity(1)
    idle = FdCapture(lines)  # a capture that is not installed takes the hook as well
    capture = make_capture(on_line, idle_flush_s=600)
    output = capture.install()
    (parents_reader,) = readers()
    os.write(1, b"hold\n")
    assert entered.wait(DEADLINE_S)

    idle.after_fork_in_child()
    capture.after_fork_in_child()
    assert idle.output_fd is None
    assert capture.install() == output
    assert readers() == [parents_reader]  # no second reader
    os.write(1, b"written by the child\n")
    os.write(2, b"partial line of the child")
    capture.drain(0.05)  # the parent's reader is held: the bytes wait in the pipe
    assert lines.texts() == ["hold"]
    release.set()
    capture.drain(DEADLINE_S)  # until the pipes are empty (a partial line is not waited for)
    lines.wait_for(lambda: "written by the child" in lines.texts(), "the child's line")

    # The child's uninstall puts fds 1 and 2 back and closes its copy of the wake-up pipe's write
    # end: here, in one process, that ends the "parent's" reader too, which hands on the rest.
    capture.uninstall()
    parents_reader.join(DEADLINE_S)
    assert not parents_reader.is_alive()
    assert lines.texts() == ["hold", "written by the child", "partial line of the child"]
    assert identity(1) == before
    assert capture.output_fd is None


def test_the_exit_hook_hands_on_everything_then_discards_later_bytes(
    lines: Lines, make_capture: Callable[..., FdCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = identity(1), identity(2)
    capture = make_capture(lines, idle_flush_s=600)
    at_exit = install_keeping_the_exit_hook(capture, monkeypatch)
    os.write(1, b"last words without newline")
    os.write(2, b"last error\n")
    at_exit()
    assert sorted(lines.items) == [
        ("stderr", "last error"),
        ("stdout", "last words without newline"),
    ]
    devnull = os.stat(os.devnull)
    assert identity(1) == identity(2) == (devnull.st_dev, devnull.st_ino)
    os.write(1, b"after the exit drain\n")
    capture.drain(DEADLINE_S)
    assert "after the exit drain" not in lines.texts()
    capture.uninstall()
    assert (identity(1), identity(2)) == before


def test_the_exit_hook_without_dev_null_leaves_the_pipes(
    lines: Lines,
    make_capture: Callable[..., FdCapture],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    capture = make_capture(lines)
    at_exit = install_keeping_the_exit_hook(capture, monkeypatch)
    captured = identity(1)
    monkeypatch.setattr(os, "devnull", str(tmp_path / "missing" / "null"))
    at_exit()
    assert identity(1) == captured
    os.write(1, b"still in the pipe\n")
    capture.drain(DEADLINE_S)
    assert lines.texts() == ["still in the pipe"]


def test_the_module_imports_the_standard_library_only() -> None:
    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "os" in imported
    assert {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names} == set()


# --- real processes --------------------------------------------------------------------------

PRELUDE = """
import importlib.util, json, os, sys, threading

spec = importlib.util.spec_from_file_location("fd_under_test", MODULE_PATH)
fd_module = importlib.util.module_from_spec(spec)
sys.modules["fd_under_test"] = fd_module
spec.loader.exec_module(fd_module)


def on_line(stream, text):
    entry = {"stream": stream, "text": text, "pid": os.getpid()}
    os.write(output, (json.dumps(entry) + "\\n").encode())
    if text == WAITED_FOR:
        arrived.set()


arrived = threading.Event()
capture = fd_module.FdCapture(on_line)
output = capture.install()
"""


def run_child(body: str, waited_for: str = "") -> tuple[list[dict[str, Any]], int]:
    """Run PRELUDE + body in a new interpreter; its stdout as JSON entries, its exit status.

    Fails unless every byte of the child's real stdout is a JSON line and its stderr is empty.
    """
    script = (
        f"MODULE_PATH = {str(MODULE_PATH)!r}\nWAITED_FOR = {waited_for!r}\n"
        + PRELUDE
        + textwrap.dedent(body)
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, timeout=120, check=False
    )
    assert done.stderr == b""
    assert done.stdout.endswith(b"\n")
    entries = [json.loads(line) for line in done.stdout.decode("utf-8").split("\n")[:-1]]
    assert all(set(entry) == {"stream", "text", "pid"} for entry in entries)
    return entries, done.returncode


def test_a_real_process_writes_nothing_but_the_callbacks_json_lines() -> None:
    entries, status = run_child(
        """
        import ctypes, logging, time

        print("printed to stdout")
        print("printed to stderr", file=sys.stderr)
        os.write(1, b"os.write to fd 1\\n")
        os.write(2, b"os.write to fd 2\\n")
        c_line = b"libc write to fd 2\\n"
        ctypes.CDLL(None).write(2, c_line, len(c_line))
        os.system("echo from a shell child")
        logging.warning("through logging")
        started = threading.Event()

        def write_forever():
            number = 0
            while True:
                os.write(2, b"daemon line %d\\n" % number)
                number += 1
                started.set()
                time.sleep(0.001)

        threading.Thread(target=write_forever, daemon=True).start()
        started.wait(30)
        sys.stdout.write("last words without newline")
        """
    )
    assert status == 0
    pairs = {(entry["stream"], entry["text"]) for entry in entries}
    for expected in [
        ("stdout", "printed to stdout"),
        ("stderr", "printed to stderr"),
        ("stdout", "os.write to fd 1"),
        ("stderr", "os.write to fd 2"),
        ("stderr", "libc write to fd 2"),
        ("stdout", "from a shell child"),
        ("stderr", "WARNING:root:through logging"),
        ("stderr", "daemon line 0"),
        ("stdout", "last words without newline"),
    ]:
        assert expected in pairs
    daemon = [text for stream, text in pairs if text.startswith("daemon line ")]
    assert all(text.removeprefix("daemon line ").isdigit() for text in daemon)
    assert len({entry["pid"] for entry in entries}) == 1


def test_a_real_process_traceback_at_exit_arrives_as_lines() -> None:
    entries, status = run_child('raise RuntimeError("escaped the program")\n')
    assert status == 1
    stderr = [entry["text"] for entry in entries if entry["stream"] == "stderr"]
    assert stderr[0] == "Traceback (most recent call last):"
    assert stderr[-1] == "RuntimeError: escaped the program"


def test_a_forked_childs_writes_are_read_by_the_parents_reader() -> None:
    entries, status = run_child(
        """
        pid = os.fork()
        if pid == 0:
            def count():
                return sum(t.name == fd_module.THREAD_NAME for t in threading.enumerate())

            before = count()
            same = capture.install() == output
            print(f"child {os.getpid()}: readers {before} {count()}, same fd {same}")
            os.write(2, b"child wrote to fd 2\\n")
            capture.drain(600)  # without the fork hook: a wait for a reader not here
            sys.stdout.write("child's last words")
            sys.exit(0)
        _, child_status = os.waitpid(pid, 0)
        came = arrived.wait(60)
        print(f"parent {os.getpid()}: child {pid} status {child_status}, last words {came}")
        """,
        waited_for="child's last words",
    )
    assert status == 0
    (parent_line,) = [e["text"] for e in entries if e["text"].startswith("parent ")]
    parent, _, rest = parent_line.removeprefix("parent ").partition(": child ")
    child = rest.split(" ")[0]
    assert rest == f"{child} status 0, last words True"
    assert sorted((entry["stream"], entry["text"]) for entry in entries) == [
        ("stderr", "child wrote to fd 2"),
        ("stdout", f"child {child}: readers 0 0, same fd True"),
        ("stdout", "child's last words"),
        ("stdout", parent_line),
    ]
    assert {entry["pid"] for entry in entries} == {int(parent)}
