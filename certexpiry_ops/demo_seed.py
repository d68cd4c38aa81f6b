"""A realistic, generated organisation for the demo and for local trials (`certexpiry seed`).

Peer mentors with Norwegian-style names, valid-looking 11-digit national identity numbers
(fødselsnummer, with both check digits), example-domain e-mail addresses and mobile numbers,
about 2% of them paused on leave, and 1-3 certifications each, expiring from 60 days ago to 90
days ahead. All drawn from `random.Random(seed)`: `generate(n, seed, today)` is reproducible,
and the tests use it to look for the seeded personal data in the output.

The history comes from the SQL rules, not from here: what a night does is defined once, in
supabase/schemas/, and a Python copy would drift. The rows go in all active
(COPY); then, for every night from `today - 90` until an outage that began `outage_days` ago,
one set-based `certexpiry.apply_effects` over `certexpiry.actionable_certifications` for that
date, under the night's own run id (`night_run_id`). With the default outage about half of the
expired certifications end up paused; the rest, and some late reminders, are tonight's work.

About 5% of the certifications were renewed after the job's last run: their earlier expiry date
(8-60 days ago) went through the simulated nights, then an UPDATE gave them the new date (back
to active, and the mentor too when that was its only reason to be paused). The idempotency key
includes the expiry date, so the new date starts a fresh cycle.

Rows the SQL writes carry `now()` (this transaction's time) in created_at and paused_at, not
the simulated night's: the rules take the date, not the clock. The notices those nights queued
are stamped dispatched, as the delivery service would have done.

This module writes test data straight into the tables: the SQL API deliberately has no function
for that, and `seed` refuses any database that is not local (see `is_local`).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_MENTORS = 5_000
DEFAULT_SEED = 42
REMINDER_OFFSETS = (30, 7, 1)  # the job's default REMINDER_DAYS
HISTORY_DAYS = 90  # the simulated job ran every night from today - 90 ...
DEFAULT_OUTAGE_DAYS = 30  # ... until an outage this many days ago (measured: ~half paused)
RENEWED_AGO = (8, 60)  # a renewed certification's earlier expiry date, in days before today
MAX_OUTAGE_DAYS = RENEWED_AGO[0] + max(REMINDER_OFFSETS) - 1  # so their earlier cycle ran
RUN_ID_NAMESPACE = uuid.UUID("5f0c7d2e-8f4b-4d53-9a51-6a3e0c2b9d17")
DEMO_SCHEMA = "certexpiry_demo"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# fmt: off
FIRST_NAMES = (
    "Kari", "Ola", "Ingrid", "Lars", "Nora", "Jakob", "Emma", "Filip", "Sofie", "Henrik", "Ella",
    "Magnus", "Maja", "Sander", "Olivia", "Elias", "Leah", "Aksel", "Sara", "Mathias", "Ingeborg",
    "Tobias", "Astrid", "Johannes", "Frida", "Sindre", "Hedda", "Eirik", "Thea", "Håkon", "Sigrid",
    "Øystein", "Solveig", "Bjørn", "Ragnhild", "Kjetil", "Marit", "Torbjørn", "Gunnhild", "Åse",
    "Anne", "Per", "Liv", "Knut", "Hilde", "Trond", "Ida", "Vetle", "Tuva", "Ahmed", "Amina",
    "Mohammed", "Fatima", "Piotr", "Agnieszka", "Linh", "Tomas", "Hanna", "Mikkel", "Julie",
    "Even", "Synnøve", "Arne", "Ellinor", "Jonas", "Malin",
)
LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen", "Lund",
    "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen",
    "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie",
    "Amundsen", "Nguyen", "Rasmussen", "Ali", "Lunde", "Solheim", "Berge", "Moe", "Nygård",
    "Bakke", "Kristensen", "Fredriksen", "Holm", "Lien", "Hauge", "Christensen", "Andresen",
    "Nielsen", "Knudsen", "Evensen", "Sæther", "Aas", "Myhre", "Hanssen", "Ahmed", "Haugland",
    "Thomassen", "Sivertsen", "Simonsen", "Danielsen", "Berntsen", "Sandvik", "Rønning", "Arnesen",
    "Antonsen", "Næss", "Vik", "Haug", "Ellingsen", "Thorsen", "Edvardsen", "Birkeland", "Isaksen",
    "Gulbrandsen", "Ruud", "Aasen", "Strøm", "Myklebust", "Tangen", "Ødegård", "Eliassen",
    "Helland", "Bøe", "Jenssen", "Aune", "Mikkelsen", "Tveit", "Brekke", "Abrahamsen", "Madsen",
    "Kowalski", "Tran",
)
# fmt: on
EMAIL_DOMAINS = ("example.org", "example.com", "example.net", "post.example", "frivillig.example")
_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "é": "e", "ü": "u", " ": ""})

_NIGHT = """
    select certexpiry.apply_effects(
        %(run_id)s::uuid, %(night)s::date, %(days)s::integer[],
        array(select a.certification_id
              from certexpiry.actionable_certifications(%(night)s::date, %(days)s::integer[]) a))
