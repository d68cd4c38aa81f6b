"""The attack suite of issue 11: PII and secrets planted everywhere a line can come from, the
real function (a functions-framework process) and the CLI run over them, and no line holds any
of it; while what an engineer needs (UUIDs, SQLSTATEs, function names in CONTEXT, key columns,
durations, byte counts, dates) is still there, and every line carries a cron_run_id.

Planted: a name (the failing mentor's and another's), national ids glued to letters and
decimals, with a space, a D-number, e-mails (plain, quoted, with a slash, IDN, URL-encoded),
phones (with and without +47, grouped and not, with dashes), the database password alone, a
password holding an "@", a non-URL secret, a JWT, an sb_secret_ key and a Bearer header. Into:
trigger exceptions with DETAIL/HINT/CONTEXT, a row literal longer than 500 characters, Python
exceptions, print, library loggers, warnings, thread exceptions and a printed traceback (by a
sitecustomize the function process loads), Supabase error bodies (a local HTTP server in
Supabase's place) and Pub/Sub message ids.
"""

from __future__ import annotations

import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from certexpiry_ops.cli import main as cli_main
from certexpiry_ops.console import CliIO
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests import faults
from tests.chain import NIGHTLY
from tests.clock import OrgDay
from tests.seeding import add_cert, add_mentor

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

NAME = "Ragnhild Plantedottir"
OTHER = "Ola Fremmedsen"
NATIONAL_ID = "01019012345"
EMAIL = "ragnhild@example.no"
PASSWORD = "Hunter2Secret"
AT_PASSWORD_URL = "postgresql://postgres:Secret1x@Pa55wd@127.0.0.1:1/postgres"
NON_URL_SECRET = "hunter2xyzzy"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLWF0dGFjaw"
SB_KEY = "sb_secret_attackattack1234567"
PLANTED = [
    NAME,
    OTHER,
    NATIONAL_ID,
    "fnrA01019012345",
    "01019012345b",
    "id 01019012345.5",
    "010190 12345",
    "d-nr 41019012345",
    EMAIL,
    '"ragnhild.p"@example.no',
    "ragnhild/p@example.no",
    "ragnhild@øl.no",
    "ragnhild%40example.no",
    "+47 912 34 567",
    "+4791234567",
    "91234567",
    "912 34 567",
    "912-34-567",
    "9123 4567",
    f"the DB password is {PASSWORD}",
    JWT,
    SB_KEY,
    f"Authorization: Bearer {JWT}",
]
PLANT = " | ".join(PLANTED)
# Supabase's body: everything but the database password, which that deployment does not have
# (a password is recognised by value only where it is configured).
BODY_PLANT = " | ".join(value for value in PLANTED if PASSWORD not in value)
# What must not be found in any line, whatever surrounds it (case-insensitive).
FORBIDDEN = [
    "ragnhild",
    "plantedottir",
    "fremmedsen",
    "01019012345",
    "010190 12345",
    "41019012345",
    "91234567",
    "912 34 567",
    "912-34-567",
    "9123 4567",
    "+47 912",
    PASSWORD.lower(),
    "secret1x",
    "pa55wd",
    NON_URL_SECRET,
    "eyjyb2xlijoic2vydmljzv9yb2xlin0",
    "c2lnbmf0dxjllwf0dgfjaw",
    "attackattack",
]
# A line the noise writes that must keep its useful parts: a byte count, a duration, a date.
USEFUL = "read 2048 bytes in 1500 ms on 30112026"

SITECUSTOMIZE = '''
"""Loaded by the function process (PYTHONPATH): noise with planted values at every batch."""
import logging, os, sys, threading, traceback, warnings
from certexpiry import pg_store

PLANT = os.environ["ATTACK_PLANT"]
_call = pg_store.PgTransport.call


def _boom():
    raise RuntimeError("thread: " + PLANT)


def call(self, operation, params):
    if operation == "process_expiry_batch":
        print("print: " + PLANT)
        print(os.environ["ATTACK_USEFUL"])
        logging.getLogger("psycopg").warning("library: %s", PLANT)
        logging.getLogger("httpx").error("library error: " + PLANT)
        warnings.warn("warning: " + PLANT, UserWarning)
        sys.stderr.write("stderr: " + PLANT + "\\n")
        thread = threading.Thread(target=_boom, name="attack")
        thread.start()
        thread.join()
        try:
            raise ValueError("printed: " + PLANT)
        except ValueError:
            traceback.print_exc()
    if operation == "claim_continuation":
        raise ValueError("the DB password is " + os.environ["ATTACK_PASSWORD"] + ": " + PLANT)
    return _call(self, operation, params)


pg_store.PgTransport.call = call
'''


