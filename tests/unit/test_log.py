"""The JSON logger (certexpiry.log), through its public API and the lines it writes: the fields
of a line and the schema, the allow-list applied, stack traces without messages, secrets
scrubbed, caps, failing and stalled streams, and the whole-process capture. The forms of each
context key are tested in test_redact.py."""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import json
import logging
import os
import select
import socket
import sys
import termios
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import jsonschema
import pytest
import structlog
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from certexpiry.codes import Code, Severity
from certexpiry.log import (
    JsonLogger,
    TraceContext,
    bind_run,
    install_process_logging,
    new_invocation_id,
    trace_from_headers,
    uninstall_process_logging,
)
from certexpiry.redact import (
    CONTEXT_FORMS,
    MIN_SECRET_LENGTH,
    SECRET_MARK,
    WITHHELD,
    CatalogName,
    Secrets,
    allowed,
    body_shape,
    credential_parts,
)
from certexpiry.store.contract import (
    RPC_SIGNATURES,  # the store adds its RPC names to the vocabulary
)
from tests.strategies import jwts, registered_secrets

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "log-entry.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
HERE = __file__
PLANTED = "Kari Nordmann"
"""A name planted where a value comes from outside the project's code: never in a line."""
RUN_1 = "11111111-1111-4111-8111-111111111111"
RUN_P = "33333333-3333-4333-8333-333333333333"
LOCATION = "logging.googleapis.com/sourceLocation"
# The caps of a line and Error Reporting's type (not exported: no caller needs them).
MAX_STRING, MAX_ITEMS, MAX_STACK = 2_000, 100, 16_000
TRUNCATION_MARK = "...[truncated]"
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)


def parse(text: str, *, schema: bool = True) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object, each checked against the schema."""
    assert text == "" or text.endswith("\n"), "every line ends with a newline"
    entries = [json.loads(line) for line in text.splitlines()]
    for entry in entries:
        assert isinstance(entry, dict)
        if schema:
            VALIDATOR.validate(entry)
    return entries


def make(
    stream: TextIO | None = None, secrets: Secrets | None = None, **options: Any
) -> tuple[JsonLogger, io.StringIO]:
    """A logger writing to a fresh StringIO (unless a stream is given), and that StringIO."""
    buffer = io.StringIO()
    stream = stream if stream is not None else buffer
    logger = JsonLogger(secrets=secrets or Secrets(), version="1.2.3", stream=stream, **options)
    return logger, buffer


def line_of_caller() -> int:
    """The line this function was called from."""
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_lineno


def raised(exc: BaseException) -> BaseException:
    """``exc`` after being raised and caught here (so that it has a traceback)."""
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001  # any exception, returned
        return caught


def deep(depth: int) -> None:
    """Raise from ``depth`` frames down: a long traceback."""
    if depth == 0:
        raise RecursionError(PLANTED)
    deep(depth - 1)


def raised_deep() -> BaseException:
    """An exception with 400 frames of ``deep``."""
    try:
        deep(400)
    except RecursionError as exc:
        return exc
    raise AssertionError("deep() returned")


def frames_of(exc: BaseException) -> str:
    """The frame lines Python prints for ``exc``'s own traceback, without source lines."""
    return "".join(
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        for frame in traceback.extract_tb(exc.__traceback__)
    )


@pytest.fixture(autouse=True)
def _no_leftover_installation() -> Iterator[None]:
    """Every test ends with the process capture undone, even when it fails."""
    yield
    uninstall_process_logging()


# ------------------------------------------------------------------------- fields


def test_info_line_has_every_field() -> None:
    """An INFO line: timestamp and time, severity, message, run id, code, context, labels and
    the call's source location; nothing of Error Reporting."""
    logger, buffer = make(run_id=RUN_1)
    before = datetime.now(UTC)
    logger.info(Code.RUN_STARTED, "Nightly run started.", segment=0)
    line = line_of_caller() - 1
    (entry,) = parse(buffer.getvalue())
    assert entry["severity"] == "INFO"
    assert entry["message"] == "Nightly run started."
    assert entry["cron_run_id"] == RUN_1
    assert entry["error_code"] == "RUN_STARTED"
    assert entry["context"] == {"segment": 0}
    assert entry["timestamp"] == entry["time"]
    stamp = datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= stamp <= datetime.now(UTC)
    assert entry["logging.googleapis.com/labels"] == {
        "cron_run_id": RUN_1,
        "function": "certexpiry",
    }
    assert entry[LOCATION] == {
        "file": HERE,
        "line": str(line),
        "function": "test_info_line_has_every_field",
    }
    assert {"@type", "serviceContext", "stack_trace"} & set(entry) == set()
    assert buffer.getvalue().count("\n") == 1


def test_a_logger_without_a_run_stamps_a_uuid_of_its_own() -> None:
    """Without a run id a logger stamps a generated UUID, in the field and the label alike, on
    every line and every binding that sets no run id."""
    logger, buffer = make()
    logger.info(Code.INVALID_SETTINGS, "x")
    logger.bind(trace=None).info(Code.INVALID_SETTINGS, "y")
    first, second = parse(buffer.getvalue())
    assert uuid.UUID(first["cron_run_id"]).version == 4
    assert first["logging.googleapis.com/labels"]["cron_run_id"] == first["cron_run_id"]
    assert second["cron_run_id"] == first["cron_run_id"] == logger.run_id
    assert make()[0].run_id != logger.run_id
    assert uuid.UUID(new_invocation_id()).version == 4
    assert new_invocation_id() != new_invocation_id()


@pytest.mark.parametrize(
    ("minimum", "written"),
    [
        (Severity.DEBUG, [("d", "DEBUG"), ("i", "INFO"), ("w", "WARNING"), ("e", "ERROR")]),
        (Severity.INFO, [("i", "INFO"), ("w", "WARNING"), ("e", "ERROR")]),
        (Severity.WARNING, [("w", "WARNING"), ("e", "ERROR")]),
        (Severity.ERROR, [("e", "ERROR")]),
    ],
)
def test_severities_and_min_severity(minimum: Severity, written: list[tuple[str, str]]) -> None:
    """Each method writes its Cloud Logging severity name (WARNING, not WARN) and its caller's
    location; a logger writes nothing below its min_severity (and counts no drop)."""
    logger, buffer = make(min_severity=minimum)
    logger.debug(Code.BATCH_DONE, "d")
    logger.info(Code.BATCH_DONE, "i")
    logger.warning(Code.BATCH_DONE, "w")
    logger.error(Code.BATCH_DONE, "e")
    entries = parse(buffer.getvalue())
    assert [(entry["message"], entry["severity"]) for entry in entries] == written
    assert {entry[LOCATION]["function"] for entry in entries} == {
        "test_severities_and_min_severity"
    }
    assert logger.dropped == 0


