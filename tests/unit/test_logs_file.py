"""`logs RUN_ID --file PATH` (and `--demo`, the demo's file in --data-dir): a run's entries from
a file of the function's JSON lines, in the same forms as from Cloud Logging."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from certexpiry_ops.cli import main
from certexpiry_ops.commands.logs import cmd_logs
from certexpiry_ops.console import CliIO
from certexpiry_ops.demo_log import demo_log_path, open_demo_log
from tests.leak_plugin import register_secret


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _line(second: int, code: str, run_id: str, **context: Any) -> str:
    return json.dumps(
        {
            "timestamp": f"2026-11-28T01:00:{second:02d}.000000Z",
            "severity": "ERROR" if code == "DB_OPERATION_FAILED" else "INFO",
            "message": f"{code} line",
            "error_code": code,
            "cron_run_id": run_id,
            "context": {"segment": 0, **context},
        }
    )


def _logs(*args: str, terminal: bool = False) -> tuple[int, str, str]:
    out, err = (_Tty(), _Tty()) if terminal else (io.StringIO(), io.StringIO())
    code = main(["logs", *args], cli_io=CliIO(stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_a_runs_entries_from_a_file_in_timestamp_order(tmp_path: Path) -> None:
    """Only the run's entries, sorted by timestamp (the function's two streams can reach the
    file a line apart), lines that are not JSON objects passed over; JSON lines when piped."""
    run_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    path = tmp_path / "log.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(1, "RUN_STARTED", run_id),
                _line(1, "RUN_STARTED", other),
                "functions-framework says hello",
                "[1, 2]",
                _line(3, "RUN_STOPPED", run_id),
                _line(2, "DB_OPERATION_FAILED", run_id, sqlstate="42501"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    code, out, err = _logs(run_id, "--file", str(path))
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["error_code"] for e in entries] == [
        "RUN_STARTED",
        "DB_OPERATION_FAILED",
        "RUN_STOPPED",
    ]
    assert {e["cron_run_id"] for e in entries} == {run_id}
    assert entries[1]["context"]["sqlstate"] == "42501"

    code, shown, _ = _logs(run_id, "--file", str(path), terminal=True)
    assert code == 0
    lines = shown.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("2026-11-28T01:00:02.000")
    assert "DB_OPERATION_FAILED" in lines[1]
    assert "sqlstate=42501" in lines[1]
    assert not [line for line in lines if line.lstrip().startswith("{")]


def test_demo_reads_the_demos_file_in_its_data_dir(tmp_path: Path) -> None:
    """`--demo` (the common flag, once parser.py has it) reads DIR/function-log.jsonl, the file
    the demo appends to and `--fresh` starts over."""
    run_id = str(uuid.uuid4())
    with open_demo_log(tmp_path, fresh=True) as log:
        log.write(_line(1, "RUN_STARTED", str(uuid.uuid4())) + "\n")
    with open_demo_log(tmp_path, fresh=False) as log:
        log.write(_line(2, "RUN_COMPLETED", run_id) + "\n")
    assert len(demo_log_path(tmp_path).read_text().splitlines()) == 2  # appended
    with open_demo_log(tmp_path, fresh=True) as log:
        log.write(_line(3, "RUN_STARTED", run_id) + "\n")
    assert len(demo_log_path(tmp_path).read_text().splitlines()) == 1  # started over

    # `--demo` is the common flag parser.py is getting on another branch: the namespace carries
    # it as the parser will.
    args = argparse.Namespace(
        run_id=run_id, output="json", file=None, demo=True, data_dir=str(tmp_path)
    )
    out, err = io.StringIO(), io.StringIO()
    assert cmd_logs(args, CliIO(stdout=out, stderr=err)) == 0, err.getvalue()
    assert [json.loads(line)["error_code"] for line in out.getvalue().splitlines()] == [
        "RUN_STARTED"
    ]


def test_no_entries_is_not_found_and_no_file_is_a_usage_error(tmp_path: Path) -> None:
    """A run with no entry in the file exits 3 (not found); a file that is not there exits 2
    and says where the demo writes one."""
    path = tmp_path / "log.jsonl"
    path.write_text(_line(1, "RUN_STARTED", str(uuid.uuid4())) + "\n", encoding="utf-8")
    run_id = str(uuid.uuid4())
    code, out, err = _logs(run_id, "--file", str(path))
    assert (code, out) == (3, "")
    assert f"no log entries for run {run_id} in {path}" in err
    code, _, err = _logs(run_id, "--file", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert "no log file at" in err
    assert "certexpiry demo" in err


def test_a_secret_in_the_file_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth, as for Cloud Logging: a secret value of this shell never prints."""
    secret = "file-log-s3cret-value"
    register_secret(secret)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", secret)
    run_id = str(uuid.uuid4())
    path = tmp_path / "log.jsonl"
    path.write_text(_line(1, "RUN_STARTED", run_id, note=f"key {secret}") + "\n")
    code, out, _ = _logs(run_id, "--file", str(path))
    assert code == 0
    assert secret not in out
    assert json.loads(out)["error_code"] == "RUN_STARTED"
