"""What the command line prints: JSON lines when piped (or --json), a human rendering on a
terminal, and a progress line on stderr while a sweep runs.

The CLI's logger writes into a Console rather than to stdout, so every line it prints, in
either form, has passed the log sanitiser first.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO, cast
from uuid import UUID

from certexpiry import __version__
from certexpiry.log import JsonLogger
from certexpiry.redact import shared_secrets
from certexpiry.settings import Settings
from certexpiry.store import COUNT_KEYS, OutboxBacklog

NO_RUN = "00000000-0000-0000-0000-000000000000"
"""The cron_run_id of the command line's lines that belong to no run (the nil UUID): never a run
id, so no log filter or audit row is sent after one that does not exist."""


def _default_logging_client(project: str | None) -> Any:
    """google-cloud-logging's client (Application Default Credentials)."""
    from google.cloud import logging as cloud_logging

    return cloud_logging.Client(project=project)  # type: ignore[no-untyped-call]


@dataclass
class CliIO:
    """What the command line writes to and talks to; tests pass their own."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    logging_client: Callable[[str | None], Any] = _default_logging_client
    # The reader of stdout went away (`| head`): set by the Console, read by cli.main (exit 141).
    stdout_closed: bool = False


def isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  # closed or odd stream: not a terminal
        return False


class _Sink(io.TextIOBase):
    """The CLI logger's stream: each JSON line goes to the console."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line:
                self.console.entry(line)
        return len(text)


class Console:
    """JSON lines (piped, or --json) or a human rendering (terminal), plus a progress line."""

    def __init__(self, cli_io: CliIO, output: str, *, progress: bool = False) -> None:
        self.io = cli_io
        self.json = output == "json" or (output == "auto" and not isatty(cli_io.stdout))
        self.progress = progress and isatty(cli_io.stderr)
        self.entries: list[dict[str, Any]] = []
        self.secrets = shared_secrets()
        self._progress_shown = False
        self._counts: dict[str, int] = {}
        self._segment = 0
        self._busy_shown = False  # one RUN_BUSY line per wait, not one per retry

    def logger(self, settings: Settings | None = None) -> JsonLogger:
        """A logger whose lines come back through `entry`. Its lines carry NO_RUN until bound
        to a run that exists: a command is not a run, and an id of its own would send a reader
        looking for a run no audit row or log filter knows."""
        if settings is not None:
            for secret in settings.secret_values():
                self.secrets.register(secret)
        return JsonLogger(
            secrets=self.secrets,
            service="certexpiry-cli",
            version=__version__,
            project=settings.google_cloud_project if settings else None,
            stream=cast(TextIO, _Sink(self)),
            run_id=NO_RUN,
        )

    def entry(self, line: str) -> None:
        """One sanitised JSON log line from the logger."""
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"message": line}
        self.entries.append(entry)
        code = str(entry.get("error_code", ""))
        if code == "BATCH_DONE":
            for key, value in (entry.get("context") or {}).items():
                if isinstance(value, int) and key in COUNT_KEYS:
                    self._counts[key] = self._counts.get(key, 0) + value
        if code in ("RUN_STARTED", "RUN_RESUMED", "SEGMENT_STARTED", "CONTINUATION_PUBLISHED"):
            self._segment = int((entry.get("context") or {}).get("segment") or self._segment)
        repeated_busy = code == "RUN_BUSY" and self._busy_shown
        self._busy_shown = code == "RUN_BUSY" or (self._busy_shown and code == "")
        if repeated_busy or self.io.stdout_closed:
            return
        try:
            self._show(entry, line, code)
        except BrokenPipeError:
            return  # the reader went away: the work goes on (a sweep is not cut short), unread

    def _show(self, entry: Mapping[str, Any], line: str, code: str) -> None:
        """The entry as JSON or rendered for a person, then the progress line."""
        if self.json:
            self._clear_progress()
            self._write(line)
        elif code == "RUN_BUSY" and self.progress:
            return  # the wait's countdown line says it
        elif code != "BATCH_DONE" or not self.progress:
            self._clear_progress()
            self.out(render_entry(entry))
        self._show_progress()

    def _write(self, text: str) -> None:
        """One line on stdout; a broken pipe is noted for cli.main (exit 141) and raised."""
        try:
            self.io.stdout.write(text + "\n")
            self.io.stdout.flush()
        except BrokenPipeError:
            self.io.stdout_closed = True
            raise

    def out(self, text: str) -> None:
        """Text for a human (terminal mode only)."""
        if not self.json:
            self._write(text)

    def data(self, value: Mapping[str, Any]) -> None:
        """One JSON object on stdout (JSON mode only)."""
        if self.json:
            self._write(json.dumps(value, default=json_default))

    def progress_line(self, text: str) -> None:
        """One status line on stderr, replaced by the next (terminal only; never on stdout)."""
        if isatty(self.io.stderr):
            self.io.stderr.write(f"\r\x1b[K{text}")
            self.io.stderr.flush()
            self._progress_shown = True

    def _show_progress(self) -> None:
        if not self.progress:
            return
        counts = self._counts
        self.io.stderr.write(
            f"\r\x1b[Ksegment {self._segment}  batches {counts.get('batches', 0):,}  "
            f"mentors {counts.get('mentors', 0):,}  reminders {counts.get('reminders_queued', 0):,}"
            f"  paused {counts.get('certifications_paused', 0):,}"
        )
        self.io.stderr.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.io.stderr.write("\r\x1b[K")
            self.io.stderr.flush()
            self._progress_shown = False

    def finish(self) -> None:
        self._clear_progress()


