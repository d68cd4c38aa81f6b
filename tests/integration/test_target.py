"""The database every ops command works on is named (issue 24, item 2): none named is a refusal,
the one used is said on stderr, a connection is bounded in time and retried at most once, and a
failed one names host, port, database and user, never the password (exit 4)."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from certexpiry.retry import DEFAULT_RETRY
from certexpiry_ops.cli import main
from certexpiry_ops.console import CliIO
from tests.leak_plugin import register_lines, register_secret

PASSWORD = "target-s3cret-pw"


def invoke(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(list(args), cli_io=CliIO(stdout=stdout, stderr=stderr))
    register_lines(stdout.getvalue().splitlines(), f"target {' '.join(args[:2])} [stdout]")
    register_lines(stderr.getvalue().splitlines(), f"target {' '.join(args[:2])} [stderr]")
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(autouse=True)
def no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """No database named in the environment; each test names its own."""
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "PGCONNECT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CERTEXPIRY_CONNECT_TIMEOUT", raising=False)


@dataclass
class Server:
    """A TCP server on loopback that accepts connections and then either never answers (a host
    that hangs) or closes them at once (a refused session); it counts what it accepted."""

    close_at_once: bool
    accepted: int = 0
    port: int = 0
    held: list[socket.socket] = field(default_factory=list)

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            self.accepted += 1
            if self.close_at_once:
                conn.close()
            else:
                self.held.append(conn)


def _server(close_at_once: bool) -> Iterator[Server]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = Server(close_at_once, port=listener.getsockname()[1])
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        # close() alone leaves the thread blocked in accept() on Linux; shutdown() wakes it.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in server.held:
            conn.close()
        thread.join(timeout=5)


@pytest.fixture
def hanging() -> Iterator[Server]:
    """A host that accepts TCP and never answers."""
    yield from _server(close_at_once=False)


@pytest.fixture
def closing() -> Iterator[Server]:
    """A host that accepts TCP and closes the connection at once."""
    yield from _server(close_at_once=True)


def _url(port: int) -> str:
    # sslmode=disable: one TCP connection per attempt (prefer would try twice)
    return f"postgresql://ops:{PASSWORD}@127.0.0.1:{port}/jobdb?sslmode=disable"


@pytest.mark.parametrize(
    "command",
    [
        ("check",),
        ("migrate",),
        ("run",),
        ("audit", "list"),
        ("plan",),
        ("nights",),
        ("seed",),
        ("remediate", "--ids", "00000000-0000-4000-8000-000000000001"),
        ("deliver",),
    ],
)
def test_without_a_named_database_every_command_refuses(command: tuple[str, ...]) -> None:
    """No DATABASE_URL, no SUPABASE_URL, no --demo: exit 2 and one line saying how to name one,
    before anything is started (no silent demo database)."""
    code, out, err = invoke(*command)
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("certexpiry: error: no database named: set DATABASE_URL")
    assert "--demo" in line


def test_demo_and_database_url_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """--demo with DATABASE_URL set names two databases: refused, saying how to choose."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops@db.example.com/x")
    code, _, err = invoke("check", "--demo")
    assert code == 2
    assert "--demo and DATABASE_URL both name a database" in err


@pytest.mark.parametrize("command", [("check",), ("migrate",)])
def test_a_host_that_never_answers_fails_within_the_timeout(
    hanging: Server, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that accepts the connection and never answers: the command says what it waits
    for, gives up after the connect timeout (not retried: the time is spent) and exits 4 naming
    host, port, database and user, never the password."""
    register_secret(PASSWORD)
    monkeypatch.setenv("DATABASE_URL", _url(hanging.port))
    code, out, err = invoke(*command, "--connect-timeout", "2")
    assert code == 4, err
    assert out == ""
    tried = f"the database at host 127.0.0.1, port {hanging.port}, database jobdb, user ops"
    lines = err.splitlines()
    assert lines[0] == f"certexpiry: using {tried} (DATABASE_URL); connect timeout 2 s"
    assert (
        lines[1] == f"certexpiry: waiting for {tried} (DATABASE_URL) to answer (gives up after 2 s)"
    )
    assert lines[-1].startswith("certexpiry: error: ")
    assert "the connection timed out (ConnectionTimeout)" in lines[-1]
    assert lines[-1].endswith(f"; {tried} (DATABASE_URL)")
    assert PASSWORD not in err
    assert hanging.accepted == 1  # a timed-out connection is not tried again


def test_the_connect_timeout_comes_from_the_environment(
    hanging: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CERTEXPIRY_CONNECT_TIMEOUT sets the bound when --connect-timeout does not; a value below
    libpq's floor of 2 s is a usage error."""
    monkeypatch.setenv("DATABASE_URL", _url(hanging.port))
    monkeypatch.setenv("CERTEXPIRY_CONNECT_TIMEOUT", "3")
    code, _, err = invoke("nights")
    assert code == 4
    assert "; connect timeout 3 s" in err.splitlines()[0]
    monkeypatch.setenv("CERTEXPIRY_CONNECT_TIMEOUT", "1")
    code, _, err = invoke("nights")
    assert code == 2
    assert "CERTEXPIRY_CONNECT_TIMEOUT must be a whole number of seconds, at least 2" in err
    assert invoke("nights", "--connect-timeout", "1")[0] == 2


def test_a_dropped_connection_is_retried_once(
    closing: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line tries a failed connection once more, not the function's four times."""
    monkeypatch.setenv("DATABASE_URL", _url(closing.port))
    code, _, err = invoke("check")
    assert code == 4, err
    assert closing.accepted == 2
    assert DEFAULT_RETRY.attempts == 4  # the deployed function keeps its own policy


def test_supabase_is_named_by_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """With SUPABASE_URL the target line names the project's host, never the key."""
    key = "sb_secret_" + "k" * 40
    register_secret(key)
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    code, _, err = invoke("audit", "list")
    assert code == 4
    assert err.splitlines()[0] == (
        "certexpiry: using the Supabase project at 127.0.0.1:9 (SUPABASE_URL); connect timeout 5 s"
    )
    assert key not in err
    code, _, err = invoke("migrate")
    assert code == 2
    assert "`migrate` needs a direct Postgres connection" in err


def test_a_working_target_is_named_once(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working target is named once, before the command's own output."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, out, err = invoke("nights", "--json")
    assert code == 0, err
    (line,) = err.splitlines()
    assert line.startswith("certexpiry: using the database at host ")
    assert out