def test_error_line_is_an_error_reporting_event() -> None:
    """ERROR lines carry @type and serviceContext, and reportLocation when there is no stack."""
    logger, buffer = make()
    logger.error(Code.DB_OPERATION_FAILED, "failed", sqlstate="23505")
    (entry,) = parse(buffer.getvalue())
    assert entry["@type"] == ERROR_EVENT_TYPE
    assert entry["serviceContext"] == {"service": "certexpiry", "version": "1.2.3"}
    location = entry[LOCATION]
    assert entry["context"] == {
        "sqlstate": "23505",
        "reportLocation": {
            "filePath": location["file"],
            "lineNumber": int(location["line"]),
            "functionName": location["function"],
        },
    }


def test_codes_and_messages() -> None:
    """A code given as its text works, an unknown one becomes UNEXPECTED_EXCEPTION; the message
    is written as given (it is the project's own words), its str() if not a string, and cut at
    MAX_STRING with the truncation mark."""
    logger, buffer = make()
    logger.info("RUN_STARTED", "m" * MAX_STRING)  # type: ignore[arg-type]
    logger.info("NO_SUCH_CODE", "m" * (MAX_STRING + 1))  # type: ignore[arg-type]
    logger.info(Code.BATCH_DONE, 42)  # type: ignore[arg-type]
    whole, cut, number = parse(buffer.getvalue())
    assert (whole["error_code"], whole["message"]) == ("RUN_STARTED", "m" * MAX_STRING)
    assert cut["error_code"] == "UNEXPECTED_EXCEPTION"
    assert cut["message"] == "m" * MAX_STRING + TRUNCATION_MARK
    assert number["message"] == "42"


def test_schema_allow_list_matches_the_code() -> None:
    """The schema's context keys are the allow-list plus the logger's own two keys."""
    names = SCHEMA["$defs"]["context"]["propertyNames"]["enum"]
    assert set(names) == set(CONTEXT_FORMS) | {"dropped_keys", "reportLocation"}
    assert SCHEMA["properties"]["message"]["maxLength"] == MAX_STRING + len(TRUNCATION_MARK)
    assert set(SCHEMA["properties"]["error_code"]["enum"]) == {code.value for code in Code}


# ------------------------------------------------------------------------- stack traces


class Outer:
    class InnerError(Exception):
        """A nested class: its qualified name is printed with its module."""


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError(PLANTED)


def logged_stack(exc: BaseException, **context: object) -> dict[str, Any]:
    """The one ERROR entry a logger writes for ``exc``; the planted name is not in it."""
    logger, buffer = make()
    logger.error(Code.UNEXPECTED_EXCEPTION, "Unexpected.", exc=exc, **context)
    (entry,) = parse(buffer.getvalue())
    assert PLANTED not in buffer.getvalue()
    return entry


def test_a_stack_trace_has_frames_and_the_type_never_the_message() -> None:
    """exc= adds the traceback as Python lays it out, each frame's file, line and function, and
    the exception's type without its message; error_type names the class unless the caller
    gives one; no reportLocation."""
    exc = raised(ValueError(f"no such mentor: {PLANTED}"))
    entry = logged_stack(exc)
    header = "Traceback (most recent call last):\n"
    assert entry["stack_trace"] == f"{header}{frames_of(exc)}ValueError\n"
    assert f'File "{HERE}"' in entry["stack_trace"]
    assert entry["context"] == {"error_type": "ValueError"}
    assert entry[LOCATION]["function"] == "logged_stack"
    # error_type passed by the caller wins (in its form)
    assert logged_stack(exc, error_type="KeyError")["context"]["error_type"] == "KeyError"
    assert logged_stack(exc, error_type=PLANTED)["context"]["error_type"] == WITHHELD


@pytest.mark.parametrize(
    ("exc", "printed"),
    [
        (json.JSONDecodeError(PLANTED, PLANTED, 0), "json.decoder.JSONDecodeError"),
        (Outer.InnerError(PLANTED), f"{__name__}.Outer.InnerError"),
        (KeyError(PLANTED), "KeyError"),
        (OSError(2, PLANTED, PLANTED), "FileNotFoundError"),
        (UnprintableError(PLANTED), f"{__name__}.UnprintableError"),
    ],
)
def test_a_stack_trace_names_the_qualified_type(exc: BaseException, printed: str) -> None:
    """Builtins by their name, others with their module and qualified name; an exception whose
    str() raises is logged like any other (its text is never asked for); notes are left out;
    never raised, it has no frames."""
    exc.add_note(PLANTED)
    assert logged_stack(exc)["stack_trace"] == f"{printed}\n"
    entry = logged_stack(raised(exc))
    assert entry["stack_trace"].endswith(f"\n{printed}\n")
    assert entry["context"]["error_type"] == type(exc).__name__


def test_causes_and_contexts_are_printed_as_python_does_without_messages() -> None:
    """A cause ("direct cause") and a context ("during handling") come first, each with its
    frames and type; a context suppressed by ``from None`` is left out; a cycle ends."""
    inner = raised(LookupError(PLANTED))
    middle = raised(ValueError(PLANTED))
    middle.__context__ = inner
    outer = raised(RuntimeError(PLANTED))
    outer.__cause__ = middle
    header = "Traceback (most recent call last):\n"
    assert logged_stack(outer)["stack_trace"] == (
        f"{header}{frames_of(inner)}LookupError\n"
        "\nDuring handling of the above exception, another exception occurred:\n\n"
        f"{header}{frames_of(middle)}ValueError\n"
        "\nThe above exception was the direct cause of the following exception:\n\n"
        f"{header}{frames_of(outer)}RuntimeError\n"
    )
    quiet = raised(KeyError(PLANTED))
    quiet.__context__ = inner
    quiet.__suppress_context__ = True
    assert logged_stack(quiet)["stack_trace"] == f"{header}{frames_of(quiet)}KeyError\n"
    inner.__cause__ = outer  # a cycle: outer -> middle -> inner -> outer
    inner.__context__ = outer
    stack = logged_stack(outer)["stack_trace"]
    assert [stack.count(name) for name in ("LookupError", "ValueError", "RuntimeError")] == [1] * 3


def test_exception_groups_list_their_members_without_messages() -> None:
    """A group's members (and their members) follow it, each by type; a member seen already is
    not repeated; a non-exception in an ``exceptions`` attribute is not printed."""
    shared = ValueError(PLANTED)
    nested = ExceptionGroup(PLANTED, [KeyError(PLANTED)])
    group = raised(ExceptionGroup(PLANTED, [shared, nested, shared]))
    member = "  +---- member of the group above:\n"
    assert logged_stack(group)["stack_trace"] == (
        f"Traceback (most recent call last):\n{frames_of(group)}ExceptionGroup\n"
        f"{member}ValueError\n{member}ExceptionGroup\n{member}KeyError\n"
    )

    class ListsMessagesError(Exception):
        def __init__(self) -> None:
            super().__init__()
            self.exceptions = [PLANTED]  # a library's own attribute of that name

    assert logged_stack(ListsMessagesError())["stack_trace"].endswith(".ListsMessagesError\n")


