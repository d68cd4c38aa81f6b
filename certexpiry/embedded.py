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


@dataclass
class EmbeddedPostgres:
    """A running local server; `uri` is a libpq URI over a Unix socket (no TCP port used)."""

    data_dir: Path
    uri: str
    _server: Any = field(default=None, repr=False)
    _pg_ctl: str | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server; the data directory is left for the caller to remove."""
        if self._server is not None:
            self._server.cleanup()
        elif self._pg_ctl is not None:
            subprocess.run(
                [self._pg_ctl, "-D", str(self.data_dir), "-m", "fast", "stop"],
                check=False,
                capture_output=True,
            )


def start(data_dir: str | Path | None = None) -> EmbeddedPostgres:
    """Start (or reattach to) a local server in `data_dir` (a new temp dir when None)."""
    path = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="certexpiry-pg-"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        import pgserver
    except ImportError:
        return _start_from_path(path)
    server = pgserver.get_server(path, cleanup_mode="stop")
    return EmbeddedPostgres(data_dir=path, uri=str(server.get_uri()), _server=server)


def _start_from_path(path: Path) -> EmbeddedPostgres:
    """Fallback for Pythons without a pgserver wheel: initdb + pg_ctl from PATH."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(
            "no embedded PostgreSQL: pgserver has no wheel for this Python and initdb/pg_ctl "
            "are not on PATH; use Python 3.11/3.12 or set DATABASE_URL"
        )
    pgdata = path / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [initdb, "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    socket_dir = path
    subprocess.run(
        [
            pg_ctl, "-D", str(pgdata), "-w", "-l", str(path / "postgres.log"),
            "-o", f"-k {socket_dir} -c listen_addresses=''",
            "start",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    uri = f"postgresql://postgres@/postgres?host={socket_dir}"
    return EmbeddedPostgres(data_dir=pgdata, uri=uri, _pg_ctl=pg_ctl)
