"""The runbooks of docs/operations.md, run as written: every shell command of their fenced
blocks, in order, on a demo database (the demo line at the top of a runbook makes its
situation), each expected to exit with the code the runbook gives it (a trailing `# exit N`;
none: 0). A runbook step that stops working, or says the wrong exit code, fails here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certexpiry_ops import demo_seed
from certexpiry_ops.embedded import open_embedded
from certexpiry_ops.harness import ROOT
from tests.clock import OrgDay, machine_org_day
from tests.leak_plugin import register_lines, register_pii

DOC = ROOT / "docs" / "operations.md"
RUNBOOKS = (
    "Remediation walkthrough",
    "A certification that fails even alone",
    "A night failed half-way",
)
MENTORS, SEED = 200, 7  # the demo's organisation, smaller than its default 5,000
_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_COMMENT = re.compile(r"\s{2,}#\s?(?P<comment>.*)$")
_EXIT = re.compile(r"\bexit (?P<code>\d+)\b")


@dataclass(frozen=True)
class Step:
    """One command of a runbook and the exit code the runbook says it has."""

    runbook: str
    command: str
    exit_code: int


def runbook_steps(markdown: str) -> list[Step]:
    """The commands of the runbooks' ```sh blocks, in document order."""
    steps: list[Step] = []
    runbook: str | None = None
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            title = line[3:]
            runbook = next((name for name in RUNBOOKS if title.startswith(name)), None)
            continue
        fence = _FENCE.match(line)
        if fence:
            fenced = not fenced and fence.group(1) == "sh"
            continue
        text = line.strip()
        if runbook is None or not fenced or not text or text.startswith("#"):
            continue
        comment = _COMMENT.search(text)
        said = _EXIT.search(comment.group("comment")) if comment else None
        command = text[: comment.start()] if comment else text
        steps.append(Step(runbook, command, int(said.group("code")) if said else 0))
    return steps


def test_every_runbook_has_commands() -> None:
    """The runbooks are found by title, and each has commands to run: renaming a section or
    losing its blocks fails here rather than leaving it unchecked."""
    steps = runbook_steps(DOC.read_text(encoding="utf-8"))
    assert {step.runbook for step in steps} == set(RUNBOOKS)
    assert all(step.command.startswith("certexpiry ") for step in steps)
    demos = [step for step in steps if step.command.startswith("certexpiry demo ")]
    assert [step.runbook for step in demos] == [RUNBOOKS[0], RUNBOOKS[2]]


@pytest.fixture
def demo_database(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The demo's data directory and its database's URL, kept up for the whole test (every
    command attaches to the same embedded server; `demo --fresh` recreates the database)."""
    data_dir = tmp_path / "pg"
    server, url = open_embedded(data_dir)
    try:
        yield data_dir, url
    finally:
        server.stop()


@pytest.mark.long
def test_the_runbooks_run_on_the_demo_as_written(demo_database: tuple[Path, str]) -> None:
    """Every runbook command exits as the runbook says, on the demo, in order; the log of the
    stopped night shows the codes in the order "A night failed half-way" gives."""
    data_dir, _url = demo_database
    org: OrgDay = machine_org_day()
    people = demo_seed.generate(MENTORS, SEED, org.today).mentors
    register_pii([v for m in people for v in (m.full_name, m.national_id, m.email, m.phone)])
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    env.update(
        CERTEXPIRY_DATA_DIR=str(data_dir),
        ORG_TIMEZONE=org.timezone,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    run_id: str | None = None
    outputs: dict[tuple[str, str], str] = {}
    for step in runbook_steps(DOC.read_text(encoding="utf-8")):
        command = step.command
        if command.startswith("certexpiry demo "):
            command += f" --mentors {MENTORS} --seed {SEED}"
        else:
            assert run_id is not None, f"{step.runbook}: no demo ran before {command!r}"
            command = command.replace("RUN_ID", run_id)
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        register_lines(done.stdout.splitlines(), f"runbook {command} [stdout]")
        register_lines(done.stderr.splitlines(), f"runbook {command} [stderr]")
        assert done.returncode == step.exit_code, (
            f"{step.runbook}: `{command}` exited {done.returncode}, the runbook says "
            f"{step.exit_code}\n{done.stderr[-2000:]}"
        )
        if step.command.startswith("certexpiry demo "):
            summary = json.loads(done.stdout.splitlines()[-1])
            run_id = str(summary["run_id"])
        outputs[(step.runbook, step.command)] = done.stdout

    stopped = outputs[
        (RUNBOOKS[2], "certexpiry logs RUN_ID --demo | jq -r '[.severity, .error_code] | @tsv'")
    ]
    codes = [line.split("\t")[1] for line in stopped.splitlines()]
    assert codes[0] == "RUN_STARTED"
    assert "BATCH_DONE" in codes[1:-5]  # work was done before the night stopped
    assert codes[-5:] == [
        "DB_OPERATION_FAILED",
        "MISSED_AUTO_PAUSE",
        "AUDIT_WRITTEN",
        "OUTBOX_BACKLOG",
        "RUN_STOPPED",
    ]
