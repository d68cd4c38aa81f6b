"""End to end: the deployed entry point refuses an unmigrated schema at cold start with one
ERROR line and HTTP 503, then runs once the database is migrated, without a restart."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from certexpiry import contract
from certexpiry_ops import schema
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests.chain import NIGHTLY
from tests.clock import OrgDay

Conn = psycopg.Connection[Any]


def test_an_older_schema_gets_503_and_one_schema_mismatch_line(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """Two deliveries against a schema missing this release's migrations: 503 each, one
    SCHEMA_MISMATCH ERROR each, nothing run; after `migrate`, the next delivery runs the night."""
    newest = schema.migrations()[-1]
    db.execute(
        "delete from supabase_migrations.schema_migrations where version = %s", (newest.version,)
    )
    function = FunctionProcess(
        env=function_env(database_url, pubsub, org_timezone=org.timezone, time_budget_s=30)
    ).start()
    try:
        refused = [function.deliver(NIGHTLY).status for _ in range(2)]
        assert schema.apply(database_url, bootstrap=False) == [newest.version]
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
    assert db.execute("select count(*) from public.cron_runs").fetchone() == (1,)