@pytest.fixture
def noise(tmp_path: Path) -> dict[str, str]:
    """The environment that makes the function process load the noise."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "ATTACK_PLANT": PLANT,
        "ATTACK_USEFUL": USEFUL,
        "ATTACK_PASSWORD": PASSWORD,
    }


def _leaks(lines: list[str]) -> list[tuple[str, str]]:
    """(forbidden value, the start of its line) for every planted value found."""
    found = []
    for line in lines:
        lower = line.lower()
        found += [(value, line[:120]) for value in FORBIDDEN if value.lower() in lower]
    return found


def _attack_db(db: Conn, today: date) -> tuple[uuid.UUID, uuid.UUID, faults.Fault]:
    """The planted mentor with two expired certifications triggers refuse, quoting her row,
    her values and another's, with DETAIL, HINT and CONTEXT; a few ordinary mentors; and a
    trigger refusing the night's claim (returned: the test removes it)."""
    mentor = uuid.uuid4()
    db.execute(
        "insert into public.peer_mentors (id, full_name, national_id, email) values (%s, %s, %s, %s)",
        (mentor, NAME, NATIONAL_ID, EMAIL),
    )
    raised = add_cert(db, mentor, today - timedelta(days=2))
    checked = add_cert(db, mentor, today - timedelta(days=3))
    for i in range(4):
        add_cert(db, add_mentor(db, name=f"Ola Testesen {i}"), today - timedelta(days=1))
    db.execute("create table public.attack_plant (text text)")
    db.execute("insert into public.attack_plant values (%s)", (PLANT,))
    mentor_and_plant = "m record; p text := (select text from public.attack_plant);"
    read_mentor = "select * into m from public.peer_mentors where id = new.peer_mentor_id"
    paused = "new.status = 'paused'"
    faults.inject(
        db,
        "certifications",
        f"""{read_mentor};
            raise exception 'refusing % for % (%): %', new, m.full_name, m.national_id, p
              using detail = 'Failing row contains ' || new::text || ' ' || m.email,
                    hint = 'Ask ' || m.full_name || ' at +47 912 34 567'""",
        name="attack_refuse",
        ids=[raised],
        when=paused,
        declare=mentor_and_plant,
    )
    faults.inject(
        db,
        "certifications",
        f"""{read_mentor};
            raise exception using errcode = '23514',
              message = format('row %s of %s refused: %s%s %s', new, m.full_name,
                               repeat('x', 470), m.national_id, p),
              detail = 'Failing row contains ' || new::text,
              hint = lower(m.full_name) || ' ' || p,
              constraint = 'certifications_attack_check', table = 'certifications',
              schema = 'public', column = 'status'""",
        name="attack_check",
        ids=[checked],
        when=paused,
        declare=mentor_and_plant,
    )
    claim_refused = faults.inject(
        db,
        "certexpiry.cron_runs",
        f"""raise exception using errcode = '23505',
            message = 'duplicate key value violates unique constraint "peer_mentors_email_key" '
                      || 'for {NAME} ' || p,
            detail = 'Key (email)=({EMAIL}) already exists.',
            hint = 'Call +47 912 34 567 or ' || p,
            constraint = 'peer_mentors_email_key', table = 'peer_mentors', schema = 'public'""",
        name="attack_claim",
        events="insert",
        declare="p text := (select text from public.attack_plant);",
    )
    return raised, checked, claim_refused


def _entries(function: FunctionProcess) -> list[dict[str, Any]]:
    entries = []
    for stream, line in function.lines:
        assert line.strip(), f"empty line on {stream}"
        assert line.startswith("{"), line
        entries.append(json.loads(line))  # every line on stdout and stderr is JSON
    return entries