"""
_RENEW = """
    update public.certifications c
    set expiry_date = r.expiry_date, status = 'active', paused_at = null, updated_at = now()
    from unnest(%(ids)s::uuid[], %(dates)s::date[]) as r (id, expiry_date)
    where c.id = r.id
"""
_REINSTATE = """
    update public.peer_mentors m
    set status = 'active', paused_at = null, paused_reason = null, updated_at = now()
    where m.id = any (%(mentors)s::uuid[]) and m.paused_reason = 'certification_expired'
      and not exists (select from public.certifications c
                      where c.peer_mentor_id = m.id and c.status = 'paused')
"""
_SENT = (
    "update certexpiry.notification_outbox set dispatched_at = now() where dispatched_at is null"
)
_ANALYZE = (
    "analyze public.peer_mentors, public.certifications, certexpiry.certification_idempotency_log"
)
_COUNTS = """
    select (select count(*) from public.certifications where status = 'paused'),
           (select count(*) from certexpiry.missed_auto_pauses(%(today)s::date)),
           (select count(*) from certexpiry.certification_idempotency_log)
"""


@dataclass(frozen=True)
class Mentor:
    """One generated peer mentor (personal data: never to be printed)."""

    id: uuid.UUID
    full_name: str
    national_id: str
    email: str
    phone: str
    status: str = "active"
    paused_at: datetime | None = None
    paused_reason: str | None = None


@dataclass(frozen=True)
class Certification:
    """One generated certification; `renewed_from` is its expiry date before a renewal."""

    id: uuid.UUID
    peer_mentor_id: uuid.UUID
    expiry_date: date
    renewed_from: date | None = None


@dataclass
class Organisation:
    """The generated rows, in insertion order (as they are before the simulated nights)."""

    mentors: list[Mentor] = field(default_factory=list)
    certifications: list[Certification] = field(default_factory=list)


@dataclass(frozen=True)
class SeedReport:
    """What `seed` wrote (counts only: no personal data); the counts are read back from SQL."""

    mentors: int
    certifications: int
    already_paused: int
    to_pause_tonight: int
    renewed: int
    records: int
    seconds: float


def simulated_nights(today: date, outage_days: int = DEFAULT_OUTAGE_DAYS) -> list[date]:
    """The nights the job ran, oldest first: `today - HISTORY_DAYS` up to the outage."""
    return [today - timedelta(days=ago) for ago in range(HISTORY_DAYS, outage_days, -1)]


def night_run_id(seed: int, night: date) -> uuid.UUID:
    """The run id of one simulated night: reproducible, and recognisable as the demo's."""
    return uuid.uuid5(RUN_ID_NAMESPACE, f"demo-night:{seed}:{night.isoformat()}")


