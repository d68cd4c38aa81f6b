"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test.

The server starts once; bootstrap + migrations are applied once to a template database; each
test that asks for `database_url` gets its own copy of the template (CREATE DATABASE ...
TEMPLATE is a file copy, a few tens of milliseconds), so tests are independent and can commit.
Set CERTEXPIRY_TEST_DATABASE_URL to run them against another server (it must allow CREATE
DATABASE).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry_ops import embedded, schema
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.clock import OrgDay, org_day

pytest_plugins = ["tests.leak_plugin"]  # the session-wide PII/secret leak scan

TEMPLATE = "certexpiry_template"

# Property tests: no per-example deadline (a loaded 2-core machine is not a failing test), and on
# CI the same examples every run, so a red build always means a real, reproducible failure.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser connection string to the test server, with the template database ready."""
    external = os.environ.get("CERTEXPIRY_TEST_DATABASE_URL")
    server = None
    data_dir = None
    if external:
        admin = external
    else:
        data_dir = tempfile.mkdtemp(prefix="certexpiry-test-pg-")
        server = embedded.start(data_dir)
        admin = server.uri
        # A throwaway server: nothing of it must survive a crash, so it skips the flushes that
        # make every test's `create database ... template` wait on the disk (the restart test
        # runs a server of its own, durable).
        with psycopg.connect(admin, autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("alter system set {} = off").format(sql.Identifier(setting)))
            conn.execute("select pg_reload_conf()")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(TEMPLATE)))
    schema.apply(make_conninfo(admin, dbname=TEMPLATE))
    yield admin
    if server is not None:
        server.stop()
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with the schema applied, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A superuser autocommit connection to the test's database, for seeding and checking."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def org(db: psycopg.Connection[tuple[object, ...]]) -> OrgDay:
    """The organisation's zone and today, from the database's clock, clear of midnight for
    hours (tests/clock.py): seed against `org.today`, run the job with `org_timezone=org.timezone`."""
    return org_day(db)


@pytest.fixture
def pubsub() -> Iterator[FakePubSub]:
    """A fake Pub/Sub server (gRPC on loopback) for the function processes of a test."""
    server = FakePubSub().start()
    yield server
    server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `long` first, the rest in their order: the workers of `make test`
    (pytest-xdist) take the longest first and end together, instead of one of them starting a
    30 s test while the other has nothing left (longest-first scheduling). Only with
    `--maxschedchunk 1` (scripts/test.sh): by default xdist hands each worker a quarter of the
    list at once, so the first worker got every long test and ran 67 s after the other ended."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
