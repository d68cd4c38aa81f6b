"""Crash consistency: the real function process, SIGKILLed at random points, then recovered as
Pub/Sub recovers it; the end state must equal a clean run on identical data.

Each kill point: restore the seeded night, drive the chain through functions-framework and the
fake Pub/Sub, kill the instance (a random delay; right at a publish, with the message kept or
lost; or just after a chosen log line: the claim (in a batch), a batch's checkpoint (before
the handoff and publish), a continuation's publish (before the answer), the last batch (in the
monitoring query), the monitoring line (in the audit upsert), the audit line (in the run's
completion); triggers slow the database down a little so that those windows are wide), start
a new instance and recover in one of two ways:

* redeliver: Pub/Sub redelivers the unacknowledged message and every published continuation,
  in random order, sometimes with a late duplicate; a 503 (live lease) is redelivered after
  the leases are expired by SQL (what waiting LEASE_S does), then tonight's trigger again;
* next night: every pending message is lost; the run is moved to yesterday and the next
  nightly trigger supersedes it; the lost messages then arrive late and must change nothing.

Afterwards, against the clean run and the SQL oracle: every expired certification paused
once, every due reminder queued once (0 duplicates, 0 missed), one audit row per completed
run, no run left in progress, the runs' totals equal to the effects, every line JSON.

    reduced (default run): 10 kill points, one of each kind
    full (marked slow, deselected by default): .venv/bin/python -m pytest tests/reliability -m slow
          (CERTEXPIRY_KILL_POINTS=200, CERTEXPIRY_SEED to replay)
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub, Published
from tests import faults
from tests.chain import NIGHTLY, over_http
from tests.clock import OrgDay
from tests.reliability.support import (
    entries,
    env_int,
    expected_effects,
    expire_leases,
    hard_kill,
    is_running,
    non_json_lines,
    report,
    reset_to_seed,
    run_in_thread,
    run_state_problems,
    save_seed,
    seed_night,
    shift_runs_to_yesterday,
    sized,
    snapshot,
    stop,
    totals_problems,
    variants,
    verdict,
    wait_for,
)

Conn = psycopg.Connection[Any]
DB_PASSWORD = (
    "rel-crash-db-password-7f3a9c"  # trust auth ignores it; the leak scan must never see it
)
END_OF_RUN_SLEEP_S = 0.04
EFFECT_SLEEP_S = 0.004
# A kill just after RUN_STARTED or SEGMENT_STARTED must land before that segment's batch ends:
# its window is one batch (a few queued notifications). The test reads the function's lines in
# threads, so on a loaded machine the kill comes tens of ms after the line (once, with the other
# worker running a long test, after the whole last batch: the phase check failed). Until the kill,
# these two points slow each queued notification this much more.
START_WINDOW_SLEEP_S = 0.05
_START_MODES = ("line:RUN_STARTED", "line:SEGMENT_STARTED")

MODES = (
    "delay",
    "publish_lost",
    "publish_kept",
    "line:RUN_STARTED",
    "line:BATCH_DONE",
    "line:SEGMENT_STARTED",
    "line:CONTINUATION_PUBLISHED",
    "last_batch",
    "line:MONITORING_CLEAN",
    "line:AUDIT_WRITTEN",
)


@dataclass
class Plan:
    """Where to kill, and how Pub/Sub recovers."""

    mode: str
    occurrence: int = 1
    delay_s: float = 0.0
    recovery: str = "redeliver"

    def describe(self) -> str:
        return f"{self.mode}#{self.occurrence}+{self.delay_s * 1000:.0f}ms/{self.recovery}"


@dataclass
class Killer:
    """Fires one hard kill of `target` when the armed plan's trigger is reached."""

    target: FunctionProcess | None = None
    plan: Plan | None = None
    seen: Counter[str] = field(default_factory=Counter)
    fired: threading.Event = field(default_factory=threading.Event)
    pubsub: FakePubSub | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, target: FunctionProcess, plan: Plan) -> None:
        with self.lock:
            self.target, self.plan = target, plan
            self.seen = Counter()
            self.fired.clear()

    def _take(self) -> Plan | None:
        with self.lock:
            plan, self.plan = self.plan, None
            return plan

    def fire(self) -> None:
        target = self.target
        if target is not None:
            hard_kill(target)
        self.fired.set()

    def tap(self) -> Tap:
        return Tap(self)

    def on_line(self, source: FunctionProcess | None, line: str) -> None:
        if source is None or source is not self.target:
            return
        try:
            code = str(json.loads(line).get("error_code"))
        except (ValueError, AttributeError):
            return
        plan = self.plan
        if plan is None or not plan.mode.startswith(("line:", "last_batch")):
            return
        wanted = "BATCH_DONE" if plan.mode == "last_batch" else plan.mode.removeprefix("line:")
        if code != wanted:
            return
        self.seen[code] += 1
        if self.seen[code] == plan.occurrence and self._take() is not None:
            self.fire_after(plan.delay_s)

    def fire_after(self, delay_s: float) -> None:
        """Kill now, or from a timer (the line reader must go on reading meanwhile)."""
        if delay_s <= 0:
            self.fire()
        else:
            timer = threading.Timer(delay_s, self.fire)
            timer.daemon = True
            timer.start()

    def on_publish(self, item: Published) -> None:
        plan = self.plan
        if plan is None or not plan.mode.startswith("publish_"):
            return
        self.seen["publish"] += 1
        if self.seen["publish"] == plan.occurrence and self._take() is not None:
            if plan.mode == "publish_lost" and self.pubsub is not None:
                self.pubsub.messages.remove(item)  # the publish never reached Pub/Sub
            self.fire()

    def on_delay(self, delay_s: float, done: threading.Event) -> None:
        if done.wait(delay_s):
            return
        if self._take() is not None:
            self.fire()


