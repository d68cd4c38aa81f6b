"""Whole nights of the sweep on realistic data, against a set-based floor and a plain loop.

    .venv/bin/python -m bench.bench_night [--quick] [--shapes a,b,c,d,e,f,g,h,i] [--repeats N]

Why this exists (issue 14, "An honest benchmark"): the throughput figure of bench_sql is
measured on an empty idempotency log with sequential mentor UUIDs and compared with a
deliberately slow baseline, so it says nothing about what a real night costs. Here every
shape is generated set-based into its own template database with random UUIDs and years of
history (by default 5 yearly cycles of reminder_30d/7d/1d, some lapsed into an auto_pause, each
with its dispatched outbox row: 16-19 idempotency rows and as many outbox rows per
certification), settled by one past night of the project's own sweep (see `settle`), then each
night is run on identical copies (`create database ... template`) by:

- **project**: the real sweep, `RpcStore` over `PgTransport` (as `certexpiry.wiring` builds it):
  `claim_nightly_run`, `process_batch` in a loop with the default batch size until `done`
  (the cursor fed back as the RPC returned it: it is opaque here), `complete`; every batch
  timed. The end-of-run monitoring and audit (`monitor_and_audit`) is timed apart.
- **floor**: the same end state written set-based (the night's work read into a temporary
  table, then one statement with one insert or update per table), hand-written here from the
  rules, not from the project's SQL functions, run as the superuser in one transaction: the
  cost of the work itself, one pass per table. The issue's target is
  "project <= 1.3x floor". It keeps none of the project's derived state and reads the whole
  reminder window, so on a night with little to do a project that indexes its due work can
  beat it (a ratio below 1).
- **plain loop**: what a competent engineer writes without the batch RPC: read the actionable
  certifications once, then one transaction of ordinary statements per certification.

After each variant the end states are fingerprinted (certifications id+status; mentors
id+status+paused_reason; the night's idempotency rows (certification, action, expiry date,
outcome); the night's outbox rows (certification, kind) as a multiset) and compared with the
project's: a difference is printed loudly and marked FAILED in the report, never hidden.

Shapes (sizes are parameters; `--quick` divides each by ~10):

a. normal night: 200k certifications, expiry dates spread over 14 months, steady state;
b. downtime: as a, with 30% of certifications expired during an outage (~61k actionable);
c. giant mentor: as a, plus one mentor with 5,000 certifications, all actionable;
d. as c, with a trigger refusing to pause exactly one of them (SQLSTATE P0001); no floor,
   compared with c instead (target: d <= 2x c);
e. cohort: 160k certifications all expired yesterday (all to pause);
f. cohort: 160k certifications all due their 30-day reminder today;
g. idle cohort at 100k and 1M: all in the 30-day window, all already reminded: 0 to process;
   the figure is the worst batch (target <= 250 ms at 1M, growth < 2x from 100k);
h. first night after go-live: an empty idempotency log ANALYZEd while empty, and the downtime
   backlog of b;
i. monitoring: `get_missed_auto_pauses` at 1M with history and 2% reactivated-expired rows
   (expired, active, auto-paused before), median of 21 calls (target <= 20 ms); and on the
   cohort of e before its night, i.e. after a failed night with 160k missed (target <= 100 ms).

The nights use the real date: the project's claim takes today in Europe/Oslo from the server
clock, so the data is generated relative to that date, and a run that crosses midnight in Oslo
stops with an error instead of measuring a different night.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, LiteralString
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.log import JsonLogger
from certexpiry.monitoring import monitor_and_audit
from certexpiry.redact import Secrets
from certexpiry.settings import Settings
from certexpiry.store import Owned, RpcStore
from certexpiry.store.postgres import PgTransport
from certexpiry_ops import embedded, schema

TIMEZONE = "Europe/Oslo"
REMINDER_DAYS = (30, 7, 1)
LEASE_S = 3600
# The project's own default, read from its settings (not from the environment): the batch
# size a deployed function uses unless someone overrides it.
BATCH_SIZE = int(Settings.model_fields["batch_size"].default)
MONITORING_CALLS = 21

# The "Done when" targets.
TARGET_IDLE_BATCH_MS = 250.0
TARGET_IDLE_GROWTH = 2.0
TARGET_FLOOR_RATIO = 1.3
TARGET_BAD_ROW_RATIO = 2.0
TARGET_MONITORING_MS = 20.0
TARGET_MISSED_MS = 100.0

# Days left of a steady-state certification: expiry dates spread over 14 months (two months
# expired, a year ahead), so a night sees ~1/425 of them expire and as many reach each offset.
SPREAD: LiteralString = "floor(r3 * 425)::int - 60"
LAPSE_SHARE = 0.2  # share of historical cycles that lapsed into an auto-pause before renewal


def log(message: str) -> None:
    """Progress on stderr: a full run takes a while and the report comes only at the end."""
    sys.stderr.write(f"[bench_night {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Sizes and shapes


@dataclass(frozen=True)
class Sizes:
    """Every size of the run; the defaults are the issue's."""

    normal: int = 200_000
    cohort: int = 160_000
    giant: int = 5_000
    idle: tuple[int, ...] = (100_000, 1_000_000)
    monitoring: int = 1_000_000
    history_years: int = 5
    repeats: int = 3


QUICK = Sizes(
    normal=20_000,
    cohort=16_000,
    giant=500,
    idle=(10_000, 100_000),
    monitoring=100_000,
    repeats=1,
)


@dataclass(frozen=True)
class Population:
    """How a template database is generated (hashable: it is the template cache's key).

    Every certification has a number of days left (`days_left`, an SQL expression over the
    uniform randoms r1..r3) and a kind: steady (every earlier night ran: reminders recorded for
    the offsets already passed, expired ones paused with their auto_pause record), downtime
    (expired in the last 30 days while no sweep ran: active, no auto_pause record) or
    reactivated (expired, auto-paused before, then set active again by hand).
    """

    certifications: int
    days_left: LiteralString = SPREAD
    downtime_share: float = 0.0
    reactivated_share: float = 0.0
    giant: int = 0
    history_years: int = 5
    empty_log: bool = False
    swept: bool = False  # tonight's run has already happened (monitoring shapes)
    bad_row: bool = False  # a trigger refuses to pause one of the giant mentor's certifications


@dataclass(frozen=True)
class Night:
    """One night shape: a population and how to judge it."""

    letter: str
    key: str
    title: str
    population: Population
    has_floor: bool = True
    idle: bool = False


@dataclass(frozen=True)
class Monitoring:
    """One monitoring shape: get_missed_auto_pauses on a population, read only."""

    key: str
    title: str
    population: Population
    target_ms: float


def nights(sizes: Sizes, letters: set[str]) -> list[Night]:
    """The night shapes a-h selected by `letters`, in run order."""
    years = sizes.history_years
    normal = Population(sizes.normal, history_years=years)
    downtime = replace(normal, downtime_share=0.3)
    giant = replace(normal, giant=sizes.giant)
    shapes = [
        Night("a", "a", "normal night, history", normal),
        Night("b", "b", "downtime: 30% expired at once", downtime),
        Night("c", "c", f"one mentor with {sizes.giant:,} certifications", giant),
        Night(
            "d",
            "d",
            "the same with one failing row",
            replace(giant, bad_row=True),
            has_floor=False,
        ),
        Night(
            "e",
            "e",
            f"cohort: all {sizes.cohort:,} expire the same day",
            Population(sizes.cohort, days_left="-1", history_years=years),
        ),
        Night(
            "f",
            "f",
            f"cohort: all {sizes.cohort:,} due their 30-day reminder",
            Population(sizes.cohort, days_left="30", history_years=years),
        ),
        *(
            Night(
                "g",
                f"g{size}",
                f"idle cohort at {_short(size)} (all in the 30-day window, all reminded)",
                Population(size, days_left="8 + floor(r3 * 22)::int", history_years=years),
                idle=True,
            )
            for size in sizes.idle
        ),
        Night(
            "h",
            "h",
            "first night after go-live: empty analyzed log + downtime backlog",
            replace(downtime, empty_log=True),
        ),
    ]
    return [shape for shape in shapes if shape.letter in letters]