def test_a_syntax_error_shows_neither_its_source_nor_its_message() -> None:
    """A SyntaxError carries the input it failed on (its text, its filename): none of it is
    logged, only where it was raised and its type."""
    with pytest.raises(SyntaxError) as caught:
        compile(f"{PLANTED} = (", f"<{PLANTED}>", "exec")
    assert PLANTED in str(caught.value.text)
    stack = logged_stack(caught.value)["stack_trace"]
    assert stack.endswith(
        ", in test_a_syntax_error_shows_neither_its_source_nor_its_message\nSyntaxError\n"
    )


def test_a_long_stack_trace_keeps_its_head_and_tail() -> None:
    """A stack trace over MAX_STACK keeps its first frames and its last ones and the type."""
    stack = logged_stack(raised_deep())["stack_trace"]
    assert stack.startswith("Traceback (most recent call last):\n  File ")
    assert stack.endswith(", in deep\nRecursionError\n")
    assert "characters omitted ...]\n" in stack
    assert MAX_STACK - 200 <= len(stack) <= MAX_STACK + 64
    starts = ("Traceback", "  File", "  [...", "RecursionError")
    assert all(line.startswith(starts) for line in stack.splitlines())


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError(PLANTED)


class UnprintableCode:
    def __str__(self) -> str:
        raise LookupError(PLANTED)


@pytest.mark.parametrize(
    ("message", "code", "failure"),
    [(Unprintable(), Code.BATCH_DONE, "RuntimeError"), ("fine", UnprintableCode(), "LookupError")],
)
def test_a_failure_while_building_gives_a_minimal_line(
    message: object, code: object, failure: str
) -> None:
    """A bug while building an entry (a message or a code whose text cannot be had) never
    raises: a minimal UNEXPECTED_EXCEPTION line at the same severity, with the failure's type
    and nothing of the input."""
    logger, buffer = make(run_id=RUN_1)
    logger.warning(code, message, segment=1)  # type: ignore[arg-type]
    (entry,) = parse(buffer.getvalue())
    assert (entry["severity"], entry["error_code"]) == ("WARNING", "UNEXPECTED_EXCEPTION")
    assert entry["message"] == "log entry could not be built"
    assert entry["context"] == {"error_type": failure}
    assert entry["cron_run_id"] == RUN_1
    assert PLANTED not in buffer.getvalue()
    assert logger.dropped == 0


# ------------------------------------------------------------------------- bind and trace


def test_bind_stamps_run_id_and_trace() -> None:
    """bind() returns a logger with the run id and trace (None keeps the current value) sharing
    the secrets; without a project no trace field, without a span id no spanId."""
    trace = TraceContext(TRACE_ID, SPAN_ID, True)
    logger, buffer = make(project="my-project")
    bound = logger.bind(run_id=RUN_1).bind(trace=trace)
    assert (bound.run_id, bound.trace, logger.trace) == (RUN_1, trace, None)
    assert bound.secrets is logger.secrets
    bound.bind().info(Code.BATCH_DONE, "m")
    (entry,) = parse(buffer.getvalue())
    assert entry["cron_run_id"] == entry["logging.googleapis.com/labels"]["cron_run_id"] == RUN_1
    assert entry["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE_ID}"
    assert entry["logging.googleapis.com/spanId"] == SPAN_ID
    assert entry["logging.googleapis.com/trace_sampled"] is True
    quiet_logger, quiet_buffer = make()
    quiet_logger.bind(trace=TraceContext(TRACE_ID, None, False)).info(Code.BATCH_DONE, "m")
    (quiet,) = parse(quiet_buffer.getvalue())
    assert "logging.googleapis.com/trace" not in quiet
    assert "logging.googleapis.com/spanId" not in quiet
    assert quiet["logging.googleapis.com/trace_sampled"] is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}, TraceContext(TRACE_ID, SPAN_ID, True)),
        ({"Traceparent": f" 00-{TRACE_ID}-{SPAN_ID}-00 "}, TraceContext(TRACE_ID, SPAN_ID, False)),
        (
            {"TRACEPARENT": f"01-{TRACE_ID}-{SPAN_ID}-03-future"},
            TraceContext(TRACE_ID, SPAN_ID, True),
        ),
        (
            {"X-Cloud-Trace-Context": f"{TRACE_ID.upper()}/12345;o=1"},
            TraceContext(TRACE_ID, f"{12345:016x}", True),
        ),
        (
            {"x-cloud-trace-context": f"{TRACE_ID}/12345"},
            TraceContext(TRACE_ID, f"{12345:016x}", False),
        ),
        ({"x-cloud-trace-context": f"{TRACE_ID};o=0"}, TraceContext(TRACE_ID, None, False)),
        ({"x-cloud-trace-context": f"{TRACE_ID}/0;o=1"}, TraceContext(TRACE_ID, None, True)),
        (
            {"traceparent": "garbage", "X-Cloud-Trace-Context": f"{TRACE_ID}/7;o=1"},
            TraceContext(TRACE_ID, f"{7:016x}", True),
        ),
        ({}, None),
        ({"traceparent": "00-abc-def-01"}, None),
        ({"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"}, None),
        ({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01-extra"}, None),
        ({"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"}, None),
        ({"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"}, None),
        ({"traceparent": f"00-{TRACE_ID.upper()}-{SPAN_ID}-01"}, None),
        ({"traceparent": 5}, None),
        ({"x-cloud-trace-context": "not-a-trace"}, None),
        ({"x-cloud-trace-context": f"{'0' * 32}/1;o=1"}, None),
        ({"x-cloud-trace-context": f"{TRACE_ID}/{2**64};o=1"}, None),
        ({"x-cloud-trace-context": f"{TRACE_ID}/1;o=x"}, None),
        ({"x-cloud-trace-context": None}, None),
    ],
)
def test_trace_from_headers(headers: dict[str, object], expected: TraceContext | None) -> None:
    """traceparent wins; X-Cloud-Trace-Context is the fallback; names are case-insensitive;
    malformed or missing headers mean no trace, never an error."""
    assert trace_from_headers(headers) == expected  # type: ignore[arg-type]


def test_trace_from_a_mapping_that_fails() -> None:
    """A mapping that cannot even list its items is no trace."""

    class Broken(dict[str, str]):
        def items(self) -> Any:
            raise RuntimeError("no items")

    assert trace_from_headers(Broken()) is None


# ------------------------------------------------------------------------- context


