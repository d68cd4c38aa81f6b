"""The Postgres transport of the store (psycopg 3), used with DATABASE_URL and locally.

Each call runs in its own transaction shaped like PostgREST's: `set local role service_role`
and `request.jwt.claims`, so the grants and row level security that production sees are the
ones the tests and the demo exercise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from certexpiry.errors import DatabaseError
from certexpiry.retry import DEFAULT_RETRY, RetryPolicy
from certexpiry.store.contract import RPC_SIGNATURES, Signatures
from certexpiry.store.rpc import RpcStore

SERVICE_ROLE_CLAIMS = {"role": "service_role"}
CONNECT_TIMEOUT_S = 10
"""How long a connection may take to open (libpq's connect_timeout), unless the caller says."""


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


def _rpc_statement(
    operation: str, signature: Mapping[str, str], names: frozenset[str]
) -> sql.Composed:
    """`select public.fn(p_a => %(p_a)s::type, ...)` for a known RPC and the arguments given.

    The arguments come in the signature's order; those not given take their SQL default, as
    they do through PostgREST. Names are never input: an unknown one is a programming error.
    """
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

    `signatures` are the RPCs it may call (the function's; the toolkit adds its own, from
    certexpiry_ops.contract): a statement is built from them, never from its input.

    A psycopg connection is not safe for concurrent transactions, so calls are serialised: a
    local functions-framework server handling concurrent requests shares one instance.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        statement_timeout_ms: int = 60_000,
        retry: RetryPolicy = DEFAULT_RETRY,
        signatures: Signatures = RPC_SIGNATURES,
    ) -> None:
        self.conninfo = conninfo
        self.signatures = signatures
        self._statements: dict[tuple[str, frozenset[str]], sql.Composed] = {}
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
        signature = self.signatures[operation]
        key = (operation, frozenset(params))
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = _rpc_statement(operation, signature, key[1])
        values = {
            name: json.dumps(value) if signature[name] == "jsonb" and value is not None else value
            for name, value in params.items()
        }

        def attempt() -> Any:
            with self._lock:
                conn: psycopg.Connection[Any] | None = None
                try:
                    conn = self._connection()
                    row = conn.execute(statement, values).fetchone()
                except psycopg.Error as exc:
                    raise database_error(operation, exc, conn) from exc
            return None if row is None else row[0]

        return self.retry.call(attempt)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def database_error(
    operation: str, exc: psycopg.Error, conn: psycopg.Connection[Any] | None = None
) -> DatabaseError:
    """The store's error for a psycopg one: its SQLSTATE, and the names its diagnostics give
    (and the functions its CONTEXT names) that the database's catalog has, asked over `conn`.

    Nothing of the error's text is kept: not its message, detail, hint or context, whatever
    template they reduce to, and no name unchecked (a trigger can set each to any text:
    ``RAISE ... USING COLUMN = 'Kari Nordmann'``). Without a usable connection, or when the
    check itself fails, the error carries no names at all.
    """
    lost = isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
    return DatabaseError(
        operation,
        sqlstate=exc.sqlstate,
        connection_lost=lost,
        names=None if lost else checked_names(conn, exc.diag),
    )


ERROR_NAMES = (
    "constraint_name",
    "schema_name",
    "table_name",
    "column_name",
    "datatype_name",
    "routine",
)
"""The keys of certexpiry.error_names' answer."""


def checked_names(
    conn: psycopg.Connection[Any] | None, diag: psycopg.errors.Diagnostic
) -> dict[str, str] | None:
    """Of an error's diagnostics' names and its context's functions, those the catalog has
    (certexpiry.error_names, an allow-list), over `conn` if it is usable: open and idle (the
    transport's connection is autocommit, so idle again after the failed statement). None
    when there is nothing to check, no usable connection, or the check fails."""
    fields = (
        diag.constraint_name,
        diag.schema_name,
        diag.table_name,
        diag.column_name,
        diag.datatype_name,
        diag.context,
    )
    if not any(fields) or conn is None or conn.closed or conn.broken:
        return None
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return None
    try:
        row = conn.execute(
            "select certexpiry.error_names(%s, %s, %s, %s, %s, %s)", fields
        ).fetchone()
    except psycopg.Error:
        return None
    found = row[0] if row is not None else None
    if not isinstance(found, dict):
        return None
    return {
        key: value
        for key, value in found.items()
        if key in ERROR_NAMES and isinstance(value, str) and value
    }


def pg_store(conninfo: str, **options: Any) -> RpcStore:
    """The store over a direct Postgres connection."""
    return RpcStore(PgTransport(conninfo, **options))
