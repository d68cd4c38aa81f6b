"""Every command on a real terminal (`script` gives it a pseudo-terminal) prints for a person,
and piped prints JSON lines only; plus the small usability fixes of the console."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from certexpiry_ops.cli import main
from certexpiry_ops.console import CliIO
from certexpiry_ops.harness import ROOT
from tests.clock import OrgDay
from tests.integration.test_cli import FakeLoggingClient, _entry, refuse_two, seed
from tests.leak_plugin import register_lines

Conn = psycopg.Connection[Any]
Shell = Callable[..., tuple[int, str]]


def _env(database_url: str, org: OrgDay) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC")
    }
    env.update(DATABASE_URL=database_url, ORG_TIMEZONE=org.timezone, BATCH_SIZE="10", TERM="xterm")
    return env


@pytest.fixture
def terminal(database_url: str, org: OrgDay) -> Shell:
    """Run the CLI in a subprocess whose stdout and stderr are a pseudo-terminal; return its
    exit code and everything the terminal showed."""

    def run(*args: str) -> tuple[int, str]:
        command = shlex.join([sys.executable, "-m", "certexpiry", *args])
        done = subprocess.run(
            ["script", "-qefc", command, "/dev/null"],
            cwd=ROOT,
            env=_env(database_url, org),
            capture_output=True,
            text=True,
            timeout=300,
        )
        shown = done.stdout.replace("\r\n", "\n")
        register_lines(shown.splitlines(), f"terminal {' '.join(args[:2])}")
        return done.returncode, shown

    return run


@pytest.fixture
def piped(database_url: str, org: OrgDay) -> Shell:
    """Run the CLI in a subprocess with stdout a pipe; return its exit code and stdout."""

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "certexpiry", *args],
            cwd=ROOT,
            env=_env(database_url, org),
            capture_output=True,
            text=True,
            timeout=300,
        )
        register_lines(done.stdout.splitlines(), f"piped {' '.join(args[:2])}")
        register_lines(done.stderr.splitlines(), f"piped {' '.join(args[:2])} [stderr]")
        return done.returncode, done.stdout

    return run


def json_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines, "no output"
    assert all(isinstance(line, dict) for line in lines)
    return lines


def no_json(shown: str) -> None:
    assert not [line for line in shown.splitlines() if line.lstrip().startswith("{")], shown


@pytest.mark.long
def test_every_command_is_human_on_a_terminal_and_json_when_piped(
    terminal: Shell, piped: Shell, db: Conn, database_url: str, org: OrgDay
) -> None:
    """seed, migrate, plan, run (with its progress line), nights, check, audit list/show/resolve
    and remediate: a table or summary on a terminal, valid JSON lines piped; --json forces JSON
    on a terminal too."""
    code, shown = terminal("seed", "--mentors", "80")
    assert code == 0
    assert "Seeded 80 mentors" in shown
    no_json(shown)
    refuse_two(db, database_url, org)

    code, shown = terminal("migrate")
    assert (code, "Nothing to apply") == (
        0,
        shown[: len("Nothing to apply")] and "Nothing to apply",
    )
    assert "Nothing to apply" in shown
    no_json(shown)
    assert json_lines(piped("migrate")[1])[0]["applied"] == []

    code, shown = terminal("plan")
    assert code == 0
    assert "Plan for the night of" in shown
    assert "certifications paused" in shown
    no_json(shown)
    assert "certifications_paused" in json_lines(piped("plan")[1])[0]

    code, shown = terminal("run")
    assert code == 1  # the two refused pauses are missed
    assert "\x1b[K" in shown  # the progress line, rewritten in place
    assert "segment 0  batches" in shown
    assert "RUN_COMPLETED" in shown
    assert "completed: 1 segment(s)" in shown
    no_json(shown)
    found = re.search(r"Run ([0-9a-f-]{36}) completed", shown)
    assert found is not None, shown
    run_id = found.group(1)

    code, shown = terminal("nights", "--nights", "3")
    assert code == 0
    assert "NIGHT" in shown
    assert "unresolved" in shown  # completed, with the two refused pauses missed
    no_json(shown)
    assert json_lines(piped("nights", "--nights", "3")[1])[0]["run_id"] == run_id

    code, shown = terminal("check")
    assert code == 1
    assert "MISSED_AUTO_PAUSE" in shown
    no_json(shown)
    assert json_lines(piped("check")[1])[0]["error_code"] == "MISSED_AUTO_PAUSE"

    code, shown = terminal("audit", "list")
    assert code == 0
    assert "RUN AT (UTC)" in shown
    no_json(shown)
    assert json_lines(piped("audit", "list")[1])[0]["run_id"] == run_id

    code, shown = terminal("audit", "show", run_id)
    assert code == 1
    assert "STILL MISSED" in shown
    no_json(shown)
    assert json_lines(piped("audit", "show", run_id)[1])[0]["run_id"] == run_id

    code, shown = terminal("remediate", "--ids", str(uuid.uuid4()))
    assert code == 1
    assert "Remediated 0 of 1" in shown
    assert "1 of the 1 were left alone" in shown
    no_json(shown)
    assert "REMEDIATION_DONE" in {
        e["error_code"] for e in json_lines(piped("remediate", "--ids", str(uuid.uuid4()))[1])
    }

    code, shown = terminal("audit", "resolve", run_id, "--force")
    assert code == 0
    assert "resolved" in shown
    no_json(shown)

    code, shown = terminal("nights", "--nights", "2", "--json")  # --json wins on a terminal
    assert code == 0
    named, *rest = shown.splitlines()  # stderr shares the terminal: the target comes first
    assert named.startswith("certexpiry: using the database at host "), named
    json_lines("\n".join(rest))


class _Tty(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_logs_on_a_terminal_renders_one_line_per_entry() -> None:
    """`logs` shows timestamp, severity, code and message per entry on a terminal."""
    run_id = str(uuid.uuid4())
    client = FakeLoggingClient(
        [_entry(1, "RUN_STARTED", run_id), _entry(2, "RUN_COMPLETED", run_id)]
    )
    out, err = _Tty(), _Tty()
    code = main(
        ["logs", run_id], cli_io=CliIO(stdout=out, stderr=err, logging_client=lambda p: client)
    )
    assert code == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("2026-11-28T01:00:01")
    assert "RUN_STARTED" in lines[0]
    no_json(out.getvalue())


def test_logs_names_a_missing_credentials_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS pointing nowhere is named as such, not as missing login."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent.json")
    err = io.StringIO()
    code = main(["logs", str(uuid.uuid4())], cli_io=CliIO(stdout=io.StringIO(), stderr=err))
    assert code == 2
    assert "'/nonexistent.json', which is not a file" in err.getvalue()


def test_an_unmigrated_database_points_to_migrate(
    pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a database the migrations never reached, commands say to run migrate."""
    name = f"u_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        from psycopg.conninfo import make_conninfo

        monkeypatch.setenv("DATABASE_URL", make_conninfo(pg_admin_url, dbname=name))
        for command in (["check"], ["audit", "list"], ["run"], ["plan"], ["nights"]):
            err = io.StringIO()
            assert main(command, cli_io=CliIO(stdout=io.StringIO(), stderr=err)) == 4, command
            assert "certexpiry migrate" in err.getvalue(), (command, err.getvalue())
            assert f"database {name}, user postgres (DATABASE_URL)" in err.getvalue()
            assert '"?"' not in err.getvalue()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_a_refused_supabase_connection_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """With SUPABASE_URL, a connection that is refused names the host it tried."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SUPABASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "k" * 40)
    err = io.StringIO()
    assert main(["audit", "list"], cli_io=CliIO(stdout=io.StringIO(), stderr=err)) == 4
    assert "127.0.0.1:9" in err.getvalue()


def _hold_tonight(db: Conn, org: OrgDay, seconds: int) -> str:
    """Claim tonight's run as a live invocation elsewhere would, with a short lease."""
    run_id = str(uuid.uuid4())
    row = db.execute(
        "select public.claim_nightly_run(%s, %s, %s) ->> 'outcome'", (run_id, org.timezone, seconds)
    ).fetchone()
    assert row == ("started",)
    return run_id