def test_context_goes_through_the_allow_list() -> None:
    """Each value as its key's form gives it (test_redact.py has every form); keys outside the
    allow-list dropped and counted in dropped_keys, their values nowhere."""
    logger, buffer = make()
    run_id = uuid.uuid4()
    context: dict[str, object] = {
        "run_id": run_id,
        "operation": "process_expiry_batch",
        "outcome": "kari",
        "status": "KARI NORDMANN",
        "setting": "Łukasz Żółkiewski",
        "constraint_name": CatalogName("certifications_pkey"),
        "table_name": "certifications",
        "missed_ids": [str(run_id), PLANTED],
        "http_status": "500",
        "response_body": body_shape(json.dumps({"code": "PGRST116", "message": PLANTED})),
        "hint": None,
    }
    logger.warning(Code.RUN_FENCED, "m", **context, name=PLANTED, **{PLANTED: 1})
    (entry,) = parse(buffer.getvalue())
    assert entry["context"] == {
        **{key: allowed(key, value) for key, value in context.items()},
        "dropped_keys": 2,
    }
    assert "process_expiry_batch" in RPC_SIGNATURES
    assert entry["context"]["operation"] == "process_expiry_batch"
    assert entry["context"]["constraint_name"] == "certifications_pkey"
    assert entry["context"]["response_body"]["code"] == "PGRST116"
    assert entry["context"]["missed_ids"] == [str(run_id), WITHHELD]
    withheld = {key for key, value in entry["context"].items() if value == WITHHELD}
    assert withheld == {"outcome", "status", "setting", "table_name", "http_status"}
    for text in ("Kari", "KARI", "Łukasz", "\\u0141ukasz"):
        assert text not in buffer.getvalue()


def test_long_lists_are_capped_with_the_total() -> None:
    """Lists over MAX_ITEMS keep MAX_ITEMS, with truncated and total_count (the largest)."""
    logger, buffer = make()
    ids = [str(uuid.uuid4()) for _ in range(250)]
    dates = tuple(f"2026-01-{day % 28 + 1:02d}" for day in range(MAX_ITEMS + 1))
    logger.warning(Code.MISSED_AUTO_PAUSE, "m", missed_ids=ids, details=dates)
    logger.warning(Code.MISSED_AUTO_PAUSE, "m", missed_ids=ids[:MAX_ITEMS])
    capped, whole = parse(buffer.getvalue())
    assert capped["context"]["missed_ids"] == ids[:MAX_ITEMS]
    assert capped["context"]["details"] == list(dates[:MAX_ITEMS])
    assert (capped["context"]["truncated"], capped["context"]["total_count"]) == (True, 250)
    assert whole["context"] == {"missed_ids": ids[:MAX_ITEMS]}


def test_texts_are_scrubbed_then_cut_and_a_line_stays_bounded() -> None:
    """Own text and messages are cut at MAX_STRING after the scrub (a secret at the cut is
    still found); a line with every text at its cap stays far under Cloud Logging's limit."""
    secrets = Secrets()
    secrets.register("Hunter2Secret")
    logger, buffer = make(secrets=secrets)
    long = "x" * (MAX_STRING - 5) + "Hunter2Secret"
    logger.error(
        Code.UNEXPECTED_EXCEPTION,
        long,
        exc=raised_deep(),
        **dict.fromkeys(("reason", "remediation", "hint", "details"), long),
        missed_ids=[str(uuid.uuid4()) for _ in range(500)],
    )
    (entry,) = parse(buffer.getvalue())
    assert "Hunte" not in buffer.getvalue()
    assert entry["message"] == "x" * (MAX_STRING - 5) + SECRET_MARK[:5] + TRUNCATION_MARK
    assert entry["context"]["reason"] == entry["message"]
    assert len(buffer.getvalue()) < 64_000


def test_registered_secrets_never_reach_a_line() -> None:
    """A credential registered on the logger's registry is scrubbed wherever it is: whole or by
    part, JSON- or URL-escaped, in the message, in own text, in a catalog name."""
    secrets = Secrets()
    password = 'Pa"55wörd/1'
    dsn = f"postgresql://svc:{quote(password, safe='')}@db:5432/x"
    secrets.register(dsn)
    logger, buffer = make(secrets=secrets)
    logger.error(
        Code.DB_OPERATION_FAILED,
        f"connect to {dsn} failed: {password}",
        reason=f"password {password}",
        remediation=f"?password={quote(password, safe='')}",
        constraint_name=CatalogName(password),
        exc=raised(ConnectionError(dsn)),
    )
    text = buffer.getvalue()
    (entry,) = parse(text)
    assert entry["message"] == f"connect to {SECRET_MARK} failed: {SECRET_MARK}"
    assert entry["context"]["reason"] == f"password {SECRET_MARK}"
    assert entry["context"]["remediation"] == f"?password={SECRET_MARK}"
    assert entry["context"]["constraint_name"] == SECRET_MARK
    for part in credential_parts(dsn):
        assert part not in text
        assert json.dumps(part)[1:-1] not in text


# ------------------------------------------------------------------------- streams


class FlakyStream(io.StringIO):
    """A stream whose next ``failures`` writes raise ``error``."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    def write(self, text: str) -> int:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().write(text)


@pytest.mark.parametrize(
    "error", [OSError("disk"), BrokenPipeError(), ValueError("closed"), RuntimeError("odd")]
)
def test_failing_stream_drops_and_reports(error: Exception) -> None:
    """A raising stream drops the line silently; the next good line reports the drop first."""
    stream = FlakyStream(1, error)
    logger, _ = make(stream=stream, run_id=RUN_1)
    logger.info(Code.BATCH_DONE, "lost")
    assert logger.dropped == 1
    logger.info(Code.BATCH_DONE, "kept")
    logger.info(Code.BATCH_DONE, "again")
    notice, kept, again = parse(stream.getvalue())
    assert (notice["error_code"], notice["severity"]) == ("LOG_LINES_DROPPED", "WARNING")
    assert notice["context"] == {"lines_dropped": 1}
    assert notice["message"].startswith("1 log line(s) were dropped")
    assert notice["cron_run_id"] == RUN_1
    assert LOCATION not in notice
    assert (kept["message"], again["message"]) == ("kept", "again")
    assert logger.dropped == 1


def test_drop_notice_that_fails_is_retried() -> None:
    """If the notice itself cannot be written, the count grows and is reported later."""
    stream = FlakyStream(2, OSError("still down"))
    logger, _ = make(stream=stream)
    for message in ("a", "b", "c"):
        logger.info(Code.BATCH_DONE, message)
    notice, kept = parse(stream.getvalue())
    assert notice["context"]["lines_dropped"] == logger.dropped == 2
    assert kept["message"] == "c"


def test_closed_or_missing_stream_is_survived(monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed stream, or sys.stdout set to None (no console), drops lines without raising;
    a bound logger's drops are counted on its parent."""
    stream = io.StringIO()
    stream.close()
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "m")
    logger.bind(run_id=RUN_1).info(Code.BATCH_DONE, "m")
    assert logger.dropped == 2
    to_stdout = JsonLogger(secrets=Secrets())
    monkeypatch.setattr(sys, "stdout", None)
    to_stdout.info(Code.BATCH_DONE, "m")
    assert to_stdout.dropped == 1


