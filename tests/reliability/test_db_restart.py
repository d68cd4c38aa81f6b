"""A real database restart mid-night (issue 28, item 6): a server of the test's own, stopped at
once (`pg_ctl -m immediate`: every connection cut, crash recovery at the start) twice while the
night's batches run. The night completes with every effect exactly once, and says what happened:
one TRANSIENT_RETRY warning per retried call, with its operation and the connection's loss or
SQLSTATE, never its text; no ERROR line."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.retry import RetryPolicy
from certexpiry.store import RpcStore
from certexpiry.store.postgres import PgTransport
from certexpiry_ops import embedded, schema
from tests import faults
from tests.chain import in_process
from tests.clock import org_day
from tests.jobs import make_job
from tests.logcapture import CapturedLog
from tests.reliability.support import (
    expected_effects,
    run_state_problems,
    seed_night,
    totals_problems,
    verdict,
)

# Enough to outlast a restart (a second or two here): the policy production uses, more attempts.
PATIENT = RetryPolicy(attempts=8, max_seconds=60, initial_wait_s=0.2, max_wait_s=2.0)
RESTARTS_AT = (3, 7)  # process_expiry_batch calls during which the server is restarted


@pytest.fixture
def server() -> Iterator[tuple[embedded.EmbeddedPostgres, str]]:
    """A server of this test's own (the shared one must not restart under other tests), with
    the schema and the app's fixture in a database `night`."""
    data_dir = tempfile.mkdtemp(prefix="certexpiry-restart-pg-")
    server = embedded.start(data_dir)
    try:
        with psycopg.connect(server.uri, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier("night")))
        url = make_conninfo(server.uri, dbname="night")
        schema.apply(url)
        yield server, url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class RestartingTransport(PgTransport):
    """The real transport; during the chosen process_expiry_batch calls the server is stopped
    at once and started again, from another thread, while the call runs."""

    def __init__(self, url: str, server: embedded.EmbeddedPostgres) -> None:
        super().__init__(url, statement_timeout_ms=60_000, retry=PATIENT)
        self.server = server
        self.batches = 0
        self.restarts: list[threading.Thread] = []

    def call(self, operation: str, params: Mapping[str, Any]) -> Any:
        if operation == "process_expiry_batch":
            self.batches += 1
            if self.batches in RESTARTS_AT:
                restart = threading.Thread(target=self._restart_soon)
                restart.start()
                self.restarts.append(restart)
        return super().call(operation, params)

    def _restart_soon(self) -> None:
        time.sleep(0.05)  # the batch is under way: each certification's update sleeps 20 ms
        self.server.crash_restart()


def test_a_database_restart_mid_night_is_warnings_and_nothing_else(
    server: tuple[embedded.EmbeddedPostgres, str],
) -> None:
    pg, url = server
    with psycopg.connect(url, autocommit=True) as db:
        org = org_day(db)
        seed_night(db, 24, org.today)
        expected = expected_effects(db, org.today)
        faults.slow(db, "certifications", 0.02)
    transport = RestartingTransport(url, pg)
    log = CapturedLog()
    job = make_job(RpcStore(transport), log, batch_size=4, org_timezone=org.timezone, lease_s=30)
    try:
        outcomes = in_process(job).run()
    finally:
        for restart in transport.restarts:
            restart.join()
        transport.close()
    assert len(transport.restarts) == len(RESTARTS_AT)  # the night was long enough for both

    assert [outcome.value for outcome in outcomes] == ["ack"] * len(outcomes)
    retries = log.with_code("TRANSIENT_RETRY")
    assert len(retries) >= len(RESTARTS_AT)
    for entry in retries:
        assert entry["severity"] == "WARNING"
        context = entry["context"]
        assert context["operation"] == "process_expiry_batch"
        assert context.get("reason") == "connection lost" or len(context["sqlstate"]) == 5
        assert "details" not in context  # the error's code, never its text
    assert "ERROR" not in log.severities()
    assert log.codes().count("RUN_COMPLETED") == 1

    with psycopg.connect(url, autocommit=True) as db:
        result = verdict(db, expected)
        assert result.ok, result.details  # every effect exactly once
        assert run_state_problems(db) == []
        assert totals_problems(db) == []
        assert db.execute(
            "select status, missed_pause_count from public.cron_audit_log"
        ).fetchall() == [("completed", 0)]
