"""Logging + monitoring overhead of one nightly run, against the spec's 500 ms (goal < 50 ms).

A run over N actionable certifications (default 10,000) on the embedded Postgres, through the
same `handle_event` the function runs, in one segment, with the logger writing to /dev/null
(a real write and flush per line, as to a pipe). Timed during the run: every logger call
(`JsonLogger.emit`, wrapped for the run), the monitoring RPC and the audit upsert (a store
wrapper), against the run's wall time. Median of `repeats` runs, each on a fresh copy of the
same seeded database.

    .venv/bin/python -m bench.bench_overhead [--actionable 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets
from certexpiry.settings import Settings
from certexpiry.store import (
    AuditRow,
    BatchResult,
    Completion,
    ContinuationClaim,
    MissedReport,
    NightlyClaim,
    OutboxBacklog,
    RpcStore,
)
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Job, Outcome
from certexpiry_ops import embedded, schema
from certexpiry_ops.fakes import InMemoryPublisher
from certexpiry_ops.local import LOCAL_TOPIC, run_chain

SPEC_MS = 500.0
GOAL_MS = 50.0


@dataclass
class Timer:
    """Seconds and calls accumulated per name."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.calls[name] = self.calls.get(name, 0) + 1


class TimedStore:
    """The real store; the monitoring RPC and the audit upsert are timed."""

    def __init__(self, inner: RpcStore, timer: Timer) -> None:
        self.inner, self.timer = inner, timer

    def claim_nightly_run(self, run_id: UUID, timezone: str, lease_s: int) -> NightlyClaim:
        return self.inner.claim_nightly_run(run_id, timezone, lease_s)

    def claim_continuation(self, run_id: UUID, segment: int, lease_s: int) -> ContinuationClaim:
        return self.inner.claim_continuation(run_id, segment, lease_s)

    def process_batch(
        self,
        run_id: UUID,
        segment: int,
        cursor: str | None,
        limit: int,
        reminder_days: Sequence[int],
        lease_s: int,
        failed_ahead: Sequence[str] = (),
    ) -> BatchResult:
        return self.inner.process_batch(
            run_id, segment, cursor, limit, reminder_days, lease_s, failed_ahead=failed_ahead
        )

    def handoff(self, run_id: UUID, segment: int, lease_s: int) -> bool:
        return self.inner.handoff(run_id, segment, lease_s)

    def complete(self, run_id: UUID, segment: int) -> Completion:
        return self.inner.complete(run_id, segment)

    def missed_auto_pauses(self, timezone: str, today: date | None, *, limit: int) -> MissedReport:
        with self.timer.time("monitoring"):
            return self.inner.missed_auto_pauses(timezone, today, limit=limit)

    def upsert_audit(self, row: AuditRow) -> None:
        with self.timer.time("audit"):
            self.inner.upsert_audit(row)

    def outbox_backlog(self) -> OutboxBacklog:
        with self.timer.time("monitoring"):
            return self.inner.outbox_backlog()


@contextmanager
def timed_logging(timer: Timer) -> Iterator[None]:
    """Time every JsonLogger entry (build, sanitise, encode, write) while the block runs."""
    original = JsonLogger.emit

    def emit(self: JsonLogger, *args: Any, **kwargs: Any) -> None:
        with timer.time("logging"):
            original(self, *args, **kwargs)

    JsonLogger.emit = emit  # type: ignore[method-assign]
    try:
        yield
    finally:
        JsonLogger.emit = original  # type: ignore[method-assign]


def seed_actionable(conn: psycopg.Connection[Any], count: int) -> None:
    """`count` certifications, all with something due tonight (expired or in a reminder window),
    two per mentor, with PII-shaped mentor rows (as bench_sql seeds its sweep)."""
    conn.execute(
        """
        insert into public.peer_mentors (id, full_name, national_id, email)
        select ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
               'Bench Mentor ' || g, lpad((10000000000 + g)::text, 11, '0'), 'mentor' || g || '@example.org'
        from generate_series(1, greatest(1, %(n)s / 2)) g
        """,
        {"n": count},
    )
    conn.execute(
        """
        insert into public.certifications (peer_mentor_id, expiry_date)
        select ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g %% greatest(1, %(n)s / 2)), 12, '0'))::uuid,
               certexpiry.org_today('Europe/Oslo') + (g %% 40 - 9)
        from generate_series(1, %(n)s) g
        """,
        {"n": count},
    )
    conn.execute("analyze")