def test_default_stream_is_looked_up_at_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    """stream=None writes to whatever sys.stdout is at the time (capsys sees it)."""
    JsonLogger(secrets=Secrets()).info(Code.BATCH_DONE, "to stdout")
    (entry,) = parse(capsys.readouterr().out)
    assert entry["message"] == "to stdout"


def test_a_stream_that_logs_does_not_recurse() -> None:
    """A stream whose write logs again drops the inner line instead of recursing."""

    class Chatty(io.StringIO):
        logger: JsonLogger

        def write(self, text: str) -> int:
            self.logger.info(Code.BATCH_DONE, "inner")
            return super().write(text)

    stream = Chatty()
    logger, _ = make(stream=stream)
    stream.logger = logger
    logger.info(Code.BATCH_DONE, "outer")
    (entry,) = parse(stream.getvalue())
    assert entry["message"] == "outer"
    assert logger.dropped == 1


def test_a_line_waiting_too_long_for_another_threads_write_is_dropped() -> None:
    """While another thread is stuck writing, a line waits at most the write budget for the
    lock, then is dropped and counted; the stuck line goes out when the stream recovers."""
    entered, release = threading.Event(), threading.Event()

    class Stuck(io.StringIO):
        def write(self, text: str) -> int:
            if not release.is_set():
                entered.set()
                release.wait()
            return super().write(text)

    stream = Stuck()
    logger, _ = make(stream=stream)
    writer = threading.Thread(target=logger.info, args=(Code.BATCH_DONE, "stuck"))
    writer.start()
    try:
        entered.wait()
        logger.info(Code.BATCH_DONE, "late")
        assert logger.dropped == 1
    finally:
        release.set()
        writer.join()
    logger.info(Code.BATCH_DONE, "after")
    stuck, notice, after = parse(stream.getvalue())
    assert (stuck["message"], after["message"]) == ("stuck", "after")
    assert notice["context"] == {"lines_dropped": 1}


# ------------------------------------------------------------------------- pipes and sockets


def _fill(fd: int) -> int:
    """Fill a pipe until a write would block; return the bytes written."""
    os.set_blocking(fd, False)
    total = 0
    for size in (65536, 1):
        with contextlib.suppress(BlockingIOError):
            while True:
                total += os.write(fd, b"x" * size)
    os.set_blocking(fd, True)
    return total


def _drain(fd: int) -> bytes:
    """Everything readable from a pipe right now."""
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.set_blocking(fd, True)
    return b"".join(chunks)


@pytest.fixture
def pipe() -> Iterator[tuple[int, TextIO]]:
    """A real pipe: the read end's fd and the write end as a text stream."""
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w", encoding="utf-8")
    yield read_fd, stream
    with contextlib.suppress(OSError):
        stream.close()
    with contextlib.suppress(OSError):
        os.close(read_fd)


def test_stalled_pipe_drops_instead_of_blocking(pipe: tuple[int, TextIO]) -> None:
    """A pipe whose reader never reads: the call returns, the line is dropped and counted;
    once the reader catches up the next line reports the drops; nothing was half-written; a
    pipe whose reader has gone drops lines too."""
    read_fd, stream = pipe
    filled = _fill(stream.fileno())
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "stuck")
    logger.info(Code.BATCH_DONE, "still stuck")
    assert logger.dropped == 2
    assert _drain(read_fd) == b"x" * filled
    logger.info(Code.BATCH_DONE, "flowing")
    notice, line = parse(_drain(read_fd).decode())
    assert notice["context"]["lines_dropped"] == 2
    assert line["message"] == "flowing"
    gone_read, gone_write = os.pipe()
    os.close(gone_read)
    gone = os.fdopen(gone_write, "w", encoding="utf-8")
    broken, _ = make(stream=gone)
    broken.info(Code.BATCH_DONE, "nobody listens")
    assert broken.dropped == 1
    with contextlib.suppress(OSError):
        gone.close()


def test_partly_written_line_is_completed_first(pipe: tuple[int, TextIO]) -> None:
    """A line cut short by a stall is finished before the next one, so lines stay whole."""
    read_fd, stream = pipe
    filled = _fill(stream.fileno())
    os.read(read_fd, select.PIPE_BUF)  # room for one chunk
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "big", remediation="d" * 1_900, hint="h" * 1_900)
    assert logger.dropped == 0  # started: it will be finished
    logger.info(Code.BATCH_DONE, "blocked by the tail")
    assert logger.dropped == 1
    data = _drain(read_fd)
    logger.info(Code.BATCH_DONE, "after")
    data += _drain(read_fd)
    big, notice, after = parse(data[filled - select.PIPE_BUF :].decode())
    assert (big["message"], after["message"]) == ("big", "after")
    assert notice["context"] == {"lines_dropped": 1}


def test_socket_and_file_take_whole_lines(tmp_path: Path) -> None:
    """A socket stream (as a log collector might use) and a regular file take whole lines."""
    left, right = socket.socketpair()
    with left, right, left.makefile("w", encoding="utf-8") as stream:
        logger, _ = make(stream=stream)
        logger.info(Code.BATCH_DONE, "over a socket")
        logger.info(Code.BATCH_DONE, "again")
        first, second = parse(right.recv(65536).decode())
    assert (first["message"], second["message"]) == ("over a socket", "again")
    with (tmp_path / "log").open("w+", encoding="utf-8") as handle:
        make(stream=handle)[0].info(Code.BATCH_DONE, "to a file")
        handle.seek(0)
        (entry,) = parse(handle.read())
    assert entry["message"] == "to a file"


@contextlib.contextmanager
def stdout_fd(fd: int) -> Iterator[None]:
    """fd 1 is ``fd`` (the function's stdout: a pipe to the collector, a terminal) while the
    test installs process logging with fds captured; put back afterwards."""
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        yield
    finally:
        uninstall_process_logging()
        os.dup2(saved, 1)
        os.close(saved)


def test_captured_stdout_is_written_through_the_bounded_writer() -> None:
    """With fds 1 and 2 captured, a logger without a stream writes to the original fd 1 by
    bounded writes: a stalled collector drops lines instead of blocking the job."""
    read_fd, write_fd = os.pipe()
    try:
        with stdout_fd(write_fd):
            logger = JsonLogger(secrets=Secrets(), run_id=RUN_P)
            install_process_logging(logger, capture_fds=True)
            filled = _fill(write_fd)
            logger.info(Code.BATCH_DONE, "stuck")
            assert logger.dropped == 1
            assert _drain(read_fd) == b"x" * filled
            logger.info(Code.BATCH_DONE, "flowing")
        notice, line = parse(_drain(read_fd).decode())
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert notice["context"] == {"lines_dropped": 1}
    assert (line["message"], line["cron_run_id"]) == ("flowing", RUN_P)


