"""`make demo`: the real function, served by functions-framework, on a seeded local database.

Starts the embedded PostgreSQL (data directory `.pgdata/` in the repository by default, kept
between runs), applies the migrations, seeds a generated organisation when the database is
empty, then drives `main.nightly_sweep` over HTTP exactly as Eventarc delivers Pub/Sub
messages: the nightly trigger, then every continuation the function publishes to a fake
Pub/Sub server (certexpiry_ops.harness). A small time budget makes the run hand off to itself a few
times. The function's JSON log lines are printed as they come; a short human summary follows a
separator line, and is the only non-JSON output.

Running it again the same day shows idempotency (the trigger is a duplicate: nothing new is
sent); `--fresh` starts over; `--with-failures` adds a trigger that refuses to pause two
certifications, so the run ends with MISSED_AUTO_PAUSE and `remediate` can be practised.
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
from certexpiry.log import JsonLogger
from certexpiry.sanitize import shared_sanitizer
from certexpiry_ops.embedded import default_data_dir, open_embedded
from certexpiry_ops.ops import AuditEntry, OpsStore

SEPARATOR = "=" * 25 + " certexpiry demo: summary " + "=" * 25
_STRIPPED_ENV = ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs (the CLI's `demo` flags)."""

    data_dir: Path
    mentors: int = 5_000
    seed: int = 42
    fresh: bool = False
    with_failures: bool = False
    time_budget_s: float = 0.1
    batch_size: int = 50
    monitoring_reserve_s: float = 0.02


class _Printer:
    """Prints the function's lines as they come (both streams, one lock) and keeps them.

    A line that is not a JSON object (none is expected) is wrapped into one, sanitised, so that
    nothing but JSON precedes the summary.
    """

    def __init__(self, out: TextIO, log: JsonLogger) -> None:
        self.out = out
        self.log = log
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
                self.out.write(line + "\n")
                self.out.flush()
            else:
                severity = Severity.WARNING if stream == "stderr" else Severity.INFO
                self.log.log(Code.LIBRARY_LOG, line, severity=severity, logger=f"function.{stream}")

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


def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Run the demo; 0 when done and clean, 1 when missed auto-pauses remain, 2 on failure."""
    from certexpiry.pg_store import PgTransport
    from certexpiry.store import RpcStore
    from certexpiry_ops import demo_seed
    from certexpiry_ops.harness import FunctionProcess, follow_chain, function_env
    from certexpiry_ops.pubsub_fake import FakePubSub

    started = time.monotonic()
    timezone = os.environ.get("ORG_TIMEZONE") or "Europe/Oslo"
    today = datetime.now(ZoneInfo(timezone)).date()
    sanitizer = shared_sanitizer()
    printer = _Printer(
        out,
        JsonLogger(sanitizer=sanitizer, service="certexpiry-demo", version=__version__, stream=out),
    )
    server, url = open_embedded(options.data_dir, fresh=options.fresh)
    transport = PgTransport(url)
    store = RpcStore(transport)
    try:
        seeded = None
        refused: list[str] = []
        with psycopg.connect(url, autocommit=True) as conn:
            if demo_seed.is_empty(conn):
                seeded = demo_seed.seed(
                    conn, mentors=options.mentors, seed=options.seed, today=today
                )
            if options.with_failures:
                refused = list(store.missed_auto_pauses(timezone, today, limit=2).missed_ids)[:2]
                if refused:
                    demo_seed.install_refusal(conn, refused)
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
        try:
            with _without_env(_STRIPPED_ENV):
                function.start()
            chain = follow_chain(function, pubsub, max_deliveries=400)
        finally:
            function.stop()
            pubsub.stop()
        run_id = printer.run_id()
        audit = OpsStore(transport).get_audit(UUID(run_id)) if run_id else None
        summary = _Summary(
            options,
            printer,
            audit,
            seeded,
            refused,
            len(chain.deliveries),
            time.monotonic() - started,
        )
        out.write("\n" + SEPARATOR + "\n" + summary.text() + "\n")
        out.flush()
        return summary.exit_code()
    finally:
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

    def exit_code(self) -> int:
        codes = self.printer.codes()
        if "RUN_COMPLETED" not in codes and "DUPLICATE_DELIVERY" not in codes:
            return 2
        if self.audit is not None and self.audit.still_missed:
            return 1
        return 0

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
        run_id = self.printer.run_id() or "(none)"
        lines.append(f"Run id         {run_id}")
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
        else:
            lines.append("Outcome        the run did not complete: see the ERROR lines above")
        still = audit.still_missed if audit is not None else None
        if still:
            lines.append(f"Still missed   {len(still)} certifications are expired but not paused")
        lines += ["", "Next:"]
        prefix = "python -m certexpiry"
        dir_flag = "" if where == default_data_dir() else f" --data-dir {where}"
        lines.append(f"  {prefix} audit list{dir_flag}")
        lines.append(f"  {prefix} audit show {run_id}{dir_flag}")
        if still:
            drop = " --drop-demo-trigger" if self.refused or self.options.with_failures else ""
            lines.append(f"  {prefix} remediate {run_id}{drop}{dir_flag}")
            lines.append(f"  {prefix} audit resolve {run_id}{dir_flag}")
        lines.append(f"  {prefix} demo{dir_flag}            (again today: nothing new is sent)")
        lines.append(f"  {prefix} demo --fresh --with-failures{dir_flag}")
        return "\n".join(lines)
