"""`certexpiry demo` end to end: its own embedded Postgres, seed, function over HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from certexpiry_ops import demo_seed
from certexpiry_ops.cli import main
from certexpiry_ops.console import CliIO
from certexpiry_ops.demo import SEPARATOR
from certexpiry_ops.demo_log import demo_log_path
from certexpiry_ops.harness import ROOT
from tests.clock import OrgDay, machine_org_day
from tests.leak_plugin import register_lines, register_pii

MENTORS, SEED = 200, 7


@pytest.fixture
def org() -> OrgDay:
    """The demo brings its own database on this machine: the organisation's zone and today from
    this machine's clock, where it is midday (so both runs of a test fall on the same night)."""
    return machine_org_day()


def _demo(
    data_dir: Path,
    org: OrgDay,
    *extra: str,
    terminal: bool = False,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The demo in a subprocess, piped (or on a pseudo-terminal made by `script`)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    env["ORG_TIMEZONE"] = org.timezone
    env.update(env_extra or {})
    command = [
        sys.executable,
        "-m",
        "certexpiry",
        "demo",
        "--data-dir",
        str(data_dir),
        "--mentors",
        str(MENTORS),
        "--seed",
        str(SEED),
        *extra,
    ]
    if terminal:
        command = ["script", "-qefc", shlex.join(command), "/dev/null"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    register_lines(done.stdout.splitlines(), "demo [stdout]")
    register_lines(done.stderr.splitlines(), "demo [stderr]")
    return done


def _split(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Piped, every line is a JSON object (a non-JSON line fails here): the function's log
    entries, then the summary object."""
    assert SEPARATOR not in stdout
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    *entries, summary = lines
    assert summary["summary"] == "demo"
    return entries, summary


@pytest.mark.long
def test_demo_runs_to_the_end_and_again_idempotently(
    tmp_path: Path, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo seeds, self-resumes to completion with only JSON before its summary, no seeded PII
    anywhere, and a second run the same day sends nothing new. The commands it prints next name
    the demo database (--demo) and work as printed."""
    for name in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    people = demo_seed.generate(MENTORS, SEED, org.today).mentors
    needles = [value for m in people for value in (m.full_name, m.national_id, m.email, m.phone)]
    register_pii(needles)
    data_dir = tmp_path / "pg"

    first = _demo(data_dir, org, "--batch-size", "10", "--time-budget", "0.001")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr == ""
    entries, summary = _split(first.stdout)
    codes = [entry["error_code"] for entry in entries]
    assert codes[0] == "RUN_STARTED"
    assert codes[-1] == "RUN_COMPLETED"
    assert codes.count("CONTINUATION_PUBLISHED") >= 2  # the run continued itself over Pub/Sub
    assert "ERROR" not in {entry["severity"] for entry in entries}
    run_id = str(entries[-1]["cron_run_id"])
    assert summary["run_id"] == run_id
    assert summary["outcome"] == "completed"
    assert summary["seeded"]["mentors"] == MENTORS
    assert summary["segments"] == codes.count("CONTINUATION_PUBLISHED") + 1
    (audit_show,) = [line for line in summary["next"] if f"audit show {run_id}" in line]
    assert audit_show.endswith(f"audit show {run_id} --demo --data-dir {data_dir}")
    output = first.stdout + first.stderr
    assert not [needle for needle in needles if needle in output]
    # The toy sender drained what the night queued, through the sender's RPCs.
    (backlog,) = [entry for entry in entries if entry["error_code"] == "OUTBOX_BACKLOG"]
    waiting = backlog["context"]["outbox_undelivered"]
    queued = summary["totals"]["reminders_queued"] + summary["totals"]["notices_queued"]
    assert waiting == queued > 0
    sent = summary["delivered"]
    assert sent["delivered"] + sent["dropped"] == waiting
    assert sent["delivered"] == sent["acknowledged"] == len(sent["messages"]) > 0
    assert len({message["id"] for message in sent["messages"]}) == sent["delivered"]
    assert {message["kind"] for message in sent["messages"]} <= {"reminder", "pause_notice"}
    assert all(set(message) == {"id", "kind"} for message in sent["messages"])
    assert sent["failed"] == 0
    assert any(line.endswith(f"deliver --demo --data-dir {data_dir}") for line in summary["next"])
    # The printed command works as printed: it names the demo database and finds the run.
    stderr = io.StringIO()
    shown = io.StringIO()
    code = main([*shlex.split(audit_show)[1:], "--json"], cli_io=CliIO(shown, stderr))
    assert code == 0, stderr.getvalue()
    assert f"using the demo database in {data_dir.resolve()} (--demo)" in stderr.getvalue()
    assert json.loads(shown.getvalue().splitlines()[0])["run_id"] == run_id
    # The demo's stand-in for Cloud Logging: the function's lines, as printed (`logs --demo`).
    log_file = demo_log_path(data_dir)
    assert [json.loads(line) for line in log_file.read_text().splitlines()] == entries

    second = _demo(data_dir, org)
    assert second.returncode == 0, second.stderr[-2000:]
    entries, summary = _split(second.stdout)
    assert [entry["error_code"] for entry in entries] == ["DUPLICATE_DELIVERY"]
    assert summary["outcome"] == "duplicate"
    assert summary["run_id"] == run_id
    assert summary["delivered"]["delivered"] == 0  # the first demo delivered everything
    logged = [json.loads(line)["error_code"] for line in log_file.read_text().splitlines()]
    assert logged == [*codes, "DUPLICATE_DELIVERY"]  # appended to, not started over


def test_demo_with_failures_ends_with_missed_auto_pauses(tmp_path: Path, org: OrgDay) -> None:
    """`demo --with-failures` shows two refused pauses, MISSED_AUTO_PAUSE, exit 1 and the fix."""
    people = demo_seed.generate(MENTORS, SEED, org.today).mentors
    register_pii([value for m in people for value in (m.full_name, m.national_id, m.email)])
    done = _demo(tmp_path / "pg", org, "--with-failures")
    assert done.returncode == 1, done.stderr[-2000:]
    entries, summary = _split(done.stdout)
    failed = [e for e in entries if e["error_code"] == "DB_OPERATION_FAILED"]
    missed = [e for e in entries if e["error_code"] == "MISSED_AUTO_PAUSE"]
    assert len(failed) == 2
    assert len(missed) == 1
    run_id = str(missed[0]["cron_run_id"])
    assert len(summary["still_missed"]) == 2
    assert any(f"remediate {run_id} --drop-demo-trigger" in line for line in summary["next"])


def test_demo_on_a_terminal_is_for_a_person(tmp_path: Path, org: OrgDay) -> None:
    """On a terminal the demo says what it is doing at once, renders the function's entries
    one per line with a progress line, and ends with the summary and commands that work from
    this shell (the venv's interpreter; `env -u` when DATABASE_URL would take over)."""
    people = demo_seed.generate(MENTORS, SEED, org.today).mentors
    register_pii([value for m in people for value in (m.full_name, m.national_id, m.email)])
    done = _demo(
        tmp_path / "pg",
        org,
        "--batch-size",
        "10",
        terminal=True,
        env_extra={"DATABASE_URL": "postgresql://elsewhere.invalid/db"},
    )
    shown = done.stdout.replace("\r\n", "\n")
    assert done.returncode == 0, shown[-2000:]
    assert "demo: starting the embedded PostgreSQL" in shown.lstrip().splitlines()[0]  # at once
    assert "demo: seeding 200 generated mentors" in shown
    assert "\x1b[Ksegment " in shown  # the progress line
    assert not [line for line in shown.splitlines() if line.lstrip().startswith("{")]
    assert "RUN_COMPLETED" in shown
    summary = shown.split(SEPARATOR, 1)[1]
    assert "Run id " in summary
    assert re.search(r"Delivered +[0-9,]+ messages by the toy sender", summary), summary
    assert re.search(r"#[0-9]+ (reminder|pause_notice)", summary), summary
    assert " deliver" in summary
    assert "env -u DATABASE_URL " in summary
    assert "env -u DATABASE_URL certexpiry audit show" in summary