def monitorings(sizes: Sizes, letters: set[str]) -> list[Monitoring]:
    """The monitoring shapes (letter i)."""
    if "i" not in letters:
        return []
    years = sizes.history_years
    return [
        Monitoring(
            "i1",
            f"monitoring at {_short(sizes.monitoring)}, history, 2% reactivated-expired",
            Population(sizes.monitoring, reactivated_share=0.02, swept=True, history_years=years),
            TARGET_MONITORING_MS,
        ),
        Monitoring(
            "i2",
            f"monitoring after a failed night: {sizes.cohort:,} missed",
            Population(sizes.cohort, days_left="-1", history_years=years),
            TARGET_MISSED_MS,
        ),
    ]


def _short(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return f"{size:,}"


# --------------------------------------------------------------------------------------------
# Databases


class Cluster:
    """Databases on one embedded server: templates generated once, copied for every variant."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url(self, name: str) -> str:
        return make_conninfo(self.admin_url, dbname=name)

    def create(self, name: str, template: str | None = None) -> str:
        """A new database, empty or a file-level copy of `template` (fast: no re-insertion)."""
        self.drop(name)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if template is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            else:
                # FILE_COPY copies the files after a checkpoint; the default WAL_LOG strategy
                # would write the whole database through the WAL, several times slower.
                conn.execute(
                    sql.SQL("create database {} template {} strategy file_copy").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        return self.url(name)

    def drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@dataclass(frozen=True)
class Template:
    """A generated database and what the variants need to know about it."""

    name: str
    today: date
    certifications: int
    giant_mentor: str | None = None
    bad_certification: str | None = None
    generate_s: float = 0.0
    log_rows: int = 0  # idempotency rows before the night (history + current cycle)
    outbox_rows: int = 0
    size_mb: float = 0.0


def org_today(conn: psycopg.Connection[Any]) -> date:
    """Today in the organisation's time zone, by the server's clock (what the claim uses)."""
    row = conn.execute("select (now() at time zone %s)::date", (TIMEZONE,)).fetchone()
    assert row is not None
    value: date = row[0]
    return value


def populate(conn: psycopg.Connection[Any], pop: Population, today: date) -> dict[str, Any]:
    """Generate `pop` set-based into an empty migrated database; return the giant mentor's id.

    One plan row per certification (mentor number, days left, kind), then mentors,
    certifications, the idempotency log (history + the current cycle as earlier nights left it)
    and one dispatched outbox row per recorded effect, each inserted in time order as years of
    nights would have. `settle` and VACUUM ANALYZE follow (see `Templates.get`).
    """
    mentors = max(1, (pop.certifications + 1) // 2)
    passed = 0 if pop.swept else 1  # an effect due `n` nights ago is recorded when n >= passed
    conn.execute("set synchronous_commit = off")
    conn.execute("set work_mem = '256MB'")
    conn.execute("set maintenance_work_mem = '512MB'")
    conn.execute("select setseed(0.14)")
    plan = sql.SQL(
        """
        create temp table bench_plan as
        select g, 1 + (g - 1) %% %(mentors)s as mentor,
               case when r1 < %(downtime)s then -1 - floor(r2 * 30)::int
                    when r1 < %(downtime)s + %(reactivated)s then -2 - floor(r2 * 59)::int
                    else {days_left} end as d,
               case when r1 < %(downtime)s then 'downtime'
                    when r1 < %(downtime)s + %(reactivated)s then 'reactivated'
                    else 'steady' end as kind
        from (select g, random() as r1, random() as r2, random() as r3
              from generate_series(1, %(n)s) g) s
        union all
        select %(n)s + g, %(mentors)s + 1, (array[-1, 1, 7, 30])[1 + g %% 4], 'steady'
        from generate_series(1, %(giant)s) g
        """
    ).format(days_left=sql.SQL(pop.days_left))
    conn.execute(
        plan,
        {
            "mentors": mentors,
            "n": pop.certifications,
            "downtime": pop.downtime_share,
            "reactivated": pop.reactivated_share,
            "giant": pop.giant,
        },
    )
    conn.execute(
        """
        create temp table bench_mentor as
        select i, gen_random_uuid() as id from generate_series(1, %(m)s) i
        """,
        {"m": mentors + (1 if pop.giant else 0)},
    )
    conn.execute(
        """
        insert into public.peer_mentors (id, full_name, email, status, created_at, updated_at)
        select id, 'Bench Mentor ' || i, 'mentor' || i || '@example.org', 'active',
               now() - interval '6 years', now() - interval '6 years'
        from bench_mentor order by i
        """
    )
    conn.execute(
        """
        create temp table bench_cert as
        select gen_random_uuid() as id, m.id as mentor_id, p.g, p.d, p.kind,
               %(today)s::date + p.d as expiry,
               (p.kind = 'steady' and -1 - p.d >= %(passed)s) as paused
        from bench_plan p join bench_mentor m on m.i = p.mentor
        """,
        {"today": today, "passed": passed},
    )
    conn.execute(
        """
        insert into public.certifications
            (id, peer_mentor_id, expiry_date, status, paused_at, created_at, updated_at,
             next_action_on)
        select id, mentor_id, expiry, case when paused then 'paused' else 'active' end,
               case when paused then (expiry + 1)::timestamptz end,
               now() - interval '6 years', now() - interval '1 day',
               null  -- the app's rows when the job was installed, or settled by years of nights
        from bench_cert order by g
        """
    )
    conn.execute(
        """
        update public.peer_mentors m
        set status = 'paused', paused_reason = 'certification_expired', paused_at = x.at
        from (select mentor_id, min(expiry + 1)::timestamptz as at
              from bench_cert where paused group by mentor_id) x
        where m.id = x.mentor_id
        """
    )
    if not pop.empty_log:
        # Every recorded effect once, in the order years of nights would have written them;
        # created before "now" whatever the hour (a night's rows are told apart by created_at).
        conn.execute(
            """
            create temp table bench_effect as
            select row_number() over (order by night, certification_id) as seq, r.*,
                   substring(action from '^reminder_([0-9]+)d$')::int as days,
                   least(night::timestamptz + interval '2 hours',
                         now() - interval '1 hour') as at
            from (
                select c.id as certification_id, c.mentor_id, 'reminder_' || n || 'd' as action,
                       c.expiry - 365 * k as expiry_date, c.expiry - 365 * k - n as night
                from bench_cert c cross join generate_series(1, %(years)s) k
                     cross join unnest(%(days)s::int[]) n
                union all
                select c.id, c.mentor_id, 'auto_pause', c.expiry - 365 * k, c.expiry - 365 * k + 1
                from bench_cert c cross join generate_series(1, %(years)s) k
                where random() < %(lapse)s
                union all
                select c.id, c.mentor_id, 'reminder_' || n || 'd', c.expiry, c.expiry - n
                from bench_cert c cross join unnest(%(days)s::int[]) n
                where n - c.d >= %(passed)s
                union all
                select c.id, c.mentor_id, 'auto_pause', c.expiry, c.expiry + 1
                from bench_cert c where c.paused or c.kind = 'reactivated'
            ) r
            """,
            {
                "years": pop.history_years,
                "days": list(REMINDER_DAYS),
                "lapse": LAPSE_SHARE,
                "passed": passed,
            },
        )
        with _bulk_load(
            conn, ("certexpiry.certification_idempotency_log", "certexpiry.notification_outbox")
        ):
            conn.execute(
                """
                insert into certexpiry.certification_idempotency_log
                    (certification_id, action, expiry_date, run_id, outcome, created_at)
                select certification_id, action, expiry_date, md5(night::text)::uuid, 'done', at
                from bench_effect order by seq
                """
            )
            conn.execute(
                """
                insert into certexpiry.notification_outbox
                    (id, peer_mentor_id, certification_id, kind, payload, created_at,
                     dispatched_at)
                overriding system value
                select seq, mentor_id, certification_id,
                       case when days is null then 'pause_notice' else 'reminder' end,
                       case when days is null
                            then jsonb_build_object('reason', 'certification_expired',
                                                    'expiry_date', expiry_date)
                            else jsonb_build_object('offset_days', days, 'days_left', days,
                                                    'expiry_date', expiry_date) end,
                       at, at + interval '2 minutes'
                from bench_effect order by seq
                """
            )
        conn.execute(
            """
            select setval(pg_get_serial_sequence('certexpiry.notification_outbox', 'id'),
                          (select max(id) from certexpiry.notification_outbox))
            """
        )
        conn.execute("drop table bench_effect")
    row = conn.execute("select id::text from bench_mentor where i = %s", (mentors + 1,)).fetchone()
    giant = row[0] if (pop.giant and row is not None) else None
    conn.execute("drop table bench_plan, bench_mentor, bench_cert")
    return {"giant_mentor": giant}


@contextmanager
def _bulk_load(conn: psycopg.Connection[Any], tables: Sequence[str]) -> Iterator[None]:
    """Drop the tables' indexes and constraints (keys, foreign keys) for a bulk load, then put
    them back from their own definitions.

    A sorted index build instead of millions of random insertions (random UUIDs), and one
    validating join per foreign key instead of a lookup per row, make generation several times
    faster. Triggers stay enabled, so whatever the project derives in them is derived. The
    definitions are read from the catalog, so the indexes rebuilt are whatever the migrations
    define at the time.
    """
    constraints = conn.execute(
        """
        select conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        from pg_constraint
        where conrelid = any (%s::regclass[]) and contype in ('p', 'u', 'x', 'f')
        order by contype = 'f' desc
        """,
        (list(tables),),
    ).fetchall()
    indexes = conn.execute(
        """
        select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        from pg_index i
        where i.indrelid = any (%s::regclass[])
          and not exists (select from pg_constraint c where c.conindid = i.indexrelid)
        """,
        (list(tables),),
    ).fetchall()
    for table, name, _definition in constraints:
        conn.execute(
            sql.SQL("alter table {} drop constraint {}").format(
                sql.SQL(table), sql.Identifier(name)
            )
        )
    for index, _definition in indexes:
        conn.execute(sql.SQL("drop index {}").format(sql.SQL(index)))
    yield
    for table, name, definition in reversed(constraints):
        conn.execute(
            sql.SQL("alter table {} add constraint {} {}").format(
                sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    for _index, definition in indexes:
        conn.execute(sql.SQL(definition))


def add_bad_row(conn: psycopg.Connection[Any], giant_mentor: str, today: date) -> str:
    """A trigger refusing to pause one of the giant mentor's expired certifications (P0001).

    The middle one in id order, so that the failure lands inside the mentor's certifications,
    not at an edge.
    """
    ids = [
        str(row[0])
        for row in conn.execute(
            """
            select id from public.certifications
            where peer_mentor_id = %s and status = 'active' and expiry_date < %s order by id
            """,
            (giant_mentor, today),
        )
    ]
    bad = ids[len(ids) // 2]
    conn.execute(
        sql.SQL(
            """
            create function public.bench_refuse_pause() returns trigger
            language plpgsql as $fn$
            begin
                if new.status = 'paused' and new.id = {bad}::uuid then
                    raise exception 'bench: certification % refuses to be paused', new.id
                        using errcode = 'P0001';
                end if;
                return new;
            end
            $fn$
            """
        ).format(bad=sql.Literal(bad))
    )
    conn.execute(
        """
        create trigger bench_refuse_pause before update on public.certifications
        for each row execute function public.bench_refuse_pause()
        """
    )
    return bad


SETTLE_LIMIT = 1000  # the largest page the API accepts: settling is not measured
SETTLE_DAYS_BACK = 31  # the last night that ran before a downtime of 30 nights


def settle(url: str, night: date) -> int:
    """Run one whole night of the project's own sweep as of `night`, untimed; return batches.

    The generated rows are what earlier nights recorded, but a project may also keep derived
    state that only its own code writes (e.g. a `next_action_on` column the sweep maintains):
    rows inserted by a generator carry whatever the insert triggers give them, typically "not
    yet looked at", which would make every night look like the first one. Running a past night
    through the public API (claim_nightly_run with its clock pinned by p_now, process_expiry_batch
    until done, complete_run) leaves exactly the state the project's code leaves, whatever it is.
    The night is the last one that ran: yesterday (the history records every effect up to
    yesterday, and the shapes' own work is tonight's), or for a downtime shape the night before
    the 30 nights without a run.
    """
    store = RpcStore(PgTransport(url))
    try:
        noon = datetime.combine(night, dt_time(12), tzinfo=ZoneInfo(TIMEZONE))
        answer = store.transport.call(
            "claim_nightly_run",
            {
                "p_run_id": str(uuid.uuid4()),
                "p_timezone": TIMEZONE,
                "p_lease_seconds": LEASE_S,
                "p_now": noon.isoformat(),
            },
        )
        if answer.get("outcome") != "started":
            raise RuntimeError(f"settling night {night}: claim answered {answer}")
        run_id, segment = uuid.UUID(str(answer["run_id"])), int(answer["segment"])
        cursor: Any = None  # opaque: whatever the project's pages hand back
        batches = 0
        while True:
            result = store.process_batch(
                run_id, segment, cursor, SETTLE_LIMIT, REMINDER_DAYS, LEASE_S
            )
            batches += 1
            if result.fenced:
                raise RuntimeError(f"settling night {night}: fenced")
            cursor = result.next_cursor
            if result.done:
                break
        store.complete(run_id, segment)
    finally:
        store.close()
    return batches


class Templates:
    """Template databases, generated on first use and dropped when no shape needs them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.built: dict[Population, Template] = {}
        self._names = 0

    def _name(self) -> str:
        self._names += 1
        return f"bench_night_t{self._names}"

    def get(self, pop: Population) -> Template:
        if pop in self.built:
            return self.built[pop]
        started = time.perf_counter()
        name = self._name()
        if pop.bad_row:
            base = self.get(replace(pop, bad_row=False))
            url = self.cluster.create(name, template=base.name)
            assert base.giant_mentor is not None
            with psycopg.connect(url, autocommit=True) as conn:
                bad = add_bad_row(conn, base.giant_mentor, base.today)
            template = replace(
                base,
                name=name,
                bad_certification=bad,
                generate_s=time.perf_counter() - started,
            )
        else:
            log(f"generating {name}: {pop}")
            url = self.cluster.create(name)
            schema.apply(url)
            with psycopg.connect(url, autocommit=True) as conn:
                today = org_today(conn)
                info = populate(conn, pop, today)
            # The first night after go-live has no earlier night; the others had them all, up to
            # yesterday or, for the downtime, to the night before it.
            if not pop.empty_log:
                back = 0 if pop.swept else SETTLE_DAYS_BACK if pop.downtime_share else 1
                batches = settle(url, today - timedelta(days=back))
                log(f"settled {name}: a night of {batches} batches as of {back} days ago")
            with psycopg.connect(url, autocommit=True) as conn:
                # As autovacuum would have left such old tables (visibility map, statistics);
                # for the go-live shape: the empty log ANALYZEd while empty.
                conn.execute("vacuum analyze")
                row = conn.execute(
                    """
                    select (select count(*) from certexpiry.certification_idempotency_log),
                           (select count(*) from certexpiry.notification_outbox),
                           pg_database_size(current_database()) / 1048576.0
                    """
                ).fetchone()
            assert row is not None
            template = Template(
                name=name,
                today=today,
                certifications=pop.certifications + pop.giant,
                giant_mentor=info["giant_mentor"],
                generate_s=time.perf_counter() - started,
                log_rows=int(row[0]),
                outbox_rows=int(row[1]),
                size_mb=float(row[2]),
            )
            log(
                f"generated {name} in {template.generate_s:.1f} s: {template.log_rows:,} log "
                f"rows, {template.outbox_rows:,} outbox rows, {template.size_mb:,.0f} MB"
            )
        self.built[pop] = template
        return template

    def release(self, keep: set[Population]) -> None:
        """Drop every template not in `keep` (and not the base of a bad-row one in `keep`)."""
        needed = keep | {replace(pop, bad_row=False) for pop in keep if pop.bad_row}
        for pop in list(self.built):
            if pop not in needed:
                self.cluster.drop(self.built.pop(pop).name)


# --------------------------------------------------------------------------------------------
# The three variants


@dataclass
class Variant:
    """One variant's run of one night: its timings and what it reported."""

    seconds: float
    worst_batch_ms: float | None = None
    batches: int | None = None
    certifications: int | None = None
    failures: int | None = None
    monitoring_ms: float | None = None
    missed_after: int | None = None
    batch_ms: list[float] = field(default_factory=list)


def _check_today(conn: psycopg.Connection[Any], template: Template) -> None:
    """Stop rather than measure another night than the data was generated for."""
    today = org_today(conn)
    if today != template.today:
        raise RuntimeError(
            f"midnight passed in {TIMEZONE} since the data was generated for {template.today} "
            f"(today is {today}); run the benchmark again"
        )


def _setting(name: str, fallback: Any) -> Any:
    """The default of one of the project's settings (the value a deployed function uses)."""
    setting = Settings.model_fields.get(name)
    return fallback if setting is None else setting.default


def call_adapted(function: Callable[..., Any], *args: Any, **candidates: Any) -> Any:
    """Call `function` with those of the `candidates` keyword arguments it declares.

    The project's Python API moves while its SQL is reworked (a `limit` appears, an argument
    is renamed): the benchmark offers everything it knows and passes what the signature asks
    for, so a new optional argument does not break it; a new required one it cannot know
    fails loudly (TypeError), as it should.
    """
    accepted = inspect.signature(function).parameters
    return function(*args, **{key: value for key, value in candidates.items() if key in accepted})


def missed_report(store: RpcStore, today: date | None) -> Any:
    """The monitoring RPC as the function calls it (with the settings' default ID limit)."""
    return call_adapted(
        store.missed_auto_pauses,
        TIMEZONE,
        today,
        limit=_setting("missed_ids_limit", 1000),
        missed_ids_limit=_setting("missed_ids_limit", 1000),
    )


def end_of_run(
    store: RpcStore,
    run_id: uuid.UUID,
    segment: int,
    today: date | None,
    totals: dict[str, int],
    sweep_s: float,
) -> int | None:
    """The function's end of run (`monitor_and_audit`: monitoring query + audit row); returns
    the missed count, None when the monitoring failed (it never raises, by design)."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        outcome = call_adapted(
            monitor_and_audit,
            store,
            JsonLogger(secrets=Secrets(), service="bench", stream=sink),
            run_id=run_id,
            timezone=TIMEZONE,
            today=today,
            segments=segment + 1,
            totals=totals,
            duration_ms=int(sweep_s * 1000),
            missed_ids_limit=_setting("missed_ids_limit", 1000),
            limit=_setting("missed_ids_limit", 1000),
        )
    report = getattr(outcome, "report", None)
    return None if report is None else int(report.missed_pause_count)


def run_project(url: str, template: Template) -> Variant:
    """The real sweep through the store the function uses, timed call by call."""
    store = RpcStore(PgTransport(url))
    try:
        batch_ms: list[float] = []
        started = time.perf_counter()
        claim = store.claim_nightly_run(uuid.uuid4(), TIMEZONE, LEASE_S)
        if not isinstance(claim, Owned):
            raise RuntimeError(f"claim_nightly_run answered {type(claim).__name__}")
        if claim.today != template.today:
            raise RuntimeError(f"the claim's night is {claim.today}, the data's {template.today}")
        cursor = claim.cursor
        failures = 0
        while True:
            before = time.perf_counter()
            result = store.process_batch(
                claim.run_id, claim.segment, cursor, BATCH_SIZE, REMINDER_DAYS, LEASE_S
            )
            batch_ms.append((time.perf_counter() - before) * 1000)
            if result.fenced:
                raise RuntimeError("process_batch answered fenced on a run this process owns")
            failures += len(result.failures)
            cursor = result.next_cursor
            if result.done:
                break
        sweep_s = time.perf_counter() - started
        totals = dict(result.run_totals)
        before = time.perf_counter()
        missed_after = end_of_run(store, claim.run_id, claim.segment, claim.today, totals, sweep_s)
        monitoring_ms = (time.perf_counter() - before) * 1000
        before = time.perf_counter()
        completion = store.complete(claim.run_id, claim.segment)
        complete_s = time.perf_counter() - before
        if completion.fenced:
            raise RuntimeError("complete_run answered fenced")
    finally:
        store.close()
    return Variant(
        seconds=sweep_s + complete_s,
        worst_batch_ms=max(batch_ms),
        batches=len(batch_ms),
        certifications=totals.get("certifications"),
        failures=failures,
        monitoring_ms=monitoring_ms,
        missed_after=missed_after,
        batch_ms=batch_ms,
    )


# The floor: the night's whole end state in one transaction, one pass per table. Written from
# the rules (docs and supabase/schemas/20_rules.sql), not by calling the project's functions:
#   pause: active, expiry_date < today, no auto_pause record for that expiry date;
#   reminders: offset n due when 0 <= expiry_date - today <= n; the smallest due offset is sent
#   unless recorded; larger due offsets not recorded are recorded as 'superseded';
#   a mentor with a paused certification is paused with reason certification_expired.
# Two statements: the night's work is read into a temporary table first, then written by one
# statement with one insert or update per table. Reading and writing in a single statement
# would interleave them (a CTE is scanned as its consumer pulls rows): with an idempotency log
# ANALYZEd while empty the planner probes it by sequential scan, and every probe would re-read
# the rows the same statement has inserted so far, O(n^2) (issue 14's point 5, which the
# floor must not suffer, or it would flatter the project).
FLOOR_READ = """
create temp table bench_floor_work on commit drop as
with pause as (
    select c.id, c.peer_mentor_id, c.expiry_date
    from public.certifications c
    where c.status = 'active' and c.expiry_date < %(today)s
      and not exists (
          select from certexpiry.certification_idempotency_log l
          where l.certification_id = c.id and l.action = 'auto_pause'
            and l.expiry_date = c.expiry_date)
), due as (
    select c.id, c.peer_mentor_id, c.expiry_date, n.days,
           min(n.days) over (partition by c.id) as smallest
    from public.certifications c
    cross join unnest(%(days)s::int[]) as n(days)
    where c.status = 'active' and c.expiry_date >= %(today)s
      and c.expiry_date <= %(today)s + n.days
)
select 'pause' as what, id, peer_mentor_id, expiry_date, null::int as days from pause
union all
select case when d.days = d.smallest then 'send' else 'superseded' end,
       d.id, d.peer_mentor_id, d.expiry_date, d.days
from due d
where not exists (
    select from certexpiry.certification_idempotency_log l
    where l.certification_id = d.id and l.action = 'reminder_' || d.days || 'd'
      and l.expiry_date = d.expiry_date)
"""

FLOOR_WRITE = """
with records as (
    insert into certexpiry.certification_idempotency_log
        (certification_id, action, expiry_date, run_id, outcome)
    select id, case when what = 'pause' then 'auto_pause' else 'reminder_' || days || 'd' end,
           expiry_date, %(run_id)s, case when what = 'superseded' then 'superseded' else 'done' end
    from bench_floor_work
    returning 1
), outbox as (
    insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
    select peer_mentor_id, id,
           case when what = 'pause' then 'pause_notice' else 'reminder' end,
           case when what = 'pause'
                then jsonb_build_object('reason', 'certification_expired',
                                        'expiry_date', expiry_date)
                else jsonb_build_object('offset_days', days,
                                        'days_left', expiry_date - %(today)s,
                                        'expiry_date', expiry_date) end
    from bench_floor_work where what in ('pause', 'send')
    returning 1
), paused as (
    update public.certifications c
    set status = 'paused', paused_at = now(), updated_at = now()
    from bench_floor_work w where w.what = 'pause' and c.id = w.id
    returning 1
), mentors as (
    update public.peer_mentors m
    set status = 'paused', paused_at = now(), paused_reason = 'certification_expired',
        updated_at = now()
    where m.id in (select peer_mentor_id from bench_floor_work where what = 'pause')
      and m.status <> 'paused'
    returning 1
)
select (select count(*) from records), (select count(*) from outbox),
       (select count(*) from paused), (select count(*) from mentors)
"""


def run_floor(url: str, template: Template) -> Variant:
    """The whole night set-based, as the superuser, in one transaction: read the work, analyze
    it (a few ms; the planner then joins it by hash), write every table in one statement."""
    params = {"today": template.today, "days": list(REMINDER_DAYS), "run_id": uuid.uuid4()}
    with psycopg.connect(url, autocommit=True) as conn:
        _check_today(conn, template)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(FLOOR_READ, params)
            conn.execute("analyze bench_floor_work")
            conn.execute(FLOOR_WRITE, params).fetchone()
        seconds = time.perf_counter() - started
    return Variant(seconds=seconds)


# The plain loop's one read: the actionable certifications, in mentor order.
LOOP_READ = """
select c.id, c.peer_mentor_id, c.expiry_date
from public.certifications c
where c.status = 'active' and c.expiry_date <= %(today)s + %(max_days)s
  and (
        (c.expiry_date < %(today)s
         and not exists (
             select from certexpiry.certification_idempotency_log l
             where l.certification_id = c.id and l.action = 'auto_pause'
               and l.expiry_date = c.expiry_date))
     or exists (
             select from unnest(%(days)s::int[]) n
             where c.expiry_date >= %(today)s and c.expiry_date - %(today)s <= n
               and not exists (
                   select from certexpiry.certification_idempotency_log l
                   where l.certification_id = c.id and l.action = 'reminder_' || n || 'd'
                     and l.expiry_date = c.expiry_date))
  )
order by c.peer_mentor_id, c.id
"""


def _loop_one(
    conn: psycopg.Connection[Any],
    run_id: uuid.UUID,
    today: date,
    certification_id: uuid.UUID,
) -> None:
    """One certification's effects with ordinary statements, in the caller's transaction."""
    row = conn.execute(
        """
        select status, expiry_date, peer_mentor_id from public.certifications
        where id = %s for update
        """,
        (certification_id,),
    ).fetchone()
    if row is None or row[0] != "active":
        return
    expiry: date = row[1]
    mentor = row[2]
    recorded = {
        action
        for (action,) in conn.execute(
            """
            select action from certexpiry.certification_idempotency_log
            where certification_id = %s and expiry_date = %s
            """,
            (certification_id, expiry),
        )
    }
    if expiry < today:
        if "auto_pause" in recorded:
            return
        conn.execute(
            """
            insert into certexpiry.certification_idempotency_log
                (certification_id, action, expiry_date, run_id)
            values (%s, 'auto_pause', %s, %s)
            """,
            (certification_id, expiry, run_id),
        )
        conn.execute(
            """
            insert into certexpiry.notification_outbox (peer_mentor_id, certification_id, kind, payload)
            values (%s, %s, 'pause_notice', %s)
            """,
            (
                mentor,
                certification_id,
                json.dumps({"reason": "certification_expired", "expiry_date": expiry.isoformat()}),
            ),
        )
        conn.execute(
            """
            update public.certifications set status = 'paused', paused_at = now(), updated_at = now()
            where id = %s
            """,
            (certification_id,),
        )
        conn.execute(
            """
            update public.peer_mentors
            set status = 'paused', paused_at = now(), paused_reason = 'certification_expired',
                updated_at = now()
            where id = %s and status <> 'paused'
            """,
            (mentor,),
        )
        return
    days_left = (expiry - today).days
    due = sorted(days for days in REMINDER_DAYS if 0 <= days_left <= days)
    for days in due:
        action = f"reminder_{days}d"
        if action in recorded:
            continue
        send = days == due[0]
        conn.execute(
            """
            insert into certexpiry.certification_idempotency_log
                (certification_id, action, expiry_date, run_id, outcome)
            values (%s, %s, %s, %s, %s)
            """,
            (certification_id, action, expiry, run_id, "done" if send else "superseded"),
        )
        if send:
            conn.execute(
                """
                insert into certexpiry.notification_outbox
                    (peer_mentor_id, certification_id, kind, payload)
                values (%s, %s, 'reminder', %s)
                """,
                (
                    mentor,
                    certification_id,
                    json.dumps(
                        {
                            "offset_days": days,
                            "days_left": days_left,
                            "expiry_date": expiry.isoformat(),
                        }
                    ),
                ),
            )


def run_loop(url: str, template: Template) -> Variant:
    """Read the actionable set once, then one transaction per certification (a failure skips
    that certification only, as the project's isolation does)."""
    run_id = uuid.uuid4()
    failures = 0
    with psycopg.connect(url, autocommit=True) as conn:
        _check_today(conn, template)
        started = time.perf_counter()
        rows = conn.execute(
            LOOP_READ,
            {
                "today": template.today,
                "days": list(REMINDER_DAYS),
                "max_days": max(REMINDER_DAYS),
            },
        ).fetchall()
        for certification_id, _mentor, _expiry in rows:
            try:
                with conn.transaction():
                    _loop_one(conn, run_id, template.today, certification_id)
            except psycopg.Error:
                failures += 1
        seconds = time.perf_counter() - started
    return Variant(seconds=seconds, certifications=len(rows), failures=failures)


# --------------------------------------------------------------------------------------------
# End states


@dataclass(frozen=True)
class Marker:
    """Where a night starts: its rows are those created at or after `at` / with a higher id."""

    at: Any
    outbox_id: int


# A variant's end state: its database, where its night started, and its fingerprint.
State = tuple[str, "Marker", dict[str, tuple[int, str]]]

PARTS: dict[str, LiteralString] = {
    "certifications (id, status)": """
        select id::text || ':' || status from public.certifications""",
    "peer_mentors (id, status, paused_reason)": """
        select id::text || ':' || status || ':' || coalesce(paused_reason, '-')
        from public.peer_mentors""",
    "night's idempotency rows (certification, action, expiry, outcome)": """
        select certification_id::text || ':' || action || ':' || expiry_date || ':' || outcome
        from certexpiry.certification_idempotency_log where created_at >= %(at)s""",
    "night's outbox rows (certification, kind)": """
        select certification_id::text || ':' || kind
        from certexpiry.notification_outbox where id > %(outbox_id)s""",
}


def marker(url: str) -> Marker:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select now(), coalesce(max(id), 0) from certexpiry.notification_outbox"
        ).fetchone()
    assert row is not None
    return Marker(at=row[0], outbox_id=int(row[1]))


def fingerprint(url: str, mark: Marker) -> dict[str, tuple[int, str]]:
    """Per part of the end state: (rows, md5 of the sorted rows), computed in the database."""
    figures = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set work_mem = '256MB'")
        for name, query in PARTS.items():
            statement = sql.SQL(
                "select count(*), md5(coalesce(string_agg(r, ',' order by r), '')) "
                "from ({}) as rows(r)"
            ).format(sql.SQL(query))
            row = conn.execute(statement, {"at": mark.at, "outbox_id": mark.outbox_id}).fetchone()
            assert row is not None
            figures[name] = (int(row[0]), str(row[1]))
    return figures


def _rows(url: str, mark: Marker, part: str) -> Counter[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return Counter(
            str(row[0])
            for row in conn.execute(PARTS[part], {"at": mark.at, "outbox_id": mark.outbox_id})
        )


def differences(reference: State, other: State) -> list[str]:
    """What differs between two end states, with a few example rows per side; [] when equal."""
    ref_url, ref_mark, ref_print = reference
    url, mark, prints = other
    found = []
    for part in PARTS:
        if ref_print[part] == prints[part]:
            continue
        expected, actual = _rows(ref_url, ref_mark, part), _rows(url, mark, part)
        missing = list((expected - actual).elements())
        extra = list((actual - expected).elements())
        found.append(
            f"{part}: {ref_print[part][0]:,} rows vs {prints[part][0]:,}; "
            f"{len(missing):,} only in the project's (e.g. {missing[:3]}), "
            f"{len(extra):,} only in this one (e.g. {extra[:3]})"
        )
    return found


# --------------------------------------------------------------------------------------------
# Running the shapes


@dataclass
class NightResult:
    """Every run of one night shape and the verdict of its equality checks."""

    night: Night
    template: Template
    project: list[Variant] = field(default_factory=list)
    floor: list[Variant] = field(default_factory=list)
    loop: Variant | None = None
    work: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # "floor #1: equal", ...
    failures: list[str] = field(default_factory=list)  # loud: every difference found
    error: str | None = None

    @property
    def equal(self) -> bool:
        return not self.failures and self.error is None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


RUNNERS: dict[str, Callable[[str, Template], Variant]] = {
    "project": run_project,
    "floor": run_floor,
    "loop": run_loop,
}


def _order(night: Night, index: int) -> list[str]:
    """Which variants run in repeat `index`, in which order: project and floor alternate who
    goes first (paired runs), the plain loop (slow, once) comes last in the first repeat."""
    order = ["project", "floor"] if index % 2 == 0 else ["floor", "project"]
    if not night.has_floor:
        order = ["project"]
    return [*order, "loop"] if index == 0 else order


def _record(result: NightResult, name: str, variant: Variant) -> None:
    if name == "project":
        result.project.append(variant)
    elif name == "floor":
        result.floor.append(variant)
    else:
        result.loop = variant


def _compare(result: NightResult, reference: State, states: dict[str, State], index: int) -> None:
    """Check every end state of this repeat against the reference; differences are loud."""
    for name, state in states.items():
        if state is reference:
            continue
        label = "plain loop" if name == "loop" else f"{name} #{index + 1}"
        diffs = differences(reference, state)
        result.checks.append(f"{label}: {'FAILED' if diffs else 'equal'}")
        for diff in diffs:
            message = f"{result.night.key}: {label} differs from the project: {diff}"
            result.failures.append(message)
            log("EQUALITY FAILED " + message)


def run_night(cluster: Cluster, templates: Templates, night: Night, repeats: int) -> NightResult:
    """Project and floor `repeats` times each, the plain loop once, each on a fresh copy of the
    same template; end states compared with the first project run's, whose copy is kept for
    the whole shape as the reference."""
    template = templates.get(night.population)
    result = NightResult(night=night, template=template)
    reference: State | None = None
    used: set[str] = set()
    try:
        for index in range(repeats):
            states: dict[str, State] = {}
            for name in _order(night, index):
                first = name == "project" and reference is None
                database = "bench_night_reference" if first else f"bench_night_{name}"
                used.add(database)
                url = cluster.create(database, template=template.name)
                mark = marker(url)
                log(f"{night.key} #{index + 1}: {name} ...")
                variant = RUNNERS[name](url, template)
                log(f"{night.key} #{index + 1}: {name} {variant.seconds:.2f} s")
                states[name] = (url, mark, fingerprint(url, mark))
                _record(result, name, variant)
                if first:
                    reference = states[name]
                    result.work = {part: rows for part, (rows, _) in states[name][2].items()}
            assert reference is not None
            _compare(result, reference, states, index)
            for name, state in states.items():
                if state is not reference:
                    cluster.drop(f"bench_night_{name}")
    except Exception as exc:  # noqa: BLE001  # one broken shape must not lose the others
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"{night.key}: ERROR {result.error}")
    finally:
        for database in used:
            cluster.drop(database)
    return result


def run_monitoring(templates: Templates, shape: Monitoring) -> dict[str, Any]:
    """Median of MONITORING_CALLS calls of the monitoring RPC through the function's store."""
    template = templates.get(shape.population)
    url = templates.cluster.url(template.name)
    store = RpcStore(PgTransport(url))
    timings = []
    try:
        for _ in range(MONITORING_CALLS):
            started = time.perf_counter()
            report = missed_report(store, template.today)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
    median = _median(timings)
    log(f"{shape.key}: monitoring median {median:.2f} ms, {report.missed_pause_count:,} missed")
    return {
        "key": shape.key,
        "title": shape.title,
        "median_ms": median,
        "first_ms": timings[0],
        "missed": report.missed_pause_count,
        "ids_returned": len(report.missed_ids),
        "target_ms": shape.target_ms,
        "met": median <= shape.target_ms,
        "certifications": template.certifications,
    }


# --------------------------------------------------------------------------------------------
# The whole run, its verdicts and its report


def _night_figures(result: NightResult, elapsed_s: float) -> dict[str, Any]:
    """One night's medians and details, as plain data for the report."""
    night, project = result.night, result.project
    figures: dict[str, Any] = {
        "letter": night.letter,
        "key": night.key,
        "title": night.title,
        "idle": night.idle,
        "has_floor": night.has_floor,
        "certifications": result.template.certifications,
        "generate_s": result.template.generate_s,
        "history_per_certification": result.template.log_rows / result.template.certifications,
        "outbox_per_certification": result.template.outbox_rows / result.template.certifications,
        "size_mb": result.template.size_mb,
        "elapsed_s": elapsed_s,
        "error": result.error,
        "equal": result.equal,
        "checks": result.checks,
        "equality_failures": result.failures,
        "work": result.work,
        "project_runs": [variant.seconds for variant in project],
        "floor_runs": [variant.seconds for variant in result.floor],
        "project_s": None,
        "floor_s": None,
        "loop_s": None,
    }
    if project:
        worst = [variant.worst_batch_ms or 0.0 for variant in project]
        figures |= {
            "project_s": _median([variant.seconds for variant in project]),
            "worst_batch_ms": _median(worst),
            "worst_batch_max_ms": max(worst),
            "median_batch_ms": _median(project[0].batch_ms),
            "batches": project[0].batches,
            "processed": project[0].certifications,
            "record_failures": project[0].failures,
            "monitoring_ms": _median([variant.monitoring_ms or 0.0 for variant in project]),
            "missed_after": project[0].missed_after,
        }
    if result.floor:
        figures["floor_s"] = _median([variant.seconds for variant in result.floor])
    if result.loop is not None:
        figures |= {
            "loop_s": result.loop.seconds,
            "loop_certifications": result.loop.certifications,
            "loop_failures": result.loop.failures,
        }
    return figures


def run(sizes: Sizes, letters: set[str], *, quick: bool = False) -> dict[str, Any]:
    """Every selected shape on one embedded server; figures for `markdown` and bench.report."""
    started = time.monotonic()
    data_dir = tempfile.mkdtemp(prefix="certexpiry-bench-night-")
    server = embedded.start(data_dir)
    cluster = Cluster(server.uri)
    templates = Templates(cluster)
    work: list[Night | Monitoring] = [*nights(sizes, letters), *monitorings(sizes, letters)]
    night_figures: list[dict[str, Any]] = []
    monitoring_figures: list[dict[str, Any]] = []
    try:
        for position, item in enumerate(work):
            item_started = time.monotonic()
            if isinstance(item, Night):
                result = run_night(cluster, templates, item, sizes.repeats)
                night_figures.append(_night_figures(result, time.monotonic() - item_started))
            else:
                try:
                    figures = run_monitoring(templates, item)
                except Exception as exc:  # noqa: BLE001  # report it, keep the other shapes
                    log(f"{item.key}: ERROR {exc}")
                    figures = {"key": item.key, "title": item.title, "error": str(exc)}
                figures["elapsed_s"] = time.monotonic() - item_started
                monitoring_figures.append(figures)
            templates.release({later.population for later in work[position + 1 :]})
    finally:
        try:
            templates.release(set())
        finally:
            server.stop()
            # Its WAL alone is a gigabyte or more after a full run.
            shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "quick": quick,
        "sizes": sizes,
        "batch_size": BATCH_SIZE,
        "nights": night_figures,
        "monitoring": monitoring_figures,
        "elapsed_s": time.monotonic() - started,
    }


