"""The database a command works on, always named: DATABASE_URL (a direct Postgres connection),
or Supabase's HTTP API (SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY), or, with `--demo`, the
embedded PostgreSQL in --data-dir. Without one of them a command refuses: a forgotten
DATABASE_URL must never mean "the demo database, silently".

Every command reaches the data through the SQL API only: the sweep's store and the ops store,
both over the one transport built here, with the command line's own connection bound
(`--connect-timeout`, CERTEXPIRY_CONNECT_TIMEOUT) and retry policy (at most one retry), not the
deployed function's: a person waiting at a terminal wants the answer in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from certexpiry.errors import RpcError, SettingsError, StoreError
from certexpiry.redact import shared_secrets
from certexpiry.retry import RetryPolicy
from certexpiry.settings import Settings, load_settings
from certexpiry.store import RpcStore, RpcTransport
from certexpiry.wiring import make_transport
from certexpiry_ops.contract import SIGNATURES
from certexpiry_ops.embedded import open_embedded
from certexpiry_ops.local import LOCAL_TOPIC
from certexpiry_ops.ops import OpsStore
from certexpiry_ops.usage import PROG, CommandFailed, UsageError, database_error, with_migrate_hint

DEFAULT_CONNECT_TIMEOUT_S = 5
CONNECT_TIMEOUT_ENV = "CERTEXPIRY_CONNECT_TIMEOUT"
MIN_CONNECT_TIMEOUT_S = 2  # libpq's own floor: a smaller connect_timeout counts as 2 s
WAIT_NOTICE_S = 1.0  # a connection slower than this is said to be waited for
NO_TARGET = (
    "no database named: set DATABASE_URL (a Postgres connection string), or SUPABASE_URL and "
    "SUPABASE_SERVICE_ROLE_KEY, or pass --demo for the embedded demo database in --data-dir"
)

Kind = Literal["postgres", "supabase", "demo"]

# Where the command line's notices go: cli.main sets its stderr for the command's duration.
_NOTICES: ContextVar[TextIO | None] = ContextVar("certexpiry_ops_notices", default=None)
# The target the running command opened, for the words of its errors (call_store).
_OPENED: ContextVar[Where | None] = ContextVar("certexpiry_ops_target", default=None)


@contextlib.contextmanager
def notices_to(stream: TextIO) -> Iterator[None]:
    """Write the target's notices (which database, what it waits for) to `stream`."""
    token = _NOTICES.set(stream)
    try:
        yield
    finally:
        _NOTICES.reset(token)


def notice(text: str, stream: TextIO | None = None) -> None:
    """One line on the command line's stderr (or `stream`: a timer's thread has no context)."""
    stream = stream or _NOTICES.get() or sys.stderr
    stream.write(f"{PROG}: {text}\n")
    stream.flush()


def connect_timeout(args: argparse.Namespace) -> int:
    """Seconds to wait for the database to answer a connection: --connect-timeout, else
    CERTEXPIRY_CONNECT_TIMEOUT, else DEFAULT_CONNECT_TIMEOUT_S."""
    given = getattr(args, "connect_timeout", None)
    if given is not None:
        return int(given)
    configured = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not configured:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = int(configured)
    except ValueError:
        value = 0
    if value < MIN_CONNECT_TIMEOUT_S:
        raise UsageError(
            f"{CONNECT_TIMEOUT_ENV} must be a whole number of seconds, at least "
            f"{MIN_CONNECT_TIMEOUT_S}"
        )
    return value


def cli_retry(timeout_s: int) -> RetryPolicy:
    """The command line's retry policy: a refused or dropped connection is tried once more
    after a short pause, and nothing is retried once the timeout is spent (a connection that
    timed out is not tried again). The deployed function keeps certexpiry.retry's default."""
    return RetryPolicy(attempts=2, max_seconds=timeout_s, initial_wait_s=0.2, max_wait_s=0.5)


