"""Issue 22's attack suite: names in every case and form, fields a trigger sets itself, a `C`
locale database, writes below Python's streams and gRPC's native debug logs, on the real
function process (functions-framework) and on every CLI command.

The rule under test: a value reaches a line only if its form shows it is not personal (UUIDs,
SQLSTATEs, known codes, numbers, dates, identifiers the database's catalog has); free text from
outside the project's code never does, in any case or script; every line of the function's
stdout and stderr is one JSON object. Each test also checks that what an engineer needs is still
there (the certification and mentor UUIDs, the SQLSTATE, a real constraint's name, the routine,
integer counts, the night's date), so nothing passes by logging nothing; and that its planted
values really are in the database or the trigger, so nothing passes by planting nothing.

The planted names and how they are looked for: tests/e2e/attack_support.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry_ops import schema
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests import faults
from tests.chain import NIGHTLY, over_http
from tests.clock import OrgDay
from tests.e2e.attack_support import (
    AT_PASSWORD_URL,
    BYSTANDER,
    EVERYONE,
    FAILING,
    NAMES_PLANT,
    NEEDLES,
    NON_URL_SECRET,
    PASSWORD,
    PEOPLE,
    ROOT,
    SB_KEY,
    CliRun,
    Conn,
    Person,
    assert_all_json,
    assert_no_leak,
    describe,
    find_leaks,
    forms_noise,
    noise_marks,
    process_lines,
    run_cli,
)
from tests.e2e.attack_support import supabase_names as supabase_names  # the fixture, shared
from tests.leak_plugin import register_pii, register_secret
from tests.seeding import add_cert, add_mentor, status_of

# A real check constraint the test adds to the app's table: a certification whose number is
# not digits cannot be paused. Its name is in the catalog, so it must be logged.
CONSTRAINT = "certifications_number_is_digits"
# What the per-row trigger sets with RAISE ... USING: names of planted mentors, never objects.
ROW_FIELDS = {
    "column": "Bo",
    "constraint": FAILING.full,
    "table": "Åsa",
    "schema": "O'Dwyer",
    "datatype": "Светлана",
    "detail": f"{FAILING.full.lower()} and {BYSTANDER.full}",
    "hint": "ŁĘCZYCKA, Grażyna",
}
# The same for the trigger refusing the night's claim (a whole-run error, read by psycopg).
CLAIM_FIELDS = {
    "column": "ÅSA",
    "constraint": "kvernmoen",
    "table": "Østgård",
    "schema": BYSTANDER.full,
    "datatype": "Weißhaupt",
    "detail": f"Key (full_name)=({FAILING.full}) already exists.",
    "hint": f"Call {BYSTANDER.full.upper()} or {FAILING.forms()['SURNAME, First']}",
}
# The SQLSTATE each of PEOPLE's refusals raises, in turn: a RAISE's own (P0001), and classes
# whose messages are read as templates today (unique, check, foreign key, invalid value).
ROW_SQLSTATES = ("P0001", "23505", "23514", "23503", "22023")
SHORT_BUDGET = {"time_budget_s": "0.001", "monitoring_reserve_s": "0", "batch_size": "2"}

register_pii([person.full for person in EVERYONE])


# ------------------------------------------------------------------ the planted night


@dataclass
class Planted:
    """What `plant_people` put in the database."""

    mentors: dict[Person, uuid.UUID]
    sqlstates: dict[Person, str] = field(default_factory=dict)  # what each refusal raises
    refused: dict[uuid.UUID, Person] = field(default_factory=dict)  # cert -> whose forms
    fields: uuid.UUID | None = None  # FAILING's certification refused with ROW_FIELDS
    constrained: uuid.UUID | None = None  # FAILING's certification the real constraint refuses
    ordinary: list[uuid.UUID] = field(default_factory=list)  # paused without trouble
    claim: faults.Fault | None = None  # the trigger refusing the night's claim
    claim_kind: str | None = None  # "text" or "fields"

    @property
    def failing(self) -> set[uuid.UUID]:
        """Every certification the night cannot pause."""
        return {
            *self.refused,
            *(cert for cert in (self.fields, self.constrained) if cert is not None),
        }


_READ = (
    "select * into m from public.peer_mentors where id = new.peer_mentor_id;\n"
    "select a.forms into f from public.attack_forms a where a.peer_mentor_id = new.peer_mentor_id"
)
_DECLARE = "m record; f jsonb;"
_PAUSED = "new.status = 'paused'"


def _fields(values: dict[str, str]) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(value)) for key, value in values.items()
    )


def plant_people(
    db: Conn,
    today: date,
    *,
    refuse: bool = False,
    fields: bool = False,
    constraint: bool = False,
    claim: str | None = None,
    stored: Any = None,
) -> Planted:
    """EVERYONE as mentors (`stored(person)`: the name as the database holds it, default the
    exact one), each of PEOPLE with a certification expired two days ago, BYSTANDER with one
    valid for months, and three ordinary mentors with one expired yesterday; then the attacks:

    * refuse: a trigger refusing each of PEOPLE's pauses (each with its SQLSTATE of
      ROW_SQLSTATES), quoting the row (its certificate number holds the mentor's name in lower
      case), the mentor's name from the database and every form of it, and every form of
      BYSTANDER's, in MESSAGE, DETAIL and HINT (else PEOPLE's certifications are paused);
    * fields: a second certification of FAILING refused with ROW_FIELDS set by RAISE ... USING;
    * constraint: a third certification of FAILING, numbered "KVERNMOEN, Ingebjørg", refused by
      the real check constraint CONSTRAINT;
    * claim "text" or "fields": the night's claim refused by a trigger quoting every form of
      every name, in its message, DETAIL and HINT ("text") or with CLAIM_FIELDS ("fields").
    """
    name_of = stored or (lambda person: person.full)
    db.execute(
        "create table public.attack_forms (peer_mentor_id uuid primary key, forms jsonb not null)"
    )
    planted = Planted(mentors={})
    for person in EVERYONE:
        mentor = uuid.uuid4()
        db.execute(
            "insert into public.peer_mentors (id, full_name) values (%s, %s)",
            (mentor, name_of(person)),
        )
        errcode = ROW_SQLSTATES[len(planted.mentors) % len(ROW_SQLSTATES)]
        forms = {
            **person.forms(),
            "all": person.plant(),
            "other": BYSTANDER.plant(),
            "errcode": errcode,
        }
        db.execute("insert into public.attack_forms values (%s, %s)", (mentor, json.dumps(forms)))
        planted.mentors[person] = mentor
        planted.sqlstates[person] = errcode
    add_cert(db, planted.mentors[BYSTANDER], today + timedelta(days=200))
    planted.ordinary = [
        add_cert(db, add_mentor(db, name=f"Ola Testesen {i}"), today - timedelta(days=1))
        for i in range(3)
    ]
    for person in PEOPLE:
        cert = add_cert(db, planted.mentors[person], today - timedelta(days=2))
        if not refuse:
            planted.ordinary.append(cert)
            continue
        db.execute(
            "update public.certifications set certificate_number = %s where id = %s",
            (person.full.lower(), cert),
        )
        planted.refused[cert] = person
    if refuse:
        faults.inject(
            db,
            "certifications",
            f"""{_READ};
            raise exception 'refusing % for % (%): %; another mentor: %',
                new, m.full_name, m.id, f->>'all', f->>'other'
              using errcode = f->>'errcode',
                    detail = 'Failing row contains ' || new::text || ' of '
                             || (f->>'upper case') || ', see ' || (f->>'other'),
                    hint = 'Ask ' || (f->>'SURNAME, First') || ' or ' || (f->>'other')""",
            name="forms_refuse",
            ids=list(planted.refused),
            when=_PAUSED,
            declare=_DECLARE,
        )
    if fields:
        planted.fields = add_cert(db, planted.mentors[FAILING], today - timedelta(days=3))
        faults.inject(
            db,
            "certifications",
            sql.SQL(
                _READ + ";\nraise exception using errcode = '23514', "
                "message = format('%s refused for %s: %s', new, m.full_name, f->>'all'), {fields}"
            ).format(fields=_fields(ROW_FIELDS)),
            name="forms_fields",
            ids=[planted.fields],
            when=_PAUSED,
            declare=_DECLARE,
        )
    if constraint:
        planted.constrained = add_cert(db, planted.mentors[FAILING], today - timedelta(days=4))
        db.execute(
            "update public.certifications set certificate_number = %s where id = %s",
            (FAILING.forms()["SURNAME, First"], planted.constrained),
        )
        db.execute(
            sql.SQL(
                "alter table public.certifications add constraint {} check "
                "(status <> 'paused' or certificate_number ~ '^[0-9]+$') not valid"
            ).format(sql.Identifier(CONSTRAINT))
        )
    planted.claim_kind = claim
    if claim == "text":
        planted.claim = faults.inject(
            db,
            "certexpiry.cron_runs",
            sql.SQL(
                "raise exception using errcode = '23505', message = {message}, "
                "detail = {detail}, hint = {hint}"
            ).format(
                message=sql.Literal(f"duplicate key for {NAMES_PLANT}"),
                detail=sql.Literal(
                    f"Key (full_name)=({FAILING.full}) already exists: {NAMES_PLANT}"
                ),
                hint=sql.Literal(f"Ask {BYSTANDER.full.lower()} or {NAMES_PLANT}"),
            ),
            name="forms_claim",
            events="insert",
        )
    elif claim == "fields":
        planted.claim = faults.inject(
            db,
            "certexpiry.cron_runs",
            sql.SQL(
                "raise exception using errcode = '23505', "
                "message = 'duplicate key value violates unique constraint', {fields}"
            ).format(fields=_fields(CLAIM_FIELDS)),
            name="forms_claim",
            events="insert",
        )
    _check_planted(db, planted, name_of)
    return planted


def _function_source(db: Conn, name: str) -> str:
    row = db.execute("select pg_get_functiondef(%s::regproc)", (f"public.{name}",)).fetchone()
    assert row is not None
    return str(row[0]).replace("''", "'")


def _check_planted(db: Conn, planted: Planted, name_of: Any) -> None:
    """The positive control: the names are in the database and the triggers quote them."""
    rows = db.execute(
        "select id, full_name from public.peer_mentors where id = any(%s)",
        (list(planted.mentors.values()),),
    ).fetchall()
    assert {row[0]: row[1] for row in rows} == {
        mentor: name_of(person) for person, mentor in planted.mentors.items()
    }
    forms = dict(db.execute("select peer_mentor_id, forms from public.attack_forms").fetchall())
    for person, mentor in planted.mentors.items():
        assert forms[mentor]["all"] == person.plant()
        assert forms[mentor]["other"] == BYSTANDER.plant()
    if planted.refused:
        source = _function_source(db, "forms_refuse")
        assert "f->>'all'" in source
        assert "f->>'other'" in source
        numbers = db.execute(
            "select id, certificate_number from public.certifications where id = any(%s)",
            (list(planted.refused),),
        ).fetchall()
        assert dict(numbers) == {
            cert: person.full.lower() for cert, person in planted.refused.items()
        }
    if planted.constrained is not None:
        number = db.execute(
            "select c.certificate_number, k.convalidated from public.certifications c,"
            " pg_constraint k where c.id = %s and k.conname = %s",
            (planted.constrained, CONSTRAINT),
        ).fetchone()
        assert number == (FAILING.forms()["SURNAME, First"], False)
    if planted.fields is not None:
        source = _function_source(db, "forms_fields")
        for key, value in ROW_FIELDS.items():
            assert f"{key} = '{value}'" in source, key
    if planted.claim_kind == "fields":
        source = _function_source(db, "forms_claim")
        for key, value in CLAIM_FIELDS.items():
            assert f"{key} = '{value}'" in source, key
    elif planted.claim_kind == "text":
        source = _function_source(db, "forms_claim")
        assert all(person.plant() in source for person in EVERYONE)


# ------------------------------------------------------------------ what must stay


def _innermost(routine: str) -> str:
    """The innermost function of a `routine` field (the context's chain, innermost first)."""
    return routine.split(" < ")[0]


def _by_code(entries: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry.get("error_code") == code]


def _failures(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-certification DB_OPERATION_FAILED lines' contexts, by certification id."""
    return {
        entry["context"]["certification_id"]: entry["context"]
        for entry in _by_code(entries, "DB_OPERATION_FAILED")
        if "certification_id" in entry.get("context", {})
    }


def assert_row_failures_kept(entries: list[dict[str, Any]], planted: Planted) -> None:
    """Each failing certification is reported by its UUID, its mentor's UUID, its SQLSTATE and
    the routine or the real constraint (catalog names): what an engineer needs stays."""
    failures = _failures(entries)
    assert set(failures) == {str(cert) for cert in planted.failing}
    for cert, person in planted.refused.items():
        context = failures[str(cert)]
        assert context["peer_mentor_id"] == str(planted.mentors[person])
        assert context["sqlstate"] == planted.sqlstates[person]
        assert _innermost(context["routine"]) == "public.forms_refuse"
        assert context["operation"] == "auto_pause"
    if planted.fields is not None:
        context = failures[str(planted.fields)]
        assert context["peer_mentor_id"] == str(planted.mentors[FAILING])
        assert context["sqlstate"] == "23514"
        assert _innermost(context["routine"]) == "public.forms_fields"
    if planted.constrained is not None:
        context = failures[str(planted.constrained)]
        assert context["peer_mentor_id"] == str(planted.mentors[FAILING])
        assert context["sqlstate"] == "23514"
        assert context["constraint_name"] == CONSTRAINT
        assert context["table_name"] == "certifications"


def assert_night_kept(entries: list[dict[str, Any]], planted: Planted, today: date) -> None:
    """A completed night whose lines keep their UUIDs, date, SQLSTATEs and integer counts."""
    for entry in entries:
        assert uuid.UUID(entry["cron_run_id"])
    (completed,) = _by_code(entries, "RUN_COMPLETED")
    started = _by_code(entries, "RUN_STARTED")
    assert started[-1]["context"]["nightly_key"] == today.isoformat()
    batches = _by_code(entries, "BATCH_DONE")
    assert batches
    for batch in batches:
        for key in ("duration_ms", "certifications", "certifications_paused", "failures"):
            assert type(batch["context"][key]) is int, (key, batch["context"][key])
    assert sum(batch["context"]["failures"] for batch in batches) == len(planted.failing)
    assert sum(b["context"]["certifications_paused"] for b in batches) >= len(planted.ordinary)
    assert type(completed["context"]["duration_ms"]) is int
    if planted.failing:
        (missed,) = _by_code(entries, "MISSED_AUTO_PAUSE")
        assert missed["context"]["missed_pause_count"] == len(planted.failing)
        assert set(missed["context"]["missed_ids"]) == {str(cert) for cert in planted.failing}
        assert_row_failures_kept(entries, planted)


def assert_claim_kept(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The refused claim (each attempt: the CLI's run tries a few times): its operation,
    SQLSTATE and the trigger's function (a catalog name). Returns the first."""
    claims = [e for e in entries if e.get("context", {}).get("operation") == "claim_nightly_run"]
    assert claims
    for claim in claims:
        assert claim["error_code"] == "DB_OPERATION_FAILED"
        assert claim["context"]["sqlstate"] == "23505"
        assert "public.forms_claim" in claim["context"]["routine"]
    return claims[0]


def assert_database_kept(db: Conn, planted: Planted) -> None:
    """The triggers fired (their certifications stay active), the others were paused."""
    for cert in planted.failing:
        assert status_of(db, "certifications", cert) == "active"
    for cert in planted.ordinary:
        assert status_of(db, "certifications", cert) == "paused"


def _night(function: FunctionProcess, planted: Planted) -> None:
    """The nightly trigger refused by the claim trigger (if any), then the night."""
    if planted.claim is not None:
        assert function.deliver(NIGHTLY).status == 200
        planted.claim.remove()
    assert function.deliver(NIGHTLY).status == 200
    _wait_for(function, "RUN_COMPLETED")


def _wait_for(function: FunctionProcess, code: str, timeout_s: float = 30.0) -> None:
    """Until the reader threads have a line with `code` (FunctionProcess.entries_until, but
    a line that is not JSON is the test's finding, not a crash of the wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for _, line in list(function.lines):
            if f'"{code}"' in line:
                return
        time.sleep(0.02)


def _run_function(env: dict[str, str], planted: Planted) -> FunctionProcess:
    function = FunctionProcess(env=env).start()
    try:
        _night(function, planted)
    finally:
        function.stop()
    return function


# ------------------------------------------------------------------ the checks themselves


def test_the_needles_are_no_word_of_the_project() -> None:
    """No planted name is a word of the project's own code, SQL, docs or demo data (the demo's
    generated names included): a hit in a line is a leak, never the project's own text."""
    paths = [ROOT / "main.py", ROOT / "README.md"]
    for folder in ("certexpiry", "certexpiry_ops", "supabase", "docs"):
        paths += sorted(p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sql", ".md"))
    assert len(paths) > 30
    lines = [(str(p.relative_to(ROOT)), line) for p in paths for line in p.read_text().splitlines()]
    leaks = find_leaks(lines, forbidden=False)
    assert not leaks, describe(leaks)


def test_the_scanner_finds_every_form() -> None:
    """Every form of every name, as written, JSON-escaped, SQL-quoted, nested in a JSON string
    or cased otherwise, is found; a longer word holding a short name is not."""
    for person in EVERYONE:
        for label, form in person.forms().items():
            for line in (
                f"x {form} y",
                json.dumps({"message": f"x {form} y"}),  # ensure_ascii: \\u escapes
                json.dumps({"body": json.dumps({"m": form})}),
                f"x '{form.replace(chr(39), chr(39) * 2)}' y",
                f"x {form.swapcase()} y",
                repr(f"x {form}".encode()),
                f"x {unicodedata.normalize('NFD', form)} y",
            ):
                assert find_leaks([("test", line)]), (person.full, label, line)
    for harmless in ("Bob bonus boat", "base case", "[name] [REDACTED:mentor]", "odwyer2"):
        assert find_leaks([("test", harmless)]) == []
    assert "bo" in NEEDLES
    assert "åsa" in NEEDLES
    assert "weisshaupt" in NEEDLES


# ------------------------------------------------------------------ the function process


def test_row_and_run_errors_name_no_one_in_any_form(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """A trigger refuses each planted mentor's pause quoting her row, her name from the
    database and every form of it (lower, upper, casefolded, first name, surname, "SURNAME,
    First"), and another mentor's name; the night's claim is refused quoting every form of every
    name first. No line holds any of it; the UUIDs, SQLSTATEs, routines, counts stay."""
    planted = plant_people(db, org.today, refuse=True, claim="text")
    function = _run_function(function_env(database_url, pubsub, org_timezone=org.timezone), planted)
    lines = process_lines(function)
    assert_no_leak(lines)
    entries = assert_all_json(lines)
    assert_claim_kept(entries)
    assert_night_kept(entries, planted, org.today)
    assert_database_kept(db, planted)


def test_trigger_set_fields_name_no_one_but_a_real_constraint_stays(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """RAISE ... USING COLUMN/CONSTRAINT/TABLE/SCHEMA/DATATYPE/DETAIL/HINT set to planted names,
    on a row (read from the function's answer) and on the claim (read from psycopg's
    diagnostics): none is logged. A real check constraint's violation keeps its name, table,
    SQLSTATE and the certification's and mentor's UUIDs, though its DETAIL quotes the row."""
    planted = plant_people(db, org.today, fields=True, constraint=True, claim="fields")
    function = _run_function(function_env(database_url, pubsub, org_timezone=org.timezone), planted)
    lines = process_lines(function)
    entries = assert_all_json(lines)
    claim = assert_claim_kept(entries)["context"]
    assert_night_kept(entries, planted, org.today)
    row = _failures(entries)[str(planted.fields)]
    logged = [
        (where, key, context[key])
        for where, context, fields in (("row", row, ROW_FIELDS), ("claim", claim, CLAIM_FIELDS))
        for key in ("constraint_name", "schema_name", "table_name", "column_name", "datatype_name")
        if context.get(key) == fields[key.removesuffix("_name")]
    ]
    assert not logged, f"fields set by the trigger, logged as they were set: {logged}"
    assert_no_leak(lines)
    assert_database_kept(db, planted)


def test_python_noise_names_no_one(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay, tmp_path: Path
) -> None:
    """At the first batch the process prints every form of every name, logs it through library
    and root loggers, warns it, raises it in threads, prints tracebacks of it and of
    SyntaxErrors whose message and source line hold it: every line is JSON, none holds a name."""
    planted = plant_people(db, org.today)
    env = {
        **function_env(database_url, pubsub, org_timezone=org.timezone),
        **forms_noise(tmp_path, "python"),
    }
    function = _run_function(env, planted)
    lines = process_lines(function)
    entries = assert_all_json(lines)
    assert_no_leak(lines)
    assert_night_kept(entries, planted, org.today)
    assert [mark for mark in noise_marks(tmp_path) if mark.startswith("python")]
    # The noise is there as lines of its own (known by code and source, its text withheld).
    assert {"LIBRARY_LOG", "UNEXPECTED_EXCEPTION"} <= {e["error_code"] for e in entries}
    assert [e for e in entries if e["context"].get("thread") == "attack"]


def test_writes_below_pythons_streams_are_json_lines_naming_no_one(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay, tmp_path: Path
) -> None:
    """os.write to fds 1 and 2 (one line split inside a UTF-8 character across two writes),
    sys.__stdout__, sys.__stderr__, and daemon threads still writing to fd 2 while the
    interpreter exits: every line the process writes on either stream is one JSON object and
    holds no planted name."""
    planted = plant_people(db, org.today)
    env = {
        **function_env(database_url, pubsub, org_timezone=org.timezone),
        **forms_noise(tmp_path, "fd", "exit"),
    }
    function = _run_function(env, planted)
    marks = noise_marks(tmp_path)  # the writes happened, the last ones during the exit
    assert "fd" in marks
    assert any(mark.startswith("daemon ") for mark in marks)
    assert any(mark.startswith("at exit ") for mark in marks)
    lines = process_lines(function)
    entries = assert_all_json(lines)
    assert_no_leak(lines)
    assert_night_kept(entries, planted, org.today)


def _grpc_debug_env() -> dict[str, str]:
    return {"GRPC_VERBOSITY": "debug", "GRPC_TRACE": "all"}


def test_grpc_debug_logging_is_json_lines(
    db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """With GRPC_VERBOSITY=debug and GRPC_TRACE=all in the function's environment, a night of
    several segments publishes its continuations through the fake Pub/Sub's gRPC: every line,
    gRPC's native log included, is one JSON object and holds no planted name."""
    # The positive control: these settings make this gRPC write its native log to fd 2, and
    # none of that text is a planted word.
    control = subprocess.run(
        [
            sys.executable,
            "-c",
            "import grpc\n"
            "channel = grpc.insecure_channel('127.0.0.1:1')\n"
            "try:\n    grpc.channel_ready_future(channel).result(timeout=0.5)\n"
            "except grpc.FutureTimeoutError:\n    pass\n",
        ],
        env={**os.environ, **_grpc_debug_env()},
        capture_output=True,
        text=True,
        check=True,
    )
    native = control.stderr.splitlines()
    assert len(native) > 20
    assert find_leaks([("grpc control", line) for line in native]) == []

    planted = plant_people(db, org.today)
    env = {
        **function_env(database_url, pubsub, org_timezone=org.timezone, **SHORT_BUDGET),
        **_grpc_debug_env(),
    }
    function = FunctionProcess(env=env).start()
    try:
        assert set(over_http(function, pubsub).run()) == {200}
        _wait_for(function, "RUN_COMPLETED")
    finally:
        function.stop()
    assert len(pubsub.messages) >= 2  # continuations went through gRPC
    lines = process_lines(function)
    assert len(lines) >= len(native)  # gRPC's native log reached the streams, in some form
    entries = assert_all_json(lines)
    assert_no_leak(lines)
    assert len(_by_code(entries, "CONTINUATION_PUBLISHED")) == len(pubsub.messages)
    assert_night_kept(entries, planted, org.today)


@pytest.fixture
def c_locale_url(pg_admin_url: str) -> Iterator[str]:
    """A database created from template0 with LC_CTYPE=C and LC_COLLATE=C, the job installed."""
    name = f"t_c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "create database {} template template0 encoding 'UTF8' lc_collate 'C' lc_ctype 'C'"
            ).format(sql.Identifier(name))
        )
    url = make_conninfo(pg_admin_url, dbname=name)
    schema.apply(url)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def _mixed_case(person: Person) -> str:
    """The name as the C-locale database holds it: one part upper case, one as written."""
    if len(person.first) % 2:
        return f"{person.first.upper()} {person.last}"
    return f"{person.first} {person.last.upper()}"


def test_a_c_locale_database_leaks_no_case_variant(
    c_locale_url: str, pubsub: FakePubSub, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a database whose LC_CTYPE is C (lower() and ILIKE leave Æ, Ø, Å, Ł, Ż as they are),
    the mentors' names are stored in mixed case and the triggers quote other cases of them: no
    case of any of them reaches a line of the function or of the CLI run over the same night."""
    with psycopg.connect(c_locale_url, autocommit=True) as db:
        locale = db.execute(
            "select datctype, datcollate from pg_database where datname = current_database()"
        ).fetchone()
        assert locale == ("C", "C")
        blind = db.execute("select lower('ØSTGÅRD') <> 'østgård', upper('æ') = 'æ'").fetchone()
        assert blind == (True, True)  # the locale is case-blind beyond ASCII
        planted = plant_people(
            db, org.today, refuse=True, fields=True, claim="text", stored=_mixed_case
        )
        function = _run_function(
            function_env(c_locale_url, pubsub, org_timezone=org.timezone), planted
        )
        lines = process_lines(function)
        entries = assert_all_json(lines)
        run_id = _by_code(entries, "RUN_COMPLETED")[0]["cron_run_id"]
        for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
        monkeypatch.setenv("DATABASE_URL", c_locale_url)
        cli = [
            run_cli("remediate", run_id, "--json"),
            run_cli("remediate", run_id, "--format", "text"),
            run_cli("audit", "show", run_id, "--format", "text"),
        ]
        assert_no_leak(lines + [line for run in cli for line in run.lines])
        assert_claim_kept(entries)
        assert_night_kept(entries, planted, org.today)
        assert set(_failures(cli[0].entries())) == {str(cert) for cert in planted.failing}
        assert_database_kept(db, planted)


def test_supabase_error_bodies_name_no_one(pubsub: FakePubSub, supabase_names: str) -> None:
    """Supabase's error body quotes every form of every name in its message, details and hint:
    the function's lines keep its status and PostgREST code and hold none of them."""
    env = function_env("", pubsub)
    env.update(DATABASE_URL="", SUPABASE_URL=supabase_names, SUPABASE_SERVICE_ROLE_KEY=SB_KEY)
    function = FunctionProcess(env=env).start()
    try:
        function.deliver(NIGHTLY)
    finally:
        function.stop()
    lines = process_lines(function)
    entries = assert_all_json(lines)
    assert_no_leak(lines)
    (error,) = [e for e in entries if e["severity"] == "ERROR"]
    assert error["error_code"] == "SUPABASE_RPC_FAILED"
    assert error["context"]["http_status"] == 409
    assert error["context"]["postgrest_code"] == "23505"


# ------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_env(database_url: str, org: OrgDay, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI on the test's database, in the organisation's zone, with the DB password set."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CONTINUATION_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORG_TIMEZONE", org.timezone)
    monkeypatch.setenv("DATABASE_URL", f"{database_url} password={PASSWORD}")


@pytest.mark.usefixtures("cli_env")
def test_every_cli_command_names_no_one(db: Conn, org: OrgDay) -> None:
    """check, plan, nights, run (its claim refused, then the night), audit list/show/resolve,
    remediate (by run and by ids), migrate and seed, as JSON and as text, over the planted
    night (names in every form in row errors, trigger-set fields, a real constraint, the
    claim): no line holds a planted name; the UUIDs, SQLSTATEs and counts stay."""
    planted = plant_people(db, org.today, refuse=True, fields=True, constraint=True, claim="text")
    assert planted.claim is not None
    failing = sorted(str(cert) for cert in planted.failing)
    runs: dict[tuple[str, ...], CliRun] = {}  # the last run of each command line
    every: list[CliRun] = []

    def cli(*args: str) -> CliRun:
        every.append(run_cli(*args))
        runs[args] = every[-1]
        return every[-1]

    for output in (("--json",), ("--format", "text")):
        cli("check", *output)
        cli("plan", "--ids", "100", *output)
        cli("nights", *output)
    refused_claim = cli("run", "--json")  # the claim refused
    planted.claim.remove()
    night = cli("run", "--json", "--max-invocations", "100")
    run_id = _by_code(night.entries(), "RUN_COMPLETED")[0]["cron_run_id"]
    cli("run", "--format", "text")
    for output in (("--json",), ("--format", "text")):
        cli("nights", "--nights", "3", *output)
        cli("audit", "list", *output)
        cli("audit", "show", run_id, *output)
        cli("audit", "resolve", run_id, *output)
        cli("remediate", run_id, *output)
        cli("remediate", "--ids", ",".join(failing), *output)
        cli("check", *output)
        cli("migrate", *output)
        cli("seed", "--mentors", "3", *output)
    assert_no_leak([line for run in every for line in run.lines])

    assert_claim_kept(refused_claim.entries())
    assert_night_kept(night.entries(), planted, org.today)
    plan = runs[("plan", "--ids", "100", "--json")].entries()[0]
    assert plan["failures"]["count"] == len(failing)
    assert sorted(plan["failures"]["ids"]) == failing
    remediated = runs[("remediate", run_id, "--json")].entries()
    assert_row_failures_kept(remediated, planted)
    (done,) = _by_code(remediated, "REMEDIATION_DONE")
    assert done["context"]["failures"] == len(failing)
    shown = runs[("audit", "show", run_id, "--json")].entries()[0]
    assert sorted(shown["still_missed"]) == failing
    (missed,) = _by_code(runs[("check", "--json")].entries(), "MISSED_AUTO_PAUSE")
    assert sorted(missed["context"]["missed_ids"]) == failing
    assert runs[("seed", "--mentors", "3", "--json")].code == 2
    assert runs[("migrate", "--json")].code == 0
    assert_database_kept(db, planted)


def test_the_cli_over_supabase_names_no_one(
    supabase_names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command reaching the data through Supabase's HTTP API, answered with error bodies
    quoting every form of every name and the service-role key in the environment: no line
    holds a planted value; each command fails as a connection problem (exit 4 or 2)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SUPABASE_URL", supabase_names)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SB_KEY)
    monkeypatch.setenv("ORG_TIMEZONE", "Europe/Oslo")
    _every_command_fails_and_leaks_nothing(_COMMANDS_ON_THE_DATA)


# The commands that read or write the job's data, as JSON and as text; an unknown run id.
_SOME_ID = str(uuid.uuid4())
_COMMANDS_ON_THE_DATA = (
    ("check",),
    ("plan",),
    ("nights",),
    ("audit", "list"),
    ("audit", "show", _SOME_ID),
    ("audit", "resolve", _SOME_ID),
    ("remediate", "--ids", _SOME_ID),
    ("run",),
)


def _every_command_fails_and_leaks_nothing(commands: tuple[tuple[str, ...], ...]) -> None:
    """Each command, as JSON and as text: exit 4 (the database failed or refused) or 2 (a
    DATABASE_URL libpq cannot read: configuration), an error on stderr, no planted value in any
    line of either stream."""
    runs = [
        run_cli(*command, *output)
        for output in (("--json",), ("--format", "text"))
        for command in commands
    ]
    assert_no_leak([line for run in runs for line in run.lines])
    for run in runs:
        assert run.code in (2, 4), run.args
        assert run.err.strip(), run.args


BAD_DSNS = {
    "password read as host": AT_PASSWORD_URL,
    "dsn fragment": f"host=127.0.0.1 port=1 {NON_URL_SECRET}",
    "refused, password in the URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/postgres",
}


@pytest.mark.parametrize("dsn", list(BAD_DSNS.values()), ids=list(BAD_DSNS))
def test_every_cli_command_prints_no_part_of_a_bad_dsn(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command that opens the database, given a DATABASE_URL libpq cannot use and that
    holds a password or a secret fragment, as JSON and as text: exit 4 or 2, an error on
    stderr, no part of the secret on either stream."""
    register_secret("Secret1x@Pa55wd", NON_URL_SECRET, PASSWORD)
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORG_TIMEZONE", "Europe/Oslo")
    monkeypatch.setenv("DATABASE_URL", dsn)
    _every_command_fails_and_leaks_nothing(
        (
            *_COMMANDS_ON_THE_DATA,
            ("migrate",),
            ("seed", "--allow-remote", "--mentors", "3"),
            ("uninstall", "--yes"),
        )
    )
