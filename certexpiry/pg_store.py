"""The direct-Postgres adapter of the store (psycopg 3), used with DATABASE_URL and locally.

Each call runs in its own transaction shaped like PostgREST's: `set local role service_role`
and `request.jwt.claims`, so the grants and row level security that production sees are the
ones the tests and the demo exercise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql

from certexpiry.contract import RPC_SIGNATURES
from certexpiry.errors import DIAGNOSTIC_NAMES, DatabaseError
from certexpiry.retry import DEFAULT_RETRY, RetryPolicy
from certexpiry.store import RpcStore

SERVICE_ROLE_CLAIMS = {"role": "service_role"}


@contextmanager
def as_api_role(
    conn: psycopg.Connection[Any],
    role: str = "service_role",
    claims: Mapping[str, Any] | None = None,
) -> Iterator[psycopg.Connection[Any]]:
    """A transaction as PostgREST opens it for a request with this role and these JWT claims."""
    with conn.transaction():
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps(dict(claims) if claims is not None else {"role": role}),),
        )
        yield conn


@lru_cache(maxsize=64)
def _rpc_statement(operation: str, names: frozenset[str]) -> sql.Composed:
    """`select public.fn(p_a => %(p_a)s::type, ...)` for a known RPC and the arguments given.

    The arguments come in the signature's order; those not given take their SQL default, as
    they do through PostgREST. Names are never input: an unknown one is a programming error.
    """
    signature = RPC_SIGNATURES[operation]
    unknown = names - signature.keys()
    if unknown:
        raise ValueError(f"{operation} has no argument {', '.join(sorted(unknown))}")
    arguments = sql.SQL(", ").join(
        sql.SQL("{} => {}::{}").format(
            sql.Identifier(name), sql.Placeholder(name), sql.SQL(pg_type)
        )
        for name, pg_type in signature.items()
        if name in names
    )
    return sql.SQL("select public.{}({})").format(sql.Identifier(operation), arguments)


class PgTransport:
    """Calls the SQL API over one lazily (re)opened connection.

    The connection takes PostgREST's shape once, when it opens (role service_role and its JWT
    claims, for the session), so that each call is one statement in its own transaction: one
    round trip, instead of five for begin, set role, set claims, call and commit.

    A psycopg connection is not safe for concurrent transactions, so calls are serialised: a
    local functions-framework server handling concurrent requests shares one instance.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout_s: int = 10,
        statement_timeout_ms: int = 60_000,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.conninfo = conninfo
        self.retry = retry
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.conninfo,
                connect_timeout=self.connect_timeout_s,
                options=f"-c statement_timeout={self.statement_timeout_ms}",
                application_name="certexpiry",
                autocommit=True,
            )
            self._conn.execute(
                "select set_config('role', 'service_role', false), "
                "set_config('request.jwt.claims', %s, false)",
                (json.dumps(SERVICE_ROLE_CLAIMS),),
            )
        return self._conn

    def call(self, operation: str, params: Mapping[str, Any]) -> Any:
        statement = _rpc_statement(operation, frozenset(params))
        signature = RPC_SIGNATURES[operation]
        values = {
            name: json.dumps(value) if signature[name] == "jsonb" and value is not None else value
            for name, value in params.items()
        }

        def attempt() -> Any:
            try:
                with self._lock:
                    row = self._connection().execute(statement, values).fetchone()
            except psycopg.Error as exc:
                raise database_error(operation, exc) from exc
            return None if row is None else row[0]

        return self.retry.call(attempt)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def database_error(operation: str, exc: psycopg.Error) -> DatabaseError:
    """The store's error for a psycopg one: its diagnostics, and its message as a template."""
    diag = exc.diag
    lost = isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
    names = {name: getattr(diag, name, None) for name in DIAGNOSTIC_NAMES}
    message = diag.message_primary or str(exc)
    if diag.message_detail:  # its template keeps only a key violation's columns
        message = f"{message}\nDETAIL: {diag.message_detail}"
    return DatabaseError(
        operation,
        message,
        sqlstate=exc.sqlstate,
        connection_lost=lost,
        names=names,
        context=diag.context,
    )


def pg_store(conninfo: str, **options: Any) -> RpcStore:
    """The store over a direct Postgres connection."""
    return RpcStore(PgTransport(conninfo, **options))
