"""Faults planted in the test database by trigger: the app's database refusing, slowing down or
failing the job's writes, for chosen rows or for every row.

Each fault is one trigger with a function of its own, `public.<name>()`: the name a failure's
`routine` shows. The function acts on the rows whose key (`id`, or `certification_id` on the
job's own tables) is listed for the fault in `public.test_fault_ids`, or on every row when no
ids are given; it is SECURITY DEFINER with an empty search_path, so it reads that list whatever
role the job connects as, and the list is seen by every connection at once. Ids, messages,
SQLSTATEs and durations reach the DDL as psycopg.sql literals and identifiers, never pasted in;
the PL/pgSQL a test passes to `inject` (`body`, `when`, `declare`) is the test's own text.

Every helper returns a `Fault`, a context manager: leaving the `with` block, or `remove()`, is
the app's fix (the trigger, its function and its list are gone).

    with faults.refuse(db, "certifications", [cert_id]):          # P0001 on every update
        ...
    faults.slow(db, "certexpiry.notification_outbox", 0.004, events="insert")
    faults.fail_n_times(db, "certexpiry.cron_runs", 2)             # 40001, then success
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]
Events = Literal["update", "insert", "insert or update"]
Id = uuid.UUID | str

IDS_TABLE = sql.Identifier("public", "test_fault_ids")
SERIALIZATION_FAILURE = "could not serialize access due to concurrent update"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_EVENTS: dict[str, sql.SQL] = {
    "update": sql.SQL("update"),
    "insert": sql.SQL("insert"),
    "insert or update": sql.SQL("insert or update"),
}


class Options(TypedDict, total=False):
    """How the trigger is made (see `inject`)."""

    events: Events
    key: str
    when: str | None
    declare: str
    deferred: bool


@dataclass
class Fault:
    """An installed fault; `remove()` (or the end of its `with` block) is the app's fix."""

    db: Conn
    name: str
    table: sql.Identifier
    listed: bool  # its rows are listed in IDS_TABLE (else it acts on every row)
    removed: bool = False

    def remove(self) -> None:
        if self.removed:
            return
        self.db.execute(
            sql.SQL("drop trigger {} on {}").format(sql.Identifier(self.name), self.table)
        )
        self.db.execute(sql.SQL("drop function {}()").format(_function(self.name)))
        self.db.execute(sql.SQL("drop sequence if exists {}").format(_counter(self.name)))
        if self.listed:
            self.db.execute(
                sql.SQL("delete from {} where fault = %s").format(IDS_TABLE), (self.name,)
            )
        self.removed = True

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def inject(
    db: Conn,
    table: str,
    body: str | sql.Composable,
    *,
    name: str,
    ids: Iterable[Id] | None = None,
    events: Events = "update",
    key: str = "id",
    when: str | None = None,
    declare: str = "",
    deferred: bool = False,
) -> Fault:
    """A trigger `name` on `table` ("certifications", or "schema.table") running the PL/pgSQL
    `body` (text, or composed with psycopg.sql) before each of `events` on a row whose `key` is in `ids` (None: every row).

    `when` is the trigger's WHEN condition (new./old. columns), `declare` the function's
    declarations; `deferred` makes it a constraint trigger after the events, deferred to the
    end of the transaction. The body is the test's own text: ids never go in it."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"a fault's name is a plain lower-case identifier: {name!r}")
    target = sql.Identifier(*(table.split(".") if "." in table else ("public", table)))
    plpgsql = sql.SQL(body) if isinstance(body, str) else body
    if ids is not None:
        db.execute(
            sql.SQL(
                "create table if not exists {} (fault text not null, id uuid not null,"
                " primary key (fault, id))"
            ).format(IDS_TABLE)
        )
        db.execute(
            sql.SQL("insert into {} select %s, unnest(%s::uuid[])").format(IDS_TABLE),
            (name, [str(i) for i in ids]),
        )
        plpgsql = sql.SQL(
            "if exists (select from {ids} f where f.fault = {name} and f.id = new.{key}) then\n"
            "{body};\nend if"
        ).format(ids=IDS_TABLE, name=sql.Literal(name), key=sql.Identifier(key), body=plpgsql)
    db.execute(
        sql.SQL(
            "create function {function}() returns trigger language plpgsql\n"
            "security definer set search_path = '' as $fault$\n"
            "{declare}begin\n{body};\nreturn new;\nend $fault$"
        ).format(
            function=_function(name),
            declare=sql.SQL("declare " + declare + "\n" if declare else ""),
            body=plpgsql,
        )
    )
    db.execute(
        sql.SQL(
            "create {kind} {trigger} {timing} {events} on {table} {deferrable}"
            "for each row {when}execute function {function}()"
        ).format(
            kind=sql.SQL("constraint trigger" if deferred else "trigger"),
            trigger=sql.Identifier(name),
            timing=sql.SQL("after" if deferred else "before"),
            events=_EVENTS[events],
            table=target,
            deferrable=sql.SQL("deferrable initially deferred " if deferred else ""),
            when=sql.SQL("when (" + when + ") " if when else ""),
            function=_function(name),
        )
    )
    return Fault(db, name, target, listed=ids is not None)


def refuse(
    db: Conn,
    table: str,
    ids: Iterable[Id] | None = None,
    *,
    message: str = "refused by test trigger",
    errcode: str = "P0001",
    name: str = "refuse",
    **options: Unpack[Options],
) -> Fault:
    """Raise `message` with SQLSTATE `errcode` on each of the events (default: update) of the
    rows in `ids` (None: every row). `options` as for `inject` (events, key, when, deferred)."""
    body = sql.SQL("raise exception using message = {}, errcode = {}").format(
        sql.Literal(message), sql.Literal(errcode)
    )
    return inject(db, table, body, name=name, ids=ids, **options)


def slow(
    db: Conn,
    table: str,
    seconds: float,
    ids: Iterable[Id] | None = None,
    *,
    name: str = "slow",
    **options: Unpack[Options],
) -> Fault:
    """Sleep `seconds` on each of the events (default: update) of the rows in `ids` (None:
    every row). `options` as for `inject` (events, key, when)."""
    body = sql.SQL("perform pg_sleep({})").format(sql.Literal(seconds))
    return inject(db, table, body, name=name, ids=ids, **options)


def fail_n_times(
    db: Conn,
    table: str,
    n: int,
    ids: Iterable[Id] | None = None,
    *,
    sqlstate: str = "40001",
    message: str = SERIALIZATION_FAILURE,
    name: str = "fail_n_times",
    **options: Unpack[Options],
) -> Fault:
    """Raise `message` with `sqlstate` (default: a serialization failure) on the first `n` hits
    of the events (default: update) on the rows in `ids` (None: every row), then let every one
    pass. The hits are counted by a sequence, so a rolled-back attempt still counts."""
    counter = _counter(name)
    db.execute(sql.SQL("create sequence {}").format(counter))
    body = sql.SQL(
        "if nextval({counter}) <= {n} then\n"
        "raise exception using message = {message}, errcode = {sqlstate};\nend if"
    ).format(
        counter=sql.Literal(counter.as_string(db)),
        n=sql.Literal(n),
        message=sql.Literal(message),
        sqlstate=sql.Literal(sqlstate),
    )
    return inject(db, table, body, name=name, ids=ids, **options)


def _function(name: str) -> sql.Identifier:
    return sql.Identifier("public", name)


def _counter(name: str) -> sql.Identifier:
    return sql.Identifier("public", f"{name}_hits")


# The functions that wait out a row lock at most `lock_timeout` (3 s in production,
# docs/decisions/0010): a test that holds rows locked waits that long per bisection level.
LOCK_WAITING_FUNCTIONS = (
    "public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[])",
    "public.plan_night(text, date, integer[], integer)",
)


def shorten_lock_timeout(db: Conn, timeout: str = "200ms") -> None:
    """The job's lock waits cut to `timeout` in this test's database: the same mechanism (the
    function's own `lock_timeout` setting, 55P03 caught per row), a fraction of the wait."""
    for function in LOCK_WAITING_FUNCTIONS:
        db.execute(
            sql.SQL("alter function {} set lock_timeout = {}").format(
                sql.SQL(function), sql.Literal(timeout)
            )
        )