def _create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        if template is None:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return make_conninfo(admin, dbname=name)


def one_run(url: str) -> dict[str, float]:
    """One nightly run over the seeded database; seconds per part."""
    timer = Timer()
    secrets = Secrets()
    secrets.register(url)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        logger = JsonLogger(
            secrets=secrets,
            service="certexpiry",
            version="bench",
            project="bench",
            stream=devnull,
        )
        store = pg_store(url)
        publisher = InMemoryPublisher()
        job = Job(
            settings=Settings(continuation_topic=LOCAL_TOPIC),
            store=TimedStore(store, timer),
            publisher=publisher,
            log=logger,
        )
        with timed_logging(timer):
            started = time.perf_counter()
            result = run_chain(job, publisher)
            run_s = time.perf_counter() - started
        store.close()
    assert result.outcomes == [Outcome.ACK], result.outcomes
    return {
        "run_s": run_s,
        "logging_s": timer.seconds.get("logging", 0.0),
        "lines": timer.calls.get("logging", 0),
        "monitoring_s": timer.seconds.get("monitoring", 0.0),
        "audit_s": timer.seconds.get("audit", 0.0),
    }


def run(actionable: int = 10_000, repeats: int = 3, admin_url: str | None = None) -> dict[str, Any]:
    """Median figures of `repeats` runs over `actionable` certifications, in milliseconds."""
    server = None
    if admin_url is None:
        server = embedded.start(tempfile.mkdtemp(prefix="certexpiry-bench-overhead-"))
        admin_url = server.uri
    try:
        template = _create(admin_url, "bench_overhead_seed")
        schema.apply(template)
        with psycopg.connect(template, autocommit=True) as conn:
            seed_actionable(conn, actionable)
        runs = []
        for index in range(repeats):
            url = _create(admin_url, f"bench_overhead_{index}", template="bench_overhead_seed")
            runs.append(one_run(url))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for index in range(repeats):
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(f"bench_overhead_{index}")
                    )
                )
            conn.execute("drop database if exists bench_overhead_seed with (force)")
    finally:
        if server is not None:
            server.stop()

    def median(key: str) -> float:
        return statistics.median(item[key] for item in runs)

    run_ms, logging_ms = median("run_s") * 1000, median("logging_s") * 1000
    monitoring_ms, audit_ms = median("monitoring_s") * 1000, median("audit_s") * 1000
    overhead_ms = logging_ms + monitoring_ms + audit_ms
    lines = int(statistics.median(item["lines"] for item in runs))
    return {
        "actionable": actionable,
        "repeats": repeats,
        "run_ms": run_ms,
        "lines": lines,
        "logging_ms": logging_ms,
        "us_per_line": logging_ms * 1000 / lines if lines else 0.0,
        "monitoring_ms": monitoring_ms,
        "audit_ms": audit_ms,
        "overhead_ms": overhead_ms,
        "share": overhead_ms / run_ms if run_ms else 0.0,
        "spec_ms": SPEC_MS,
        "goal_ms": GOAL_MS,
        "goal_met": overhead_ms < GOAL_MS,
    }


def markdown(figures: dict[str, Any]) -> str:
    rows = [
        "| Part of the run | ms | share of the run |",
        "|---|---:|---:|",
        f"| Logger calls ({figures['lines']} lines, {figures['us_per_line']:.1f} µs a line) "
        f"| {figures['logging_ms']:.2f} | {figures['logging_ms'] / figures['run_ms']:.2%} |",
        f"| Monitoring RPC | {figures['monitoring_ms']:.2f} | {figures['monitoring_ms'] / figures['run_ms']:.2%} |",
        f"| Audit upsert | {figures['audit_ms']:.2f} | {figures['audit_ms'] / figures['run_ms']:.2%} |",
        f"| **Overhead (sum)** | **{figures['overhead_ms']:.2f}** | **{figures['share']:.2%}** |",
        f"| Whole run ({figures['actionable']:,} actionable certifications) | {figures['run_ms']:.0f} | 100% |",
        "",
        f"Median of {figures['repeats']} run(s). Spec limit {figures['spec_ms']:.0f} ms, goal "
        f"< {figures['goal_ms']:.0f} ms: {'met' if figures['goal_met'] else 'NOT met'}.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--actionable", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(run(args.actionable, args.repeats)) + "\n")


if __name__ == "__main__":
    main()