def render_entry(entry: Mapping[str, Any]) -> str:
    """A log entry for a human: severity, code, message and the context that matters."""
    context = entry.get("context") or {}
    severity, code = entry.get("severity", ""), entry.get("error_code", "")
    text = f"{severity:<7} {code:<22} {entry.get('message', '')}"
    details = [
        f"{key}={context[key]}"
        for key in (
            "certification_id",
            "operation",
            "sqlstate",
            "missed_pause_count",
            "certifications_paused",
            "mentors_paused",
            "segment",
            "details",
            "outbox_undelivered",
            "outbox_claimed",
            "outbox_oldest_age_s",
            "outbox_failed",
            "outbox_dropped",
        )
        if key in context
    ]
    if details:
        text += "  (" + ", ".join(details) + ")"
    ids = context.get("missed_ids")
    if ids and entry.get("severity") != "INFO":
        shown = ", ".join(str(item) for item in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        text += f"\n        missed: {shown}{more}"
    if "remediation" in context and entry.get("severity") != "INFO":
        text += f"\n        next: {context['remediation']}"
    return text


def json_default(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (tuple, frozenset, set)):
        return list(value)
    return str(value)


def totals_text(totals: Mapping[str, int]) -> str:
    """A run's totals in one line for a person."""
    return (
        f"reminders queued {totals.get('reminders_queued', 0):,} "
        f"(superseded {totals.get('reminders_superseded', 0):,}), "
        f"certifications paused {totals.get('certifications_paused', 0):,}, "
        f"mentors paused {totals.get('mentors_paused', 0):,}, "
        f"failures {totals.get('failures', 0):,}"
    )


def age_text(seconds: int) -> str:
    """A duration for a person: 45 s, 12 min, 5 h 3 min, 2 d 4 h."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def backlog_text(backlog: OutboxBacklog) -> str:
    """The outbox backlog in one line for a person (check, nights, deliver)."""
    if backlog.undelivered == 0:
        waiting = "nothing undelivered"
    else:
        waiting = (
            f"{backlog.undelivered:,} undelivered ({backlog.claimed:,} claimed), the oldest "
            f"waiting {age_text(backlog.oldest_age_s or 0)}"
        )
    return (
        f"Outbox: {waiting}; {backlog.failed:,} failed, {backlog.dropped:,} dropped "
        "(the app's sender delivers it)"
    )
