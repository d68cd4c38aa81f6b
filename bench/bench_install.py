"""What installing the job, and then living with its objects, costs the peer-mentor app.

    .venv/bin/python -m bench.bench_install [--rows 1000000] [--pairs 3]

Why this exists: the job is a guest in the app's database. Its install adds a column and a
trigger to the app's `public.certifications` and builds two indexes on it (`schema.migrate`:
the baseline migration in one transaction with a 1 s lock timeout, then two
`create index concurrently`), and from then on every write of the app pays for the trigger and
the indexes. The issue's targets are that the install never blocks the app's reads and writes
for more than 1 second at a time, and that the app's writes cost at most 10% more than with the
specification's own index on (expiry_date, status) alone. This benchmark measures both on data
shaped like the app's years of use, and judges each target from the figures.

The data: an app database (Supabase bootstrap + the app fixture, no job) with N certifications
over N/2 mentors (random UUIDs, inserted in order of creation over six years), expiry dates
spread over -400..+425 days from today, ~5% revoked or paused, ~8% of mentors inactive; then
VACUUM ANALYZE. Everything runs on identical copies of it (`create database ... template`).

1. Install latency: on K fresh copies, an app client (its own thread and connection,
   autocommit, statements back to back without think time) alternates a read by id and an
   update of `updated_at` by id, every 10th statement a renewal (an update of expiry_date), on
   random existing ids; every statement is timed with `time.perf_counter`. After a baseline
   period, `schema.migrate` installs the job. Figures: the install's wall time, the client's
   worst, p99 and median latency during it, and its worst over an equal period right before.
   Target met when the worst during the install is under 1 s. The locks the install holds on
   `public.certifications` are sampled from pg_locks every 10 ms to tell which step held what.
2. The app's writes with and without the job: K pairs of copies, one with the job freshly
   installed (the state right after go-live: no night has run), one with the app alone; each
   workload timed on both, alternating which copy goes first, after a CHECKPOINT (so both
   start with the same full-page-write state) and with autovacuum off (so it cannot run on
   one copy while the other is timed). Figures: median with-job / app-alone ratio over the
   pairs (target <= 1.10), its spread, the WAL each workload wrote and the share of HOT updates.

Writes nothing into the repository: the embedded server lives in a temporary directory that is
removed at the end, also on errors and on SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg.conninfo import make_conninfo

from bench.bench_night import Cluster, org_today
from certexpiry_ops import embedded, schema

TARGET_BLOCK_S = 1.0  # the app's reads and writes never blocked for more than this
TARGET_WRITE_RATIO = 1.10  # the app's writes at most 10% over the app with the spec's index

SEED = 20261203
APP_TEMPLATE = "bench_install_app"
JOB_TEMPLATE = "bench_install_job"
CLIENT_NAME = "bench-install-client"
INSTALL_NAME = "bench-install-migrate"
CLIENT_IDS = 20_000  # the ids the app client picks from
RENEWAL_EVERY = 10  # every 10th client statement is a renewal
WARMUP_S = 1.0  # client statements in the first second are left out (connect, prepare)
MIN_BASELINE_S = 3.0  # the client runs at least this long (and 1.5x the longest install) first
TAIL_S = 0.3  # the client keeps going this long after the install returned
SAMPLE_S = 0.01  # pg_locks sampling interval during part 1
CLIENT_STATEMENT_TIMEOUT = "30s"
WORKLOAD_STATEMENT_TIMEOUT = "30min"
SINGLES = 5_000  # single-row renewals and single-row inserts, as the issue says


def log(message: str) -> None:
    """Progress on stderr; the report comes on stdout at the end."""
    sys.stderr.write(f"[bench_install {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Sizes:
    """The run's sizes; the bulk workloads scale with the table (200k and 100k at 1M rows)."""

    rows: int = 1_000_000
    pairs: int = 3

    @property
    def mentors(self) -> int:
        return max(1, self.rows // 2)

    @property
    def singles(self) -> int:
        return min(SINGLES, self.rows // 4)

    @property
    def bulk_update(self) -> int:
        return self.rows // 5

    @property
    def bulk_insert(self) -> int:
        return self.rows // 10


# --------------------------------------------------------------------------------------------
# The app's database


def populate_app(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    """Mentors and certifications as years of the app's use left them, set-based."""
    today = org_today(conn)
    courses = [row[0] for row in conn.execute("select id from public.courses order by title")]
    conn.execute("select setseed(%s)", (SEED / 2**31,))
    conn.execute(
        """
        insert into public.peer_mentors (full_name, email, region, status, created_at, updated_at)
        select 'Mentor ' || g, 'mentor' || g || '@example.org',
               (array['oslo', 'viken', 'vestland', 'trondelag'])[1 + g %% 4],
               case when random() < 0.08 then 'inactive' else 'active' end,
               now() - random() * interval '6 years', now() - random() * interval '1 year'
        from generate_series(1, %(mentors)s) g
        """,
        {"mentors": sizes.mentors},
    )
    conn.execute(
        "create temp table mentor_no as"
        " select row_number() over (order by id) as n, id from public.peer_mentors"
    )
    conn.execute(
        """
        insert into public.certifications
            (peer_mentor_id, course_id, certificate_number, issued_on, expiry_date, status,
             paused_at, created_at, updated_at)
        select m.id, c.course_id, 'C-' || c.g, c.expiry - 730, c.expiry, c.status,
               case when c.status = 'paused' then c.expiry + 1 end,
               c.created, c.created + random() * (now() - c.created)
        from (
            select g,
                   1 + floor(random() * %(mentors)s)::int as mentor_no,
                   (%(courses)s::uuid[])[1 + g %% 2] as course_id,
                   %(today)s::date + floor(random() * 826)::int - 400 as expiry,
                   case when r < 0.03 then 'revoked' when r < 0.05 then 'paused'
                        else 'active' end as status,
                   now() - random() * interval '6 years' as created
            from (select g, random() as r from generate_series(1, %(rows)s) g) s
        ) c
        join mentor_no m on m.n = c.mentor_no
        order by c.created
        """,
        {"mentors": sizes.mentors, "courses": courses, "today": today, "rows": sizes.rows},
    )
    conn.execute("drop table mentor_no")
    conn.execute("vacuum analyze")


def build_app_template(cluster: Cluster, sizes: Sizes) -> str:
    """The app's database before the job: bootstrap, app fixture, data; returns its URL."""
    url = cluster.create(APP_TEMPLATE)
    with psycopg.connect(url, autocommit=True) as conn:
        schema.prepare_local(conn, bootstrap=True, app=True)
        populate_app(conn, sizes)
    return url


def build_job_template(cluster: Cluster) -> float:
    """A copy of the app's database with the job installed (no client); returns the install's
    seconds, the first estimate of how long an install takes."""
    url = cluster.create(JOB_TEMPLATE, template=APP_TEMPLATE)
    started = time.perf_counter()
    schema.migrate(url)
    return time.perf_counter() - started


def sample_ids(url: str, query: LiteralString, count: int) -> list[UUID]:
    """`count` random ids (reproducible) from `query`, read once from the app's template."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select setseed(%s)", (SEED / 2**32,))
        return [row[0] for row in conn.execute(query, {"count": count})]


# --------------------------------------------------------------------------------------------
# Part 1: the install under an app client


READ_ONE: LiteralString = (
    "select id, peer_mentor_id, expiry_date, status, updated_at"
    " from public.certifications where id = %s"
)
TOUCH_ONE: LiteralString = "update public.certifications set updated_at = now() where id = %s"
RENEW_ONE: LiteralString = (
    "update public.certifications set expiry_date = expiry_date + 365, updated_at = now()"
    " where id = %s"
)


@dataclass(frozen=True)
class Statement:
    """One client statement: when it started and how long it took (perf_counter seconds)."""

    started: float
    seconds: float
    kind: str

    @property
    def ended(self) -> float:
        return self.started + self.seconds


class AppClient(threading.Thread):
    """The app's API: single-row reads and writes back to back on its own connection."""

    def __init__(self, url: str, ids: Sequence[UUID]) -> None:
        super().__init__(name="app-client", daemon=True)
        self.url = make_conninfo(
            url,
            application_name=CLIENT_NAME,
            options=f"-c statement_timeout={CLIENT_STATEMENT_TIMEOUT}",
        )
        self.ids = ids
        self.statements: list[Statement] = []
        self.errors: list[str] = []
        self.failure: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001  # re-raised by the main thread
            self.failure = exc

    def _loop(self) -> None:
        choose = random.Random(SEED).choice
        with psycopg.connect(self.url, autocommit=True) as conn:
            iteration = 0
            while not self._stopping.is_set():
                kind, query = self._statement(iteration)
                started = time.perf_counter()
                try:
                    cursor = conn.execute(query, (choose(self.ids),))
                    if kind == "read":
                        cursor.fetchall()
                except psycopg.Error as exc:
                    if conn.closed:
                        raise
                    self.errors.append(f"{type(exc).__name__}: {str(exc).strip()}")
                self.statements.append(Statement(started, time.perf_counter() - started, kind))
                iteration += 1

    @staticmethod
    def _statement(iteration: int) -> tuple[str, LiteralString]:
        if iteration % RENEWAL_EVERY == RENEWAL_EVERY - 1:
            return "renewal", RENEW_ONE
        return ("read", READ_ONE) if iteration % 2 == 0 else ("touch", TOUCH_ONE)


# The lock modes, weakest first; from ShareLock on they block the app's writes (RowExclusive),
# AccessExclusiveLock also its reads.
LOCK_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
BLOCKS_WRITES = frozenset(LOCK_MODES[4:])


@dataclass(frozen=True)
class LockSample:
    """The install's granted locks on public.certifications at one instant."""

    at: float
    modes: frozenset[str]
    client_waits: bool  # the app client is waiting for a lock


class LockSampler(threading.Thread):
    """Samples pg_locks: what the install holds on public.certifications, and whether the
    client waits for a lock (a third connection, polling every SAMPLE_S)."""

    QUERY: LiteralString = """
        select a.application_name,
               a.wait_event_type is not distinct from 'Lock',
               coalesce(array_agg(l.mode) filter (where l.mode is not null), '{}')
        from pg_stat_activity a
        left join pg_locks l on l.pid = a.pid and l.granted and l.locktype = 'relation'
             and l.relation = 'public.certifications'::regclass
        where a.datname = current_database() and a.application_name = any(%s)
        group by a.pid, a.application_name, a.wait_event_type
    """

    def __init__(self, url: str) -> None:
        super().__init__(name="lock-sampler", daemon=True)
        self.url = url
        self.samples: list[LockSample] = []
        self.failure: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._stopping.wait(SAMPLE_S):
                    self.samples.append(self._sample(conn))
        except BaseException as exc:  # noqa: BLE001  # re-raised by the main thread
            self.failure = exc

    def _sample(self, conn: psycopg.Connection[Any]) -> LockSample:
        at = time.perf_counter()
        modes: frozenset[str] = frozenset()
        waits = False
        for name, waiting, held in conn.execute(self.QUERY, ([CLIENT_NAME, INSTALL_NAME],)):
            if name == INSTALL_NAME:
                modes = frozenset(held)
            else:
                waits = bool(waiting)
        return LockSample(at, modes, waits)


@dataclass(frozen=True)
class Step:
    """One step of the install: before the first migration, then one per migration."""

    name: str
    started: float
    ended: float


@dataclass(frozen=True)
class StepFigures:
    name: str
    seconds: float
    strongest_lock: str
    blocking_writes_s: float  # longest sampled span holding a lock that blocks the app's writes
    client_worst_s: float


@dataclass(frozen=True)
class InstallRun:
    """One install on a fresh copy under the app client."""

    install_s: float
    during: list[Statement]  # the client statements overlapping the install
    before_worst_s: float
    baseline_s: float  # the baseline window actually available (at most the install's length)
    errors: list[str]
    steps: list[StepFigures]
    client_lock_waits: int  # samples in which the client waited for a lock

    @property
    def latencies(self) -> list[float]:
        return [statement.seconds for statement in self.during]

    @property
    def worst(self) -> Statement | None:
        return max(self.during, key=lambda statement: statement.seconds, default=None)

    @property
    def worst_s(self) -> float:
        return self.worst.seconds if self.worst else 0.0


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share 0.99 for p99)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


def overlapping(statements: Sequence[Statement], start: float, end: float) -> list[Statement]:
    return [s for s in statements if s.started < end and s.ended > start]


def longest_span(samples: Sequence[LockSample], modes: frozenset[str]) -> float:
    """The longest run of consecutive samples holding one of `modes`, up to the next sample."""
    longest, since = 0.0, None
    for sample in samples:
        if sample.modes & modes:
            since = sample.at if since is None else since
        elif since is not None:
            longest, since = max(longest, sample.at - since), None
    if since is not None and samples:
        longest = max(longest, samples[-1].at - since + SAMPLE_S)
    return longest


def strongest(samples: Sequence[LockSample]) -> str:
    held = {mode for sample in samples for mode in sample.modes}
    return max(held, key=LOCK_MODES.index) if held else "-"


def step_figures(
    steps: Sequence[Step], samples: Sequence[LockSample], statements: Sequence[Statement]
) -> list[StepFigures]:
    figures = []
    for step in steps:
        # The sample right after the step still shows what it held at its end.
        inside = [s for s in samples if step.started <= s.at < step.ended + SAMPLE_S]
        figures.append(
            StepFigures(
                name=step.name,
                seconds=step.ended - step.started,
                strongest_lock=strongest(inside),
                blocking_writes_s=longest_span(inside, BLOCKS_WRITES),
                client_worst_s=max(
                    (s.seconds for s in statements if step.started <= s.started < step.ended),
                    default=0.0,
                ),
            )
        )
    return figures


def install_under_client(url: str, ids: Sequence[UUID], baseline_s: float) -> InstallRun:
    """Start the client, let it run WARMUP_S + `baseline_s`, install the job, stop the client."""
    client, sampler = AppClient(url, ids), LockSampler(url)
    stamps: list[tuple[str, float]] = []
    client.start()
    sampler.start()
    try:
        time.sleep(WARMUP_S + baseline_s)
        started = time.perf_counter()
        stamps.append(("connect, lock, ledger check", started))
        schema.migrate(
            make_conninfo(url, application_name=INSTALL_NAME),
            on_apply=lambda migration: stamps.append((migration.name, time.perf_counter())),
        )
        ended = time.perf_counter()
        time.sleep(TAIL_S)
    finally:
        client.stop()
        sampler.stop()
    for thread in (client, sampler):
        if thread.failure is not None:
            raise thread.failure
    ready = client.statements[0].started + WARMUP_S if client.statements else started
    window_start = max(started - (ended - started), ready)
    before = [
        s.seconds for s in client.statements if s.started >= window_start and s.ended <= started
    ]
    ends = [at for _, at in stamps[1:]] + [ended]
    steps = [Step(name, at, end) for (name, at), end in zip(stamps, ends, strict=True)]
    during_samples = [s for s in sampler.samples if started <= s.at <= ended + SAMPLE_S]
    return InstallRun(
        install_s=ended - started,
        during=overlapping(client.statements, started, ended),
        before_worst_s=max(before, default=0.0),
        baseline_s=started - window_start,
        errors=client.errors,
        steps=step_figures(steps, sampler.samples, client.statements),
        client_lock_waits=sum(s.client_waits for s in during_samples),
    )


def part_install(cluster: Cluster, sizes: Sizes, estimate_s: float) -> list[InstallRun]:
    """K installs, each on a fresh copy of the app's database under the app client."""
    ids = sample_ids(
        cluster.url(APP_TEMPLATE),
        "select id from public.certifications order by random() limit %(count)s",
        CLIENT_IDS,
    )
    runs: list[InstallRun] = []
    longest = estimate_s
    for copy in range(sizes.pairs):
        name = f"bench_install_latency_{copy}"
        url = cluster.create(name, template=APP_TEMPLATE)
        try:
            baseline_s = max(MIN_BASELINE_S, 1.5 * longest)
            run = install_under_client(url, ids, baseline_s)
        finally:
            cluster.drop(name)
        longest = max(longest, run.install_s)
        log(
            f"install {copy + 1}/{sizes.pairs}: {run.install_s:.2f} s, client worst "
            f"{run.worst_s * 1000:.1f} ms (before {run.before_worst_s * 1000:.1f} ms)"
        )
        runs.append(run)
    return runs


# --------------------------------------------------------------------------------------------
# Part 2: the app's writes with and without the job


@dataclass(frozen=True)
class Picks:
    """What the workloads write, chosen once from the app's template: the same on every copy."""

    renewal_ids: list[UUID]
    bulk_ids: list[UUID]
    insert_mentors: list[UUID]
    single_insert_mentors: list[UUID]
    course_id: UUID


def choose_picks(url: str, sizes: Sizes) -> Picks:
    active: LiteralString = (
        "select id from public.certifications where status = 'active'"
        " order by random() limit %(count)s"
    )
    mentors = sample_ids(url, "select id from public.peer_mentors limit %(count)s", sizes.mentors)
    chooser = random.Random(SEED)
    with psycopg.connect(url) as conn:
        row = conn.execute("select id from public.courses order by title limit 1").fetchone()
    assert row is not None
    return Picks(
        renewal_ids=sample_ids(url, active, sizes.singles),
        bulk_ids=sample_ids(url, active, sizes.bulk_update),
        insert_mentors=chooser.choices(mentors, k=sizes.bulk_insert),
        single_insert_mentors=chooser.choices(mentors, k=sizes.singles),
        course_id=row[0],
    )


def fill_temp_table(conn: psycopg.Connection[Any], name: LiteralString, ids: list[UUID]) -> None:
    """A temporary table of ids (untimed set-up of a bulk workload), analyzed."""
    conn.execute(f"create temp table {name} (n int primary key, id uuid not null)")
    with conn.cursor().copy(f"copy {name} (n, id) from stdin") as copy:
        for n, value in enumerate(ids):
            copy.write_row((n, value))
    conn.execute(f"analyze {name}")


def renew_one_by_one(conn: psycopg.Connection[Any], picks: Picks) -> None:
    for certification in picks.renewal_ids:
        conn.execute(RENEW_ONE, (certification,))


def prepare_bulk_renewal(conn: psycopg.Connection[Any], picks: Picks) -> None:
    fill_temp_table(conn, "bulk_picked", picks.bulk_ids)


def renew_in_bulk(conn: psycopg.Connection[Any], _picks: Picks) -> None:
    conn.execute(
        "update public.certifications set expiry_date = expiry_date + 365, updated_at = now()"
        " where id in (select id from bulk_picked)"
    )


def prepare_bulk_insert(conn: psycopg.Connection[Any], picks: Picks) -> None:
    fill_temp_table(conn, "insert_mentors", picks.insert_mentors)


def insert_in_bulk(conn: psycopg.Connection[Any], picks: Picks) -> None:
    conn.execute(
        """
        insert into public.certifications
            (peer_mentor_id, course_id, certificate_number, issued_on, expiry_date)
        select m.id, %s, 'N-' || m.n, current_date, current_date + 365 + m.n %% 60
        from insert_mentors m
        """,
        (picks.course_id,),
    )


def insert_one_by_one(conn: psycopg.Connection[Any], picks: Picks) -> None:
    for n, mentor in enumerate(picks.single_insert_mentors):
        conn.execute(
            "insert into public.certifications"
            " (peer_mentor_id, course_id, certificate_number, issued_on, expiry_date)"
            " values (%s, %s, %s, current_date, current_date + 365)",
            (mentor, picks.course_id, f"S-{n}"),
        )


def no_preparation(_conn: psycopg.Connection[Any], _picks: Picks) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    prepare: Callable[[psycopg.Connection[Any], Picks], None]  # untimed
    run: Callable[[psycopg.Connection[Any], Picks], None]  # timed


def workloads(sizes: Sizes) -> list[Workload]:
    """The app's writes, in the order they run on each copy."""
    return [
        Workload(
            "a",
            f"{sizes.singles:,} single-row renewals (autocommit each)",
            no_preparation,
            renew_one_by_one,
        ),
        Workload(
            "b",
            f"bulk renewal of {sizes.bulk_update:,} rows in one update",
            prepare_bulk_renewal,
            renew_in_bulk,
        ),
        Workload(
            "c",
            f"{sizes.bulk_insert:,} inserts in one insert ... select",
            prepare_bulk_insert,
            insert_in_bulk,
        ),
        Workload(
            "d",
            f"{sizes.singles:,} single-row inserts (autocommit each)",
            no_preparation,
            insert_one_by_one,
        ),
    ]


@dataclass(frozen=True)
class WriteRun:
    """One workload on one copy."""

    seconds: float
    wal_bytes: int
    updates: int
    hot_updates: int


def table_counters(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(n_tup_upd, n_tup_hot_upd) of public.certifications, this backend's counts flushed."""
    conn.execute("select pg_stat_force_next_flush()")
    row = conn.execute(
        "select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables"
        " where relid = 'public.certifications'::regclass"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def wal_lsn(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def time_workload(url: str, workload: Workload, picks: Picks) -> WriteRun:
    """Prepare, CHECKPOINT, then time the workload; WAL and HOT by differences."""
    options = f"-c statement_timeout={WORKLOAD_STATEMENT_TIMEOUT}"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        workload.prepare(conn, picks)
        conn.execute("checkpoint")
        updates_before, hot_before = table_counters(conn)
        lsn_before = wal_lsn(conn)
        started = time.perf_counter()
        workload.run(conn, picks)
        seconds = time.perf_counter() - started
        row = conn.execute(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn_before,)
        ).fetchone()
        assert row is not None
        updates_after, hot_after = table_counters(conn)
    return WriteRun(seconds, int(row[0]), updates_after - updates_before, hot_after - hot_before)


Side = str  # "app" (the app alone) or "job" (the job installed)


def part_writes(
    cluster: Cluster, sizes: Sizes, picks: Picks
) -> dict[str, dict[Side, list[WriteRun]]]:
    """K pairs of fresh copies; every workload on both, alternating which copy goes first."""
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute("alter system set autovacuum = off")
        conn.execute("select pg_reload_conf()")
    results: dict[str, dict[Side, list[WriteRun]]] = {
        w.key: {"app": [], "job": []} for w in workloads(sizes)
    }
    for pair in range(sizes.pairs):
        names = {"app": f"bench_install_app_{pair}", "job": f"bench_install_job_{pair}"}
        urls = {
            "app": cluster.create(names["app"], template=APP_TEMPLATE),
            "job": cluster.create(names["job"], template=JOB_TEMPLATE),
        }
        order: list[Side] = ["job", "app"] if pair % 2 == 0 else ["app", "job"]
        try:
            for workload in workloads(sizes):
                for side in order:
                    run = time_workload(urls[side], workload, picks)
                    results[workload.key][side].append(run)
                    log(f"pair {pair + 1} {workload.key} {side}: {run.seconds:.3f} s")
        finally:
            for name in names.values():
                cluster.drop(name)
    return results


# --------------------------------------------------------------------------------------------
# The run and the report


@dataclass
class Figures:
    sizes: Sizes
    machine: dict[str, Any]
    installs: list[InstallRun] = field(default_factory=list)
    writes: dict[str, dict[Side, list[WriteRun]]] = field(default_factory=dict)
    template_s: float = 0.0
    estimate_s: float = 0.0
    elapsed_s: float = 0.0


def machine(admin_url: str) -> dict[str, Any]:
    with psycopg.connect(admin_url) as conn:
        version = conn.execute("show server_version").fetchone()
        shared = conn.execute("show shared_buffers").fetchone()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
        "postgres": f"{version[0] if version else '?'} (embedded, shared_buffers "
        f"{shared[0] if shared else '?'})",
    }


def run(sizes: Sizes) -> Figures:
    """Both parts on one embedded server in a temporary directory, removed at the end."""
    started = time.perf_counter()
    data_dir = tempfile.mkdtemp(prefix="certexpiry-bench-install-")
    try:
        server = embedded.start(data_dir)
        try:
            cluster = Cluster(server.uri)
            figures = Figures(sizes, machine(server.uri))
            log(f"generating the app's database: {sizes.rows:,} certifications")
            build_app_template(cluster, sizes)
            figures.template_s = time.perf_counter() - started
            figures.estimate_s = build_job_template(cluster)
            log(f"job template: install without a client took {figures.estimate_s:.2f} s")
            figures.installs = part_install(cluster, sizes, figures.estimate_s)
            picks = choose_picks(cluster.url(APP_TEMPLATE), sizes)
            figures.writes = part_writes(cluster, sizes, picks)
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    figures.elapsed_s = time.perf_counter() - started
    return figures


def table(header: str, align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table: `header` is "a | b | c", `align` one character a column (l, r, c)."""
    marks = {"l": "---", "r": "---:", "c": ":-:"}
    lines = [f"| {header} |", "|" + "|".join(marks[a] for a in align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def verdict(met: bool) -> str:
    return "met" if met else "**NOT met**"


def install_row(label: str, run: InstallRun) -> list[str]:
    worst = run.worst
    before = run.before_worst_s
    return [
        label,
        f"{run.install_s:.2f} s",
        f"{len(run.during):,}",
        ms(statistics.median(run.latencies)) if run.during else "-",
        ms(percentile(run.latencies, 0.99)),
        f"{ms(worst.seconds)} ({worst.kind})" if worst else "-",
        f"{ms(before)} ({run.baseline_s:.2f} s)",
        f"{run.worst_s / before:.1f}x" if before else "-",
        str(len(run.errors)),
    ]


def install_summary_row(installs: Sequence[InstallRun]) -> list[str]:
    return [
        "**median; max of worst**",
        f"{statistics.median(run.install_s for run in installs):.2f} s",
        f"{statistics.median(len(run.during) for run in installs):,.0f}",
        ms(statistics.median(statistics.median(run.latencies) for run in installs if run.during)),
        ms(statistics.median(percentile(run.latencies, 0.99) for run in installs)),
        f"**{ms(max(run.worst_s for run in installs))}**",
        ms(statistics.median(run.before_worst_s for run in installs)),
        "",
        str(sum(len(run.errors) for run in installs)),
    ]


def step_rows(installs: Sequence[InstallRun]) -> list[list[str]]:
    rows = []
    for index, step in enumerate(installs[0].steps):
        same = [run.steps[index] for run in installs]
        locks = sorted({s.strongest_lock for s in same}, key=lambda m: (m == "-", m))
        rows.append(
            [
                step.name,
                ms(statistics.median(s.seconds for s in same)),
                ", ".join(locks),
                ms(max(s.blocking_writes_s for s in same)),
                ms(max(s.client_worst_s for s in same)),
            ]
        )
    return rows


def install_section(figures: Figures) -> list[str]:
    installs = figures.installs
    worst = max(run.worst_s for run in installs)
    errors = sorted({error for run in installs for error in run.errors})
    rows = [install_row(str(n), run) for n, run in enumerate(installs, start=1)]
    lines = [
        "## 1. Install latency: `schema.migrate` while the app reads and writes",
        "",
        f"{len(installs)} installs, each on a fresh copy. The app client runs back to back "
        f"(no think time): a read by id and an update of `updated_at` by id alternately, every "
        f"{RENEWAL_EVERY}th statement a renewal (expiry_date), on {CLIENT_IDS:,} random ids. "
        '"During" counts every statement overlapping the install (the worst one\'s kind in '
        'brackets); "before" is the client\'s worst over an equal period right before the '
        "install (the period in brackets: shorter only when the client had not run that long).",
        "",
        *table(
            "copy | install | client statements during | median | p99 | worst during "
            "| worst before (period) | worst / before | client errors",
            "lrrrrrrrr",
            [*rows, install_summary_row(installs)],
        ),
        "",
        f"Target: the app's reads and writes never blocked for more than {TARGET_BLOCK_S:.0f} s "
        f"at a time. Worst client statement over all installs: {ms(worst)}: "
        f"**{verdict(worst < TARGET_BLOCK_S)}**. Samples (every {SAMPLE_S * 1000:.0f} ms) in "
        "which the client waited for a lock, per install: "
        f"{', '.join(str(run.client_lock_waits) for run in installs)}.",
        "",
        "Each step of the install (from `schema.migrate`'s `on_apply`), with the locks the "
        "install held on `public.certifications` (sampled from pg_locks; ShareLock and stronger "
        "block the app's writes, AccessExclusiveLock also its reads):",
        "",
        *table(
            "step | time (median) | strongest lock held | longest span blocking writes (max) "
            "| client worst started in the step (max)",
            "lrlrr",
            step_rows(installs),
        ),
    ]
    if errors:
        lines += ["", "Client errors seen:", "", *[f"- `{error}`" for error in errors]]
    return lines


def ratios(runs: dict[Side, list[WriteRun]]) -> list[float]:
    return [job.seconds / app.seconds for job, app in zip(runs["job"], runs["app"], strict=True)]


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: the relative spread of repeated measurements."""
    return (max(values) - min(values)) / statistics.median(values)


def hot_share(runs: Sequence[WriteRun]) -> str:
    updates = sum(run.updates for run in runs)
    hot = sum(run.hot_updates for run in runs)
    return f"{hot / updates:.1%} of {updates // len(runs):,}" if updates else "-"


def median_wal(runs: Sequence[WriteRun]) -> float:
    return statistics.median(run.wal_bytes for run in runs)


def time_row(workload: Workload, runs: dict[Side, list[WriteRun]]) -> list[str]:
    app_s = [run.seconds for run in runs["app"]]
    ratio = ratios(runs)
    return [
        f"{workload.key}. {workload.title}",
        f"{statistics.median(app_s):.3f} s",
        f"{statistics.median(run.seconds for run in runs['job']):.3f} s",
        f"{statistics.median(ratio):.2f}",
        f"{min(ratio):.2f}-{max(ratio):.2f}",
        f"{spread(app_s):.0%}",
        verdict(statistics.median(ratio) <= TARGET_WRITE_RATIO),
    ]


def wal_row(workload: Workload, runs: dict[Side, list[WriteRun]]) -> list[str]:
    app_wal, job_wal = median_wal(runs["app"]), median_wal(runs["job"])
    return [
        workload.key,
        f"{app_wal / 2**20:,.1f} MiB",
        f"{job_wal / 2**20:,.1f} MiB",
        f"{job_wal / app_wal:.2f}" if app_wal else "-",
        hot_share(runs["app"]),
        hot_share(runs["job"]),
    ]


def undecided_workloads(figures: Figures) -> list[str]:
    """The workloads whose verdict the noise could flip: the app-alone times spread more than
    the target's margin, or the pairs' ratios fall on both sides of the target."""
    margin = TARGET_WRITE_RATIO - 1
    undecided = []
    for key, runs in figures.writes.items():
        ratio = ratios(runs)
        straddles = min(ratio) <= TARGET_WRITE_RATIO < max(ratio)
        if straddles or spread([run.seconds for run in runs["app"]]) > margin:
            undecided.append(key)
    return undecided


def writes_section(figures: Figures) -> list[str]:
    sizes = figures.sizes
    loads = workloads(sizes)
    undecided = undecided_workloads(figures)
    lines = [
        "## 2. What the job's objects cost the app's writes",
        "",
        f"{sizes.pairs} pairs of fresh copies of the app's database: the app alone (it already "
        "has the specification's index on (expiry_date, status)) and the app with the job "
        "freshly installed, as right after go-live (no night has run). Each workload runs on "
        "both copies of a pair, alternating which goes first, after a CHECKPOINT, with "
        "autovacuum off; the workloads run in this order on each copy, on the same rows "
        "(chosen once). Times are medians over the pairs; the ratio is the median of the "
        "pairs' with-job / app-alone ratios; noise is the app-alone times' spread over the "
        "pairs ((max - min) / median).",
        "",
        *table(
            "workload | app alone | with the job | with job / app alone | ratio spread (min-max) "
            f"| noise (app alone) | met (<= {TARGET_WRITE_RATIO:.2f})",
            "lrrrrrc",
            [time_row(w, figures.writes[w.key]) for w in loads],
        ),
        "",
    ]
    if undecided:
        lines += [
            f"Within the noise in {', '.join(undecided)}: the app-alone times spread more than "
            f"the target's {TARGET_WRITE_RATIO - 1:.0%} margin, or the pairs' ratios fall on "
            "both sides of the target; more pairs or a quieter machine decide those verdicts.",
            "",
        ]
    return [
        *lines,
        "WAL written by each workload (pg_current_wal_lsn before/after, median) and the share of "
        "HOT updates (pg_stat_user_tables n_tup_hot_upd / n_tup_upd, differences, all pairs):",
        "",
        *table(
            "workload | WAL app alone | WAL with the job | WAL ratio | HOT app alone "
            "| HOT with the job",
            "lrrrrr",
            [wal_row(w, figures.writes[w.key]) for w in loads],
        ),
    ]


def markdown(figures: Figures) -> str:
    host, sizes = figures.machine, figures.sizes
    return "\n".join(
        [
            "# What installing the job costs the app (bench/bench_install.py)",
            "",
            f"Measured {host['date']} on {host['cores']} cores (load average "
            f"{host['load']:.2f} at the start), Python {host['python']}, PostgreSQL "
            f"{host['postgres']}. {sizes.rows:,} certifications over {sizes.mentors:,} mentors; "
            f"{sizes.pairs} install copies and {sizes.pairs} write pairs. Generating the app's "
            f"database took {figures.template_s:.0f} s; an install without a client "
            f"{figures.estimate_s:.2f} s; the whole benchmark {figures.elapsed_s:.0f} s.",
            "",
            *install_section(figures),
            "",
            *writes_section(figures),
        ]
    )


def parse_args(argv: list[str] | None) -> Sizes:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=Sizes.rows, help="certifications")
    parser.add_argument("--pairs", type=int, default=Sizes.pairs, help="copies / pairs")
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.pairs < 1:
        parser.error("--rows must be at least 1000 and --pairs at least 1")
    return Sizes(rows=args.rows, pairs=args.pairs)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    """A terminated run still stops its server and removes its data (the `finally` blocks)."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    figures = run(parse_args(argv))
    sys.stdout.write(markdown(figures) + "\n")


if __name__ == "__main__":
    main()
