"""Duplicate, concurrent and late delivery: every message arrives 2-3 times, some copies at the
same moment on different instances, some long after the chain moved on. There must be exactly
one chain per run (one start, each continuation claimed and published once, one completion,
no fencing) and no duplicate effect.

Two drivers share one schedule: `handle_event` from threads, each thread an instance with its
own store and connection (fast, many nights), and three real function processes receiving
concurrent HTTP POSTs (each with gunicorn THREADS=1, like max_instance_request_concurrency=1).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.retry import RetryPolicy
from certexpiry.store import RpcStore
from certexpiry.store.postgres import pg_store
from certexpiry.sweep import Job, Outcome, handle_event
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.local import pubsub_event_data
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.chain import NIGHTLY, LockedPublisher, Subscription
from tests.clock import OrgDay, StepClock
from tests.jobs import make_job
from tests.logcapture import CapturedLog
from tests.reliability.support import (
    entries,
    env_int,
    expected_effects,
    expire_leases,
    report,
    reset_to_seed,
    run_state_problems,
    save_seed,
    seed_night,
    sized,
    stop,
    totals_problems,
    variants,
    verdict,
)

Conn = psycopg.Connection[Any]
FAST = RetryPolicy(attempts=3, max_seconds=2, initial_wait_s=0.001, max_wait_s=0.005)


@dataclass
class Chaos:
    """What the schedule did."""

    deliveries: int = 0
    concurrent_groups: int = 0
    late: int = 0
    retries: int = 0
    lease_expiries: int = 0


def chaotic_delivery(  # noqa: C901  # one schedule with its kinds of chaos side by side
    deliver: Callable[[bytes, int], bool],
    pull: Callable[[], list[bytes]],
    rng: random.Random,
    *,
    instances: int,
    on_stuck: Callable[[], None],
    max_rounds: int = 2_000,
) -> Chaos:
    """Deliver every message 2-3 times (concurrently on different instances or one after the
    other), hold some copies back to deliver late, redeliver every RETRY; `deliver(body, slot)`
    returns False for a RETRY, `pull` what was published since (a tests.chain.Subscription).

    The chaotic counterpart of tests/chain.py's one-at-a-time `Chain.run`."""
    chaos = Chaos()
    fresh: list[bytes] = [NIGHTLY]
    retry: list[bytes] = []
    late: list[bytes] = []
    pool = ThreadPoolExecutor(max_workers=instances)
    try:
        for _ in range(max_rounds):
            if fresh:
                body = fresh.pop(0)
                copies = rng.choice([2, 3])
                if rng.random() < 0.5:
                    late.append(body)
                if rng.random() < 0.6:
                    chaos.concurrent_groups += 1
                    barrier = threading.Barrier(copies)

                    def at_once(
                        slot: int, body: bytes = body, barrier: threading.Barrier = barrier
                    ) -> bool:
                        barrier.wait(10)
                        return deliver(body, slot)

                    results = list(pool.map(at_once, range(copies)))
                else:
                    results = [deliver(body, rng.randrange(instances)) for _ in range(copies)]
                chaos.deliveries += copies
                retry += [body for ok in results if not ok]
                fresh += pull()
            elif retry or late:
                progressed = False
                for body in retry[:]:
                    retry.remove(body)
                    chaos.deliveries += 1
                    chaos.retries += 1
                    if deliver(body, rng.randrange(instances)):
                        progressed = True
                    else:
                        retry.append(body)
                    fresh += pull()
                if late and (not retry or rng.random() < 0.5):
                    body = late.pop(rng.randrange(len(late)))
                    chaos.deliveries += 1
                    chaos.late += 1
                    if not deliver(body, rng.randrange(instances)):
                        retry.append(body)
                    progressed = True
                    fresh += pull()
                if not progressed and not fresh:
                    chaos.lease_expiries += 1
                    on_stuck()  # only RETRYs left: let the leases lapse
            else:
                return chaos
    finally:
        pool.shutdown()
    raise AssertionError(f"deliveries did not settle in {max_rounds} rounds")


def one_chain_problems(codes: list[dict[str, Any]]) -> list[str]:
    """Exactly one chain: one start, segments 1..n-1 each claimed and published once, one end."""
    count = Counter(entry["error_code"] for entry in codes)
    problems = []
    for code, want in (
        ("RUN_STARTED", 1),
        ("RUN_COMPLETED", 1),
        ("RUN_RESUMED", 0),
        ("RUN_FENCED", 0),
    ):
        if count[code] != want:
            problems.append(f"{count[code]} {code} lines, expected {want}")
    for code in ("SEGMENT_STARTED", "CONTINUATION_PUBLISHED"):
        segments = sorted(
            entry["context"]["segment"] for entry in codes if entry["error_code"] == code
        )
        if segments != list(range(1, len(segments) + 1)):
            problems.append(f"{code} segments {segments}")
    errors = [entry["error_code"] for entry in codes if entry["severity"] == "ERROR"]
    if errors:
        problems.append(f"ERROR lines: {Counter(errors)}")
    return problems


