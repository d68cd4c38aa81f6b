"""The database a command works on, resolved in one place: DATABASE_URL, else Supabase's HTTP
API (SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY), else the embedded PostgreSQL in --data-dir.

Every command reaches the data through the SQL API only: the sweep's store and the ops store,
both over the one transport built here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certexpiry.errors import RpcError, SettingsError, StoreError
from certexpiry.redact import shared_secrets
from certexpiry.settings import Settings, load_settings
from certexpiry.store import RpcStore
from certexpiry.wiring import make_transport
from certexpiry_ops.embedded import open_embedded
from certexpiry_ops.local import LOCAL_TOPIC
from certexpiry_ops.ops import OpsStore
from certexpiry_ops.usage import UsageError, with_migrate_hint


@dataclass
class Target:
    """The configured database and the stores over it."""

    settings: Settings
    conninfo: str | None  # a direct Postgres connection string (None with Supabase)
    embedded: bool
    store: RpcStore
    ops: OpsStore


@contextlib.contextmanager
def open_target(args: argparse.Namespace, *, direct: bool = False) -> Iterator[Target]:
    """DATABASE_URL, else Supabase, else the embedded server in --data-dir."""
    overrides: dict[str, object] = {"continuation_topic": LOCAL_TOPIC}
    server = None
    conninfo: str | None
    if os.environ.get("DATABASE_URL"):
        conninfo = os.environ["DATABASE_URL"]
    elif os.environ.get("SUPABASE_URL"):
        if direct:
            raise UsageError(
                f"`{args.command}` needs a direct Postgres connection: set "
                "DATABASE_URL (Supabase's HTTP API cannot do it)"
            )
        conninfo = None
    else:
        server, conninfo = open_embedded(Path(args.data_dir))
        overrides["database_url"] = conninfo
    try:
        try:
            settings = load_settings(**overrides)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        transport = make_transport(settings)
        try:
            yield Target(
                settings=settings,
                conninfo=conninfo,
                embedded=server is not None,
                store=RpcStore(transport),
                ops=OpsStore(transport),
            )
        finally:
            transport.close()
    finally:
        if server is not None:
            server.stop()


def call_store(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A store call whose failure is a connection/configuration problem for the CLI."""
    try:
        return func(*args, **kwargs)
    except StoreError as exc:
        reason = shared_secrets().scrub(" ".join(str(exc).split()))
        supabase = os.environ.get("SUPABASE_URL")
        if isinstance(exc, RpcError) and exc.http_status is None and supabase:
            reason += f" (Supabase at {urlsplit(supabase).netloc or supabase})"
        raise UsageError(
            with_migrate_hint(f"the database call {exc.operation} failed: {reason}")
        ) from None