def describe_conninfo(conninfo: str) -> str:
    """Host, port, database and user of a connection string, as libpq would use them (the
    PG* environment variables and libpq's defaults filling what it leaves out); never the
    password. Infrastructure names, not personal data; each still passes the secret registry
    when there is a password, so one libpq would read as a host name (an unencoded `@`) is
    never shown."""
    params = conninfo_to_dict(conninfo)
    user = str(params.get("user") or os.environ.get("PGUSER") or _os_user())
    values = {
        "host": str(
            params.get("host")
            or params.get("hostaddr")
            or os.environ.get("PGHOST")
            or "the default Unix socket"
        ),
        "port": str(params.get("port") or os.environ.get("PGPORT") or "5432"),
        "database": str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
        "user": user,
    }
    scrub = shared_secrets().scrub
    # Without a password the user info is the user's name alone, though the registry holds it
    # (it cannot tell); with one, whatever holds a registered part is hidden.
    plain = not params.get("password")
    return ", ".join(
        f"{key} {value if plain and '@' not in value else scrub(value)}"
        for key, value in values.items()
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): libpq would fail too
        return "(the current user)"


@dataclass(frozen=True)
class Where:
    """The database a command was pointed at, resolved before anything connects."""

    kind: Kind
    timeout_s: int
    conninfo: str | None = None  # postgres: DATABASE_URL with the connect timeout
    supabase_host: str | None = None
    data_dir: Path | None = None

    def describe(self) -> str:
        """The target in words, without any credential."""
        if self.kind == "supabase":
            return f"the Supabase project at {self.supabase_host} (SUPABASE_URL)"
        if self.kind == "demo":
            return f"the demo database in {self.data_dir} (--demo)"
        return f"the database at {describe_conninfo(self.conninfo or '')} (DATABASE_URL)"

    def announce(self) -> None:
        """Name the target on stderr before the command starts on it."""
        notice(f"using {self.describe()}; connect timeout {self.timeout_s} s")

    def with_conninfo(self, conninfo: str) -> Where:
        """The demo target once its server runs: its connection string, with the timeout."""
        timed = make_conninfo(conninfo, connect_timeout=self.timeout_s)
        return Where(self.kind, self.timeout_s, timed, self.supabase_host, self.data_dir)


def resolve(args: argparse.Namespace, *, direct: bool = False) -> Where:
    """The target the command line names, or a UsageError saying how to name one.

    `direct`: the command needs a direct Postgres connection (DDL, COPY, a trigger to drop),
    which Supabase's HTTP API cannot give. `--demo` together with DATABASE_URL or SUPABASE_URL
    is refused: which of the two was meant is not ours to guess.
    """
    timeout_s = connect_timeout(args)
    demo = bool(getattr(args, "demo", False))
    database_url = os.environ.get("DATABASE_URL", "").strip()
    supabase_url = os.environ.get("SUPABASE_URL", "").strip()
    if demo and (database_url or supabase_url):
        named = "DATABASE_URL" if database_url else "SUPABASE_URL"
        raise UsageError(
            f"--demo and {named} both name a database: unset {named} for the demo database "
            f"(`env -u {named} {PROG} ...`), or drop --demo"
        )
    if demo:
        return Where("demo", timeout_s, data_dir=Path(args.data_dir).expanduser().resolve())
    if database_url:
        try:
            conninfo = make_conninfo(database_url, connect_timeout=timeout_s)
        except psycopg.Error:
            raise UsageError(
                "cannot use the database: DATABASE_URL is not a valid connection string"
            ) from None
        return Where("postgres", timeout_s, conninfo=conninfo)
    if supabase_url:
        if direct:
            raise UsageError(
                f"`{args.command}` needs a direct Postgres connection: set DATABASE_URL to the "
                "project's database connection string (Supabase: Project Settings > Database), "
                "or pass --demo; Supabase's HTTP API cannot do it"
            )
        host = urlsplit(supabase_url).netloc or supabase_url
        return Where("supabase", timeout_s, supabase_host=shared_secrets().scrub(host))
    raise UsageError(NO_TARGET)


@contextlib.contextmanager
def waiting_for(where: Where) -> Iterator[None]:
    """Say on stderr what the command waits for when the block takes longer than
    WAIT_NOTICE_S (a connection that is slow to answer), once."""
    timer = threading.Timer(
        WAIT_NOTICE_S,
        notice,
        (
            f"waiting for {where.describe()} to answer (gives up after {where.timeout_s} s)",
            _NOTICES.get() or sys.stderr,
        ),
    )
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def connection_failed(where: Where, exc: psycopg.Error) -> CommandFailed:
    """A psycopg error of a connection the command opened itself, naming the target."""
    return CommandFailed(f"{database_error(exc)}; {where.describe()}")