def _night(day: date) -> datetime:
    """02:00 UTC on `day`: when an on-leave mentor's pause is dated."""
    return datetime(day.year, day.month, day.day, 2, tzinfo=UTC)


def _national_id(rng: random.Random, taken: set[str]) -> str:
    """A fødselsnummer: DDMMYY + individual number + two mod-11 check digits."""
    while True:
        birthday = date(1950, 1, 1) + timedelta(days=rng.randrange(55 * 365))
        individual = rng.randrange(0, 500) if birthday.year < 2000 else rng.randrange(500, 1000)
        digits = [int(c) for c in f"{birthday:%d%m%y}{individual:03d}"]
        k1 = 11 - sum(w * d for w, d in zip(_K1_WEIGHTS, digits, strict=True)) % 11
        k1 = 0 if k1 == 11 else k1
        if k1 == 10:
            continue
        digits.append(k1)
        k2 = 11 - sum(w * d for w, d in zip(_K2_WEIGHTS, digits, strict=True)) % 11
        k2 = 0 if k2 == 11 else k2
        if k2 == 10:
            continue
        number = "".join(map(str, digits)) + str(k2)
        if number not in taken:
            taken.add(number)
            return number


def _person(
    rng: random.Random, taken_ids: set[str], taken_emails: set[str]
) -> tuple[str, str, str, str]:
    first = rng.choice(FIRST_NAMES)
    middle = rng.choice(FIRST_NAMES) if rng.random() < 0.15 else None
    last = rng.choice(LAST_NAMES)
    if rng.random() < 0.05:
        last = f"{last}-{rng.choice(LAST_NAMES)}"
    full_name = " ".join(part for part in (first, middle, last) if part)
    local = f"{first}.{last}".lower().translate(_ASCII)
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    number = 2
    while email in taken_emails:
        email = f"{local}{number}@{email.split('@', 1)[1]}"
        number += 1
    taken_emails.add(email)
    phone = (
        f"+47 {rng.choice('49')}{rng.randrange(10):d}{rng.randrange(10):d} "
        f"{rng.randrange(100):02d} {rng.randrange(1000):03d}"
    )
    return full_name, _national_id(rng, taken_ids), email, phone


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def generate(mentors: int, seed: int, today: date) -> Organisation:
    """The organisation for `mentors` peer mentors, reproducible from `seed` and `today`."""
    rng = random.Random(seed)  # noqa: S311  # reproducible fake people, not secrets
    org = Organisation()
    taken_ids: set[str] = set()
    taken_emails: set[str] = set()
    for _ in range(mentors):
        mentor_id = _uuid(rng)
        full_name, national_id, email, phone = _person(rng, taken_ids, taken_emails)
        count = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        org.certifications.extend(_certification(rng, mentor_id, today) for _ in range(count))
        on_leave = rng.random() < 0.02
        since = _night(today - timedelta(days=rng.randrange(1, 200))) if on_leave else None
        status, reason = ("paused", "on_leave") if on_leave else ("active", None)
        org.mentors.append(
            Mentor(mentor_id, full_name, national_id, email, phone, status, since, reason)
        )
    return org


def _certification(rng: random.Random, mentor_id: uuid.UUID, today: date) -> Certification:
    """One certification: its expiry date, and for about 5% the date it had before renewal."""
    cert_id = _uuid(rng)
    if rng.random() < 0.05:
        expiry = today + timedelta(days=rng.randint(0, 90))
        earlier = today - timedelta(days=rng.randint(*RENEWED_AGO))
        return Certification(cert_id, mentor_id, expiry, earlier)
    return Certification(cert_id, mentor_id, today + timedelta(days=rng.randint(-60, 90)))