def _job(store: RpcStore, log: CapturedLog, publisher: LockedPublisher, org: OrgDay) -> Job:
    return make_job(
        store,
        log,
        publisher=publisher,
        clock=StepClock(3.0),  # every batch "takes" 3 s: one or two batches a segment
        org_timezone=org.timezone,
        batch_size=3,
        time_budget_s=10,
        monitoring_reserve_s=1,
        lease_s=10,
    )


@pytest.fixture
def stores(database_url: str) -> Iterator[list[RpcStore]]:
    opened = [pg_store(database_url, retry=FAST) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


@pytest.mark.parametrize("variant", variants())
def test_in_process_instances_every_message_two_or_three_times(
    variant: str, db: Conn, stores: list[RpcStore], org: OrgDay
) -> None:
    """Three in-process instances, every message delivered 2-3 times, some at once, some late:
    one chain per night, no duplicate or missed effect."""
    nights = sized(variant, 4, 60, env="CERTEXPIRY_DELIVERY_NIGHTS")
    seed = env_int("CERTEXPIRY_SEED", 20261128)
    seed_night(db, 30, org.today)
    save_seed(db)
    expected = expected_effects(db, org.today)
    totals: Counter[str] = Counter()
    failures = []
    for night in range(nights):
        reset_to_seed(db)
        rng = random.Random(seed + night)
        log, publisher = CapturedLog(), LockedPublisher()
        jobs = [_job(store, log, publisher, org) for store in stores]
        published = Subscription.to_publisher(publisher)

        def deliver(body: bytes, slot: int, jobs: list[Job] = jobs) -> bool:
            data = pubsub_event_data(body)
            return handle_event(jobs[slot], PUBSUB_EVENT_TYPE, data) is Outcome.ACK

        chaos = chaotic_delivery(
            deliver, published.pull, rng, instances=len(jobs), on_stuck=lambda: expire_leases(db)
        )
        result = verdict(db, expected)
        problems = result.details + run_state_problems(db) + totals_problems(db)
        problems += one_chain_problems(log.entries)
        if problems:
            failures.append(f"night {night}: " + "; ".join(problems))
        codes = Counter(log.codes())
        totals.update(
            {
                "deliveries": chaos.deliveries,
                "concurrent_groups": chaos.concurrent_groups,
                "late": chaos.late,
                "retried": chaos.retries,
                "lease_expiries": chaos.lease_expiries,
                "RUN_BUSY": codes["RUN_BUSY"],
                "DUPLICATE_DELIVERY": codes["DUPLICATE_DELIVERY"],
                "segments": codes["CONTINUATION_PUBLISHED"] + 1,
                "duplicates": result.duplicates,
                "missed": result.missed,
            }
        )
    report(
        "delivery/in-process",
        {"variant": variant, "nights": nights, **totals, "failures": len(failures)},
    )
    assert failures == [], "\n".join(failures[:10])
    assert totals["RUN_BUSY"] > 0
    assert totals["DUPLICATE_DELIVERY"] > 0
    assert totals["concurrent_groups"] > 0


def test_function_instances_concurrent_http_posts(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """Three functions-framework instances; copies POSTed at the same moment to different ones."""
    seed_night(db, 24, org.today)
    expected = expected_effects(db, org.today)
    env = {
        **function_env(
            database_url,
            pubsub,
            org_timezone=org.timezone,
            time_budget_s=0.001,
            batch_size=4,
            monitoring_reserve_s=0,
            lease_s=10,
        ),
        "THREADS": "1",
    }
    instances: list[FunctionProcess] = []
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            instances = list(pool.map(lambda _: FunctionProcess(env=env).start(), range(3)))
        published = Subscription.to_pubsub(pubsub)

        def deliver(body: bytes, slot: int) -> bool:
            return instances[slot].deliver(body, timeout_s=60).status == 200

        chaos = chaotic_delivery(
            deliver,
            published.pull,
            random.Random(env_int("CERTEXPIRY_SEED", 7)),
            instances=3,
            on_stuck=lambda: expire_leases(db),
        )
    finally:
        for instance in instances:
            stop(instance)
    lines = [entry for instance in instances for entry in entries(instance)]
    result = verdict(db, expected)
    report(
        "delivery/function-processes",
        {
            "deliveries": chaos.deliveries,
            "concurrent_groups": chaos.concurrent_groups,
            "late": chaos.late,
            "duplicates": result.duplicates,
            "missed": result.missed,
        },
    )
    assert result.ok, result.details
    assert run_state_problems(db) == []
    assert totals_problems(db) == []
    assert one_chain_problems(lines) == []
    codes = Counter(entry["error_code"] for entry in lines)
    assert codes["RUN_BUSY"] > 0
    assert codes["DUPLICATE_DELIVERY"] > 0
    assert chaos.concurrent_groups > 0