def test_the_function_leaks_nothing_and_keeps_what_is_useful(
    db: Conn,
    database_url: str,
    pubsub: FakePubSub,
    org: OrgDay,
    noise: dict[str, str],
) -> None:
    """Phase A: the claim fails in a trigger (a top-level database error with DETAIL/HINT).
    Phase B: the night runs; two rows are refused quoting the mentor, her row (past 500
    characters) and the planted values; every batch prints, logs, warns, raises in a thread
    and prints a traceback with them. Then a continuation whose claim raises a Python
    exception holding the password, and an invalid message; message ids are planted too."""
    raised, checked, claim_refused = _attack_db(db, org.today)
    url = f"{database_url} password={PASSWORD}"  # trust auth: the password is accepted, unused
    env = {**function_env(url, pubsub, org_timezone=org.timezone), **noise}
    function = FunctionProcess(env=env).start()
    try:
        first = function.deliver(NIGHTLY, message_id=f"{NAME} {NATIONAL_ID}")
        claim_refused.remove()
        second = function.deliver(NIGHTLY, message_id="4242424242424242")
        resume = json.dumps(
            {"kind": "resume", "run_id": str(uuid.uuid4()), "segment": 1, "cursor": None}
        ).encode()
        third = function.deliver(resume, message_id=EMAIL)
        fourth = function.deliver(b"{not json", message_id=f"{JWT} +47 912 34 567")
    finally:
        function.stop()
    assert [first.status, second.status, third.status, fourth.status] == [200, 200, 200, 200]
    lines = [line for _, line in function.lines]
    assert _leaks(lines) == []
    entries = _entries(function)
    codes = [entry["error_code"] for entry in entries]

    # Every line carries a UUID run id; the run's lines, the noise included, carry the run's.
    for entry in entries:
        assert uuid.UUID(entry["cron_run_id"])
        assert entry["logging.googleapis.com/labels"]["cron_run_id"] == entry["cron_run_id"]
    run_id = next(e["cron_run_id"] for e in entries if e["error_code"] == "RUN_COMPLETED")
    noisy = [e for e in entries if "2048 bytes" in e["message"]]
    assert noisy
    assert {e["cron_run_id"] for e in noisy} == {run_id}
    for kind in ("UNEXPECTED_EXCEPTION", "LIBRARY_LOG"):
        assert any(e["cron_run_id"] == run_id for e in entries if e["error_code"] == kind)

    # Phase A: the database error at the top, as fields and a template.
    (claim,) = [e for e in entries if e["context"].get("operation") == "claim_nightly_run"]
    assert claim["error_code"] == "DB_OPERATION_FAILED"
    assert claim["context"]["sqlstate"] == "23505"
    assert claim["context"]["constraint_name"] == "peer_mentors_email_key"
    assert claim["context"]["table_name"] == "peer_mentors"
    assert "Key (email)=(?) already exists" in claim["context"]["details"]
    assert "public.attack_claim()" in claim["context"]["routine"]
    assert "Traceback (most recent call last)" in claim["stack_trace"]

    # Phase B: the refused rows, by id, SQLSTATE, names and routine.
    failures = {
        e["context"]["certification_id"]: e["context"]
        for e in entries
        if e["error_code"] == "DB_OPERATION_FAILED" and "certification_id" in e["context"]
    }
    assert set(failures) == {str(raised), str(checked)}
    assert failures[str(raised)]["sqlstate"] == "P0001"
    assert failures[str(raised)]["routine"] == "public.attack_refuse"
    assert failures[str(checked)]["sqlstate"] == "23514"
    assert failures[str(checked)]["constraint_name"] == "certifications_attack_check"
    assert failures[str(checked)]["column_name"] == "status"
    assert codes.count("RUN_COMPLETED") == 1
    assert all(
        isinstance(e["context"]["duration_ms"], int)
        for e in entries
        if e["error_code"] == "BATCH_DONE"
    )
    assert any(USEFUL in e["message"] for e in noisy)  # bytes, duration and date kept
    thread = [e for e in entries if e["context"].get("thread") == "attack"]
    assert thread[0]["error_code"] == "UNEXPECTED_EXCEPTION"

    # The continuation's Python exception: frames and type kept, message templated.
    unexpected = [
        e
        for e in entries
        if e["error_code"] == "UNEXPECTED_EXCEPTION"
        and "claim_continuation" in e.get("stack_trace", "")
    ]
    assert unexpected[0]["stack_trace"].rstrip().splitlines()[-1].startswith("ValueError: ")
    assert ", in handle_event\n" in unexpected[0]["stack_trace"]

    # Message ids: Pub/Sub's shape kept, anything else replaced.
    started = [e for e in entries if e["error_code"] == "RUN_STARTED"]
    assert started[0]["context"]["message_id"] == "4242424242424242"
    invalid = [e for e in entries if e["error_code"] == "INVALID_MESSAGE"]
    assert invalid[0]["context"]["message_id"] == "[not a Pub/Sub message id]"