def is_local(conninfo: str, environ: dict[str, str] | None = None) -> bool:
    """True when every host of `conninfo` is a Unix socket or the loopback interface."""
    env = os.environ if environ is None else environ
    params = conninfo_to_dict(conninfo)
    hosts = str(params.get("host") or env.get("PGHOST") or "")
    addrs = str(params.get("hostaddr") or env.get("PGHOSTADDR") or "")
    for host in filter(None, (h.strip() for h in hosts.split(","))):
        if not (host.startswith(("/", "@")) or host.lower() in LOCAL_HOSTS):
            return False
    return all(addr.strip() in ("127.0.0.1", "::1") for addr in addrs.split(",") if addr.strip())


def host_of(conninfo: str) -> str:
    """The host part of a connection string, for messages (no user, password or database)."""
    params = conninfo_to_dict(conninfo)
    return str(params.get("host") or params.get("hostaddr") or "(default Unix socket)")


def is_empty(conn: psycopg.Connection[Any]) -> bool:
    """True when the database has no peer mentor yet."""
    row = conn.execute("select not exists (select 1 from public.peer_mentors)").fetchone()
    return bool(row and row[0])


def _has_column(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    row = conn.execute(
        "select exists (select 1 from information_schema.columns where table_schema = 'public' "
        "and table_name = %s and column_name = %s)",
        (table, column),
    ).fetchone()
    return bool(row and row[0])


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
) -> None:
    statement = sql.SQL("copy public.{} ({}) from stdin").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def seed(
    conn: psycopg.Connection[Any],
    *,
    mentors: int = DEFAULT_MENTORS,
    seed: int = DEFAULT_SEED,
    today: date,
    outage_days: int = DEFAULT_OUTAGE_DAYS,
) -> SeedReport:
    """Insert the organisation and run the SQL rules for its earlier nights, then ANALYZE.

    One transaction as the connecting role (the local database's owner: `seed` refuses any
    database that is not local): an organisation is seeded whole or not at all. It writes
    what the job never writes (people, certifications, delivered notices), so it does not run
    as service_role, which keeps only the job's own privileges.
    """
    if not 0 <= outage_days <= MAX_OUTAGE_DAYS:
        raise ValueError(f"outage_days must be between 0 and {MAX_OUTAGE_DAYS}")
    started = time.monotonic()
    org = generate(mentors, seed, today)
    with_phone = _has_column(conn, "peer_mentors", "phone")  # stored where the schema has it
    columns = [f.name for f in fields(Mentor) if with_phone or f.name != "phone"]
    renewed = [c for c in org.certifications if c.renewed_from is not None]
    days = list(REMINDER_OFFSETS)
    with conn.transaction():
        _copy(
            conn, "peer_mentors", columns, ([getattr(m, c) for c in columns] for m in org.mentors)
        )
        _copy(
            conn,
            "certifications",
            # next_action_on null: the app's rows as the job found them when it was installed.
            ("id", "peer_mentor_id", "expiry_date", "next_action_on"),
            (
                (c.id, c.peer_mentor_id, c.renewed_from or c.expiry_date, None)
                for c in org.certifications
            ),
        )
        for night in simulated_nights(today, outage_days):
            run = {"run_id": night_run_id(seed, night), "night": night, "days": days}
            conn.execute(_NIGHT, run)
        conn.execute(
            _RENEW, {"ids": [c.id for c in renewed], "dates": [c.expiry_date for c in renewed]}
        )
        conn.execute(_REINSTATE, {"mentors": [c.peer_mentor_id for c in renewed]})
        conn.execute(_SENT)
        row = conn.execute(_COUNTS, {"today": today}).fetchall()[0]
    conn.execute(_ANALYZE)  # the rows changed wholesale: fresh statistics for tonight's plans
    return SeedReport(
        mentors=len(org.mentors),
        certifications=len(org.certifications),
        already_paused=int(row[0]),
        to_pause_tonight=int(row[1]),
        renewed=len(renewed),
        records=int(row[2]),
        seconds=time.monotonic() - started,
    )