@dataclass
class Tap:
    """The on_line callback of one instance: lines reach the killer with their instance."""

    killer: Killer
    owner: FunctionProcess | None = None

    def __call__(self, stream: str, line: str) -> None:
        self.killer.on_line(self.owner, line)


def plan_for(index: int, rng: random.Random, ref: dict[str, Any]) -> Plan:
    mode = MODES[index % len(MODES)]
    batches, publishes = ref["batches"], ref["publishes"]
    recovery = "next_night" if index % 3 == 2 else "redeliver"
    small = rng.uniform(0, 0.004)
    if mode == "delay":
        return Plan(mode, delay_s=rng.uniform(0.0, ref["seconds"] * 0.6), recovery=recovery)
    if mode.startswith("publish_") or mode == "line:CONTINUATION_PUBLISHED":
        return Plan(mode, occurrence=rng.randint(1, publishes), delay_s=small, recovery=recovery)
    if mode == "line:BATCH_DONE":
        return Plan(mode, occurrence=rng.randint(1, batches - 1), delay_s=small, recovery=recovery)
    if mode == "line:SEGMENT_STARTED":
        return Plan(mode, occurrence=rng.randint(1, publishes), delay_s=small, recovery=recovery)
    if mode == "line:RUN_STARTED":
        return Plan(mode, occurrence=1, delay_s=small, recovery=recovery)
    if mode == "last_batch":
        return Plan(mode, occurrence=batches, delay_s=small, recovery=recovery)
    # MONITORING_CLEAN is followed by the audit upsert, AUDIT_WRITTEN by complete_run: each
    # made to take END_OF_RUN_SLEEP_S, so the kill lands inside it.
    return Plan(
        mode, occurrence=1, delay_s=rng.uniform(0, END_OF_RUN_SLEEP_S * 0.75), recovery=recovery
    )


@dataclass
class Instance:
    """The function instance serving now, and a standby one already booted for the restart.

    Booting an instance (gunicorn, then the worker importing main) takes ~0.5 s; the standby
    is started in the background while the current one runs, and warmed up with a message it
    ignores, so that a restart costs what Cloud Functions' warm instance would.
    """

    env: dict[str, str]
    killer: Killer
    current: FunctionProcess | None = None
    started: int = 0
    _standby: FunctionProcess | None = None
    _booting: threading.Thread | None = None

    def _boot(self) -> None:
        tap = self.killer.tap()
        process = FunctionProcess(env=self.env, on_line=tap)
        tap.owner = process
        process.start()
        process.deliver(b"warm-up: not a message of ours")
        self._standby = process

    def _spawn(self) -> None:
        self._booting = run_in_thread(self._boot)

    def start(self) -> FunctionProcess:
        if self._booting is None:
            self._spawn()
        assert self._booting is not None
        self._booting.join(60)
        assert self._standby is not None, "the standby instance did not boot"
        self.current, self._standby = self._standby, None
        self.started += 1
        self._spawn()
        return self.current

    def settle(self) -> None:
        """Wait for the standby to finish booting (so it does not slow what is measured)."""
        if self._booting is not None:
            self._booting.join(60)

    def close(self) -> None:
        if self._booting is not None:
            self._booting.join(60)
        for process in (self.current, self._standby):
            if process is not None:
                stop(process)


