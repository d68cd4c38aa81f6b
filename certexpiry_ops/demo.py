"""`make demo`: the real function, served by functions-framework, on a seeded local database.

Starts the embedded PostgreSQL (data directory `.pgdata/` in the repository by default, kept
between runs), applies the migrations, seeds a generated organisation when the database is
empty, then drives `main.nightly_sweep` over HTTP exactly as Eventarc delivers Pub/Sub
messages: the nightly trigger, then every continuation the function publishes to a fake
Pub/Sub server (certexpiry_ops.harness). A small time budget makes the run hand off to itself a few
times. Then the toy sender (certexpiry_ops.sender) drains the outbox through the sender's RPCs, as
the app's sender would, and the summary lists what it delivered (ids and kinds). The function's
JSON log lines are printed as they come; a short human summary follows a separator line, and is
the only non-JSON output.

The function's JSON log lines are also kept in the data directory (certexpiry_ops.demo_log),
the demo's stand-in for Cloud Logging: `certexpiry logs RUN_ID --demo` reads a run's back.

Running it again the same day shows idempotency (the trigger is a duplicate: nothing new is
sent); `--fresh` starts over; `--with-failures` adds a trigger that refuses to pause two
certifications, so the run ends with MISSED_AUTO_PAUSE and `remediate` can be practised;
`--stop-half-way` makes the night stop half-way once (RUN_STOPPED), so resuming it can be.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from certexpiry import __version__
from certexpiry.codes import Code, Severity
from certexpiry_ops.console import Console
from certexpiry_ops.demo_log import open_demo_log
from certexpiry_ops.embedded import default_data_dir, open_embedded
from certexpiry_ops.ops import AuditEntry, OpsStore
from certexpiry_ops.sender import SenderResult, drain
from certexpiry_ops.usage import EXIT_FAILED, EXIT_MISSED, EXIT_OK, PROG

SEPARATOR = "=" * 25 + " certexpiry demo: summary " + "=" * 25
SHOWN_MESSAGES = 8  # delivered messages listed in the text summary (JSON has them all)
_STRIPPED_ENV = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs (the CLI's `demo` flags)."""

    data_dir: Path
    mentors: int = 5_000
    seed: int = 42
    fresh: bool = False
    with_failures: bool = False
    stop_half_way: bool = False
    time_budget_s: float = 0.1
    batch_size: int = 50
    monitoring_reserve_s: float = 0.02


class _Printer:
    """Hands the function's lines to the console as they come (both streams, one lock), keeps
    them, and appends them to the demo's log file (what `logs --demo` reads). A line that is
    not a JSON object (none is expected) is wrapped into one, sanitised, so that piped output
    stays JSON lines; it is not the function's log entry, so it stays out of the file.
    """

    def __init__(self, console: Console, log_file: TextIO) -> None:
        self.console = console
        self.log = console.logger()
        self.log_file = log_file
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []

    def __call__(self, stream: str, line: str) -> None:
        if not line.strip():
            return
        with self.lock:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                self.entries.append(entry)
                self.log_file.write(line.strip() + "\n")
                self.console.entry(line)
            else:
                severity = Severity.WARNING if stream == "stderr" else Severity.INFO
                message = "The function wrote a line that is not JSON; its text is not logged."
                self.log.emit(severity, Code.LIBRARY_LOG, message, {"logger": stream})

    def codes(self) -> list[str]:
        return [str(entry.get("error_code")) for entry in self.entries]

    def run_id(self) -> str | None:
        for entry in reversed(self.entries):
            if entry.get("error_code") in ("RUN_COMPLETED", "DUPLICATE_DELIVERY", "RUN_STARTED"):
                run_id = entry.get("cron_run_id")
                if run_id:
                    return str(run_id)
        return None