@dataclass(frozen=True)
class Verdict:
    """One "Done when" target: the figure measured and whether it meets the target."""

    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    @property
    def word(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "NOT met")


def _idle_verdicts(by_key: dict[str, dict[str, Any]]) -> list[Verdict]:
    """Worst batch at the largest idle cohort, and its growth from the smallest."""
    idle = sorted(
        (night for night in by_key.values() if night["idle"]),
        key=lambda night: night["certifications"],
    )
    if not idle:
        return []
    small, large = idle[0], idle[-1]
    found = [
        Verdict(
            f"worst batch <= {TARGET_IDLE_BATCH_MS:.0f} ms, idle cohort at "
            f"{large['certifications']:,}",
            f"{large['worst_batch_ms']:,.0f} ms",
            large["worst_batch_ms"] <= TARGET_IDLE_BATCH_MS,
        )
    ]
    if len(idle) >= 2:
        growth = large["worst_batch_ms"] / max(small["worst_batch_ms"], 1e-9)
        found.append(
            Verdict(
                f"worst batch grows < {TARGET_IDLE_GROWTH:.0f}x from {small['certifications']:,} "
                f"to {large['certifications']:,}",
                f"{growth:.2f}x ({small['worst_batch_ms']:,.0f} -> {large['worst_batch_ms']:,.0f} ms)",
                growth < TARGET_IDLE_GROWTH,
            )
        )
    return found


