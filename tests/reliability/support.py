"""Shared pieces of the reliability suites: sizes, a seeded night with PII, the SQL oracle,
state snapshots, and the handling of function processes for the crash and delivery tests
(the chain driver itself is tests/chain.py, the organisation's date tests/clock.py).

The oracle (`expected_effects`) restates the business rules in plain SQL, independently of
the `certexpiry.*` SQL functions the sweep uses, and is evaluated on the data *before* a run:
which certifications must be auto-paused, which mentors paused, and which reminder offset is
due for which certification. `verdict` then counts, after the run, duplicates (an effect
recorded or queued more than once), missed effects and unexpected ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psutil
import psycopg
import pytest
from _pytest.mark.structures import ParameterSet

from certexpiry_ops.harness import FunctionProcess
from tests import leak_plugin
from tests.seeding import SPEC_MISSED

Conn = psycopg.Connection[Any]
DAYS = (30, 7, 1)
NAMESPACE = uuid.UUID("6f1f4a52-3c1e-4d0c-9a57-2b1e0c7d9e11")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def variants() -> list[ParameterSet]:
    """`reduced` runs in every `pytest` run; `full` is marked `slow`, which the test command
    deselects (`-m "not slow"` in pyproject's addopts) and
    `.venv/bin/python -m pytest tests/reliability -m slow` runs."""
    return [
        pytest.param("reduced", id="reduced"),
        pytest.param("full", id="full", marks=pytest.mark.slow),
    ]


def sized(variant: str, reduced: int, full: int, env: str | None = None) -> int:
    """The size of a suite for this variant; `env` overrides the full size."""
    if variant == "full":
        return env_int(env, full) if env else full
    return reduced


def report(title: str, figures: dict[str, Any]) -> None:
    """Print the figures (shown with -s / -rP) and append them to $CERTEXPIRY_RELIABILITY_REPORT."""
    line = json.dumps({"suite": title, **figures}, default=str)
    print(line)  # figures for a person reading the run
    path = os.environ.get("CERTEXPIRY_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


# --------------------------------------------------------------------------- seeding


def mentor_pii(i: int) -> tuple[str, str, str]:
    """Name, national id (11 digits) and e-mail of seeded mentor `i`: real-looking PII."""
    name = f"Kari Nordmann {i}" if i % 2 else f"Ola Testesen {i}"
    national_id = f"{1 + i % 28:02d}{1 + i % 12:02d}{70 + i % 30:02d}{10000 + i % 90000:05d}"
    email = f"kari.nordmann.{i}@example.org"
    return name, national_id, email


DUE_OFFSETS = (0, 1, 2, 6, 7, 8, 29, 30)


def seed_night(conn: Conn, mentors: int, today: date, *, tag: str = "night") -> None:
    """A night with every kind of certification the rules distinguish, for `mentors` mentors.

    Per mentor (by index): an expired certification (1-9 days), a certification due at one of
    the reminder edges (0, 1, 2, 6, 7, 8, 29, 30 days), one not due yet (31+ days); some
    mentors already paused, some certifications already paused, some reminders sent on
    earlier nights, and renewed certifications whose previous expiry was auto-paused. Names,
    national ids and e-mails are PII-shaped and registered with the session's leak scan.
    `today` is the organisation's date the run will claim (tests/clock.py).
    """
    people, certs, log = [], [], []
    for i in range(mentors):
        mentor = uuid.uuid5(NAMESPACE, f"{tag}/mentor/{i}")
        name, national_id, email = mentor_pii(i)
        people.append((mentor, name, national_id, email, "paused" if i % 11 == 5 else "active"))

        def cert(
            kind: str, expiry: date, status: str = "active", i: int = i, mentor: uuid.UUID = mentor
        ) -> uuid.UUID:
            cert_id = uuid.uuid5(NAMESPACE, f"{tag}/cert/{kind}/{i}")
            certs.append((cert_id, mentor, expiry, status))
            return cert_id

        if i % 4 != 3:
            expired = cert("expired", today - timedelta(days=1 + i % 9))
            if i % 13 == 0:  # renewed: the previous expiry was auto-paused on an earlier night
                log.append((expired, "auto_pause", today - timedelta(days=400)))
        if i % 3 != 2:
            offset = DUE_OFFSETS[i % len(DUE_OFFSETS)]
            due = cert("due", today + timedelta(days=offset))
            if i % 5 == 0 and offset <= 7:  # the 30-day reminder went out on an earlier night
                log.append((due, "reminder_30d", today + timedelta(days=offset)))
        cert("later", today + timedelta(days=31 + i % 50))
        if i % 7 == 0:
            cert("old", today - timedelta(days=20), status="paused")
    leak_plugin.register_pii(value for person in people for value in person[1:4])
    with conn.cursor() as cur:
        cur.executemany(
            "insert into public.peer_mentors (id, full_name, national_id, email, status) "
            "values (%s, %s, %s, %s, %s)",
            people,
        )
        cur.executemany(
            "insert into public.certifications (id, peer_mentor_id, expiry_date, status) "
            "values (%s, %s, %s, %s)",
            certs,
        )
        cur.executemany(
            "insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date) "
            "values (%s, %s, %s)",
            log,
        )
    conn.execute("analyze")


def save_seed(conn: Conn) -> None:
    """Keep the seeded state so that `reset_to_seed` can restore it in place (milliseconds)."""
    conn.execute("drop schema if exists seedcopy cascade; create schema seedcopy")
    for table in (
        "public.peer_mentors",
        "public.certifications",
        "certexpiry.certification_idempotency_log",
    ):
        copy = table.split(".")[1]
        conn.execute(f"create table seedcopy.{copy} as table {table}")


def reset_to_seed(conn: Conn) -> None:
    """Undo every run: effects, run state and audit rows; statuses back to the seed."""
    conn.execute(
        """
        delete from certexpiry.notification_outbox;
        delete from certexpiry.certification_idempotency_log;
        insert into certexpiry.certification_idempotency_log (certification_id, action, expiry_date, run_id, outcome)
            select certification_id, action, expiry_date, run_id, outcome
            from seedcopy.certification_idempotency_log;
        update public.certifications c set status = s.status, paused_at = s.paused_at,
            next_action_on = s.next_action_on
            from seedcopy.certifications s where s.id = c.id;
        update public.peer_mentors m set status = s.status, paused_at = s.paused_at,
            paused_reason = s.paused_reason
            from seedcopy.peer_mentors s where s.id = m.id;
        delete from public.cron_audit_log;
        delete from certexpiry.cron_runs;
        """
    )


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Expectation:
    """What tonight's run must do, from the data before it ran."""

    pauses: frozenset[str]
    mentors: frozenset[str]
    reminders: frozenset[tuple[str, int]]

    @property
    def size(self) -> int:
        return len(self.pauses) + len(self.reminders)


def expected_effects(conn: Conn, today: date, days: Sequence[int] = DAYS) -> Expectation:
    """The rules in plain SQL (not the certexpiry.* functions the sweep calls)."""
    params = {"today": today, "days": list(days)}
    pauses = conn.execute(
        """
        select c.id::text, c.peer_mentor_id::text, m.status
        from public.certifications c join public.peer_mentors m on m.id = c.peer_mentor_id
        where c.status = 'active' and c.expiry_date < %(today)s
          and not exists (select 1 from certexpiry.certification_idempotency_log l
                          where l.certification_id = c.id and l.action = 'auto_pause'
                            and l.expiry_date = c.expiry_date)
        """,
        params,
    ).fetchall()
    reminders = conn.execute(
        """
        select c.id::text, min(n) as offset_days
        from public.certifications c cross join unnest(%(days)s::int[]) n
        where c.status = 'active' and c.expiry_date >= %(today)s
          and c.expiry_date - %(today)s <= n
        group by c.id
        having not exists (select 1 from certexpiry.certification_idempotency_log l
                           where l.certification_id = c.id
                             and l.action = 'reminder_' || min(n) || 'd'
                             and l.expiry_date = c.expiry_date)
        """,
        params,
    ).fetchall()
    return Expectation(
        pauses=frozenset(row[0] for row in pauses),
        mentors=frozenset(row[1] for row in pauses if row[2] == "active"),
        reminders=frozenset((row[0], int(row[1])) for row in reminders),
    )


@dataclass
class Verdict:
    """Duplicates, missed and unexpected effects of the runs so far against an expectation."""

    duplicates: int = 0
    missed: int = 0
    unexpected: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.missed == 0 and self.unexpected == 0


def verdict(conn: Conn, expected: Expectation) -> Verdict:
    """Compare the database after the runs with the expectation computed before them."""
    result = Verdict()
    queued = Counter(
        (str(cert), str(kind), None if offset is None else int(offset))
        for cert, kind, offset in conn.execute(
            "select certification_id, kind, (payload ->> 'offset_days')::int from certexpiry.notification_outbox"
        ).fetchall()
    )
    per_kind = Counter(
        (cert, kind) for (cert, kind, _), count in queued.items() for _ in range(count)
    )
    for (cert, kind), count in per_kind.items():
        if count > 1:
            result.duplicates += count - 1
            result.details.append(f"{kind} queued {count} times for {cert}")
    reminders = {(cert, offset) for cert, kind, offset in queued if kind == "reminder"}
    notices = {cert for cert, kind, _ in queued if kind == "pause_notice"}
    paused_by_run = {
        str(row[0])
        for row in conn.execute(
            """
            select l.certification_id from certexpiry.certification_idempotency_log l
            join public.certifications c on c.id = l.certification_id and c.expiry_date = l.expiry_date
            where l.action = 'auto_pause' and l.run_id is not null and c.status = 'paused'
            """
        ).fetchall()
    }
    mentors = {
        str(row[0])
        for row in conn.execute(
            "select id from public.peer_mentors where status = 'paused' and paused_reason = 'certification_expired'"
        ).fetchall()
    }
    for label, want, got in (
        ("auto-pause", expected.pauses, paused_by_run),
        ("pause notice", expected.pauses, notices),
        ("mentor pause", expected.mentors, mentors),
        ("reminder", expected.reminders, reminders),
    ):
        missing, extra = set(want) - set(got), set(got) - set(want)
        result.missed += len(missing)
        result.unexpected += len(extra)
        if missing:
            result.details.append(
                f"{len(missing)} {label}(s) missed, e.g. {sorted(map(str, missing))[:3]}"
            )
        if extra:
            result.details.append(
                f"{len(extra)} unexpected {label}(s), e.g. {sorted(map(str, extra))[:3]}"
            )
    return result


def snapshot(conn: Conn) -> dict[str, Any]:
    """The observable end state, without run ids, row ids or timestamps (for clean-run equality)."""
    return {
        "certs": conn.execute(
            "select id, status from public.certifications order by id"
        ).fetchall(),
        "mentors": conn.execute(
            "select id, status, paused_reason from public.peer_mentors order by id"
        ).fetchall(),
        "log": conn.execute(
            "select certification_id, action, expiry_date, outcome "
            "from certexpiry.certification_idempotency_log order by 1, 2, 3"
        ).fetchall(),
        "outbox": conn.execute(
            "select certification_id, kind, payload::text from certexpiry.notification_outbox order by 1, 2, 3"
        ).fetchall(),
    }


def run_state_problems(conn: Conn) -> list[str]:
    """Runs left in progress, completed runs without exactly one clean audit row, stray rows."""
    problems = []
    for run_id, status in conn.execute(
        "select run_id, status from certexpiry.cron_runs where status not in ('completed', 'abandoned')"
    ).fetchall():
        problems.append(f"run {run_id} left {status}")
    for run_id, rows, missed, status in conn.execute(
        """
        select r.run_id, count(a.run_id), max(a.missed_pause_count), max(a.status)
        from certexpiry.cron_runs r left join public.cron_audit_log a on a.run_id = r.run_id
        where r.status = 'completed' group by r.run_id
        """
    ).fetchall():
        if rows != 1:
            problems.append(f"completed run {run_id} has {rows} audit rows")
        elif missed != 0 or status != "completed":
            problems.append(f"completed run {run_id} audited {status} with {missed} missed")
    strays = conn.execute(
        "select count(*) from public.cron_audit_log a "
        "where not exists (select 1 from certexpiry.cron_runs r where r.run_id = a.run_id)"
    ).fetchone()
    if strays and strays[0]:
        problems.append(f"{strays[0]} audit rows without a run")
    return problems + monitoring_problems(conn)


def monitoring_problems(conn: Conn) -> list[str]:
    """The monitoring query's answer on the latest night against the specification's definition."""
    row = conn.execute("select max(nightly_key) from certexpiry.cron_runs").fetchone()
    if row is None or row[0] is None:
        return []
    today = row[0]
    spec = {r[0] for r in conn.execute(SPEC_MISSED, {"today": today}).fetchall()}
    found = {
        r[0]
        for r in conn.execute(
            "select certification_id from certexpiry.missed_auto_pauses(%s)", (today,)
        ).fetchall()
    }
    if spec == found:
        return []
    return [f"monitoring on {today}: {len(found - spec)} extra, {len(spec - found)} not reported"]


def totals_problems(conn: Conn) -> list[str]:
    """The runs' checkpointed totals against the effects actually recorded (no double count)."""
    row = conn.execute(
        """
        select coalesce(sum((totals ->> 'reminders_queued')::int), 0),
               coalesce(sum((totals ->> 'certifications_paused')::int), 0),
               (select count(*) from certexpiry.notification_outbox where kind = 'reminder'),
               (select count(*) from certexpiry.certification_idempotency_log
                where action = 'auto_pause' and run_id is not null)
        from certexpiry.cron_runs
        """
    ).fetchone()
    assert row is not None
    reminders, paused, queued, recorded = (int(value) for value in row)
    problems = []
    if reminders != queued:
        problems.append(f"runs count {reminders} reminders, the outbox holds {queued}")
    if paused != recorded:
        problems.append(f"runs count {paused} auto-pauses, the log holds {recorded}")
    return problems


def expire_leases(conn: Conn) -> None:
    """Let every lease lapse at once: what waiting LEASE_S would do, without the wait."""
    conn.execute(
        "update certexpiry.cron_runs set lease_until = '-infinity' where status in ('running', 'handoff')"
    )


def shift_runs_to_yesterday(conn: Conn) -> None:
    """Make tonight's runs last night's, with lapsed leases: the next nightly trigger's view."""
    conn.execute(
        "update certexpiry.cron_runs set nightly_key = nightly_key - 1, started_at = started_at - interval '1 day', "
        "lease_until = '-infinity'"
    )


# --------------------------------------------------------------------------- function processes


def hard_kill(function: FunctionProcess) -> None:
    """SIGKILL the whole function instance: the gunicorn arbiter *and* its worker.

    FunctionProcess.kill() signals only the child it started, the gunicorn arbiter; the worker
    that runs the handler survives it and finishes the request in flight (see
    test_harness_kill_leaves_the_worker_running). The arbiter is stopped first so that it
    cannot spawn a replacement worker, then every process of the tree is killed.
    """
    child = function._process
    if child is None or child.poll() is not None:
        return
    try:
        arbiter = psutil.Process(child.pid)
        arbiter.suspend()
        workers = arbiter.children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    function.kill()
    wait_for(lambda: not any(is_running(worker) for worker in workers), 5)


def is_running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an orphaned worker may never be reaped in a container)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop(function: FunctionProcess) -> None:
    """Stop a function instance cleanly (SIGTERM, then SIGKILL of the tree if it lingers)."""
    child = function._process
    workers: list[psutil.Process] = []
    if child is not None and child.poll() is None:
        try:
            workers = psutil.Process(child.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            workers = []
    function.stop()
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def entries(function: FunctionProcess) -> list[dict[str, Any]]:
    """The JSON entries the instance wrote (a line cut by a kill is skipped)."""
    parsed = []
    for _stream, line in list(function.lines):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    return parsed


def non_json_lines(function: FunctionProcess, *, killed: bool) -> list[str]:
    """Lines that are not JSON objects; a killed instance may leave one cut last line."""
    lines = [line for _stream, line in list(function.lines)]
    bad = []
    for number, line in enumerate(lines):
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        if killed and number == len(lines) - 1:
            continue
        bad.append(line[:200])
    return bad


def run_in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()