def test_a_terminal_that_refuses_writes_costs_a_bounded_wait() -> None:
    """A non-blocking fd that cannot be polled (a terminal) and refuses every write: the line
    is retried only within the budget, then dropped."""
    main, terminal = os.openpty()
    try:
        os.set_blocking(terminal, False)
        termios.tcflow(terminal, termios.TCOOFF)  # output suspended (^S): every write refused
        with stdout_fd(terminal):
            logger = JsonLogger(secrets=Secrets())
            install_process_logging(logger, capture_fds=True)
            logger.info(Code.BATCH_DONE, "refused")
            logger.info(Code.BATCH_DONE, "refused again")
            assert logger.dropped == 2
            termios.tcflow(terminal, termios.TCOON)
    finally:
        os.close(terminal)
        os.close(main)


# ------------------------------------------------------------------------- the whole process


def install(**options: Any) -> tuple[JsonLogger, io.StringIO]:
    """install_process_logging (fds not captured) with a logger writing to a StringIO.

    Called inside the test, not from a fixture: pytest's capture puts its own sys.stdout and
    sys.stderr back between the setup and call phases.
    """
    logger, buffer = make(run_id=RUN_P, **options)
    install_process_logging(logger, capture_fds=False)
    return logger, buffer


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "ERROR"),
    ],
)
def test_library_records_become_lines_without_their_text(level: int, severity: str) -> None:
    """A library logger's record becomes a LIBRARY_LOG entry: mapped severity, the logger's
    name, where it was logged, the process logger's run id; nothing of its text or arguments."""
    _, buffer = install()
    library = logging.getLogger("httpx")
    library.setLevel(logging.DEBUG)
    try:
        library.log(level, f"HTTP Request for {PLANTED}: %s", PLANTED)
        line = line_of_caller() - 1
    finally:
        library.setLevel(logging.NOTSET)
    (entry,) = parse(buffer.getvalue())
    assert (entry["error_code"], entry["severity"]) == ("LIBRARY_LOG", severity)
    assert entry["message"].startswith("A library logged a record; its text is not logged")
    assert entry["context"]["logger"] == "httpx"
    assert entry[LOCATION] == {
        "file": HERE,
        "line": str(line),
        "function": "test_library_records_become_lines_without_their_text",
    }
    assert entry["cron_run_id"] == RUN_P
    assert PLANTED not in buffer.getvalue()


def test_library_record_with_an_exception() -> None:
    """exc_info becomes a frames-only stack trace and error_type; stack_info adds nothing; a
    record of a logger the process does not have is withheld by name."""
    _, buffer = install()
    library = logging.getLogger("psycopg.pool")
    try:
        raise ConnectionError(PLANTED)
    except ConnectionError:
        library.exception("connection lost for %s", PLANTED)
    library.warning(PLANTED, stack_info=True)
    logging.getLogger().handle(
        logging.LogRecord(PLANTED, logging.INFO, HERE, 7, PLANTED, (PLANTED,), None)
    )
    failed, located, stranger = parse(buffer.getvalue())
    assert (failed["severity"], failed["@type"]) == ("ERROR", ERROR_EVENT_TYPE)
    assert failed["stack_trace"].endswith("\nConnectionError\n")
    assert failed["context"] == {"logger": "psycopg.pool", "error_type": "ConnectionError"}
    assert "stack_trace" not in located
    assert stranger["context"] == {"logger": WITHHELD}
    assert stranger[LOCATION]["line"] == "7"
    assert PLANTED not in buffer.getvalue()


def test_library_records_below_the_loggers_min_severity_are_not_written() -> None:
    """A logger set to WARNING writes no INFO record of a library, and the WARNING one."""
    _, buffer = install(min_severity=Severity.WARNING)
    logging.getLogger("httpx").info("below")
    logging.getLogger("httpx").warning("at")
    (entry,) = parse(buffer.getvalue())
    assert (entry["severity"], entry["context"]) == ("WARNING", {"logger": "httpx"})