def probe(where: Where) -> None:
    """Connect once and close: a command that connects on its own (migrate, seed) learns at
    once, within the connect timeout and saying what it waits for, that it can."""
    if where.conninfo is None:  # Supabase's HTTP API: its first call says
        return
    with waiting_for(where):
        try:
            psycopg.connect(where.conninfo, autocommit=True).close()
        except psycopg.Error as exc:
            raise connection_failed(where, exc) from None


@contextlib.contextmanager
def started(where: Where, *, migrate: bool = True) -> Iterator[Where]:
    """The target, announced, with the demo's embedded server running for the block (and
    stopped after it); migrated unless `migrate` is False."""
    where.announce()
    if where.kind != "demo" or where.data_dir is None:
        yield where
        return
    server, conninfo = open_embedded(where.data_dir, migrate=migrate)
    try:
        yield where.with_conninfo(conninfo)
    finally:
        server.stop()


class _FirstCallWatched:
    """The transport, with its first call (the one that connects) under `waiting_for`."""

    def __init__(self, inner: RpcTransport, where: Where) -> None:
        self.inner = inner
        self.where = where
        self.connected = False

    def call(self, operation: str, params: Any) -> Any:
        if self.connected:
            return self.inner.call(operation, params)
        with waiting_for(self.where):
            answer = self.inner.call(operation, params)
        self.connected = True
        return answer

    def close(self) -> None:
        self.inner.close()


@dataclass
class Target:
    """The configured database and the stores over it."""

    settings: Settings
    conninfo: str | None  # a direct Postgres connection string (None with Supabase)
    embedded: bool
    store: RpcStore
    ops: OpsStore
    where: Where


@contextlib.contextmanager
def open_target(args: argparse.Namespace, *, direct: bool = False) -> Iterator[Target]:
    """The named target (`resolve`), announced, with the stores over it."""
    with started(resolve(args, direct=direct)) as where:
        overrides: dict[str, object] = {"continuation_topic": LOCAL_TOPIC}
        if where.kind != "supabase":
            overrides["database_url"] = where.conninfo
        try:
            settings = load_settings(**overrides)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        transport = _FirstCallWatched(
            make_transport(
                settings,
                connect_timeout_s=where.timeout_s,
                retry=cli_retry(where.timeout_s),
                signatures=SIGNATURES,
            ),
            where,
        )
        token = _OPENED.set(where)
        try:
            yield Target(
                settings=settings,
                conninfo=where.conninfo,
                embedded=where.kind == "demo",
                store=RpcStore(transport),
                ops=OpsStore(transport),
                where=where,
            )
        finally:
            _OPENED.reset(token)
            transport.close()


def call_store(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A store call whose failure is the command's failure (exit 4), in words that name the
    target (host, port, database, user; never the password) and what went wrong."""
    try:
        return func(*args, **kwargs)
    except StoreError as exc:
        raise store_failed(exc) from None


def store_failed(exc: StoreError) -> CommandFailed:
    """A failed store call as the command line reports it: the error's own words (an
    operation, SQLSTATE or HTTP status, never the database's text), what libpq's error means
    when the connection failed, the target, and the migrate hint when it applies."""
    reason = shared_secrets().scrub(" ".join(str(exc).split()))
    cause = exc.__cause__
    if isinstance(cause, psycopg.Error) and getattr(exc, "connection_lost", False):
        reason = database_error(cause).removeprefix("cannot use the database: ")
    where = _OPENED.get()
    if where is not None:
        reason += f"; {where.describe()}"
    elif isinstance(exc, RpcError) and exc.http_status is None:
        supabase = os.environ.get("SUPABASE_URL")
        if supabase:
            reason += f" (Supabase at {urlsplit(supabase).netloc or supabase})"
    return CommandFailed(with_migrate_hint(f"the database call {exc.operation} failed: {reason}"))
