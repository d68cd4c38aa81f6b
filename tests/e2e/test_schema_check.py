"""End to end: the deployed entry point refuses an unmigrated schema at cold start with one
ERROR line and HTTP 503, then runs once the database is migrated, without a restart."""

from __future__ import annotations

import json
import uuid

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry.store import contract
from certexpiry_ops import schema
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.chain import NIGHTLY
from tests.clock import OrgDay


def test_an_unmigrated_schema_gets_503_and_one_schema_mismatch_line(
    pg_admin_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """Two deliveries against a database without this release's migrations: 503 each, one
    SCHEMA_MISMATCH ERROR each, nothing run; after `migrate`, the next delivery runs the night."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    database_url = make_conninfo(pg_admin_url, dbname=name)
    try:
        function = FunctionProcess(
            env=function_env(database_url, pubsub, org_timezone=org.timezone, time_budget_s=30)
        ).start()
        try:
            refused = [function.deliver(NIGHTLY).status for _ in range(2)]
            assert schema.apply(database_url) == [m.version for m in schema.migrations()]
            after = function.deliver(NIGHTLY).status
        finally:
            function.stop()
        assert refused == [503, 503]
        assert after == 200
        entries = [json.loads(line) for _, line in function.lines]
        mismatches = [e for e in entries if e.get("error_code") == "SCHEMA_MISMATCH"]
        assert len(mismatches) == 2
        assert all(e["severity"] == "ERROR" for e in mismatches)
        assert contract.SCHEMA_VERSION in mismatches[0]["context"]["reason"]
        codes = [e.get("error_code") for e in entries]
        assert codes.index("RUN_STARTED") > codes.index("SCHEMA_MISMATCH")
        assert "RUN_COMPLETED" in codes
        with psycopg.connect(database_url) as db:
            assert db.execute("select count(*) from certexpiry.cron_runs").fetchone() == (1,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