def _floor_verdicts(by_key: dict[str, dict[str, Any]]) -> list[Verdict]:
    """Whole night against the floor, for every shape that has work and a floor."""
    found = []
    for night in by_key.values():
        if night["idle"] or not night["has_floor"]:
            continue
        target = f"{night['key']}. {night['title']}: whole night <= {TARGET_FLOOR_RATIO}x floor"
        if not night["floor_s"]:
            found.append(Verdict(target, "no floor figure", None))
            continue
        ratio = night["project_s"] / night["floor_s"]
        found.append(
            Verdict(
                target,
                f"{ratio:.2f}x ({night['project_s']:.2f} s / {night['floor_s']:.2f} s)",
                ratio <= TARGET_FLOOR_RATIO,
            )
        )
    return found


def _bad_row_verdicts(by_key: dict[str, dict[str, Any]]) -> list[Verdict]:
    """The giant mentor with one bad row (d) against the same night without it (c)."""
    if "d" not in by_key:
        return []
    target = f"d: one bad row <= {TARGET_BAD_ROW_RATIO:.0f}x the same night without (c)"
    if "c" not in by_key:
        return [Verdict(target, "c not measured", None)]
    bad, good = by_key["d"]["project_s"], by_key["c"]["project_s"]
    return [
        Verdict(
            target,
            f"{bad / good:.2f}x ({bad:.2f} s / {good:.2f} s)",
            bad / good <= TARGET_BAD_ROW_RATIO,
        )
    ]


