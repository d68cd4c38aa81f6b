"""A throwaway PostgreSQL server the project starts itself, for the demo, tests and benchmarks.

The default is the `pgserver` wheel (PostgreSQL 16, CPython 3.10-3.12). Where that wheel is
missing (CPython 3.13+), the server binaries on PATH (`initdb`, `pg_ctl`) are used instead, so
nothing has to be installed or started by hand. Never used in production: there the function
talks to Supabase.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry_ops import schema
from certexpiry_ops.usage import UsageError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / ".pgdata"
DATABASE = "certexpiry"  # the job's own database inside the embedded server


@dataclass
class EmbeddedPostgres:
    """A running local server; `uri` is a libpq URI over a Unix socket (no TCP port used)."""

    data_dir: Path
    uri: str
    _server: Any = field(default=None, repr=False)
    _pg_ctl: str | None = field(default=None, repr=False)
    _prefix: list[str] = field(default_factory=list, repr=False)

    def crash_restart(self) -> None:
        """Stop the server at once (`pg_ctl -m immediate`: no checkpoint, every connection cut,
        crash recovery at the next start) and start it again, waiting until it accepts
        connections: a database restart mid-night, for the reliability tests."""
        if self._server is not None:
            from pgserver._commands import POSTGRES_BIN_PATH

            subprocess.run(  # pg_ctl's output to files, not pipes: a pipe can hang it (pgserver)
                [
                    *(str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self._server.pgdata)),
                    *("-m", "immediate", "-w", "-l", str(self._server.log), "restart"),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                user=self._server.system_user,
                timeout=60,
            )
        elif self._pg_ctl is not None:
            log_file = self.data_dir.parent / "postgres.log"
            subprocess.run(
                [
                    *(*self._prefix, self._pg_ctl, "-D", str(self.data_dir)),
                    *("-m", "immediate", "-w", "-l", str(log_file), "restart"),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )

    def stop(self) -> None:
        """Stop the server; the data directory is left for the caller to remove."""
        if self._server is not None:
            self._server.cleanup()
        elif self._pg_ctl is not None:
            subprocess.run(
                [*self._prefix, self._pg_ctl, "-D", str(self.data_dir), "-m", "fast", "stop"],
                check=False,
                capture_output=True,
            )


def start(data_dir: str | Path | None = None) -> EmbeddedPostgres:
    """Start (or reattach to) a local server in `data_dir` (a new temp dir when None)."""
    path = (
        Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="certexpiry-pg-"))
    )
    path.mkdir(parents=True, exist_ok=True)
    try:
        from pgserver import get_server  # type: ignore[attr-defined]  # re-exported, no __all__
    except ImportError:
        return start_from_path(path)
    server = get_server(path, cleanup_mode="stop")
    return EmbeddedPostgres(data_dir=path, uri=str(server.get_uri()), _server=server)


SERVER_USER = "certexpiry-pg"


def _as_server_user(path: Path) -> list[str]:
    """Postgres refuses to run as root: run it as an unprivileged user then, as pgserver does."""
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", SERVER_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVER_USER)
    # The user must be able to reach and own the data directory.
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o055)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return ["runuser", "-u", SERVER_USER, "--"]


def start_from_path(path: Path) -> EmbeddedPostgres:
    """Fallback for Pythons without a pgserver wheel: initdb + pg_ctl from PATH."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise UsageError(
            "no embedded PostgreSQL: pgserver has no wheel for this Python and initdb/pg_ctl "
            "are not on PATH; use Python 3.11/3.12 or set DATABASE_URL"
        )
    prefix = _as_server_user(path)
    pgdata = path / "pgdata"
    env = {**os.environ, "LC_ALL": "C"}
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [*prefix, initdb, "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            env=env,
        )
    options = f"-k {path} -c listen_addresses=''"
    log_file = path / "postgres.log"
    command = [*prefix, pg_ctl, "-D", str(pgdata), "-w", "-l", str(log_file), "-o", options]
    subprocess.run([*command, "start"], check=True, capture_output=True, env=env)
    uri = f"postgresql://postgres@/postgres?host={path}"
    return EmbeddedPostgres(data_dir=pgdata, uri=uri, _pg_ctl=pg_ctl, _prefix=prefix)


def default_data_dir() -> Path:
    """Where the embedded server keeps its data: $CERTEXPIRY_DATA_DIR, else .pgdata/."""
    configured = os.environ.get("CERTEXPIRY_DATA_DIR")
    return Path(configured) if configured else DEFAULT_DATA_DIR


def open_embedded(
    data_dir: Path, *, fresh: bool = False, migrate: bool = True
) -> tuple[EmbeddedPostgres, str]:
    """Start (or attach to) the embedded server and return it with the database's URL,
    migrated unless `migrate` is False (`certexpiry migrate` migrates it itself, to report).

    The job's data lives in its own database (`certexpiry`), so `fresh` simply drops it.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = start(data_dir)
    try:
        with psycopg.connect(server.uri, autocommit=True) as conn:
            if fresh:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(DATABASE)
                    )
                )
            if (
                conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
                is None
            ):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
        url = make_conninfo(server.uri, dbname=DATABASE)
        if migrate:
            schema.apply(url)
    except BaseException:
        server.stop()
        raise
    return server, url
