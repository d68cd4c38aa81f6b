"""Every command the program tells a person to type works when pasted into a clean shell.

Issue 24: the hints said `python -m certexpiry ...`, which in an operator's shell is a
`ModuleNotFoundError` traceback. Here the hints are collected from what the program prints on a
database with missed auto-pauses (the log catalogue's actions, the MISSED_AUTO_PAUSE
remediation, the `Next:` lines of run, check, plan, nights, audit and remediate, the demo
trigger's own hint), RUN_ID and the other placeholders filled in, and each is run by bash in an
environment holding only the tool's install (tests/tool_install.py: the README's install) and
DATABASE_URL: it must be found (no 127), run (no traceback) and exit with the code
docs/operations.md documents for that state.
"""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import psycopg
import pytest

from certexpiry.codes import CATALOGUE
from certexpiry.reports import remediation_for
from certexpiry_ops.cli import main
from certexpiry_ops.console import CliIO
from tests.clock import OrgDay
from tests.integration.test_cli import refuse_two, seed
from tests.leak_plugin import register_lines
from tests.tool_install import clean_env, in_clean_shell, install_tool

Conn = psycopg.Connection[tuple[object, ...]]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# `certexpiry` and what may follow it in a hint: words, ids, placeholders, flags. Prose after the
# command ("certexpiry check shows the backlog") is cut off by `command_of`.
_HINT = re.compile(
    r"(?:env(?: -u [A-Z_]+)+ )?certexpiry(?: (?:" + _UUID + r"|RUN_ID|ID,ID,\.\.\.|"
    r"--[a-z][a-z-]*|[a-z][a-z-]*|[0-9]+|N))+"
)
_ARGUMENT = re.compile(r"^(?:" + _UUID + r"|RUN_ID|ID,ID,\.\.\.|--[a-z][a-z-]*|[0-9]+|N)$")

# What each command exits with while the run's missed auto-pauses are still refused by the
# demo trigger (docs/operations.md, "Output and exit codes"): 1 where missed auto-pauses remain
# (or resolve refuses), 0 for the views, 2 for a usage error: `logs` without Google credentials,
# `export-migrations` without the app's folder the catalogue leaves to the reader.
WHILE_MISSED = {
    "run": 1,
    "check": 1,
    "remediate": 1,
    "audit show": 1,
    "audit resolve": 1,
    "audit list": 0,
    "plan": 0,
    "nights": 0,
    "migrate": 0,
    "logs": 2,
    "export-migrations": 2,
}
# After `remediate RUN_ID --drop-demo-trigger`, the MISSED_AUTO_PAUSE runbook's steps in order.
AFTER_THE_FIX = {"remediate": 0, "check": 0, "audit resolve": 0, "audit show": 0}
_GROUPS_WITH_SUBCOMMANDS = {"audit"}


def command_of(hint: str) -> tuple[str, str]:
    """The hint cut where its prose begins, and its command's key ("audit show", "check")."""
    words = hint.split()
    start = words.index("certexpiry") + 1
    kept = words[:start]
    key: list[str] = []
    for word in words[start:]:
        if not key or (key[0] in _GROUPS_WITH_SUBCOMMANDS and len(key) == 1):
            key.append(word)
        elif not _ARGUMENT.match(word):
            break
        kept.append(word)
    return " ".join(kept), " ".join(key)


def hints_in(text: str) -> list[str]:
    """Every command line a text shows, cut where its prose begins."""
    return [command_of(match.group(0))[0] for match in _HINT.finditer(text)]


def printed(*args: str) -> str:
    """What the CLI prints for a person (text format), both streams."""
    stdout, stderr = io.StringIO(), io.StringIO()
    main([*args, "--format", "text"], cli_io=CliIO(stdout=stdout, stderr=stderr))
    text = stdout.getvalue() + "\n" + stderr.getvalue()
    register_lines(text.splitlines(), f"cli {' '.join(args[:2])}")
    return text


@pytest.fixture(scope="module")
def tool_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's install of the command, once for this module."""
    return install_tool(tmp_path_factory.mktemp("tool") / "venv")


@pytest.fixture
def missed_night(
    database_url: str, db: Conn, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[str]]:
    """A night whose run missed two auto-pauses (the demo's refusing trigger): its run id and
    the two certification ids."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
    seed(db, org)
    refused = refuse_two(db, database_url, org)
    stdout = io.StringIO()
    assert main(["run", "--json"], cli_io=CliIO(stdout=stdout, stderr=io.StringIO())) == 1
    (run_id,) = set(re.findall(r'"cron_run_id": ?"(' + _UUID + ')"', stdout.getvalue()))
    return run_id, refused


def test_every_printed_hint_runs_in_a_clean_shell(
    tool_bin: Path,
    missed_night: tuple[str, list[str]],
    database_url: str,
    db: Conn,
    org: OrgDay,
    tmp_path: Path,
) -> None:
    """The hints the program prints, filled in, each run in a shell with only the installed
    tool: found, no traceback, the documented exit code; then the runbook's fix in order."""
    run_id, refused = missed_night
    texts = [
        *(info.action for info in CATALOGUE.values()),
        remediation_for(uuid.UUID(run_id)),
        printed("run"),
        printed("check"),
        printed("plan"),
        printed("nights"),
        printed("audit", "list"),
        printed("audit", "show", run_id),
        printed("audit", "resolve", run_id),
        printed("remediate", run_id),
    ]
    (trigger,) = db.execute(
        "select prosrc from pg_proc where proname = 'refuse_pause'"
    ).fetchone() or ("",)
    texts += re.findall(r"hint = '([^']*)'", str(trigger))  # the demo trigger's own hint
    fill = {"RUN_ID": run_id, "ID,ID,...": ",".join(refused), "N": "10"}
    hints = sorted(
        {
            " ".join(fill.get(word, word) for word in hint.split())
            for text in texts
            for hint in hints_in(text)
        }
    )
    fix = f"certexpiry remediate {run_id} --drop-demo-trigger"
    assert fix in hints  # the trigger's hint
    for expected in (
        f"certexpiry remediate {run_id}",
        f"certexpiry audit resolve {run_id}",
        f"certexpiry audit show {run_id}",
        "certexpiry check",
        "certexpiry run",
        "certexpiry plan --json --ids 10",
        f"certexpiry remediate --ids {','.join(refused)}",
    ):
        assert expected in hints, (expected, hints)

    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(
        tool_bin, home, DATABASE_URL=database_url, ORG_TIMEZONE=org.timezone, NO_GCE_CHECK="True"
    )
    assert "/.venv/" not in in_clean_shell("command -v certexpiry", env, home).stdout

    def paste(hint: str, table: dict[str, int]) -> None:
        key = command_of(hint)[1]
        assert key in table, f"a new hint, {hint!r}: give its documented exit code"
        done = in_clean_shell(hint, env, home)
        register_lines([*done.stdout.splitlines(), *done.stderr.splitlines()], f"shell {key}")
        shown = f"{hint}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert done.returncode != 127, shown  # found
        assert "Traceback" not in done.stdout + done.stderr, shown
        assert done.returncode == table[key], shown

    for hint in hints:
        if hint != fix:
            paste(hint, WHILE_MISSED)
    paste(fix, {"remediate": 0})
    for step in (
        f"certexpiry remediate {run_id}",
        "certexpiry check",
        f"certexpiry audit resolve {run_id}",
        f"certexpiry audit show {run_id}",
    ):
        paste(step, AFTER_THE_FIX)