def _monitoring_verdicts(items: list[dict[str, Any]]) -> list[Verdict]:
    found = []
    for item in items:
        if "median_ms" not in item:
            found.append(
                Verdict(item["title"], f"error: {_first_line(str(item.get('error')))}", None)
            )
            continue
        found.append(
            Verdict(
                f"{item['title']}: <= {item['target_ms']:.0f} ms",
                f"{item['median_ms']:.2f} ms ({item['missed']:,} missed, "
                f"{item['ids_returned']:,} IDs returned)",
                item["median_ms"] <= item["target_ms"],
            )
        )
    return found


def _equality_verdicts(nights: list[dict[str, Any]]) -> list[Verdict]:
    """Shapes that failed to run are "not measured"; any difference in end states fails."""
    found = [
        Verdict(f"{night['key']}. {night['title']}", f"error: {_first_line(night['error'])}", None)
        for night in nights
        if night["error"] is not None
    ]
    compared = [night for night in nights if night["checks"]]
    if compared:
        broken = [night["key"] for night in compared if night["equality_failures"]]
        found.append(
            Verdict(
                "floor and plain loop end states equal to the project's",
                f"FAILED on {', '.join(broken)}"
                if broken
                else f"all equal ({len(compared)} shapes)",
                not broken,
            )
        )
    return found


