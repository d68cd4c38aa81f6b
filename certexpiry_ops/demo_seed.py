"""A realistic, generated organisation for the demo and for local trials (`certexpiry seed`).

Peer mentors with Norwegian-style names, valid-looking 11-digit national identity numbers
(fødselsnummer, with both check digits), e-mail addresses under reserved example domains and
mobile numbers, and 1-3 certifications each, spread from 60 days expired to 90 days ahead:

* about half of the expired certifications were already auto-paused by "earlier nights"
  (paused, with their auto_pause and reminder records; their mentors paused too), the rest
  are what tonight's sweep must pause;
* certifications inside the reminder window already carry the reminders earlier nights sent;
* about 5% were renewed: their idempotency log has rows for last year's expiry date, and the
  new date starts a fresh cycle;
* about 2% of mentors are paused for another reason (on leave).

Everything is drawn from `random.Random(seed)`, so `generate(n, seed, today)` is reproducible
(the tests use that to look for the seeded personal data in the output). Rows go in with COPY
as service_role, in one transaction: 5,000 mentors take well under a second.

This module writes test data straight into the tables: the SQL API deliberately has no function
for that, and `seed` refuses any database that is not local (see `is_local`).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from certexpiry.pg_store import as_api_role

DEFAULT_MENTORS = 5_000
DEFAULT_SEED = 42
REMINDER_OFFSETS = (30, 7, 1)
DEMO_SCHEMA = "certexpiry_demo"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

FIRST_NAMES = (
    "Kari",
    "Ola",
    "Ingrid",
    "Lars",
    "Nora",
    "Jakob",
    "Emma",
    "Filip",
    "Sofie",
    "Henrik",
    "Ella",
    "Magnus",
    "Maja",
    "Sander",
    "Olivia",
    "Elias",
    "Leah",
    "Aksel",
    "Sara",
    "Mathias",
    "Ingeborg",
    "Tobias",
    "Astrid",
    "Johannes",
    "Frida",
    "Sindre",
    "Hedda",
    "Eirik",
    "Thea",
    "Håkon",
    "Sigrid",
    "Øystein",
    "Solveig",
    "Bjørn",
    "Ragnhild",
    "Kjetil",
    "Marit",
    "Torbjørn",
    "Gunnhild",
    "Åse",
    "Anne",
    "Per",
    "Liv",
    "Knut",
    "Hilde",
    "Trond",
    "Ida",
    "Vetle",
    "Tuva",
    "Ahmed",
    "Amina",
    "Mohammed",
    "Fatima",
    "Piotr",
    "Agnieszka",
    "Linh",
    "Tomas",
    "Hanna",
    "Mikkel",
    "Julie",
    "Even",
    "Synnøve",
    "Arne",
    "Ellinor",
    "Jonas",
    "Malin",
)
LAST_NAMES = (
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Henriksen",
    "Lund",
    "Sørensen",
    "Jakobsen",
    "Moen",
    "Gundersen",
    "Iversen",
    "Strand",
    "Solberg",
    "Svendsen",
    "Eide",
    "Knutsen",
    "Martinsen",
    "Paulsen",
    "Bakken",
    "Kristoffersen",
    "Mathisen",
    "Lie",
    "Amundsen",
    "Nguyen",
    "Rasmussen",
    "Ali",
    "Lunde",
    "Solheim",
    "Berge",
    "Moe",
    "Nygård",
    "Bakke",
    "Kristensen",
    "Fredriksen",
    "Holm",
    "Lien",
    "Hauge",
    "Christensen",
    "Andresen",
    "Nielsen",
    "Knudsen",
    "Evensen",
    "Sæther",
    "Aas",
    "Myhre",
    "Hanssen",
    "Ahmed",
    "Haugland",
    "Thomassen",
    "Sivertsen",
    "Simonsen",
    "Danielsen",
    "Berntsen",
    "Sandvik",
    "Rønning",
    "Arnesen",
    "Antonsen",
    "Næss",
    "Vik",
    "Haug",
    "Ellingsen",
    "Thorsen",
    "Edvardsen",
    "Birkeland",
    "Isaksen",
    "Gulbrandsen",
    "Ruud",
    "Aasen",
    "Strøm",
    "Myklebust",
    "Tangen",
    "Ødegård",
    "Eliassen",
    "Helland",
    "Bøe",
    "Jenssen",
    "Aune",
    "Mikkelsen",
    "Tveit",
    "Brekke",
    "Abrahamsen",
    "Madsen",
    "Kowalski",
    "Tran",
)
EMAIL_DOMAINS = ("example.org", "example.com", "example.net", "post.example", "frivillig.example")
_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "é": "e", "ü": "u", " ": ""})


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
    """One generated certification."""

    id: uuid.UUID
    peer_mentor_id: uuid.UUID
    expiry_date: date
    status: str = "active"
    paused_at: datetime | None = None


@dataclass(frozen=True)
class Record:
    """One certification_idempotency_log row an earlier night would have written."""

    certification_id: uuid.UUID
    action: str
    expiry_date: date
    created_at: datetime


@dataclass
class Organisation:
    """The generated rows, in insertion order."""

    mentors: list[Mentor] = field(default_factory=list)
    certifications: list[Certification] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    renewed: int = 0


@dataclass(frozen=True)
class SeedReport:
    """What `seed` wrote (counts only: no personal data)."""

    mentors: int
    certifications: int
    already_paused: int
    to_pause_tonight: int
    renewed: int
    records: int
    seconds: float


def _night(day: date) -> datetime:
    """02:00 UTC on `day`: when an earlier nightly run would have written its rows."""
    return datetime.combine(day, dtime(2, 0), tzinfo=UTC)


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


def generate(
    mentors: int = DEFAULT_MENTORS, seed: int = DEFAULT_SEED, today: date | None = None
) -> Organisation:
    """The organisation for `mentors` peer mentors, reproducible from `seed` and `today`."""
    today = today or date.today()
    rng = random.Random(seed)
    org = Organisation()
    taken_ids: set[str] = set()
    taken_emails: set[str] = set()
    for _ in range(mentors):
        mentor_id = _uuid(rng)
        full_name, national_id, email, phone = _person(rng, taken_ids, taken_emails)
        count = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        paused_on: date | None = None
        for _ in range(count):
            cert, records, renewed = _certification(rng, mentor_id, today)
            org.certifications.append(cert)
            org.records.extend(records)
            org.renewed += renewed
            if cert.status == "paused" and cert.paused_at is not None:
                day = cert.paused_at.date()
                paused_on = day if paused_on is None else min(paused_on, day)
        if paused_on is not None:
            mentor = Mentor(
                mentor_id,
                full_name,
                national_id,
                email,
                phone,
                "paused",
                _night(paused_on),
                "certification_expired",
            )
        elif rng.random() < 0.02:
            mentor = Mentor(
                mentor_id,
                full_name,
                national_id,
                email,
                phone,
                "paused",
                _night(today - timedelta(days=rng.randrange(1, 200))),
                "on_leave",
            )
        else:
            mentor = Mentor(mentor_id, full_name, national_id, email, phone)
        org.mentors.append(mentor)
    return org


def _certification(
    rng: random.Random, mentor_id: uuid.UUID, today: date
) -> tuple[Certification, list[Record], int]:
    """One certification, the records earlier nights wrote for it, and 1 if it was renewed."""
    cert_id = _uuid(rng)
    records: list[Record] = []
    if rng.random() < 0.05:
        # Renewed: last year's cycle ran to its end (reminders, often an auto-pause); the new
        # expiry date is in the future and starts a fresh cycle.
        expiry = today + timedelta(days=rng.randint(0, 90))
        old = expiry - timedelta(days=365)
        records += [
            Record(cert_id, f"reminder_{n}d", old, _night(old - timedelta(days=n)))
            for n in REMINDER_OFFSETS
        ]
        if rng.random() < 0.6:
            records.append(Record(cert_id, "auto_pause", old, _night(old + timedelta(days=1))))
        return Certification(cert_id, mentor_id, expiry), records, 1
    expiry = today + timedelta(days=rng.randint(-60, 90))
    days_left = (expiry - today).days
    # Reminders earlier nights sent: each offset whose day has passed, most of the time.
    for n in REMINDER_OFFSETS:
        if expiry - timedelta(days=n) < today and rng.random() < 0.8:
            sent = _night(expiry - timedelta(days=n))
            records.append(Record(cert_id, f"reminder_{n}d", expiry, sent))
    if days_left <= -2 and rng.random() < 0.5:
        paused_day = expiry + timedelta(days=1)
        records.append(Record(cert_id, "auto_pause", expiry, _night(paused_day)))
        return Certification(cert_id, mentor_id, expiry, "paused", _night(paused_day)), records, 0
    return Certification(cert_id, mentor_id, expiry), records, 0


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
    today: date | None = None,
) -> SeedReport:
    """Insert the generated organisation (as service_role, one transaction) and ANALYZE."""
    started = time.monotonic()
    today = today or date.today()
    org = generate(mentors, seed, today)
    with_phone = _has_column(conn, "peer_mentors", "phone")  # stored where the schema has it
    mentor_columns = [
        "id",
        "full_name",
        "national_id",
        "email",
        "status",
        "paused_at",
        "paused_reason",
    ]
    if with_phone:
        mentor_columns.append("phone")
    with as_api_role(conn, "service_role"):
        _copy(
            conn,
            "peer_mentors",
            mentor_columns,
            (
                (
                    m.id,
                    m.full_name,
                    m.national_id,
                    m.email,
                    m.status,
                    m.paused_at,
                    m.paused_reason,
                    *((m.phone,) if with_phone else ()),
                )
                for m in org.mentors
            ),
        )
        _copy(
            conn,
            "certifications",
            ("id", "peer_mentor_id", "expiry_date", "status", "paused_at"),
            (
                (c.id, c.peer_mentor_id, c.expiry_date, c.status, c.paused_at)
                for c in org.certifications
            ),
        )
        _copy(
            conn,
            "certification_idempotency_log",
            ("certification_id", "action", "expiry_date", "outcome", "created_at"),
            (
                (r.certification_id, r.action, r.expiry_date, "done", r.created_at)
                for r in org.records
            ),
        )
    conn.execute(
        "analyze public.peer_mentors, public.certifications, public.certification_idempotency_log"
    )
    paused_now = {r.certification_id for r in org.records if r.action == "auto_pause"}
    return SeedReport(
        mentors=len(org.mentors),
        certifications=len(org.certifications),
        already_paused=sum(1 for c in org.certifications if c.status == "paused"),
        to_pause_tonight=sum(
            1
            for c in org.certifications
            if c.status == "active" and c.expiry_date < today and c.id not in paused_now
        ),
        renewed=org.renewed,
        records=len(org.records),
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
                          hint = 'python -m certexpiry remediate RUN_ID --drop-demo-trigger';
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
