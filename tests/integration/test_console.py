"""The ops console's promises (issue 24): one exit code per meaning, each produced here by a real
command on a real database; a broken pipe ends quietly with 141; --json anywhere on the line;
an example in every command's --help."""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from certexpiry_ops import cli
from certexpiry_ops.console import CliIO
from certexpiry_ops.parser import build_parser, output_options_last
from certexpiry_ops.usage import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_MISSED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.clock import OrgDay
from tests.integration.test_cli import Cli, errors_only, invoke, refuse_two, seed

Conn = psycopg.Connection[tuple[object, ...]]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_on(database_url: str, org: OrgDay, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI in process on the test's database (DATABASE_URL), in the organisation's zone."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
    return invoke


def test_exit_0_ok_and_1_missed_auto_pauses(
    cli_on: Cli, database_url: str, db: Conn, org: OrgDay
) -> None:
    """0: `check` with nothing expired, a view; 1: `run` and `check` while missed auto-pauses
    remain."""
    assert cli_on("check").code == EXIT_OK
    seed(db, org)
    assert cli_on("audit", "list").code == EXIT_OK
    refuse_two(db, database_url, org)
    assert cli_on("run").code == EXIT_MISSED
    assert cli_on("check").code == EXIT_MISSED


def test_exit_2_usage(cli_on: Cli) -> None:
    """2: a bad argument, no command, a bad setting: said on stderr."""
    bad = cli_on("audit", "show", "not-a-uuid")
    assert bad.code == EXIT_USAGE
    assert "RUN_ID must be a UUID" in bad.err
    assert cli_on().code == EXIT_USAGE
    assert cli_on("plan", "--ids", "many").code == EXIT_USAGE


def test_exit_3_not_found_for_an_unknown_run(cli_on: Cli) -> None:
    """3: `audit show`, `audit resolve` and `remediate` of a run that has no audit row."""
    unknown = str(uuid.uuid4())
    for command in (("audit", "show"), ("audit", "resolve"), ("remediate",)):
        result = cli_on(*command, unknown)
        assert result.code == EXIT_NOT_FOUND, (command, result.err)
        assert errors_only(result.err).startswith(
            f"certexpiry: error: no audit row for run {unknown}"
        )


def test_exit_4_when_the_database_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    """4: nothing listens at DATABASE_URL's address (the command could not do its work)."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/postgres")
    result = invoke("migrate")
    assert result.code == EXIT_FAILED
    assert "nothing listens at the database's address" in result.err


def test_an_install_without_the_checkout_says_how_to_install(
    cli_on: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A non-editable install has no supabase/ beside it: exit 2 with the README's install, not
    a FileNotFoundError from the first migration read."""
    monkeypatch.setattr(cli, "MIGRATIONS_DIR", tmp_path / "supabase" / "migrations")
    result = cli_on("audit", "list")
    assert result.code == EXIT_USAGE
    assert "pip install -e '.[ops]'" in result.err


@pytest.fixture
def many_audit_rows(db: Conn) -> None:
    """A thousand audit rows: `audit list --limit 1000 --json` prints far more than a pipe
    holds, so a reader that stops after one line leaves the writer writing into a closed pipe."""
    db.execute(
        "insert into public.cron_audit_log (run_id, run_at, missed_pause_count, missed_ids,"
        " totals) select gen_random_uuid(), now() - n * interval '1 day', 0, '[]',"
        ' \'{"reminders_queued": 1234, "certifications_paused": 56, "mentors_paused": 7}\''
        " from generate_series(1, 1000) n"
    )


def test_a_broken_pipe_ends_quietly_with_141(
    many_audit_rows: None, database_url: str, org: OrgDay
) -> None:
    """`certexpiry audit list ... | head -1`: the first line reaches head; the command then ends
    with 141 and nothing on stderr but the target's line (no `[Errno 32] Broken pipe`, no
    traceback)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    env.update(DATABASE_URL=database_url, ORG_TIMEZONE=org.timezone)
    command = [sys.executable, "-m", "certexpiry", "audit", "list", "--limit", "1000", "--json"]
    writer = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert writer.stdout is not None
    assert writer.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # head holds the only read end
    first, _ = head.communicate(timeout=120)
    err = writer.stderr.read()
    assert writer.wait(timeout=120) == EXIT_BROKEN_PIPE, err
    assert errors_only(err.decode()) == ""
    assert json.loads(first)["run_id"]


class _ClosedPipe(io.StringIO):
    """A stdout whose reader has gone: every write fails as a pipe's does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_command_whose_reader_left_finishes_its_work_and_exits_141(
    cli_on: Cli, database_url: str, db: Conn, org: OrgDay
) -> None:
    """Log lines (run, check) and results (plan, audit list) into a closed pipe: 141, nothing on
    stderr; `run` still does the whole night (a sweep is not cut short by its reader)."""
    seed(db, org)
    for command in (["run", "--json"], ["check", "--format", "text"], ["plan"], ["audit", "list"]):
        err = io.StringIO()
        code = cli.main(command, cli_io=CliIO(stdout=_ClosedPipe(), stderr=err))
        assert (code, errors_only(err.getvalue())) == (EXIT_BROKEN_PIPE, ""), command
    status = db.execute("select status from public.cron_audit_log").fetchall()
    assert status == [("completed",)]
    assert cli_on("check").code == EXIT_OK  # the night paused what was due