def verdicts(figures: dict[str, Any]) -> list[Verdict]:
    """The issue's targets, each judged from the figures of this run (never assumed)."""
    by_key = {night["key"]: night for night in figures["nights"] if night.get("project_s")}
    return [
        *_idle_verdicts(by_key),
        *_floor_verdicts(by_key),
        *_bad_row_verdicts(by_key),
        *_monitoring_verdicts(figures["monitoring"]),
        *_equality_verdicts(figures["nights"]),
    ]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _night_row(night: dict[str, Any], by_key: dict[str, dict[str, Any]]) -> str:
    """One line of the main table: night | project | floor | ratio | loop | vs loop | worst
    batch | equal | met."""
    title = f"{night['key']}. {night['title']} ({night['certifications']:,} certifications)"
    if night["error"] is not None or night["project_s"] is None:
        return f"| {title} | error: {_first_line(night['error'])} | | | | | | | not measured |"
    project, floor, loop = night["project_s"], night["floor_s"], night["loop_s"]
    ratio = "-"
    met: bool | None = None
    if night["has_floor"] and floor:
        ratio = f"{project / floor:.2f}"
        if not night["idle"]:
            met = project / floor <= TARGET_FLOOR_RATIO
    if not night["has_floor"] and "c" in by_key:
        d_over_c = project / by_key["c"]["project_s"]
        ratio = f"d/c = {d_over_c:.2f}"
        met = d_over_c <= TARGET_BAD_ROW_RATIO
    if night["idle"]:
        idle = sorted(
            (item for item in by_key.values() if item["idle"]),
            key=lambda item: item["certifications"],
        )
        if idle and idle[-1]["key"] == night["key"]:
            met = all(verdict.met for verdict in _idle_verdicts(by_key))
    versus = "-"
    if loop:
        speed = loop / project
        versus = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower"
    equal = "yes" if night["equal"] else "**FAILED**"
    word = "-" if met is None else ("met" if met else "**NOT met**")
    processed = night.get("processed")
    work = f"{processed:,} processed, " if processed is not None else ""
    return (
        f"| {title} | {_s(project)} | {_s(floor)} | {ratio} | {_s(loop)} | {versus} "
        f"| {night['worst_batch_ms']:,.0f} ms ({work}{night['batches']} batches) | {equal} | {word} |"
    )


