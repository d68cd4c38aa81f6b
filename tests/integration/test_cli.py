"""The ops command line (`certexpiry ...`) in process, against the embedded Postgres."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from google.auth.exceptions import DefaultCredentialsError

from certexpiry.store.postgres import pg_store
from certexpiry_ops import demo_seed
from certexpiry_ops.cli import main
from certexpiry_ops.console import NO_RUN, CliIO
from tests.clock import OrgDay
from tests.leak_plugin import register_lines, register_pii, register_secret

Conn = psycopg.Connection[Any]
REMOTE_PASSWORD = "remote-db-s3cret"  # harvested by the leak scan as a secret value
REMOTE_URL = f"postgresql://ops:{REMOTE_PASSWORD}@db.example.com:5432/postgres"


@dataclass
class Result:
    """What one command printed and returned."""

    code: int
    out: str
    err: str

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def codes(self) -> list[str]:
        return [str(entry.get("error_code")) for entry in self.entries]

    def with_code(self, code: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry.get("error_code") == code]


Cli = Callable[..., Result]


def errors_only(err: str) -> str:
    """stderr without the line naming the target that every database command starts with
    (`certexpiry: using ...`, certexpiry_ops.target), which is not an error."""
    return "".join(
        line for line in err.splitlines(keepends=True) if not line.startswith("certexpiry: using ")
    )


def invoke(*args: str, logging_client: Callable[[str | None], Any] | None = None) -> Result:
    """Run the CLI with captured (non-terminal) streams; every line is handed to the leak scan."""
    stdout, stderr = io.StringIO(), io.StringIO()
    cli_io = CliIO(stdout=stdout, stderr=stderr)
    if logging_client is not None:
        cli_io.logging_client = logging_client
    code = main(list(args), cli_io=cli_io)
    register_lines(stdout.getvalue().splitlines(), f"cli {' '.join(args[:2])} [stdout]")
    register_lines(stderr.getvalue().splitlines(), f"cli {' '.join(args[:2])} [stderr]")
    return Result(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def cli(database_url: str, org: OrgDay, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI pointed at the test's database through DATABASE_URL, in the organisation's zone,
    with small settings."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
    monkeypatch.setenv("BATCH_SIZE", "10")
    return invoke


def seed(db: Conn, org: OrgDay, mentors: int = 60, seed_value: int = 3) -> None:
    """The demo generator into the test database for the organisation's today; its people are
    registered with the leak scan."""
    demo_seed.seed(db, mentors=mentors, seed=seed_value, today=org.today)
    people = demo_seed.generate(mentors, seed_value, org.today).mentors
    register_pii([v for m in people for v in (m.full_name, m.national_id, m.email, m.phone)])


def refuse_two(db: Conn, database_url: str, org: OrgDay) -> list[str]:
    """Install the demo trigger on two of tonight's pause candidates; return their IDs."""
    store = pg_store(database_url)
    try:
        ids = sorted(store.missed_auto_pauses(org.timezone, org.today, limit=1000).missed_ids)[:2]
    finally:
        store.close()
    demo_seed.install_refusal(db, ids)
    return ids


def test_help_on_every_command() -> None:
    """Every command and subcommand answers --help with its usage and exits 0."""
    for command in (
        ["--help"],
        ["demo", "--help"],
        ["migrate", "--help"],
        ["plan", "--help"],
        ["run", "--help"],
        ["nights", "--help"],
        ["seed", "--help"],
        ["audit", "--help"],
        ["audit", "list", "--help"],
        ["audit", "show", "--help"],
        ["audit", "resolve", "--help"],
        ["remediate", "--help"],
        ["check", "--help"],
        ["deliver", "--help"],
        ["logs", "--help"],
    ):
        result = invoke(*command)
        assert result.code == 0, command
        assert "usage: certexpiry" in result.out, command
    assert invoke().code == 2  # no command: usage error
    assert invoke("audit", "show", "not-a-uuid").code == 2