def test_json_anywhere_on_the_line(cli_on: Cli, db: Conn, org: OrgDay) -> None:
    """--json (and --format) before the command, between command and subcommand, or after it:
    the same JSON lines; --format text anywhere gives the table."""
    seed(db, org)
    assert cli_on("run").code == EXIT_OK
    after = cli_on("audit", "list", "--json")
    assert after.code == EXIT_OK
    (row,) = after.entries
    assert row["status"] == "completed"
    for line in (
        ("--json", "audit", "list"),
        ("audit", "--json", "list"),
        ("--format", "json", "audit", "list"),
        ("--format=json", "audit", "list"),
    ):
        result = cli_on(*line)
        assert (result.code, result.out) == (EXIT_OK, after.out), line
    text = cli_on("--format", "text", "audit", "list")
    assert text.out.startswith("  RUN AT (UTC)")
    assert cli_on("--format", "yaml", "audit", "list").code == EXIT_USAGE


def test_output_options_move_behind_the_command_and_nothing_else_does() -> None:
    """Only --json, --format X and --format=X move; what follows `--` stays; a --format
    without its value is left for argparse to refuse."""
    assert output_options_last(["--json", "audit", "show", "X"]) == ["audit", "show", "X", "--json"]
    assert output_options_last(["--format", "text", "check", "--data-dir", "d"]) == [
        "check",
        *("--data-dir", "d", "--format", "text"),
    ]
    assert output_options_last(["check", "--", "--json"]) == ["check", "--", "--json"]
    assert output_options_last(["check", "--format"]) == ["check", "--format"]


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The program's parser and every command's and subcommand's, with the words that reach it."""
    yield path, parser
    for action in parser._actions:  # noqa: SLF001  # argparse keeps its subparsers only there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def _examples(help_text: str) -> list[str]:
    """The lines of the help's "examples:" block."""
    block = help_text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_every_help_has_examples_that_the_parser_accepts() -> None:
    """Every command's and subcommand's --help (and the program's) ends with an "examples:"
    block of 1-3 lines; each is a `certexpiry ...` line (after any VAR=value) of that command,
    which the parser accepts as it stands."""
    paths = []
    for path, parser in _parsers(build_parser()):
        paths.append(path)
        help_text = parser.format_help()
        assert "\nexamples:\n" in help_text, path
        examples = _examples(help_text)
        assert 1 <= len(examples) <= 3, (path, examples)
        for example in examples:
            words = shlex.split(example.split(" | ", 1)[0])
            while "=" in words[0]:
                words.pop(0)  # DATABASE_URL=... in front
            assert words[0] == "certexpiry", example
            line = output_options_last(words[1:])
            assert tuple(line[: len(path)]) == path, (path, example)
            parsed = build_parser(cli_io=None).parse_args(line)  # SystemExit on a bad example
            assert callable(parsed.handler), example
    # The walk reached them all: the program, its 13 commands, audit list, show and resolve
    # (and any command added since, which needs its examples like these).
    assert len(paths) >= 17
    assert {(), ("demo",), ("audit",), ("audit", "show"), ("logs",)} <= set(paths)


def test_the_program_help_points_at_the_exit_code_table() -> None:
    """The program's --help lists the codes and names the table in docs/operations.md, which
    has a row for each code."""
    out = io.StringIO()
    assert cli.main(["--help"], cli_io=CliIO(stdout=out, stderr=io.StringIO())) == 0
    assert 'docs/operations.md, "Output and exit codes"' in out.getvalue()
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = doc.split("## Output and exit codes", 1)[1].split("\n## ", 1)[0]
    for code in (0, 1, 2, 3, 4, 130, 141):
        assert f"\n| {code} |" in table, code