def markdown(figures: dict[str, Any]) -> str:
    """The main table (as the issue's), the targets with computed verdicts, and the details."""
    sizes: Sizes = figures["sizes"]
    by_key = {night["key"]: night for night in figures["nights"] if night.get("project_s")}
    lines = [
        "| night | project | floor | project / floor | plain loop | project vs loop "
        "| worst batch | end states equal | met |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|:-:|",
    ]
    lines += [_night_row(night, by_key) for night in figures["nights"]]
    for item in figures["monitoring"]:
        if "median_ms" not in item:
            lines.append(
                f"| {item['title']} | error: {_first_line(str(item.get('error')))} "
                "| | | | | | | not measured |"
            )
            continue
        lines.append(
            f"| {item['title']} ({item['certifications']:,} certifications) "
            f"| {item['median_ms']:.2f} ms median of {MONITORING_CALLS} | - | - | - | - "
            f"| - | - | {'met' if item['met'] else '**NOT met**'} |"
        )
    lines += [
        "",
        f"Mode: {'quick' if figures['quick'] else 'full'}; sizes: {sizes.normal:,} normal, "
        f"{sizes.cohort:,} cohort, giant mentor {sizes.giant:,}, idle "
        f"{' / '.join(f'{size:,}' for size in sizes.idle)}, monitoring {sizes.monitoring:,}, "
        f"{sizes.history_years} years of history; project and floor median of {sizes.repeats} "
        f"paired run(s) on fresh copies, plain loop once; project batch size {figures['batch_size']} "
        f"(the settings' default). The whole benchmark took {figures['elapsed_s']:.0f} s.",
    ]
    if figures["quick"]:
        lines.append(
            "Quick sizes are ~10x smaller than the issue's: the verdicts are computed against "
            "the issue's thresholds but at these sizes, so only a full run decides them."
        )
    lines += ["", "| target (issue 14, Done when) | measured | verdict |", "|---|---|:-:|"]
    lines += [f"| {item.target} | {item.measured} | {item.word} |" for item in verdicts(figures)]
    lines += [
        "",
        "| night | runs project / floor (s) | batches | median batch | worst (max) | "
        "monitoring + audit after the night | missed after | night's log rows / outbox rows "
        "| plain loop read | log / outbox rows per certification before | database "
        "| generated in | shape took |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for night in figures["nights"]:
        if night["project_s"] is None:
            continue
        work = night["work"]
        log_rows = next((rows for part, rows in work.items() if "idempotency" in part), 0)
        outbox_rows = next((rows for part, rows in work.items() if "outbox" in part), 0)
        loop_read = (
            f"{night['loop_certifications']:,} certs, {night['loop_failures']} failed"
            if night["loop_s"] is not None
            else "-"
        )
        runs = " / ".join(
            [
                ", ".join(f"{value:.2f}" for value in night["project_runs"]),
                ", ".join(f"{value:.2f}" for value in night["floor_runs"]) or "-",
            ]
        )
        lines.append(
            f"| {night['key']} | {runs} | {night['batches']} | {night['median_batch_ms']:.1f} ms "
            f"| {night['worst_batch_max_ms']:,.0f} ms | {night['monitoring_ms']:.1f} ms "
            f"| {night['missed_after']} | {log_rows:,} / {outbox_rows:,} | {loop_read} "
            f"| {night['history_per_certification']:.1f} / {night['outbox_per_certification']:.1f} "
            f"| {night['size_mb']:,.0f} MB | {night['generate_s']:.0f} s | {night['elapsed_s']:.0f} s |"
        )
    checks = [
        f"{night['key']}: {'; '.join(night['checks']) or 'none'}" for night in figures["nights"]
    ]
    if checks:
        lines += [
            "",
            "Equality checks (against the first project run): " + " · ".join(checks) + ".",
        ]
    failures = [message for night in figures["nights"] for message in night["equality_failures"]]
    errors = [f"{night['key']}: {night['error']}" for night in figures["nights"] if night["error"]]
    if failures or errors:
        lines += ["", "**EQUALITY FAILURES / ERRORS**", ""]
        lines += [f"- {message}" for message in [*failures, *errors]]
    return "\n".join(lines)


LETTERS = "abcdefghi"
ALL_SHAPES = ",".join(LETTERS)


def parse_shapes(text: str) -> set[str]:
    """`a,b,g` -> {"a", "b", "g"}; "none" -> an empty set; an unknown letter is an error."""
    if text.strip().lower() == "none":
        return set()
    letters = {part.strip() for part in text.split(",") if part.strip()}
    unknown = letters - set(LETTERS)
    if unknown:
        raise ValueError(f"unknown shapes {sorted(unknown)}; choose from {ALL_SHAPES}")
    return letters


def parse_args(argv: list[str] | None) -> tuple[Sizes, set[str], bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="sizes ~10x smaller, one run each")
    parser.add_argument("--shapes", default=ALL_SHAPES, help="e.g. a,b,g (default: all)")
    parser.add_argument("--repeats", type=int, help="project and floor runs per shape")
    parser.add_argument("--normal", type=int, help="certifications in shapes a-d and h")
    parser.add_argument("--cohort", type=int, help="certifications in shapes e, f and i2")
    parser.add_argument("--giant", type=int, help="certifications of the giant mentor (c, d)")
    parser.add_argument("--idle", help="idle cohort sizes (g), e.g. 100000,1000000")
    parser.add_argument("--monitoring", type=int, help="certifications in shape i1")
    parser.add_argument("--history-years", type=int)
    args = parser.parse_args(argv)
    try:
        letters = parse_shapes(args.shapes)
    except ValueError as exc:
        parser.error(str(exc))
    sizes = QUICK if args.quick else Sizes()
    overrides: dict[str, Any] = {
        "repeats": args.repeats,
        "normal": args.normal,
        "cohort": args.cohort,
        "giant": args.giant,
        "monitoring": args.monitoring,
        "history_years": args.history_years,
        "idle": tuple(int(size) for size in args.idle.split(",")) if args.idle else None,
    }
    sizes = replace(sizes, **{key: value for key, value in overrides.items() if value is not None})
    return sizes, letters, args.quick


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    """A terminated run still stops its server and removes its data (the `finally` blocks)."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes, letters, quick = parse_args(argv)
    figures = run(sizes, letters, quick=quick)
    sys.stdout.write(markdown(figures) + "\n")


if __name__ == "__main__":
    main()
