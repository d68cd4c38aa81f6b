"""`python -m certexpiry demo` end to end: its own embedded Postgres, seed, function over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from certexpiry_ops import demo_seed
from certexpiry_ops.demo import SEPARATOR
from certexpiry_ops.harness import ROOT
from tests.clock import OrgDay, machine_org_day
from tests.leak_plugin import register_lines, register_pii

MENTORS, SEED = 200, 7


@pytest.fixture
def org() -> OrgDay:
    """The demo brings its own database on this machine: the organisation's zone and today from
    this machine's clock, where it is midday (so both runs of a test fall on the same night)."""
    return machine_org_day()


def _demo(data_dir: Path, org: OrgDay, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    env["ORG_TIMEZONE"] = org.timezone
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
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    register_lines(done.stdout.splitlines(), "demo [stdout]")
    register_lines(done.stderr.splitlines(), "demo [stderr]")
    return done


def _split(stdout: str) -> tuple[list[dict[str, object]], str]:
    """The JSON entries before the separator (each line must parse), and the summary after it."""
    head, separator, summary = stdout.partition(SEPARATOR)
    assert separator, "no summary separator"
    entries = []
    for line in head.splitlines():
        if line.strip():
            entry = json.loads(line)  # a non-JSON line before the separator fails here
            assert isinstance(entry, dict)
            entries.append(entry)
    return entries, summary


def test_demo_runs_to_the_end_and_again_idempotently(tmp_path: Path, org: OrgDay) -> None:
    """The demo seeds, self-resumes to completion with only JSON before its summary, no seeded PII
    anywhere, and a second run the same day sends nothing new."""
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
    assert f"Run id         {run_id}" in summary
    assert f"{MENTORS:,} mentors" in summary
    assert "audit show" in summary
    output = first.stdout + first.stderr
    assert not [needle for needle in needles if needle in output]

    second = _demo(data_dir, org)
    assert second.returncode == 0, second.stderr[-2000:]
    entries, summary = _split(second.stdout)
    assert [entry["error_code"] for entry in entries] == ["DUPLICATE_DELIVERY"]
    assert "nothing new was sent" in summary
    assert run_id in summary


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
    assert "Still missed   2 certifications" in summary
    assert f"remediate {run_id} --drop-demo-trigger" in summary
