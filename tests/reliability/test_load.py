"""Load: a large night swept through continuations with a small time budget, in-process with
the shared chain driver (tests/chain.py: the same handle_event the function runs), memory flat
across segments, and the result equal to the set-based expectation computed in SQL before the
run.

    reduced: 20,000 certifications
    full (marked slow, deselected by default):
             .venv/bin/python -m pytest tests/reliability -m slow -k load -s
             (CERTEXPIRY_LOAD_CERTS=1000000, the default; peak RSS per segment is printed)
"""

from __future__ import annotations

import io
import json
import resource
import statistics
import time
from collections import Counter
from datetime import date
from typing import Any

import psutil
import psycopg
import pytest

from bench.seed import seed_certifications
from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Outcome
from certexpiry_ops.fakes import InMemoryPublisher
from tests import leak_plugin
from tests.chain import in_process
from tests.clock import OrgDay
from tests.jobs import make_job
from tests.reliability.support import report, sized, variants

Conn = psycopg.Connection[Any]
MiB = 1024 * 1024


class LineSink(io.StringIO):
    """stdout for the run: every line is checked (JSON, leak scan) and counted, none is kept,
    so the process's memory is the sweep's alone."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.codes: Counter[str] = Counter()
        self.completed: dict[str, Any] = {}
        self.bad: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                self.bad.append(line[:200])
                continue
            self.codes[entry["error_code"]] += 1
            if entry["error_code"] == "RUN_COMPLETED":
                self.completed = entry["context"]
            leak_plugin.register_lines([line], self.source)
        return len(text)


def expected_counts(db: Conn, today: date) -> dict[str, int]:
    """The night's work, set-based, before the run."""
    row = db.execute(
        """
        with today as (select %(today)s::date as d),
        expired as (
            select c.peer_mentor_id from public.certifications c, today
            where c.status = 'active' and c.expiry_date < today.d
        )
        select (select count(*) from expired),
               (select count(distinct e.peer_mentor_id) from expired e
                join public.peer_mentors m on m.id = e.peer_mentor_id where m.status = 'active'),
               (select count(*) from public.certifications c, today
                where c.status = 'active' and c.expiry_date between today.d and today.d + 30)
        """,
        {"today": today},
    ).fetchone()
    assert row is not None
    return {"certifications_paused": row[0], "mentors_paused": row[1], "reminders_queued": row[2]}


def actual_counts(db: Conn, today: date) -> dict[str, int]:
    """What the run did, and what it left expired but active on its date."""
    row = db.execute(
        """
        select (select count(*) from certexpiry.certification_idempotency_log
                where action = 'auto_pause' and run_id is not null),
               (select count(*) from public.peer_mentors where paused_reason = 'certification_expired'),
               (select count(*) from certexpiry.notification_outbox where kind = 'reminder'),
               (select count(*) from certexpiry.notification_outbox where kind = 'pause_notice'),
               (select count(*) - count(distinct (certification_id, kind)) from certexpiry.notification_outbox),
               (select count(*) from public.certifications c
                where c.status = 'active' and c.expiry_date < %(today)s::date)
        """,
        {"today": today},
    ).fetchone()
    assert row is not None
    return {
        "certifications_paused": row[0],
        "mentors_paused": row[1],
        "reminders_queued": row[2],
        "notices_queued": row[3],
        "duplicates": row[4],
        "expired_still_active": row[5],
    }


@pytest.mark.parametrize("variant", variants())
def test_large_night_through_continuations(
    variant: str, db: Conn, database_url: str, org: OrgDay
) -> None:
    """A large night through many continuations: exactly the expected effects, no duplicate,
    every line JSON without PII, and memory flat across segments."""
    count = sized(variant, 20_000, 1_000_000, env="CERTEXPIRY_LOAD_CERTS")
    budget_s = sized(variant, 1, 20) / 10  # 0.1 s reduced, 2 s full: many segments either way
    today = org.today
    started = time.monotonic()
    seed_certifications(db, count, today)
    # PII-shaped values on every mentor: a leak anywhere in the run's output would show.
    db.execute(
        "update public.peer_mentors set national_id = lpad(((random() * 1e10)::bigint + 10000000000)::text, 11, '0'), "
        "email = 'kari.nordmann.' || left(id::text, 8) || '@example.org'"
    )
    seed_s = time.monotonic() - started
    expected = expected_counts(db, today)
    assert expected["certifications_paused"] > count // 10
    assert expected["reminders_queued"] > count // 10

    sink = LineSink(f"load {variant}")
    store = pg_store(database_url)
    publisher = InMemoryPublisher()
    job = make_job(
        store,
        JsonLogger(secrets=Secrets(), stream=sink),
        publisher=publisher,
        org_timezone=org.timezone,
        time_budget_s=budget_s,
        monitoring_reserve_s=0,
        lease_s=600,
    )
    process = psutil.Process()
    rss: list[int] = []
    peak: list[int] = []

    def measure() -> None:
        rss.append(process.memory_info().rss)
        peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    chain = in_process(job)
    chain.after_delivery = measure
    started = time.monotonic()
    outcomes = chain.run(max_deliveries=10_000)
    sweep_s = time.monotonic() - started  # a figure for the report, never asserted on
    store.close()
    segments = len(outcomes)

    actual = actual_counts(db, today)
    audit = db.execute(
        "select status, missed_pause_count, segments from public.cron_audit_log"
    ).fetchall()
    settle = min(3, len(rss) - 1)  # the first segments warm caches, pools and the sanitiser
    growth = max(rss[settle:]) - rss[settle]
    every = max(1, len(peak) // 12)
    report(
        "load",
        {
            "variant": variant,
            "certifications": count,
            "seed_s": round(seed_s, 1),  # figures for the report, never asserted on
            "sweep_s": round(sweep_s, 1),
            "per_s": round(
                (expected["certifications_paused"] + expected["reminders_queued"]) / sweep_s
            ),
            "segments": segments,
            "batches": sink.completed.get("batches"),
            **expected,
            "rss_mib_first_settled_last": [
                round(rss[0] / MiB, 1),
                round(rss[settle] / MiB, 1),
                round(rss[-1] / MiB, 1),
            ],
            "rss_growth_after_warmup_mib": round(growth / MiB, 2),
            "rss_median_mib": round(statistics.median(rss) / MiB, 1),
            "rss_mib_per_segment": [round(value / MiB, 1) for value in rss[::every]]
            + [round(rss[-1] / MiB, 1)],
            # ru_maxrss is the process's peak so far (earlier tests included): flat = no new peak.
            "peak_rss_mib_per_segment": [round(value / MiB, 1) for value in peak[::every]]
            + [round(peak[-1] / MiB, 1)],
        },
    )
    assert set(outcomes) == {Outcome.ACK}
    assert segments > 3
    assert sink.bad == []
    assert sink.codes["RUN_COMPLETED"] == 1
    assert sink.codes["CONTINUATION_PUBLISHED"] == segments - 1
    for key, value in expected.items():
        assert actual[key] == value, (key, actual, expected)
        assert sink.completed[key] == value, (key, sink.completed)
    assert actual["notices_queued"] == expected["certifications_paused"]
    assert actual["duplicates"] == 0
    assert actual["expired_still_active"] == 0
    assert audit == [("completed", 0, segments)]
    assert growth < (32 if variant == "full" else 24) * MiB, [
        round(value / MiB, 1) for value in rss
    ]