@contextlib.contextmanager
def _without_env(names: tuple[str, ...]) -> Iterator[None]:
    """Hide these variables from the function process (the demo always uses the local DB)."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; 0 when done and clean, 1 when missed auto-pauses remain, 4 when the night
    did not complete (it stopped half-way, or failed)."""
    from certexpiry.settings import load_settings
    from certexpiry.store import RpcStore
    from certexpiry.store.postgres import PgTransport
    from certexpiry_ops import demo_seed
    from certexpiry_ops.contract import SIGNATURES
    from certexpiry_ops.harness import FunctionProcess, follow_chain, function_env
    from certexpiry_ops.pubsub_fake import FakePubSub

    started = time.monotonic()
    timezone = os.environ.get("ORG_TIMEZONE") or "Europe/Oslo"
    today = datetime.now(ZoneInfo(timezone)).date()
    console.progress_line(f"demo: starting the embedded PostgreSQL in {options.data_dir}…")
    server, url = open_embedded(options.data_dir, fresh=options.fresh)
    transport = PgTransport(url, signatures=SIGNATURES)
    store = RpcStore(transport)
    log_file = None
    try:
        log_file = open_demo_log(options.data_dir, fresh=options.fresh)
        printer = _Printer(console, log_file)
        seeded = None
        refused: list[str] = []
        with psycopg.connect(url, autocommit=True) as conn:
            if demo_seed.is_empty(conn):
                console.progress_line(f"demo: seeding {options.mentors:,} generated mentors…")
                seeded = demo_seed.seed(
                    conn, mentors=options.mentors, seed=options.seed, today=today
                )
            if options.with_failures:
                refused = list(store.missed_auto_pauses(timezone, today, limit=2).missed_ids)[:2]
                if refused:
                    demo_seed.install_refusal(conn, refused)
            if options.stop_half_way:
                days = load_settings(database_url=url).reminder_days  # as the function reads them
                batches = demo_seed.night_batches(conn, today, days, options.batch_size)
                demo_seed.install_stop(conn, at_checkpoint=max(1, (batches + 1) // 2))
        pubsub = FakePubSub().start()
        env = function_env(
            url,
            pubsub,
            time_budget_s=options.time_budget_s,
            batch_size=options.batch_size,
            monitoring_reserve_s=options.monitoring_reserve_s,
            org_timezone=timezone,
            lease_s=10,
            service_version=f"{__version__}-demo",
        )
        function = FunctionProcess(env=env, on_line=printer)
        console.progress_line("demo: starting functions-framework with main.nightly_sweep…")
        try:
            with _without_env(_STRIPPED_ENV):
                function.start()
            chain = follow_chain(function, pubsub, max_deliveries=400)
        finally:
            console.finish()
            function.stop()
            pubsub.stop()
        run_id = printer.run_id()
        ops = OpsStore(transport)
        audit = ops.get_audit(UUID(run_id)) if run_id else None
        console.progress_line("demo: the toy sender drains the outbox (claim, acknowledge)…")
        try:
            sent = drain(ops)
        finally:
            console.finish()
        summary = _Summary(
            options,
            printer,
            audit,
            seeded,
            refused,
            len(chain.deliveries),
            time.monotonic() - started,
            sent,
        )
        console.data(summary.data())
        console.out("\n" + SEPARATOR + "\n" + summary.text())
        return summary.exit_code()
    finally:
        if log_file is not None:
            log_file.close()
        transport.close()
        server.stop()


@dataclass
class _Summary:
    options: DemoOptions
    printer: _Printer
    audit: AuditEntry | None
    seeded: Any
    refused: list[str]
    deliveries: int
    wall_s: float
    sent: SenderResult

    def exit_code(self) -> int:
        codes = self.printer.codes()
        if "RUN_COMPLETED" not in codes and "DUPLICATE_DELIVERY" not in codes:
            return EXIT_FAILED  # the run did not complete
        if self.audit is not None and self.audit.still_missed:
            return EXIT_MISSED
        return EXIT_OK

    def text(self) -> str:
        lines: list[str] = []
        codes = self.printer.codes()
        where = self.options.data_dir
        if self.seeded is not None:
            s = self.seeded
            lines.append(
                f"Organisation   seeded now: {s.mentors:,} mentors, {s.certifications:,} "
                f"certifications ({s.already_paused:,} already paused, {s.renewed:,} renewed), "
                f"seed {self.options.seed}, in {s.seconds:.2f} s"
            )
        else:
            lines.append(
                f"Organisation   existing data in {where} (not re-seeded; --fresh starts over)"
            )
        if self.refused:
            lines.append(
                f"Demo trigger   to pause {len(self.refused)} certifications (--with-failures)"
            )
        if self.options.stop_half_way:
            lines.append("Demo fault     refuses one checkpoint half-way (--stop-half-way), once")
        run_id = self.printer.run_id() or "(none)"
        lines.append(f"Run id         {run_id}")
        lines += self.outcome_text(codes)
        audit = self.audit
        lines += self.sender_text()
        still = audit.still_missed if audit is not None else None
        if still:
            lines.append(f"Still missed   {len(still)} certifications are expired but not paused")
        lines += ["", "Next:"]
        for command, note in self.next_commands():
            lines.append(f"  {command}" + (f"            ({note})" if note else ""))
        if _overriding_env():
            lines.append(
                f"  ({' and '.join(_overriding_env())} is set in this shell and would take "
                "the demo database's place: hence `env -u`)"
            )
        return "\n".join(lines)

    def outcome_text(self, codes: list[str]) -> list[str]:
        """How the night ended, and its totals when it completed."""
        lines: list[str] = []
        audit = self.audit
        if "RUN_COMPLETED" in codes and audit is not None:
            totals = audit.totals
            continuations = codes.count("CONTINUATION_PUBLISHED")
            lines += [
                f"Outcome        completed in {audit.segments} segments "
                f"({continuations} continuations through Pub/Sub, {self.deliveries} HTTP "
                "deliveries)",
                f"Reminders      {totals.get('reminders_queued', 0):,} queued "
                f"({totals.get('reminders_superseded', 0):,} larger offsets superseded)",
                f"Paused         {totals.get('certifications_paused', 0):,} certifications, "
                f"{totals.get('mentors_paused', 0):,} mentors",
                f"Failures       {totals.get('failures', 0):,} certifications could not be "
                "processed",
                f"Missed         {audit.missed_pause_count:,} auto-pauses (monitoring query)",
                f"Duration       {(audit.duration_ms or 0) / 1000:.2f} s for the run, "
                f"{self.wall_s:.1f} s wall time for the demo",
            ]
        elif "DUPLICATE_DELIVERY" in codes:
            lines.append(
                "Outcome        tonight's run had already completed: the trigger was a "
                "duplicate and nothing new was sent (idempotent)"
            )
            if audit is not None:
                totals = audit.totals
                lines.append(
                    f"That run       {totals.get('reminders_queued', 0):,} reminders, "
                    f"{totals.get('certifications_paused', 0):,} certifications paused, "
                    f"{audit.missed_pause_count:,} missed, {audit.segments} segments"
                )
            lines.append(f"Duration       {self.wall_s:.1f} s wall time for the demo")
        elif "RUN_STOPPED" in codes:
            lines.append(
                "Outcome        the night stopped half-way (RUN_STOPPED): see the ERROR line "
                'before it; `run` finishes it (docs/operations.md, "A night failed half-way")'
            )
        else:
            lines.append("Outcome        the run did not complete: see the ERROR lines above")
        return lines

    def sender_text(self) -> list[str]:
        """What the toy sender delivered: counts, then the first messages by id and kind."""
        sent = self.sent
        delivered = sent.delivered
        by_kind = ", ".join(f"{kind} {count:,}" for kind, count in sent.by_kind().items())
        if not delivered:
            return [
                "Delivered      nothing: the outbox held no message to send "
                f"(dropped {sent.dropped:,}, exhausted {sent.exhausted:,})"
            ]
        shown = ", ".join(f"#{item.id} {item.kind}" for item in delivered[:SHOWN_MESSAGES])
        more = (
            f" and {len(delivered) - SHOWN_MESSAGES:,} more"
            if len(delivered) > SHOWN_MESSAGES
            else ""
        )
        return [
            f"Delivered      {len(delivered):,} messages by the toy sender ({by_kind}) through "
            f"claim_outbox and acknowledge_outbox, {sent.batches} batches; dropped "
            f"{sent.dropped:,} stale reminders",
            f"               {shown}{more}",
        ]

    def outcome(self) -> str:
        codes = self.printer.codes()
        if "RUN_COMPLETED" in codes and self.audit is not None:
            return "completed"
        if "DUPLICATE_DELIVERY" in codes:
            return "duplicate"
        return "stopped" if "RUN_STOPPED" in codes else "failed"

    def data(self) -> dict[str, Any]:
        """The summary as one JSON object (the last line when piped or with --json)."""
        audit = self.audit
        seeded = self.seeded
        return {
            "summary": "demo",
            "outcome": self.outcome(),
            "run_id": self.printer.run_id(),
            "segments": audit.segments if audit is not None else None,
            "continuations": self.printer.codes().count("CONTINUATION_PUBLISHED"),
            "deliveries": self.deliveries,
            "totals": dict(audit.totals) if audit is not None else None,
            "missed_pause_count": audit.missed_pause_count if audit is not None else None,
            "still_missed": [str(item) for item in audit.still_missed] if audit else [],
            "run_duration_ms": audit.duration_ms if audit is not None else None,
            "wall_s": round(self.wall_s, 2),
            "seeded": (
                {
                    "mentors": seeded.mentors,
                    "certifications": seeded.certifications,
                    "seconds": round(seeded.seconds, 2),
                }
                if seeded is not None
                else None
            ),
            "delivered": {
                **self.sent.data(),
                "messages": [{"id": item.id, "kind": item.kind} for item in self.sent.delivered],
            },
            "data_dir": str(self.options.data_dir),
            "next": [command for command, _ in self.next_commands()],
        }

    def next_commands(self) -> list[tuple[str, str]]:
        """The commands to try next, as they work from any shell where `certexpiry` is installed
        (README, "Install"): unsetting what would point them at another database."""
        where = self.options.data_dir
        run_id = self.printer.run_id() or "RUN_ID"
        unset = "".join(f"-u {name} " for name in _overriding_env())
        prefix = (f"env {unset}" if unset else "") + PROG
        demo_flag = " --demo" + ("" if where == default_data_dir() else f" --data-dir {where}")
        dir_flag = "" if where == default_data_dir() else f" --data-dir {where}"
        commands = [
            (f"{prefix} nights{demo_flag}", ""),
            (f"{prefix} audit show {run_id}{demo_flag}", ""),
            (f"{prefix} logs {run_id}{demo_flag}", "the function's lines of that run"),
            (f"{prefix} plan{demo_flag}", "what a run now would do"),
            (f"{prefix} check{demo_flag}", "missed auto-pauses and the outbox backlog"),
            (f"{prefix} deliver{demo_flag}", "the toy sender: drain the outbox again"),
        ]
        if self.audit is not None and self.audit.still_missed:
            drop = " --drop-demo-trigger" if self.refused or self.options.with_failures else ""
            commands.append((f"{prefix} remediate {run_id}{drop}{demo_flag}", ""))
            commands.append((f"{prefix} audit resolve {run_id}{demo_flag}", ""))
        commands.append((f"{prefix} demo{dir_flag}", "again today: nothing new is sent"))
        commands.append((f"{prefix} demo --fresh --with-failures{dir_flag}", ""))
        return commands


def _overriding_env() -> list[str]:
    """The variables that would make the printed commands use another database."""
    return [name for name in ("DATABASE_URL", "SUPABASE_URL") if os.environ.get(name)]