def test_run_writes_json_lines_then_second_run_is_a_duplicate(
    cli: Cli, db: Conn, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` self-resumes to the end, printing only JSON lines; a second run is a no-op."""
    seed(db, org)
    monkeypatch.setenv("TIME_BUDGET_S", "0.001")  # one batch per segment
    monkeypatch.setenv("MONITORING_RESERVE_S", "0")
    first = cli("run")
    assert first.code == 0, first.err
    codes = first.codes()  # every stdout line parses as JSON
    assert codes[0] == "RUN_STARTED"
    assert codes[-1] == "RUN_COMPLETED"
    assert codes.count("CONTINUATION_PUBLISHED") >= 1
    assert "MONITORING_CLEAN" in codes
    run_id = first.with_code("RUN_COMPLETED")[0]["cron_run_id"]
    audit = db.execute(
        "select segments, missed_pause_count from public.cron_audit_log where run_id = %s",
        (run_id,),
    ).fetchone()
    assert audit is not None
    assert audit[0] == codes.count("CONTINUATION_PUBLISHED") + 1
    outbox = db.execute("select count(*) from certexpiry.notification_outbox").fetchone()

    second = cli("run")
    assert second.code == 0
    assert second.codes() == ["DUPLICATE_DELIVERY"]
    assert db.execute("select count(*) from certexpiry.notification_outbox").fetchone() == outbox


def test_run_text_mode_prints_a_summary(cli: Cli, db: Conn, org: OrgDay) -> None:
    """With --format text the log is rendered for a human and a summary follows."""
    seed(db, org, mentors=20)
    result = cli("run", "--format", "text")
    assert result.code == 0
    assert "RUN_COMPLETED" in result.out
    assert "completed: 1 segment(s)" in result.out
    assert "missed auto-pauses now: 0" in result.out
    assert "audit show" in result.out


def test_remediation_walkthrough(cli: Cli, db: Conn, database_url: str, org: OrgDay) -> None:
    """MISSED_AUTO_PAUSE → check → resolve refused → remediate → monitoring clean → resolve."""
    seed(db, org)
    refused = refuse_two(db, database_url, org)
    run = cli("run")
    assert run.code == 1  # missed auto-pauses remain
    failed = run.with_code("DB_OPERATION_FAILED")
    assert sorted(f["context"]["certification_id"] for f in failed) == refused
    missed = run.with_code("MISSED_AUTO_PAUSE")[0]
    run_id = missed["cron_run_id"]
    assert sorted(missed["context"]["missed_ids"]) == refused
    assert f"certexpiry remediate {run_id}" in missed["context"]["remediation"]

    check = cli("check")
    assert check.code == 1
    assert check.codes() == ["MISSED_AUTO_PAUSE", "OUTBOX_BACKLOG"]
    assert sorted(check.entries[0]["context"]["missed_ids"]) == refused
    # check is not a run: its lines carry no run id of its own, and its fix names the run whose
    # audit row recorded the IDs (issue 24, item 3).
    assert {entry["cron_run_id"] for entry in check.entries} == {NO_RUN}
    hint = check.entries[0]["context"]["remediation"]
    assert f"`certexpiry remediate {run_id}`" in hint
    assert "--ids" not in hint
    listing = cli("audit", "list", "--json")
    assert listing.code == 0
    assert listing.entries[0]["run_id"] == run_id
    assert listing.entries[0]["unresolved"] is True
    show = cli("audit", "show", run_id, "--json")
    assert show.code == 1
    assert sorted(show.entries[0]["still_missed"]) == refused

    resolve = cli("audit", "resolve", run_id)
    assert resolve.code == 1
    assert "refusing to resolve" in resolve.err
    assert db.execute("select resolved from public.cron_audit_log").fetchone() == (False,)

    blocked = cli("remediate", run_id)  # the trigger still refuses: each ID reported, exit 1
    assert blocked.code == 1
    assert (
        sorted(e["context"]["certification_id"] for e in blocked.with_code("DB_OPERATION_FAILED"))
        == refused
    )
    assert blocked.with_code("REMEDIATION_DONE")[0]["context"]["certifications_paused"] == 0

    fixed = cli("remediate", run_id, "--drop-demo-trigger")
    assert fixed.code == 0, fixed.err
    assert fixed.codes() == ["REMEDIATION_DONE", "MONITORING_CLEAN"]
    done = fixed.with_code("REMEDIATION_DONE")[0]
    assert done["cron_run_id"] == run_id
    assert done["context"]["certifications_paused"] == 2
    assert not demo_seed.has_refusal(db)
    records = db.execute(
        "select count(*) from certexpiry.certification_idempotency_log "
        "where action = 'auto_pause' and run_id = %s and certification_id = any(%s::uuid[])",
        (run_id, refused),
    ).fetchone()
    assert records == (2,)

    assert cli("check").codes() == ["MONITORING_CLEAN", "OUTBOX_BACKLOG"]
    assert cli("audit", "show", run_id).code == 0
    resolved = cli("audit", "resolve", run_id, "--json")
    assert resolved.code == 0
    assert resolved.entries[0]["resolved"] is True
    row = db.execute("select resolved, resolved_at is not null from public.cron_audit_log")
    assert row.fetchone() == (True, True)
    again = cli("remediate", run_id)  # idempotent: nothing left to pause
    assert again.code == 0
    assert again.with_code("REMEDIATION_DONE")[0]["context"]["certifications_paused"] == 0


def test_resolve_force_and_remediate_by_ids(
    cli: Cli, db: Conn, database_url: str, org: OrgDay
) -> None:
    """`audit resolve --force` acknowledges a run despite unpaused IDs; `remediate --ids` works."""
    seed(db, org, mentors=30)
    refused = refuse_two(db, database_url, org)
    run_id = cli("run").with_code("MISSED_AUTO_PAUSE")[0]["cron_run_id"]
    forced = cli("audit", "resolve", run_id, "--force", "--format", "text")
    assert forced.code == 0
    assert "Forced: 2 certification(s)" in forced.out
    listing = cli("audit", "list", "--format", "text")
    assert run_id in listing.out
    assert "yes" in listing.out

    demo_seed.drop_refusal(db)
    one = cli("remediate", "--ids", refused[0])
    assert one.code == 1  # the other one is still missed
    (left,) = one.with_code("MISSED_AUTO_PAUSE")
    assert left["context"]["missed_ids"] == [refused[1]]
    assert f"`certexpiry remediate {run_id}`" in left["context"]["remediation"]  # it recorded it
    # Without a RUN_ID the lines and the auto_pause records belong to no run.
    assert {entry["cron_run_id"] for entry in one.entries} == {NO_RUN}
    assert db.execute(
        "select run_id from certexpiry.certification_idempotency_log "
        "where action = 'auto_pause' and certification_id = %s",
        (refused[0],),
    ).fetchall() == [(None,)]
    assert cli("remediate", "--ids", ",".join(refused)).code == 0
    assert cli("remediate", "--ids", "nope").code == 2
    assert cli("remediate").code == 2
    unknown = cli("remediate", str(uuid.uuid4()))
    assert unknown.code == 3  # no such run: not found
    assert "no audit row for run" in unknown.err


def test_check_without_an_audit_row_prints_remediate_by_ids(
    cli: Cli, db: Conn, database_url: str, org: OrgDay
) -> None:
    """When no audit row records the missed IDs (the night's audit row was never written),
    `check` names no run: its fix is `remediate --ids` with exactly those IDs, and that
    command, run as printed, pauses them."""
    seed(db, org, mentors=30)
    refused = refuse_two(db, database_url, org)
    run_id = cli("run").with_code("MISSED_AUTO_PAUSE")[0]["cron_run_id"]
    db.execute("delete from public.cron_audit_log where run_id = %s", (run_id,))  # AUDIT_FAILED
    check = cli("check")
    assert check.code == 1
    (missed,) = check.with_code("MISSED_AUTO_PAUSE")
    assert missed["cron_run_id"] == NO_RUN
    hint = missed["context"]["remediation"]
    assert f"`certexpiry remediate --ids {','.join(missed['context']['missed_ids'])}`" in hint
    assert run_id not in hint
    demo_seed.drop_refusal(db)
    printed = hint.split("`")[1].split()  # certexpiry remediate --ids a,b
    assert printed[:3] == ["certexpiry", "remediate", "--ids"]
    fixed = cli(*printed[1:])
    assert fixed.code == 0, fixed.err
    assert fixed.with_code("REMEDIATION_DONE")[0]["context"]["certifications_paused"] == 2
    assert sorted(printed[3].split(",")) == refused


def test_audit_text_views_mark_unresolved_runs(
    cli: Cli, db: Conn, database_url: str, org: OrgDay
) -> None:
    """`audit list` marks an unresolved run with '!'; `audit show` lists its IDs as still missed."""
    assert cli("audit", "list", "--format", "text").out.strip() == "No audit rows yet."
    seed(db, org, mentors=30)
    refused = refuse_two(db, database_url, org)
    run_id = cli("run").with_code("MISSED_AUTO_PAUSE")[0]["cron_run_id"]
    listing = cli("audit", "list", "--format", "text").out.splitlines()
    assert any(line.startswith("!") and run_id in line and "NO" in line for line in listing)
    show = cli("audit", "show", run_id, "--format", "text")
    assert show.code == 1
    assert all(f"{cert_id}  STILL MISSED" in show.out for cert_id in refused)
    assert f"remediate {run_id}" in show.out
    assert cli("audit", "show", str(uuid.uuid4())).code == 3  # not found


def test_audit_show_names_the_nights_without_a_run(
    cli: Cli, db: Conn, database_url: str, org: OrgDay
) -> None:
    """A run after nights with no run says so in `audit show`, night by night, as text and JSON."""
    seed(db, org, mentors=5)
    db.execute(
        "insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, segment, "
        "lease_until, heartbeat_at, started_at, finished_at) values "
        "(%s, %s, %s, 'completed', 0, now(), now(), now(), now())",
        (uuid.uuid4(), org.today - timedelta(days=3), org.timezone),
    )
    run_id = cli("run").with_code("RUN_COMPLETED")[0]["cron_run_id"]
    gap = [str(org.today - timedelta(days=2)), str(org.today - timedelta(days=1))]
    show = cli("audit", "show", run_id, "--format", "text")
    assert f"2 night(s) before this one: {', '.join(gap)}" in show.out
    assert cli("audit", "show", run_id, "--json").entries[0]["missed_nights"] == gap


def test_seed_fills_an_empty_local_database_once(cli: Cli, db: Conn, org: OrgDay) -> None:
    """`seed` writes the generated organisation (counts only in its output), and only once."""
    result = cli("seed", "--mentors", "150", "--seed", "9")
    assert result.code == 0, result.err
    report = result.entries[0]
    people = demo_seed.generate(150, 9, org.today).mentors
    register_pii([value for m in people for value in (m.full_name, m.national_id, m.email)])
    assert report["mentors"] == 150
    assert db.execute("select count(*) from public.peer_mentors").fetchone() == (150,)
    assert db.execute("select count(*) from public.certifications").fetchone() == (
        report["certifications"],
    )
    again = cli("seed", "--mentors", "10")
    assert again.code == 2
    assert "already has peer mentors" in again.err


def test_seed_refuses_a_remote_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """`seed` will not write generated people to a non-local database without --allow-remote."""
    register_secret(REMOTE_PASSWORD)
    monkeypatch.setenv("DATABASE_URL", REMOTE_URL)
    result = invoke("seed", "--mentors", "10")
    assert result.code == 2
    assert "not local" in result.err
    assert "db.example.com" in result.err
    assert REMOTE_PASSWORD not in result.err + result.out
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("SUPABASE_URL", "https://project.supabase.co")
    assert invoke("seed").code == 2


@pytest.mark.parametrize(
    ("conninfo", "local"),
    [
        ("postgresql://postgres:@/postgres?host=/tmp/pg", True),
        ("host=/var/run/postgresql dbname=x", True),
        ("postgresql://u@localhost:5432/x", True),
        ("postgresql://u@127.0.0.1/x", True),
        ("postgresql://u@[::1]/x", True),
        ("dbname=x", True),  # default Unix socket
        ("postgresql://u@db.example.com/x", False),
        ("host=localhost,db.example.com dbname=x", False),
        ("host=localhost hostaddr=10.0.0.5 dbname=x", False),
    ],
)
def test_is_local(conninfo: str, local: bool) -> None:
    """Only Unix sockets and the loopback interface count as local."""
    assert demo_seed.is_local(conninfo, environ={}) is local


def test_run_reports_an_unreachable_database(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` exits 4 when the database cannot be reached, naming what it tried (host, port,
    database, user) and why, in the project's words."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@/postgres?host={tmp_path}")
    result = invoke("run")
    assert result.code == 4
    tried = f"the database at host {tmp_path}, port 5432, database postgres, user postgres"
    assert f"certexpiry: using {tried} (DATABASE_URL); connect timeout 5 s" in result.err
    assert (
        "error: the database call get_missed_auto_pauses failed: no database server at that "
        f"socket (OperationalError); {tried}" in result.err
    )
    assert result.out == ""


class FakeLoggingClient:
    """A hand-written stand-in for google.cloud.logging.Client."""

    def __init__(self, entries: list[Any]) -> None:
        self.entries = entries
        self.calls: list[dict[str, Any]] = []

    def list_entries(self, *, filter_: str, order_by: str) -> Iterator[Any]:
        self.calls.append({"filter_": filter_, "order_by": order_by})
        return iter(self.entries)


def _entry(second: int, code: str, run_id: str) -> Any:
    return SimpleNamespace(
        timestamp=datetime(2026, 11, 28, 1, 0, second, tzinfo=UTC),
        severity="INFO",
        payload={
            "message": f"{code} line",
            "error_code": code,
            "cron_run_id": run_id,
            "context": {"segment": 0},
        },
        insert_id=f"id-{second}",
        trace=None,
        labels={"cron_run_id": run_id},
    )


def test_logs_prints_a_runs_entries_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """`logs RUN_ID` queries Cloud Logging by cron_run_id, oldest first, and prints JSON lines."""
    from google.cloud.logging import ASCENDING

    run_id = str(uuid.uuid4())
    client = FakeLoggingClient(
        [
            _entry(1, "RUN_STARTED", run_id),
            _entry(2, "BATCH_DONE", run_id),
            _entry(3, "RUN_COMPLETED", run_id),
        ]
    )
    projects: list[str | None] = []

    def factory(project: str | None) -> FakeLoggingClient:
        projects.append(project)
        return client

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    result = invoke("logs", run_id, logging_client=factory)
    assert result.code == 0, result.err
    assert [e["error_code"] for e in result.entries] == [
        "RUN_STARTED",
        "BATCH_DONE",
        "RUN_COMPLETED",
    ]
    first = result.entries[0]
    assert first["timestamp"] == "2026-11-28T01:00:01+00:00"
    assert first["severity"] == "INFO"
    assert first["cron_run_id"] == run_id
    assert first["insertId"] == "id-1"
    assert f'jsonPayload.cron_run_id="{run_id}"' in client.calls[0]["filter_"]
    assert "timestamp>=" in client.calls[0]["filter_"]
    assert client.calls[0]["order_by"] == ASCENDING
    assert invoke("logs", run_id, "--project", "flag-project", logging_client=factory).code == 0
    assert projects == ["env-project", "flag-project"]

    empty = invoke("logs", run_id, logging_client=lambda project: FakeLoggingClient([]))
    assert empty.code == 3  # not found: no entry of that run in the window
    assert empty.out == ""
    assert "no log entries" in empty.err


def test_logs_without_credentials_is_a_clear_error() -> None:
    """Without Application Default Credentials `logs` exits 2 and says how to log in."""

    def no_credentials(project: str | None) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")  # type: ignore[no-untyped-call]

    result = invoke("logs", str(uuid.uuid4()), logging_client=no_credentials)
    assert result.code == 2
    assert "no Google Cloud credentials" in result.err
    assert "gcloud auth" in result.err
    assert invoke("logs", "not-a-uuid", logging_client=no_credentials).code == 2


@pytest.mark.parametrize(
    ("conninfo", "secret", "meaning", "exit_code"),
    [
        # libpq reads what follows the first @ as the host and echoes it: the password with it.
        ("postgresql://postgres:Pa55wd@Pa55wd@127.0.0.1:1/x", "Pa55wd", "host name does not", 4),
        ("postgresql://postgres:Pa55wd@127.0.0.1:1/x", "Pa55wd", "nothing listens", 4),
        # A keyword DSN with a bare word: libpq quotes it (`missing "=" after "s3cretword"`).
        # Configuration, not a failed database: exit 2.
        ("host=/nonexistent s3cretword", "s3cretword", "not a valid connection string", 2),
    ],
    ids=["password read as host", "refused", "dsn fragment"],
)
@pytest.mark.parametrize("command", ["migrate", "seed", "check"])
def test_a_database_error_prints_no_part_of_the_connection_string(
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    conninfo: str,
    secret: str,
    meaning: str,
    exit_code: int,
) -> None:
    """Issue 22, item 3: every command registers the credentials before it can fail, and
    prints libpq's errors by allow-list (the project's words for them, class, SQLSTATE), never
    libpq's text, which can quote the password or a fragment of a keyword DSN."""
    register_secret(secret)
    monkeypatch.setenv("DATABASE_URL", conninfo)
    args = (command, "--allow-remote") if command == "seed" else (command,)
    result = invoke(*args)
    assert result.code == exit_code, result.err
    assert secret not in result.err + result.out
    assert meaning in result.err


def _outbox(db: Conn) -> dict[str, int]:
    row = db.execute(
        "select count(*) filter (where dispatched_at is null and failed_at is null"
        " and dropped_at is null), count(*) filter (where dispatched_at is not null),"
        " count(*) filter (where failure_code = 'demo_failure'), count(*) filter"
        " (where dropped_at is not null) from certexpiry.notification_outbox"
    ).fetchone()
    assert row is not None
    return dict(zip(("waiting", "dispatched", "failed", "dropped"), row, strict=True))


def test_deliver_drains_the_outbox_through_the_sender_rpcs(cli: Cli, db: Conn, org: OrgDay) -> None:
    """After a night, check shows the backlog (OUTBOX_BACKLOG); `deliver` claims batches, prints
    each message by id, kind, certification and payload keys, acknowledges it (every 5th is
    failed for good with --fail-every 5), until the outbox is empty; a second deliver finds
    nothing. The database agrees message for message."""
    seed(db, org, mentors=40)
    assert cli("run").code == 0
    before = _outbox(db)
    assert before["waiting"] > 7  # more than one batch of --limit 7
    backlog = cli("check").with_code("OUTBOX_BACKLOG")[0]["context"]
    assert backlog["outbox_undelivered"] == before["waiting"]
    assert backlog["outbox_claimed"] == 0
    assert isinstance(backlog["outbox_oldest_age_s"], int)

    result = cli("deliver", "--limit", "7", "--fail-every", "5")
    assert result.code == 0, result.err
    *messages, summary = result.entries
    assert summary["summary"] == "deliver"
    ids = [message["id"] for message in messages]
    assert len(ids) == len(set(ids)) == before["waiting"] - summary["dropped"]
    assert {message["kind"] for message in messages} <= {"reminder", "pause_notice"}
    for message in messages:
        assert set(message) == {
            "id",
            "kind",
            "certification_id",
            "payload_keys",
            "attempt",
            "outcome",
        }
        assert uuid.UUID(message["certification_id"])
        assert set(message["payload_keys"]) <= {"expiry_date", "offset_days", "days_left", "reason"}
        assert message["attempt"] == 1
    failed = [m["id"] for i, m in enumerate(messages, 1) if i % 5 == 0]
    assert [m["id"] for m in messages if m["outcome"] == "failed"] == failed
    delivered = len(messages) - len(failed)
    assert (summary["delivered"], summary["acknowledged"], summary["failed"]) == (
        delivered,
        delivered,
        len(failed),
    )
    assert summary["batches"] == -(-len(messages) // 7)
    assert sum(summary["by_kind"].values()) == delivered
    after = _outbox(db)
    assert after == {
        "waiting": 0,
        "dispatched": before["dispatched"] + delivered,
        "failed": len(failed),
        "dropped": before["dropped"] + summary["dropped"],
    }
    assert summary["backlog"]["undelivered"] == 0
    assert summary["backlog"]["failed"] == len(failed)

    again = cli("deliver", "--format", "text")
    assert again.code == 0
    assert "Nothing to deliver" in again.out
    assert "Outbox: nothing undelivered" in again.out
    assert _outbox(db) == after
    check = cli("check")
    assert check.code == 0  # the backlog never changes check's exit code
    assert check.with_code("OUTBOX_BACKLOG")[0]["context"] == {
        "outbox_undelivered": 0,
        "outbox_claimed": 0,
        "outbox_oldest_age_s": 0,
        "outbox_failed": len(failed),
        "outbox_dropped": after["dropped"],
    }
    nights = cli("nights", "--nights", "2").entries
    assert nights[-1]["outbox"]["failed"] == len(failed)


def test_deliver_text_mode_prints_ids_and_kinds(cli: Cli, db: Conn, org: OrgDay) -> None:
    """On a terminal each message is one line with its id and kind, then the totals."""
    seed(db, org, mentors=20)
    assert cli("run").code == 0
    waiting = _outbox(db)["waiting"]
    result = cli("deliver", "--format", "text")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.startswith("  #")]
    assert len(lines) == waiting
    assert all(("reminder" in line) != ("pause_notice" in line) for line in lines)
    assert f"Delivered {waiting} message(s)" in result.out


def test_deliver_refuses_a_database_that_is_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy sender acknowledges what it never sends: a remote DATABASE_URL or Supabase is
    refused before any connection (exit 2), without the password."""
    register_secret(REMOTE_PASSWORD)
    monkeypatch.setenv("DATABASE_URL", REMOTE_URL)
    result = invoke("deliver")
    assert result.code == 2
    assert "not local" in result.err
    assert REMOTE_PASSWORD not in result.err + result.out
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("SUPABASE_URL", "https://abcdefghijklmnop.supabase.co")
    result = invoke("deliver")
    assert result.code == 2
    assert "Supabase" in result.err