def install_refusal(conn: psycopg.Connection[Any], certification_ids: Sequence[str]) -> None:
    """`demo --with-failures`: a trigger that refuses to pause these certifications.

    It lives in its own schema (certexpiry_demo) so `drop_refusal` removes it without a trace.
    Needs a role that may create schemas (the embedded server's superuser).
    """
    ids = "{" + ",".join(str(uuid.UUID(str(item))) for item in certification_ids) + "}"
    conn.execute(
        sql.SQL(
            """
        create schema if not exists {schema};
        create or replace function {schema}.refuse_pause() returns trigger
        language plpgsql set search_path = '' as $fn$
        begin
            if new.status = 'paused' and old.status <> 'paused'
               and new.id = any ({ids}::uuid[]) then
                raise exception 'certexpiry demo: this certification refuses to be paused'
                    using errcode = 'P0001',
                          hint = 'certexpiry remediate RUN_ID --drop-demo-trigger';
            end if;
            return new;
        end
        $fn$;
        drop trigger if exists certexpiry_demo_refuse_pause on public.certifications;
        create trigger certexpiry_demo_refuse_pause before update on public.certifications
            for each row execute function {schema}.refuse_pause();
        """
        ).format(schema=sql.Identifier(DEMO_SCHEMA), ids=sql.Literal(ids))
    )


def has_refusal(conn: psycopg.Connection[Any]) -> bool:
    """True while the demo trigger is installed."""
    row = conn.execute("select to_regnamespace(%s) is not null", (DEMO_SCHEMA,)).fetchone()
    return bool(row and row[0])


def drop_refusal(conn: psycopg.Connection[Any]) -> bool:
    """Remove the demo trigger (and its schema); True if it was there."""
    present = has_refusal(conn)
    conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(DEMO_SCHEMA)))
    return present


def install_stop(conn: psycopg.Connection[Any], at_checkpoint: int) -> None:
    """`demo --stop-half-way`: the night stops half-way once, as when the database refuses the
    job's call itself (SQLSTATE 42501, a privilege taken away): the `at_checkpoint`-th batch's
    checkpoint of the run is refused, so its whole call fails, which no smaller batch can help,
    and the night logs the error, monitoring, the audit row (failed) and RUN_STOPPED.

    It refuses once: a sequence counts the checkpoints, and a sequence is not rolled back with
    the refused batch (security definer: the job's role needs no grant on it). So the
    runbook's fix on the demo is nothing but resuming (`certexpiry run`). Same schema as
    `install_refusal`, so `drop_refusal` and `--fresh` remove it too.
    """
    conn.execute(
        sql.SQL(
            """
        create schema if not exists {schema};
        drop sequence if exists {schema}.stop_checkpoints;
        create sequence {schema}.stop_checkpoints;
        create or replace function {schema}.stop_half_way() returns trigger
        language plpgsql security definer set search_path = '' as $fn$
        begin
            if nextval({sequence}) = {at} then
                raise exception 'certexpiry demo: the night''s checkpoint is refused once'
                    using errcode = '42501', hint = 'certexpiry run';
            end if;
            return new;
        end
        $fn$;
        drop trigger if exists certexpiry_demo_stop_half_way on certexpiry.cron_runs;
        create trigger certexpiry_demo_stop_half_way before update on certexpiry.cron_runs
            for each row when (new.cursor is distinct from old.cursor)
            execute function {schema}.stop_half_way();
        """
        ).format(
            schema=sql.Identifier(DEMO_SCHEMA),
            sequence=sql.Literal(f"{DEMO_SCHEMA}.stop_checkpoints"),
            at=sql.Literal(at_checkpoint),
        )
    )


def night_batches(
    conn: psycopg.Connection[Any], today: date, reminder_days: Sequence[int], batch_size: int
) -> int:
    """How many batches of `batch_size` tonight's due work takes at least (the sweep's own
    definition of it, certexpiry.actionable_certifications): where half-way is."""
    row = conn.execute(
        "select count(*) from certexpiry.actionable_certifications(%s, %s)",
        (today, list(reminder_days)),
    ).fetchone()
    due = int(row[0]) if row else 0
    return -(-due // batch_size)