@pytest.mark.long
@pytest.mark.parametrize("variant", variants())
def test_sigkill_at_random_points_then_recover(
    variant: str, db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """The function process SIGKILLed at each kind of point, then recovered by redelivery or by
    the next night: the end state equals the clean run's, nothing doubled or missed."""
    kill_points = sized(variant, 10, 200, env="CERTEXPIRY_KILL_POINTS")
    mentors = sized(variant, 36, 60)
    seed = env_int("CERTEXPIRY_SEED", 20261128)
    rng = random.Random(seed)
    today = org.today
    seed_night(db, mentors, today)
    save_seed(db)
    # A batch, the audit upsert and the completion take a few ms; a slower database (a sleep
    # per notification queued, and before the audit row and the completion) widens the windows
    # so that a kill after RUN_STARTED, MONITORING_CLEAN or AUDIT_WRITTEN lands inside them.
    faults.slow(
        db, "cron_audit_log", END_OF_RUN_SLEEP_S, events="insert or update", name="slow_audit"
    )
    faults.slow(
        db,
        "certexpiry.cron_runs",
        END_OF_RUN_SLEEP_S,
        name="slow_completion",
        when="new.status = 'completed' and old.status <> 'completed'",
    )
    faults.slow(
        db, "certexpiry.notification_outbox", EFFECT_SLEEP_S, events="insert", name="slow_effect"
    )
    expected = expected_effects(db, today)
    assert expected.size > mentors  # the night has work of every kind

    killer = Killer(pubsub=pubsub)
    pubsub.on_publish = killer.on_publish
    url = make_conninfo(database_url, password=DB_PASSWORD)
    env = function_env(
        url,
        pubsub,
        org_timezone=org.timezone,
        time_budget_s=0.001,
        batch_size=4,
        monitoring_reserve_s=0,
        lease_s=10,
    )
    instance = Instance(env=env, killer=killer)
    stats: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    points: list[str] = []
    failures: list[str] = []
    try:
        # The clean run on the same data: the reference end state and the chain's shape.
        function = instance.start()
        instance.settle()
        started = time.monotonic()
        clean = over_http(function, pubsub)
        clean.run()
        seconds = time.monotonic() - started
        # The HTTP answer can arrive before the reader thread has the run's last lines.
        wait_for(lambda: any(e.get("error_code") == "RUN_COMPLETED" for e in entries(function)), 30)
        codes = Counter(entry["error_code"] for entry in entries(function))
        ref = {
            "seconds": seconds,
            "batches": codes["BATCH_DONE"],
            "publishes": codes["CONTINUATION_PUBLISHED"],
        }
        assert ref["publishes"] >= 5
        assert codes["RUN_COMPLETED"] == 1
        clean_verdict = verdict(db, expected)
        assert clean_verdict.ok, clean_verdict.details
        reference = snapshot(db)
        assert run_state_problems(db) == []
        assert totals_problems(db) == []

        for index in range(kill_points):
            plan = plan_for(index, rng, ref)
            reset_to_seed(db)
            outcome = _one_kill_point(index, plan, rng, instance, pubsub, db)
            phases[outcome["phase"]] += 1
            points.append(
                f"{plan.describe()} -> {outcome['phase']}"
                f"{'' if outcome['mid_chain'] else ' (after its answer)'}"
            )
            stats["killed_mid_chain"] += int(outcome["mid_chain"])
            stats["deliveries"] += outcome["deliveries"]
            stats["retries_503"] += outcome["retries"]
            result = verdict(db, expected)
            stats["duplicates"] += result.duplicates
            stats["missed"] += result.missed
            stats["unexpected"] += result.unexpected
            problems = result.details + run_state_problems(db) + totals_problems(db)
            problems += outcome["problems"]
            if snapshot(db) != reference:
                problems.append("end state differs from the clean run")
            if problems:
                failures.append(
                    f"kill point {index} ({plan.describe()}, phase {outcome['phase']}): "
                    + "; ".join(problems[:5])
                )
    finally:
        instance.close()

    report(
        "crash",
        {
            "variant": variant,
            "seed": seed,
            "kill_points": kill_points,
            "mentors": mentors,
            "expected_effects": expected.size,
            "instances_started": instance.started,
            "clean_chain_s": round(ref["seconds"], 2),
            "segments": ref["publishes"] + 1,
            **stats,
            "last_line_before_kill": dict(phases),
            "failures": len(failures),
            "points": points if len(points) <= 20 else [*points[:20], "..."],
        },
    )
    assert failures == [], "\n".join(failures[:20])
    assert stats["duplicates"] == 0
    assert stats["missed"] == 0
    # The kills landed where they were meant to: in a batch (after a claim), between a
    # checkpoint and its publish, at the publish, and in the end-of-run monitoring and audit.
    assert stats["killed_mid_chain"] >= kill_points * 0.7, points
    for phase_group in (
        {"RUN_STARTED", "SEGMENT_STARTED"},
        {"BATCH_DONE"},
        {"PUBLISH"},
        {"MONITORING_CLEAN", "AUDIT_WRITTEN"},
    ):
        assert phase_group & set(phases), (phase_group, points)


def _one_kill_point(
    index: int, plan: Plan, rng: random.Random, instance: Instance, pubsub: FakePubSub, db: Conn
) -> dict[str, Any]:
    function = instance.current
    assert function is not None
    killer = instance.killer
    killer.arm(function, plan)
    driver = over_http(function, pubsub)
    done = threading.Event()

    def drive() -> None:
        try:
            driver.run()
        finally:
            done.set()

    with contextlib.ExitStack() as start_window:
        if plan.mode in _START_MODES:
            start_window.enter_context(
                faults.slow(
                    db,
                    "certexpiry.notification_outbox",
                    START_WINDOW_SLEEP_S,
                    events="insert",
                    name="slow_start_window",
                )
            )
        thread = run_in_thread(drive)
        if plan.mode == "delay":
            killer.on_delay(plan.delay_s, done)
        done.wait(120)
        thread.join(10)
        mid_chain = driver.died
        if not killer.fired.wait(1.0):
            killer._take()
            killer.fire()  # the trigger was not reached: kill after the chain (a valid point too)
    killed = function
    wait_for(lambda: killed._process is not None and killed._process.poll() is not None, 10)
    function.stop()  # reaps the killed child and drains its output
    codes = [
        entry["error_code"]
        for entry in entries(function)
        if entry["error_code"] != "INVALID_MESSAGE"
    ]  # the warm-up message
    phase = "PUBLISH" if plan.mode.startswith("publish_") else (codes[-1] if codes else "none")
    problems = [f"non-JSON line: {line}" for line in non_json_lines(function, killed=True)]
    assert not _alive(function), "the killed instance is still running"

    # Pub/Sub's view: the unacknowledged message, and whatever was published but not delivered.
    pending = (
        ([driver.in_flight] if driver.in_flight is not None else [])
        + driver.pending
        + driver.pull()
    )
    delivered_before = driver.delivered or [NIGHTLY]
    function = instance.start()
    recovery = over_http(function, pubsub, on_retry=lambda: expire_leases(db))
    if plan.recovery == "redeliver":
        rng.shuffle(pending)
        if rng.random() < 0.5:
            pending.append(rng.choice(delivered_before + pending))  # a late duplicate
        recovery.run(first=pending or [NIGHTLY])
        if recovery.results.count(200) == 0 or rng.random() < 0.5:
            recovery.run(first=[NIGHTLY])  # tonight's trigger again (a scheduler retry)
    else:
        shift_runs_to_yesterday(db)
        recovery.run(first=[NIGHTLY])
        before = snapshot(db)
        late = over_http(function, pubsub)
        late.run(first=pending)
        if late.results.count(200) != late.deliveries or snapshot(db) != before:
            problems.append(
                "a late message of the superseded run changed data or was not acknowledged"
            )
    problems += [f"non-JSON line: {line}" for line in non_json_lines(function, killed=False)]
    completed = Counter(entry["error_code"] for entry in entries(function))["RUN_COMPLETED"]
    if completed > 1:
        problems.append(f"{completed} RUN_COMPLETED lines after the restart")
    return {
        "phase": phase,
        "mid_chain": mid_chain,
        "deliveries": driver.deliveries + recovery.deliveries,
        "retries": recovery.results.count(503),
        "problems": problems,
    }


def _alive(function: FunctionProcess) -> bool:
    child = function._process
    if child is None:
        return False
    try:
        return any(
            is_running(process) for process in psutil.Process(child.pid).children(recursive=True)
        )
    except psutil.NoSuchProcess:
        return False


def test_harness_kill_takes_the_whole_instance_down(
    db: Conn, database_url: str, pubsub: FakePubSub
) -> None:
    """FunctionProcess.kill() must crash the instance: gunicorn's arbiter *and* its worker.

    functions-framework serves through gunicorn: the child FunctionProcess starts is the
    arbiter, the handler runs in a forked worker. A SIGKILL of the arbiter alone left the
    worker running the request in flight to completion (it even answered 200), so a crash
    test observed no crash at all. (Found by this suite; harness.py now kills the group.)
    """
    function = FunctionProcess(env=function_env(database_url, pubsub)).start()
    workers: list[psutil.Process] = []
    try:
        assert function.deliver(NIGHTLY).status == 200  # the worker is up
        assert function._process is not None
        workers = psutil.Process(function._process.pid).children(recursive=True)
        assert workers
        function.kill()
        wait_for(lambda: not any(is_running(worker) for worker in workers), 5)
        survivors = [worker.pid for worker in workers if is_running(worker)]
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        stop(function)
    assert survivors == []