class _SupabaseDown(BaseHTTPRequestHandler):
    """Supabase's HTTP API answering every RPC with an error body quoting the planted values."""

    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps(
            {
                "code": "23505",
                "message": f'duplicate key value violates unique constraint "m_k" {BODY_PLANT}',
                "details": f"Key (email)=({EMAIL}) already exists. {BODY_PLANT}",
                "hint": f"Ask {NAME}: {BODY_PLANT}",
            }
        ).encode()
        self.send_response(409)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        """Silent: the test reads the function's lines, not the server's."""


@pytest.fixture
def supabase() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SupabaseDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend", ["supabase", "password with @", "non-URL secret"])
def test_error_bodies_and_connection_secrets_leak_nothing(
    database_url: str, pubsub: FakePubSub, supabase: str, backend: str
) -> None:
    """A Supabase error body quoting the planted values, a password with an unencoded "@"
    that libpq reads as part of the host, and a DATABASE_URL that is no URL at all: the
    function's lines hold none of it, and each carries a UUID run id."""
    env = function_env(database_url, pubsub)
    if backend == "supabase":
        env.update(DATABASE_URL="", SUPABASE_URL=supabase, SUPABASE_SERVICE_ROLE_KEY=JWT)
    elif backend == "password with @":
        env["DATABASE_URL"] = AT_PASSWORD_URL
    else:
        env["DATABASE_URL"] = NON_URL_SECRET
    function = FunctionProcess(env=env).start()
    try:
        function.deliver(NIGHTLY, message_id=f"{SB_KEY} {NAME}")
    finally:
        function.stop()
    lines = [line for _, line in function.lines]
    assert _leaks(lines) == []
    entries = _entries(function)
    errors = [e for e in entries if e["severity"] == "ERROR"]
    assert errors
    for entry in entries:
        assert uuid.UUID(entry["cron_run_id"])
    if backend == "supabase":
        (error,) = errors
        assert error["error_code"] == "SUPABASE_RPC_FAILED"
        assert error["context"]["http_status"] == 409
        assert error["context"]["postgrest_code"] == "23505"
        assert error["context"]["details"] == "Key (email)=(?) already exists"


def _cli(*args: str) -> list[str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    cli_main(list(args), cli_io=CliIO(stdout=stdout, stderr=stderr))
    return stdout.getvalue().splitlines() + stderr.getvalue().splitlines()


def test_the_cli_leaks_nothing(
    db: Conn, database_url: str, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's run over the same planted night (the claim refused, then two rows refused)
    and its error paths over the bad connection settings print none of the planted values."""
    *_, claim_refused = _attack_db(db, org.today)
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
    monkeypatch.setenv("DATABASE_URL", f"{database_url} password={PASSWORD}")
    lines = _cli("run", "--json")
    claim_refused.remove()
    lines += _cli("run", "--json")
    assert any("DB_OPERATION_FAILED" in line for line in lines)
    for bad in (AT_PASSWORD_URL, NON_URL_SECRET):
        monkeypatch.setenv("DATABASE_URL", bad)
        lines += _cli("check")
        lines += _cli("run")
    assert _leaks(lines) == []


def test_the_suite_would_see_a_leak() -> None:
    """The check itself finds each planted value in a line that holds it."""
    for value in FORBIDDEN:
        assert _leaks([f"x {value.upper()} y"]) != []
