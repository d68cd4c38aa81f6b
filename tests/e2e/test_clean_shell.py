"""Every command the program tells a person to type works when pasted into a clean shell.

Issue 24: the hints said `python -m certexpiry ...`, which in an operator's shell is a
`ModuleNotFoundError` traceback. Here the hints are collected from what the program prints on a
database with missed auto-pauses (the log catalogue's actions, the MISSED_AUTO_PAUSE
remediation, the `Next:` lines of run, check, plan, nights, audit and remediate, the demo
trigger's own hint), RUN_ID and the other placeholders filled in, and each is run by bash in an
environment holding only the tool's install (tests/tool_install.py: the README's install) and
DATABASE_URL: it must be found (no 127), run (no traceback) and exit with the code
docs/operations.md documents for that state. The demo too: run by the installed tool from
outside the checkout, then every command its summary prints.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from certexpiry.codes import CATALOGUE
from certexpiry.reports import remediation_for
from certexpiry_ops.cli import main
from certexpiry_ops.console import CliIO
from tests.clock import OrgDay, machine_org_day
from tests.integration.test_cli import refuse_two, seed
from tests.leak_plugin import register_lines
from tests.tool_install import clean_env, in_clean_shell, install_tool, private_dir

Conn = psycopg.Connection[tuple[object, ...]]

# Under xdist (`make test`) the two tests may land on different workers, each then making the
# tool install once (~15 s): `--dist loadgroup` would keep them together, but with pytest 9.2 it
# silently groups nothing (pytest-dev/pytest-xdist#1386), so it is not used.
pytestmark = pytest.mark.long

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


@pytest.fixture(scope="session")
def tool_bin() -> Iterator[Path]:
    """The README's install of the command, once per test process (a module fixture would be
    set up again whenever another module's test ran between the two on an xdist worker)."""
    with private_dir("certexpiry-tool-") as where:
        yield install_tool(where / "venv")


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A directory for the shell's HOME and the demo's database (tests/tool_install.py)."""
    with private_dir("certexpiry-shell-") as where:
        yield where


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
    own_dir: Path,
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
        "certexpiry plan --all",
    ):  # (`remediate --ids ...` is printed when no audit row records the IDs: test_cli runs it)
        assert expected in hints, (expected, hints)

    home = own_dir / "home"
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


# The demo's `Next:` commands, in the order it prints them, after `demo --with-failures`: what
# each exits with at that point (the missed auto-pauses stay until the remediate that drops the
# demo's trigger; the demo again is a duplicate with none left; then a fresh night with two).
AFTER_THE_DEMO = {
    "nights": 0,
    "audit show": 1,
    "logs": 0,  # the demo's own log file (--demo)
    "plan": 0,
    "check": 1,
    "deliver": 0,
    "remediate": 0,
    "audit resolve": 0,
    "demo": 0,
}


def test_the_demo_and_its_next_commands_run_from_the_installed_tool(
    tool_bin: Path, own_dir: Path
) -> None:
    """`certexpiry demo --with-failures` run by the installed tool from outside the checkout,
    then every command its summary prints, pasted in order: each found, no traceback, the
    documented exit code (the last, a fresh demo with failures, 1 again)."""
    org = machine_org_day()  # the demo brings its own database, on this machine's clock
    home = own_dir / "home"
    home.mkdir()
    env = clean_env(tool_bin, home, ORG_TIMEZONE=org.timezone, XDG_RUNTIME_DIR=str(own_dir))
    data_dir = own_dir / "pg"
    demo = in_clean_shell(
        f"certexpiry demo --data-dir {data_dir} --mentors 200 --with-failures --json", env, home
    )
    register_lines(demo.stdout.splitlines() + demo.stderr.splitlines(), "shell demo")
    assert demo.returncode == 1, demo.stderr[-2000:]
    summary = json.loads(demo.stdout.splitlines()[-1])
    assert summary["still_missed"]
    hints = summary["next"]
    assert all(hint.startswith("certexpiry ") for hint in hints), hints
    *steps, fresh = hints
    assert fresh == f"certexpiry demo --fresh --with-failures --data-dir {data_dir}"
    for hint in [*steps, fresh]:
        key = command_of(hint)[1]
        expected = 1 if hint == fresh else AFTER_THE_DEMO.get(key)
        assert expected is not None, f"a new hint, {hint!r}: give its documented exit code"
        done = in_clean_shell(hint, env, home)
        register_lines(done.stdout.splitlines() + done.stderr.splitlines(), f"shell {key}")
        shown = f"{hint}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert done.returncode != 127, shown
        assert "Traceback" not in done.stdout + done.stderr, shown
        assert done.returncode == expected, shown