def test_a_structlog_wrapped_librarys_record_is_a_library_line() -> None:
    """A record a structlog-wrapped library logger made (its event dict is the library's, its
    keys anyone's text) becomes the same LIBRARY_LOG line as any record, without its text."""
    _, buffer = install()
    wrapped = structlog.wrap_logger(
        logging.getLogger("urllib3"),
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    wrapped.warning(PLANTED, name=PLANTED)
    (entry,) = parse(buffer.getvalue())
    assert (entry["severity"], entry["error_code"]) == ("WARNING", "LIBRARY_LOG")
    assert entry["context"] == {"logger": "urllib3"}
    assert PLANTED not in buffer.getvalue()


def test_a_record_the_chain_cannot_take_is_one_error_line() -> None:
    """A record the formatter fails on (a function name JSON cannot encode) becomes one ERROR
    line naming the failure's type."""
    _, buffer = install()
    record = logging.makeLogRecord(
        {"name": "urllib3", "levelno": logging.WARNING, "msg": PLANTED, "funcName": object()}
    )
    logging.getLogger("urllib3").handle(record)
    (entry,) = parse(buffer.getvalue())
    assert (entry["severity"], entry["error_code"]) == ("ERROR", "UNEXPECTED_EXCEPTION")
    assert entry["message"] == "A library record could not be logged."
    assert entry["context"]["error_type"] == "TypeError"
    assert PLANTED not in buffer.getvalue()


def test_library_handlers_are_replaced_and_restored() -> None:
    """Library loggers (and their children) lose their handlers and propagate to the root's one
    handler while installed; uninstall puts every one back as it was."""
    library = logging.getLogger("werkzeug")
    own = logging.StreamHandler(io.StringIO())
    library.addHandler(own)
    library.propagate, library.disabled = False, True
    child = logging.getLogger("google.certexpiry_test.transport")  # its parent is a placeholder
    child.disabled = True
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    try:
        _, buffer = install()
        assert (library.handlers, library.propagate, library.disabled) == ([], True, False)
        assert not child.disabled
        assert (len(root.handlers), root.level) == (1, logging.INFO)
        child.info("refreshing credentials")
        child.debug("below the root's level")
        (entry,) = parse(buffer.getvalue())
        assert entry["context"]["logger"] == "google.certexpiry_test.transport"
        uninstall_process_logging()
        assert (library.handlers, library.propagate, library.disabled) == ([own], False, True)
        assert child.disabled
        assert (root.handlers, root.level) == (root_handlers, root_level)
    finally:
        library.removeHandler(own)
        library.propagate, library.disabled, child.disabled = True, False, False


def test_install_is_idempotent_and_switches_the_logger() -> None:
    """A second install adds nothing and only switches the logger the capture writes to."""
    first, first_buffer = make()
    second, second_buffer = make()
    install_process_logging(first, capture_fds=False)
    hook, handlers = sys.excepthook, list(logging.getLogger().handlers)
    install_process_logging(second, capture_fds=False)
    assert logging.getLogger().handlers == handlers
    assert sys.excepthook is hook
    logging.getLogger("flask").warning("after switch")
    warnings.warn_explicit(PLANTED, UserWarning, HERE, 1)
    assert first_buffer.getvalue() == ""
    entries = parse(second_buffer.getvalue())
    assert [entry["context"]["logger"] for entry in entries] == ["flask", "py.warnings"]


def test_uninstall_restores_hooks_and_is_a_no_op_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """uninstall puts back the hooks and showwarning; a second call does nothing; a missing
    sys.stdout does not stop it."""
    saved = (sys.excepthook, threading.excepthook, sys.unraisablehook, warnings.showwarning)
    install()
    assert sys.excepthook is not saved[0]
    assert warnings.showwarning is not saved[3]
    monkeypatch.setattr(sys, "stdout", None)
    uninstall_process_logging()
    uninstall_process_logging()
    assert (sys.excepthook, threading.excepthook, sys.unraisablehook, warnings.showwarning) == saved


def test_exceptions_escaping_become_one_error_each() -> None:
    """sys.excepthook (the raise site as location), threading.excepthook (the thread's name,
    alive while the hook runs; SystemExit quiet) and sys.unraisablehook (__del__): one ERROR
    each with frames and type, never the message; without an exception object or a thread (as
    C code may call them), the type alone."""
    _, buffer = install()
    exc = raised(RuntimeError(PLANTED))
    sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.excepthook(ValueError, None, None)  # type: ignore[arg-type]

    def fail() -> None:
        raise LookupError(PLANTED)

    for target, name in ((fail, "worker-1"), (sys.exit, "worker-2")):
        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()
    threading.excepthook(threading.ExceptHookArgs([ValueError, ValueError(PLANTED), None, None]))

    class Finalised:
        def __del__(self) -> None:
            raise OSError(PLANTED)

    Finalised()
    gc.collect()
    escaped, bare, in_thread, no_thread, ignored = parse(buffer.getvalue())
    assert PLANTED not in buffer.getvalue()
    assert (escaped["message"], escaped["error_code"]) == (
        "An exception escaped the program.",
        "UNEXPECTED_EXCEPTION",
    )
    assert escaped["context"] == {"error_type": "RuntimeError"}
    assert escaped["stack_trace"].endswith(", in raised\nRuntimeError\n")
    innermost = traceback.extract_tb(exc.__traceback__)[-1]
    assert escaped[LOCATION] == {"file": HERE, "line": str(innermost.lineno), "function": "raised"}
    assert bare["context"] == {"error_type": "ValueError"}
    assert {"stack_trace", LOCATION} & set(bare) == set()
    assert in_thread["message"] == "An exception escaped a thread."
    assert in_thread["context"] == {"thread": "worker-1", "error_type": "LookupError"}
    assert in_thread["stack_trace"].endswith(", in fail\nLookupError\n")
    assert no_thread["context"] == {"error_type": "ValueError"}
    assert ignored["message"] == "An exception was ignored (in a finaliser or a callback)."
    assert ignored["context"] == {"error_type": "OSError"}
    assert ignored["stack_trace"].endswith(", in __del__\nOSError\n")
    assert ignored[LOCATION]["function"].endswith("Finalised.__del__")


def test_warnings_give_their_category_never_their_text() -> None:
    """A warning is a LIBRARY_LOG WARNING from py.warnings: its category as error_type and where
    it was issued; its text is not logged."""
    _, buffer = install()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(PLANTED, DeprecationWarning, stacklevel=1)
        line = line_of_caller() - 1
    (entry,) = parse(buffer.getvalue())
    assert (entry["severity"], entry["error_code"]) == ("WARNING", "LIBRARY_LOG")
    assert entry["context"] == {"logger": "py.warnings", "error_type": "DeprecationWarning"}
    assert entry[LOCATION] == {"file": HERE, "line": str(line), "function": "?"}
    assert PLANTED not in buffer.getvalue()


def test_bind_run_ties_what_the_process_logs_to_the_run() -> None:
    """Within bind_run, library records, warnings and escaping exceptions carry the run's id
    and trace; after untying, the process logger's again."""
    logger, buffer = install(project="my-project")
    run = logger.bind(run_id=RUN_1, trace=TraceContext(TRACE_ID, SPAN_ID, True))
    untie = bind_run(run)
    try:
        logging.getLogger("httpx").warning("during")
        warnings.warn_explicit(PLANTED, UserWarning, HERE, 1)
        sys.excepthook(ValueError, ValueError(PLANTED), None)
    finally:
        untie()
    logging.getLogger("httpx").warning("after")
    *during, after = parse(buffer.getvalue())
    assert [entry["cron_run_id"] for entry in during] == [RUN_1, RUN_1, RUN_1]
    traces = {entry["logging.googleapis.com/trace"] for entry in during}
    assert traces == {f"projects/my-project/traces/{TRACE_ID}"}
    assert after["cron_run_id"] == RUN_P
    assert "logging.googleapis.com/trace" not in after


def test_a_thread_without_the_run_in_its_context_gets_the_run_being_worked_on() -> None:
    """A thread's exception during bind_run (a new thread has no contextvars of its own)
    carries the run's id; after untying, the process logger's."""
    logger, buffer = install()

    def fail() -> None:
        raise LookupError(PLANTED)

    untie = bind_run(logger.bind(run_id=RUN_1))
    try:
        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
    finally:
        untie()
    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    during, after = parse(buffer.getvalue())
    assert (during["cron_run_id"], after["cron_run_id"]) == (RUN_1, RUN_P)


def test_bytes_on_fds_1_and_2_become_lines_without_their_text() -> None:
    """With fds captured, every line written below Python's streams is one entry naming only
    the stream; a traceback is one ERROR with its exception's type if the process has it."""
    logger, buffer = make(run_id=RUN_P)
    install_process_logging(logger, capture_fds=True)
    os.write(1, f"{PLANTED} on stdout\n".encode())
    os.write(
        2,
        (
            "Traceback (most recent call last):\n"
            f'  File "<{PLANTED}>", line 1, in <module>\n'
            f"\t{PLANTED}()\n"
            f"json.decoder.JSONDecodeError: {PLANTED}\n"
            "Traceback (most recent call last):\n"
            f"{PLANTED}: not a class\n"
            "\n"
            f"{PLANTED} on stderr\n"
        ).encode(),
    )
    uninstall_process_logging()  # hands on what is left
    entries = parse(buffer.getvalue())
    assert PLANTED not in buffer.getvalue()
    out = [entry for entry in entries if entry["context"]["logger"] == "stdout"]
    err = [entry for entry in entries if entry["context"]["logger"] == "stderr"]
    assert [(entry["severity"], entry["error_code"]) for entry in out] == [("INFO", "LIBRARY_LOG")]
    assert out[0]["message"].startswith("A line was written to stdout outside the logger;")
    assert [(entry["severity"], entry["context"].get("error_type")) for entry in err] == [
        ("ERROR", "JSONDecodeError"),
        ("ERROR", WITHHELD),
        ("WARNING", None),
    ]
    assert err[0]["message"].startswith("A traceback was written to stderr")
    assert {entry["cron_run_id"] for entry in entries} == {RUN_P}
    assert len(entries) == 4


def test_the_process_logger_writes_past_its_own_capture(capfd: pytest.CaptureFixture[str]) -> None:
    """A logger without a stream writes its lines to the original fd 1, not into the capture;
    what others write to fds 1 and 2 arrives there as JSON lines too; nothing on fd 2."""
    logger = JsonLogger(secrets=Secrets(), run_id=RUN_P)
    install_process_logging(logger, capture_fds=True)
    logger.info(Code.BATCH_DONE, "direct")
    os.write(1, f"{PLANTED}\n".encode())
    os.write(2, f"{PLANTED}\n".encode())
    uninstall_process_logging()
    captured = capfd.readouterr()
    assert captured.err == ""
    direct, *others = parse(captured.out)
    assert direct["message"] == "direct"
    assert sorted(entry["context"]["logger"] for entry in others) == ["stderr", "stdout"]
    assert PLANTED not in captured.out


# ------------------------------------------------------------------------- properties

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZæøåÆØÅłŁżŻóÓöÖäÄéÉ"
_NAMES = [PLANTED, "kari nordmann", "KARI", "NORDMANN, Kari", "Åse", "Łukasz Żółkiewski", "O'Brien"]
planted_texts = st.one_of(
    st.sampled_from(_NAMES), st.text(alphabet=_LETTERS + " '-,", min_size=3, max_size=24)
).filter(lambda text: any(c not in "0123456789abcdefABCDEF-:. " for c in text))


def _encoded(text: str) -> str:
    """``text`` as it would appear inside a line (JSON, ASCII-escaped)."""
    return json.dumps(text, ensure_ascii=True)[1:-1]


def _wrapped(planted: str) -> st.SearchStrategy[object]:
    """The planted text as a context value might carry it."""
    body = body_shape(json.dumps({"message": planted, "code": planted, planted: 1}))
    return st.sampled_from(
        [
            planted,
            f"x {planted} y",
            [planted],
            (planted, 1),
            {planted: planted},
            planted.encode(),
            CatalogName(planted),
            ValueError(planted),
            body,
        ]
    )


def _exception(kind: str, text: str) -> BaseException:
    """An exception of ``kind`` carrying ``text`` in its message, notes, arguments or source,
    raised (so that it has frames)."""
    made: dict[str, Callable[[], BaseException]] = {
        "group": lambda: ExceptionGroup(text, [ValueError(text), KeyError(text)]),
        "syntax": lambda: SyntaxError(text, (text, 1, 1, text)),
        "os": lambda: OSError(2, text, text),
        "unprintable": lambda: UnprintableError(text),
        "chained": lambda: RuntimeError(text),
    }
    exc = made[kind]()
    exc.add_note(text)
    if kind == "chained":
        exc.__cause__ = raised(LookupError(text))
    return raised(exc)


@st.composite
def plantings(draw: st.DrawFn) -> tuple[str, dict[str, object], str]:
    """A planted text, a context holding it under random keys, a kind of exception."""
    planted = draw(planted_texts)
    keys = draw(st.lists(st.sampled_from(sorted(CONTEXT_FORMS)), max_size=6, unique=True))
    context = {key: draw(_wrapped(planted)) for key in keys}
    context[planted] = planted  # a key outside the allow-list
    kind = draw(st.sampled_from(["group", "syntax", "os", "unprintable", "chained"]))
    return planted, context, kind


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(plantings())
def test_planted_text_appears_only_where_its_keys_form_allows_it(
    sample: tuple[str, dict[str, object], str],
) -> None:
    """Arbitrary planted text in any context value, in an exception's message, notes, arguments
    or source never appears in the line unless the key's form allows that exact value; every
    line is one JSON object matching the schema."""
    planted, context, kind = sample
    assume(planted not in CONTEXT_FORMS)
    reference, reference_buffer = make(run_id=RUN_1)
    reference.error(Code.UNEXPECTED_EXCEPTION, "A fixed message.", exc=_exception(kind, ""))
    assume(_encoded(planted) not in reference_buffer.getvalue() + WITHHELD + "dropped_keys")
    logger, buffer = make(run_id=RUN_1)
    exc = _exception(kind, planted)
    logger.error(Code.UNEXPECTED_EXCEPTION, "A fixed message.", exc=exc, **context)
    (entry,) = parse(buffer.getvalue())
    forms = {key: allowed(key, value) for key, value in context.items() if key in CONTEXT_FORMS}
    permitted = _encoded(planted) in json.dumps(forms, ensure_ascii=True)
    assert (_encoded(planted) in buffer.getvalue()) is permitted
    for key, value in forms.items():
        assert entry["context"][key] == json.loads(json.dumps(value))


credentials = st.one_of(
    registered_secrets,
    jwts,
    registered_secrets.map(lambda pw: f"postgresql://svc:{quote(pw, safe='')}@db:5432/x"),
    registered_secrets.map(lambda pw: f"host=db user=svc password={pw}"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=16, max_size=40).map(
        lambda key: f"sb_secret_{key}"
    ),
)


@settings(max_examples=200)
@given(credentials, st.sampled_from(["message", "own text", "catalog", "exception"]))
def test_registered_credentials_never_appear_in_any_form(credential: str, where: str) -> None:
    """Every part of a registered credential, planted anywhere raw, JSON- or URL-escaped, never
    appears in the line."""
    parts = [part for part in credential_parts(credential) if len(part) >= MIN_SECRET_LENGTH]
    assume(all(_encoded(part) not in SECRET_MARK for part in parts))
    # A part that is a word of the line's own format (a key such as "cron_run_id") is no leak:
    # only values are scrubbed.
    reference, skeleton = make()
    reference.error(Code.BATCH_DONE, "m", exc=raised(ValueError("x")), table_name=CatalogName("t"))
    assume(all(_encoded(part) not in skeleton.getvalue() for part in parts))
    secrets = Secrets()
    secrets.register(credential)
    logger, buffer = make(secrets=secrets)
    text = " | ".join(
        form for part in parts for form in (part, json.dumps(part)[1:-1], quote(part, safe=""))
    )
    emit: dict[str, Callable[[], None]] = {
        "message": lambda: logger.info(Code.BATCH_DONE, text),
        "own text": lambda: logger.info(Code.BATCH_DONE, "m", reason=text, hint=text),
        "catalog": lambda: logger.info(Code.BATCH_DONE, "m", table_name=CatalogName(text)),
        "exception": lambda: logger.error(Code.BATCH_DONE, "m", exc=raised(ValueError(text))),
    }
    emit[where]()
    line = buffer.getvalue()
    parse(line)
    for part in parts:
        assert _encoded(part) not in line
        assert quote(part, safe="") not in line
