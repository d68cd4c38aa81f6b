"""Monitoring query latency at 10k/100k/1M certifications, and the sweep's throughput against a
row-at-a-time baseline, on the embedded Postgres, in the same run.

    .venv/bin/python -m bench.bench_sql [--sizes 10000,100000,1000000] [--actionable 10000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import date
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.seed import seed_certifications
from certexpiry.store.postgres import as_api_role, pg_store
from certexpiry_ops import embedded, schema

TODAY = date(2026, 11, 28)


def _fresh_db(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(admin, dbname=name)
    schema.apply(url)
    return url


def monitoring_median_ms(url: str, size: int, repeats: int = 21) -> dict[str, Any]:
    """Seed `size` certifications (a sweep has run: expired ones are paused, a few are missed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        seed_certifications(conn, size, TODAY, paused_share=0.995)
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            with as_api_role(conn):
                row = conn.execute(
                    "select public.get_missed_auto_pauses('Europe/Oslo', %s, 1000)", (TODAY,)
                ).fetchone()
            timings.append((time.perf_counter() - started) * 1000)
        assert row is not None
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "explain select * from certexpiry.missed_auto_pauses(%s)", (TODAY,)
            ).fetchall()
        )
    return {
        "size": size,
        "median_ms": statistics.median(timings),
        "missed": row[0]["missed_pause_count"],
        "index_scan": "Seq Scan on certifications" not in plan,
    }


def _claim(store_url: str) -> tuple[uuid.UUID, Any]:
    store = pg_store(store_url)
    claim = store.claim_nightly_run(uuid.uuid4(), "Europe/Oslo", 3600)
    return claim.run_id, store


def sweep_throughput(url: str, batch_size: int = 50) -> dict[str, Any]:
    """Certifications processed per second by the batch RPC, over the whole night."""
    with psycopg.connect(url, autocommit=True) as conn:
        actionable = conn.execute(
            "select count(*) from certexpiry.actionable_certifications(certexpiry.org_today('Europe/Oslo'), '{30,7,1}')"
        ).fetchone()
    run_id, store = _claim(url)
    started = time.perf_counter()
    cursor, batches = None, 0
    while True:
        result = store.process_batch(run_id, 0, cursor, batch_size, (30, 7, 1), 3600)
        batches += 1
        cursor = result.next_cursor
        if result.done:
            break
    seconds = time.perf_counter() - started
    store.close()
    count = actionable[0] if actionable else 0
    return {
        "certifications": count,
        "seconds": seconds,
        "per_s": count / seconds,
        "batches": batches,
    }


def row_at_a_time(url: str) -> dict[str, Any]:
    """The naive port: read the due certifications, then one call per certification and effect."""
    started = time.perf_counter()
    run_id = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        today = conn.execute("select certexpiry.org_today('Europe/Oslo')").fetchone()[0]  # type: ignore[index]
        rows = conn.execute(
            "select certification_id from certexpiry.actionable_certifications(%s, '{30,7,1}')",
            (today,),
        ).fetchall()
        for (cert_id,) in rows:
            with as_api_role(conn):
                conn.execute(
                    "select certexpiry.apply_effects(%s, %s, '{30,7,1}', array[%s]::uuid[])",
                    (run_id, today, cert_id),
                )
    seconds = time.perf_counter() - started
    return {"certifications": len(rows), "seconds": seconds, "per_s": len(rows) / seconds}


def run(sizes: list[int], actionable: int) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="certexpiry-bench-")
    server = embedded.start(data_dir)
    try:
        monitoring = []
        for size in sizes:
            url = _fresh_db(server.uri, f"bench_monitor_{size}")
            monitoring.append(monitoring_median_ms(url, size))
        # Same data for both: two databases seeded identically with `actionable` due certifications.
        results = {}
        for name in ("sweep", "baseline"):
            url = _fresh_db(server.uri, f"bench_{name}")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select setseed(0.42)")
                conn.execute(
                    """
                    insert into public.peer_mentors (id, full_name)
                    select ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'x'
                    from generate_series(1, %(n)s / 2) g
                    """,
                    {"n": actionable},
                )
                conn.execute(
                    """
                    insert into public.certifications (peer_mentor_id, expiry_date)
                    select ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g %% (%(n)s / 2)), 12, '0'))::uuid,
                           certexpiry.org_today('Europe/Oslo') + (g %% 40 - 9)
                    from generate_series(1, %(n)s) g
                    """,
                    {"n": actionable},
                )
                conn.execute("analyze")
            results[name] = sweep_throughput(url) if name == "sweep" else row_at_a_time(url)
        return {
            "monitoring": monitoring,
            "sweep": results["sweep"],
            "baseline": results["baseline"],
            "speedup": results["sweep"]["per_s"] / results["baseline"]["per_s"],
        }
    finally:
        server.stop()


def markdown(figures: dict[str, Any]) -> str:
    lines = [
        "| certifications | monitoring median (ms) | missed found | index scan |",
        "|---:|---:|---:|:-:|",
    ]
    for item in figures["monitoring"]:
        lines.append(
            f"| {item['size']:,} | {item['median_ms']:.2f} | {item['missed']} | {'yes' if item['index_scan'] else 'NO'} |"
        )
    sweep, base = figures["sweep"], figures["baseline"]
    lines += [
        "",
        "| sweep of the same night | certifications | seconds | per second |",
        "|---|---:|---:|---:|",
        f"| batch RPC, 50 mentors a call | {sweep['certifications']:,} | {sweep['seconds']:.2f} | {sweep['per_s']:,.0f} |",
        f"| row-at-a-time baseline | {base['certifications']:,} | {base['seconds']:.2f} | {base['per_s']:,.0f} |",
        "",
        f"Speed-up of the batch sweep over the baseline: **{figures['speedup']:.1f}x**.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--actionable", type=int, default=10_000)
    args = parser.parse_args()
    figures = run([int(s) for s in args.sizes.split(",")], args.actionable)
    print(markdown(figures))  # a report for a person


if __name__ == "__main__":
    main()