def test_run_waits_out_a_held_lease_with_one_countdown_line(
    terminal: Shell, db: Conn, org: OrgDay
) -> None:
    """While another invocation holds tonight's run, `run` shows one line counting down to the
    lease's end (no stream of RUN_BUSY lines), then takes the run over and follows its real
    segment."""
    seed(db, org, mentors=30)
    held = _hold_tonight(db, org, 6)  # outlasts the CLI's start on a loaded machine
    code, shown = terminal("run")
    assert code == 0, shown
    assert f"waiting: tonight's run {held} (segment 0) is held by another invocation" in shown
    assert "lease ends in 1 s" in shown
    assert "RUN_BUSY" not in shown
    assert "RUN_RESUMED" in shown
    assert "\x1b[Ksegment 1  batches" in shown  # the progress line follows the resumed segment
    assert f"Run {held} completed" in shown


def test_run_piped_logs_one_run_busy_per_wait(piped: Shell, db: Conn, org: OrgDay) -> None:
    """Piped, the wait leaves one RUN_BUSY line, then the run resumes and completes."""
    _hold_tonight(db, org, 6)
    code, out = piped("run")
    assert code == 0
    codes = [entry["error_code"] for entry in json_lines(out)]
    assert codes.count("RUN_BUSY") == 1
    assert codes[codes.index("RUN_BUSY") + 1] == "RUN_RESUMED"
    assert codes[-1] == "RUN_COMPLETED"
