"""The demo's stand-in for Cloud Logging: the function's own JSON log lines, kept in a file in
the demo's data directory, so that `certexpiry logs RUN_ID --demo` reads a demo night back the
way `logs RUN_ID` reads a deployed one, and the runbook can be practised without Google Cloud.

Only the lines the function wrote as JSON objects go in, exactly as it wrote them (its log
chain built them by allow-list), one per line, appended: every demo night of the data
directory is in it, and `logs` picks a run's by its cron_run_id. `demo --fresh` starts it over
together with the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

DEMO_LOG_NAME = "function-log.jsonl"


def demo_log_path(data_dir: Path) -> Path:
    """Where the demo in `data_dir` keeps the function's log lines."""
    return data_dir / DEMO_LOG_NAME


def open_demo_log(data_dir: Path, *, fresh: bool) -> TextIO:
    """The demo's log file, opened for appending (emptied first when `fresh`), line-buffered so
    that a line is in the file as soon as it is written, even if the demo is interrupted."""
    return demo_log_path(data_dir).open("w" if fresh else "a", encoding="utf-8", buffering=1)
