"""The JSON logger: entry fields, trace headers, caps, faults, process-wide routing, properties."""

from __future__ import annotations

import contextlib
import enum
import importlib
import io
import json
import logging
import math
import os
import select
import socket
import sys
import tempfile
import threading
import traceback
import types
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certexpiry import log_capture, log_clean, log_entry, log_line, log_stream, log_writer
from certexpiry.codes import CATALOGUE, Code, Severity
from certexpiry.log import (
    ALLOWED_CONTEXT_KEYS,
    ERROR_EVENT_TYPE,
    MAX_ITEMS,
    MAX_LINE,
    MAX_STACK,
    MAX_STRING,
    TRUNCATION_MARK,
    JsonLogger,
    TraceContext,
    install_process_logging,
    trace_from_headers,
    uninstall_process_logging,
)
from certexpiry.sanitize import SECRET_MARK, Sanitizer
from tests.strategies import (
    leaked,
    noise,
    pii,
    registered_secrets,
    secret_snippets,
    separators,
    texts_with_sensitive_parts,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "log-entry.schema.json").read_text(encoding="utf-8"))
# Loaded untyped: the project has no jsonschema stubs (types-jsonschema is not installed).
VALIDATOR = importlib.import_module("jsonschema").Draft202012Validator(SCHEMA)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
HERE = __file__

RUN_1 = "11111111-1111-4111-8111-111111111111"
RUN_2 = "22222222-2222-4222-8222-222222222222"
RUN_P = "33333333-3333-4333-8333-333333333333"
RUN_FF = "44444444-4444-4444-8444-444444444444"
RUN_H = "55555555-5555-4555-8555-555555555555"
RUN_R = "66666666-6666-4666-8666-666666666666"


def parse(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object, each checked against the schema."""
    assert text == "" or text.endswith("\n"), "every line ends with a newline"
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        VALIDATOR.validate(entry)
        entries.append(entry)
    return entries


def make(
    stream: TextIO | None = None, sanitizer: Sanitizer | None = None, **options: Any
) -> tuple[JsonLogger, io.StringIO]:
    """A logger writing to a fresh StringIO (unless a stream is given), and that StringIO."""
    buffer = io.StringIO()
    logger = JsonLogger(
        sanitizer=sanitizer or Sanitizer(),
        service="certexpiry",
        version="1.2.3",
        stream=stream if stream is not None else buffer,
        **options,
    )
    return logger, buffer


@pytest.fixture(autouse=True)
def _no_leftover_installation() -> Iterator[None]:
    """Every test ends with the process routing undone, even when it fails."""
    yield
    uninstall_process_logging()


# ------------------------------------------------------------------------- fields


def test_info_line_has_every_field() -> None:
    """An INFO line carries timestamp, time, severity, message, run id, code, context, labels."""
    logger, buffer = make(run_id=RUN_1)
    before = datetime.now(UTC)
    logger.info(Code.RUN_STARTED, "Nightly run started.", segment=0)
    line = sys._getframe().f_lineno - 1
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
    assert entry["logging.googleapis.com/sourceLocation"] == {
        "file": HERE,
        "line": str(line),
        "function": "test_info_line_has_every_field",
    }
    assert "stack_trace" not in entry
    assert "@type" not in entry
    assert "serviceContext" not in entry
    assert buffer.getvalue().count("\n") == 1


def test_a_logger_without_a_run_stamps_a_uuid_of_its_own() -> None:
    """Without a run id a logger stamps a generated UUID, in the field and the label alike,
    and keeps it on every line and every binding that sets no run id."""
    logger, buffer = make()
    logger.info(Code.INVALID_SETTINGS, "x")
    logger.bind(trace=None).info(Code.INVALID_SETTINGS, "y")
    first, second = parse(buffer.getvalue())
    assert uuid.UUID(first["cron_run_id"]).version == 4
    assert first["logging.googleapis.com/labels"] == {
        "cron_run_id": first["cron_run_id"],
        "function": "certexpiry",
    }
    assert second["cron_run_id"] == first["cron_run_id"] == logger.run_id
    assert make()[0].run_id != logger.run_id


@pytest.mark.parametrize(
    ("method", "severity"),
    [("debug", "DEBUG"), ("info", "INFO"), ("warning", "WARNING"), ("error", "ERROR")],
)
def test_each_severity(method: str, severity: str) -> None:
    """Each method writes its Cloud Logging severity name (WARNING, not WARN)."""
    logger, buffer = make()
    getattr(logger, method)(Code.BATCH_DONE, "m")
    (entry,) = parse(buffer.getvalue())
    assert entry["severity"] == severity


def test_log_uses_the_catalogue_severity_by_default() -> None:
    """log() takes the severity from the catalogue unless one is given."""
    logger, buffer = make()
    logger.log(Code.RUN_FENCED, "x")
    logger.log(Code.RUN_FENCED, "x", severity=Severity.ERROR)
    first, second = parse(buffer.getvalue())
    assert first["severity"] == CATALOGUE[Code.RUN_FENCED].severity.value == "WARNING"
    assert second["severity"] == "ERROR"


def test_min_severity_drops_lower_lines() -> None:
    """A logger created with min_severity writes nothing below it."""
    logger, buffer = make(min_severity=Severity.WARNING)
    logger.debug(Code.BATCH_DONE, "d")
    logger.info(Code.BATCH_DONE, "i")
    logger.warning(Code.BATCH_DONE, "w")
    assert [entry["message"] for entry in parse(buffer.getvalue())] == ["w"]


def test_error_line_is_an_error_reporting_event() -> None:
    """ERROR lines carry @type and serviceContext, and reportLocation without a stack trace."""
    logger, buffer = make()
    logger.error(Code.DB_OPERATION_FAILED, "failed", sqlstate="23505")
    (entry,) = parse(buffer.getvalue())
    assert entry["@type"] == ERROR_EVENT_TYPE
    assert entry["serviceContext"] == {"service": "certexpiry", "version": "1.2.3"}
    location = entry["logging.googleapis.com/sourceLocation"]
    assert entry["context"]["reportLocation"] == {
        "filePath": location["file"],
        "lineNumber": int(location["line"]),
        "functionName": location["function"],
    }
    assert entry["context"]["sqlstate"] == "23505"


def test_exception_becomes_a_python_stack_trace() -> None:
    """exc= adds stack_trace exactly as traceback.format_exc() prints it, and error_type."""
    logger, buffer = make()
    try:
        raise ValueError("boom")
    except ValueError as exc:
        expected = traceback.format_exc()
        logger.error(Code.UNEXPECTED_EXCEPTION, "Unexpected.", exc=exc)
    (entry,) = parse(buffer.getvalue())
    stack = entry["stack_trace"]
    assert stack == expected
    assert stack.startswith("Traceback (most recent call last):\n")
    assert stack.endswith("ValueError: boom\n")
    assert entry["context"]["error_type"] == "ValueError"
    assert "reportLocation" not in entry["context"]


def test_exception_text_is_sanitised() -> None:
    """Secrets and PII quoted by an exception are redacted from its stack trace."""
    sanitizer = Sanitizer()
    sanitizer.register_secret("service-role-key-1")
    logger, buffer = make(sanitizer=sanitizer)
    try:
        raise RuntimeError("service-role-key-1 rejected for ola@example.no 01019012345")
    except RuntimeError as exc:
        logger.error(Code.SUPABASE_RPC_FAILED, "failed", exc=exc, error_type="Custom")
    (entry,) = parse(buffer.getvalue())
    assert entry["stack_trace"].endswith(
        f"RuntimeError: {SECRET_MARK} rejected for [REDACTED:email] [REDACTED:national_id]\n"
    )
    assert entry["context"]["error_type"] == "Custom"


def test_exception_never_raised_has_no_frames() -> None:
    """An exception object that was never raised is logged as its one-line form."""
    logger, buffer = make()
    logger.error(Code.UNEXPECTED_EXCEPTION, "x", exc=KeyError("k"))
    (entry,) = parse(buffer.getvalue())
    assert entry["stack_trace"] == "KeyError: '?'\n"


def test_unformattable_exception_keeps_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the traceback cannot be formatted, the stack trace still names the exception."""

    def broken(*_args: object) -> list[str]:
        raise RuntimeError("no traceback today")

    monkeypatch.setattr(log_entry, "templated_traceback", broken)
    logger, buffer = make()
    logger.error(Code.UNEXPECTED_EXCEPTION, "x", exc=ValueError("v"))
    (entry,) = parse(buffer.getvalue())
    assert entry["stack_trace"] == "ValueError: v\n"


def test_plain_string_codes_are_accepted_and_unknown_ones_mapped() -> None:
    """A code given as its string value works; an unknown one becomes UNEXPECTED_EXCEPTION."""
    logger, buffer = make()
    logger.info("RUN_STARTED", "a")  # type: ignore[arg-type]
    logger.info("NO_SUCH_CODE", "b")  # type: ignore[arg-type]
    first, second = parse(buffer.getvalue())
    assert first["error_code"] == "RUN_STARTED"
    assert second["error_code"] == "UNEXPECTED_EXCEPTION"


def test_non_string_message_is_stringified() -> None:
    """A message that is not a string is written as its str()."""
    logger, buffer = make()
    logger.info(Code.BATCH_DONE, 42)  # type: ignore[arg-type]
    (entry,) = parse(buffer.getvalue())
    assert entry["message"] == "42"


def test_a_failure_while_building_gives_a_minimal_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while building an entry never raises: a minimal UNEXPECTED_EXCEPTION line is written."""
    sanitizer = Sanitizer()
    logger, buffer = make(sanitizer=sanitizer, run_id=RUN_R)

    def broken(text: str) -> str:
        raise RuntimeError(text)

    monkeypatch.setattr(sanitizer, "clean", broken)
    logger.warning(Code.BATCH_DONE, "ola@example.no")
    (entry,) = parse(buffer.getvalue())
    assert entry["severity"] == "WARNING"
    assert entry["error_code"] == "UNEXPECTED_EXCEPTION"
    assert entry["message"] == "log entry could not be built"
    assert entry["context"] == {"error_type": "RuntimeError"}
    assert "ola@" not in buffer.getvalue()


def test_timestamp_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached seconds part is refreshed when the second changes."""
    times = iter([1_700_000_000_123_456_789, 1_700_000_000_999_999_000, 1_700_000_001_000_001_000])
    monkeypatch.setattr(log_line, "_time_ns", lambda: next(times))
    logger, _ = make()
    assert logger._shared.timestamp() == "2023-11-14T22:13:20.123456Z"
    assert logger._shared.timestamp() == "2023-11-14T22:13:20.999999Z"
    assert logger._shared.timestamp() == "2023-11-14T22:13:21.000001Z"


def test_source_location_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call-site cache empties itself when full."""
    monkeypatch.setattr(log_entry, "_LOCATION_CACHE_MAX", 1)
    logger, buffer = make()
    logger.info(Code.BATCH_DONE, "a")
    logger.info(Code.BATCH_DONE, "b")
    assert len(log_entry._WHERE_CACHE) <= 1
    assert len(parse(buffer.getvalue())) == 2


# ------------------------------------------------------------------------- bind and trace


def test_bind_stamps_run_id_and_trace() -> None:
    """bind() returns a logger with the run id and trace; None keeps the current value."""
    trace = TraceContext(TRACE_ID, SPAN_ID, True)
    logger, buffer = make(project="my-project")
    bound = logger.bind(run_id=RUN_2).bind(trace=trace)
    assert bound.run_id == RUN_2
    assert bound.trace == trace
    assert bound.sanitizer is logger.sanitizer
    again = bound.bind()
    again.info(Code.BATCH_DONE, "m")
    (entry,) = parse(buffer.getvalue())
    assert entry["cron_run_id"] == RUN_2
    assert entry["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE_ID}"
    assert entry["logging.googleapis.com/spanId"] == SPAN_ID
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_trace_without_project_or_span() -> None:
    """Without a project there is no trace field; without a span id, no spanId."""
    logger, buffer = make()
    logger.bind(trace=TraceContext(TRACE_ID, None, False)).info(Code.BATCH_DONE, "m")
    (entry,) = parse(buffer.getvalue())
    assert "logging.googleapis.com/trace" not in entry
    assert "logging.googleapis.com/spanId" not in entry
    assert entry["logging.googleapis.com/trace_sampled"] is False


def test_bound_loggers_share_the_drop_counter() -> None:
    """A line dropped by a bound logger is counted on the parent too."""
    stream = io.StringIO()
    stream.close()
    logger, _ = make(stream=stream)
    logger.bind(run_id=RUN_R).info(Code.BATCH_DONE, "m")
    assert logger.dropped == 1


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
    ],
)
def test_trace_from_headers(headers: dict[str, str], expected: TraceContext) -> None:
    """traceparent wins; X-Cloud-Trace-Context is the fallback; names are case-insensitive."""
    assert trace_from_headers(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-abc-def-01"},
        {"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"},
        {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01-extra"},
        {"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"},
        {"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE_ID.upper()}-{SPAN_ID}-01"},
        {"x-cloud-trace-context": "not-a-trace"},
        {"x-cloud-trace-context": f"{'0' * 32}/1;o=1"},
        {"x-cloud-trace-context": f"{TRACE_ID}/{2**64};o=1"},
        {"x-cloud-trace-context": f"{TRACE_ID}/1;o=x"},
    ],
)
def test_bad_trace_headers_give_none(headers: dict[str, str]) -> None:
    """Malformed or missing headers mean no trace, never an error."""
    assert trace_from_headers(headers) is None


def test_trace_from_odd_mappings() -> None:
    """Non-string values and mappings that fail to iterate are treated as no trace."""

    class Broken(dict[str, str]):
        def items(self) -> Any:
            raise RuntimeError("no items")

    assert trace_from_headers({"traceparent": 5}) is None  # type: ignore[dict-item]
    assert trace_from_headers({"x-cloud-trace-context": None}) is None  # type: ignore[dict-item]
    assert trace_from_headers(Broken()) is None


# ------------------------------------------------------------------------- context


def test_context_keys_outside_the_allow_list_are_dropped() -> None:
    """Unknown keys are dropped and counted; allowed keys are kept."""
    logger, buffer = make()
    logger.info(Code.BATCH_DONE, "m", certification_id="c1", name="Ola", email="x@y.no")
    (entry,) = parse(buffer.getvalue())
    assert entry["context"] == {"certification_id": "c1", "dropped_keys": 2}
    assert "Ola" not in buffer.getvalue()


def test_docs_list_the_allow_list() -> None:
    """docs/logging.md names every context key the logger keeps."""
    text = (ROOT / "docs" / "logging.md").read_text(encoding="utf-8")
    assert [key for key in sorted(ALLOWED_CONTEXT_KEYS) if f"`{key}`" not in text] == []


def test_schema_allow_list_matches_the_code() -> None:
    """The schema's context keys are the logger's allow-list plus dropped_keys."""
    names = SCHEMA["$defs"]["context"]["propertyNames"]["enum"]
    assert set(names) == ALLOWED_CONTEXT_KEYS | {"dropped_keys", "reportLocation"}
    assert SCHEMA["properties"]["message"]["maxLength"] == MAX_STRING + len(TRUNCATION_MARK)


class Colour(enum.IntEnum):
    RED = 1


class Kind(enum.StrEnum):
    NIGHTLY = "nightly"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class BadException(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_context_values_are_cleaned() -> None:
    """Every kind of value comes out JSON-safe and sanitised."""
    logger, buffer = make()
    cycle: list[object] = []
    cycle.append(cycle)
    logger.info(
        Code.BATCH_DONE,
        "m",
        details="write to ola@example.no",
        missed_ids=("a", "b"),
        remediation={"email": "ola@example.no", 7: b"fnr 01019012345", "set": {1}},
        mentors=Colour.RED,
        status=Kind.NIGHTLY,
        elapsed_ms=12.5,
        duration_ms=float("nan"),
        remaining_ms=float("inf"),
        truncated=False,
        hint=None,
        peer_mentor_id=12345678901,
        attempt=2**70,
        today=date(2026, 11, 28),
        cursor=uuid.UUID(int=1),
        budget_s=Decimal("1.5"),
        reason=Unprintable(),
        error_type=BadException(),
        response_body=bytearray(b"\xffok"),
        outcome=ValueError("bad ola@example.no"),
        segments=cycle,
    )
    (entry,) = parse(buffer.getvalue())
    context = entry["context"]
    assert context["details"] == "write to [REDACTED:email]"
    assert context["missed_ids"] == ["a", "b"]
    assert context["remediation"] == {
        "email": "[REDACTED:email]",
        "7": "fnr [REDACTED:national_id]",
        "set": [1],
    }
    assert context["mentors"] == 1
    assert context["status"] == "nightly"
    assert context["elapsed_ms"] == 12.5
    assert context["duration_ms"] == "nan"
    assert context["remaining_ms"] == "inf"
    assert context["truncated"] is False
    assert context["hint"] is None
    assert context["peer_mentor_id"] == "[REDACTED:national_id]"
    assert context["attempt"] == str(2**70)
    assert context["today"] == "2026-11-28"
    assert context["cursor"] == "00000000-0000-0000-0000-000000000001"
    assert context["budget_s"] == "1.5"
    assert context["reason"] == "<unprintable Unprintable>"
    assert context["error_type"] == "BadException: <exception str() failed>"
    assert context["response_body"] == "\ufffdok"
    assert context["outcome"] == "ValueError: bad [REDACTED:email]"
    assert context["segments"] == [[[[[["[max depth]"]]]]]]


def test_exception_without_text_is_its_type() -> None:
    """An exception value with an empty message is written as its type name."""
    logger, buffer = make()
    logger.info(Code.BATCH_DONE, "m", outcome=KeyError())
    (entry,) = parse(buffer.getvalue())
    assert entry["context"]["outcome"] == "KeyError"


def test_long_lists_and_mappings_are_capped() -> None:
    """Lists and mappings over 100 items keep 100, with truncated and total_count."""
    logger, buffer = make()
    logger.warning(
        Code.MISSED_AUTO_PAUSE,
        "m",
        missed_ids=[str(n) for n in range(250)],
        remediation={str(n): n for n in range(150)},
    )
    (entry,) = parse(buffer.getvalue())
    context = entry["context"]
    assert context["missed_ids"] == [str(n) for n in range(MAX_ITEMS)]
    assert len(context["remediation"]) == MAX_ITEMS
    assert context["truncated"] is True
    assert context["total_count"] == 250


def test_long_strings_are_cut() -> None:
    """Messages and context strings over 2,000 characters are cut and marked."""
    logger, buffer = make()
    logger.info(Code.BATCH_DONE, "m" * 5000, response_body="b" * 3000, details={"x": "d" * 2500})
    (entry,) = parse(buffer.getvalue())
    assert entry["message"] == "m" * MAX_STRING + TRUNCATION_MARK
    assert entry["context"]["response_body"] == "b" * MAX_STRING + TRUNCATION_MARK
    assert entry["context"]["details"]["x"] == "d" * MAX_STRING + TRUNCATION_MARK
    assert entry["context"]["truncated"] is True
    assert "total_count" not in entry["context"]


def test_huge_line_keeps_only_ids() -> None:
    """A line over the hard cap drops its context to identifying keys and is marked."""
    logger, buffer = make()
    logger.info(
        Code.RUN_FENCED,
        "m",
        certification_id="c" * 150,
        http_status=500,
        missed_ids=["x" * 1900 for _ in range(60)],
    )
    text = buffer.getvalue()
    (entry,) = parse(text)
    assert len(text) < MAX_LINE
    assert entry["context"] == {
        "certification_id": "c" * 100,
        "http_status": 500,
        "truncated": True,
    }


def test_huge_line_with_a_huge_stack_is_cut_further() -> None:
    """If ids alone do not fit, message and stack trace are cut too; the line stays valid."""
    logger, buffer = make()
    try:
        raise ValueError("€" * 100_000)
    except ValueError as exc:
        logger.error(Code.UNEXPECTED_EXCEPTION, "€" * 2000, exc=exc, missed_ids=["€" * 1900] * 90)
    text = buffer.getvalue()
    (entry,) = parse(text)
    assert len(text) < MAX_LINE
    assert entry["message"].endswith(TRUNCATION_MARK)
    assert len(entry["message"]) < 300
    assert entry["stack_trace"].startswith("Traceback (most recent call last):")
    assert "characters omitted" in entry["stack_trace"]


def test_long_stack_traces_keep_head_and_tail() -> None:
    """A stack trace over the cap keeps its first frames and its last lines."""
    logger, buffer = make()
    try:
        raise ValueError("\n".join(f"detail line {n}" for n in range(5000)))
    except ValueError as exc:
        logger.error(Code.UNEXPECTED_EXCEPTION, "long", exc=exc)
    (entry,) = parse(buffer.getvalue())
    stack = entry["stack_trace"]
    assert stack.startswith("Traceback (most recent call last):\n")
    assert stack.endswith("\ndetail line 4999\n")  # "line N" is a location: kept
    assert "characters omitted" in stack
    assert len(stack) <= MAX_STACK + 64


def test_enormous_stack_trace_is_cut_before_sanitising(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stack trace beyond the pre-cut limit is trimmed before the regexes see it."""
    monkeypatch.setattr(log_clean, "_PRE_CUT_STACK", 20_000)
    logger, buffer = make()
    logger._log(
        Severity.ERROR, Code.UNEXPECTED_EXCEPTION, "m", {}, None, None, stack="  x\n" * 10_000
    )
    (entry,) = parse(buffer.getvalue())
    assert "characters omitted" in entry["stack_trace"]


# ------------------------------------------------------------------------- faults


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
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "lost")
    assert logger.dropped == 1
    logger.info(Code.BATCH_DONE, "kept")
    notice, kept = parse(stream.getvalue())
    assert notice["error_code"] == "LOG_LINES_DROPPED"
    assert notice["severity"] == "WARNING"
    assert notice["context"] == {"lines_dropped": 1}
    assert kept["message"] == "kept"
    logger.info(Code.BATCH_DONE, "again")
    assert [entry["message"] for entry in parse(stream.getvalue())][-1] == "again"
    assert logger.dropped == 1


def test_stream_failing_after_working() -> None:
    """A stream that fails later (the fast path) also drops and counts."""
    stream = FlakyStream(0, OSError("later"))
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "one")
    stream.failures = 1
    logger.info(Code.BATCH_DONE, "two")
    logger.info(Code.BATCH_DONE, "three")
    assert parse(stream.getvalue())[0]["message"] == "one"
    assert logger.dropped == 1


def test_drop_notice_that_fails_is_retried() -> None:
    """If the notice itself cannot be written, the count grows and is reported later."""
    stream = FlakyStream(2, OSError("still down"))
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "a")
    logger.info(Code.BATCH_DONE, "b")
    logger.info(Code.BATCH_DONE, "c")
    notice, kept = parse(stream.getvalue())
    assert notice["context"]["lines_dropped"] == 2
    assert kept["message"] == "c"


def test_closed_stream_is_survived() -> None:
    """A closed stream drops lines; the work around it completes."""
    stream = io.StringIO()
    stream.close()
    logger, _ = make(stream=stream)
    for n in range(3):
        logger.info(Code.BATCH_DONE, f"line {n}")
    assert logger.dropped == 3


def test_missing_stdout_is_survived(monkeypatch: pytest.MonkeyPatch) -> None:
    """With sys.stdout set to None (no console), lines are dropped, not raised."""
    logger = JsonLogger(sanitizer=Sanitizer())
    monkeypatch.setattr(sys, "stdout", None)
    logger.info(Code.BATCH_DONE, "m")
    assert logger.dropped == 1


def test_default_stream_is_looked_up_at_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    """stream=None writes to whatever sys.stdout is at the time (capsys sees it)."""
    logger = JsonLogger(sanitizer=Sanitizer())
    logger.info(Code.BATCH_DONE, "to stdout")
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


def test_lock_held_too_long_drops_the_line() -> None:
    """If another thread holds the write lock beyond the budget, the line is dropped."""
    logger, buffer = make()
    logger._shared.lock.acquire()
    try:
        # Returns at all (the lock is held by this very thread): the wait is bounded.
        logger.info(Code.BATCH_DONE, "late")
    finally:
        logger._shared.lock.release()
    assert logger.dropped == 1
    assert buffer.getvalue() == ""


def test_writer_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream-to-writer cache empties itself when full."""
    monkeypatch.setattr(log_writer, "_FD_WRITERS_MAX", 2)
    for _ in range(4):
        logger, buffer = make()
        logger.info(Code.BATCH_DONE, "m")
        assert len(parse(buffer.getvalue())) == 1
    assert len(log_writer._FD_WRITERS) <= 2


def test_regular_file_is_written_normally() -> None:
    """A real file (not a pipe) is written through the stream itself."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as handle:
        logger, _ = make(stream=handle)
        logger.info(Code.BATCH_DONE, "to a file")
        handle.seek(0)
        (entry,) = parse(handle.read())
    assert entry["message"] == "to a file"
    assert log_writer._fd_writer(handle) is None


def _fill(fd: int) -> int:
    """Fill a pipe until a write would block; return the bytes written."""
    os.set_blocking(fd, False)
    total = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            total += os.write(fd, b"x" * 65536)
    with contextlib.suppress(BlockingIOError):
        while True:
            total += os.write(fd, b"x")
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


class RecordingPoller:
    """Wraps a writer's poll object and records the timeout (ms) of every poll() call."""

    def __init__(self, poller: Any) -> None:
        self.poller = poller
        self.waits: list[int] = []

    def poll(self, timeout: int) -> list[tuple[int, int]]:
        """Record ``timeout``, then poll for real."""
        self.waits.append(timeout)
        result: list[tuple[int, int]] = self.poller.poll(timeout)
        return result


def test_stalled_pipe_does_not_block(
    pipe: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe whose reader never reads costs one bounded wait, then nothing; drops are reported."""
    read_fd, stream = pipe
    filled = _fill(stream.fileno())
    writer = log_writer._fd_writer(stream)
    assert writer is not None
    poller = RecordingPoller(writer._poller)
    monkeypatch.setattr(writer, "_poller", poller)
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "stuck")
    budget_ms = math.ceil(log_writer.WRITE_BUDGET_S * 1000)
    assert len(poller.waits) == 1
    assert poller.waits[0] <= budget_ms
    assert writer.stalled
    logger.info(Code.BATCH_DONE, "still stuck")
    assert poller.waits[1:] == [0]  # stalled: a single attempt that does not wait at all
    assert logger.dropped == 2
    assert len(_drain(read_fd)) == filled
    logger.info(Code.BATCH_DONE, "flowing")
    notice, line = parse(_drain(read_fd).decode())
    assert notice["context"]["lines_dropped"] == 2
    assert line["message"] == "flowing"


def test_partly_written_line_is_completed_first(pipe: tuple[int, TextIO]) -> None:
    """A line cut short by a stall is finished before the next one, so lines stay whole."""
    read_fd, stream = pipe
    filled = _fill(stream.fileno())
    os.read(read_fd, select.PIPE_BUF)  # room for one chunk
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "big", details=["d" * 1900 for _ in range(4)])
    assert logger.dropped == 0
    logger.info(Code.BATCH_DONE, "blocked by the tail")  # the tail does not fit yet
    data = _drain(read_fd)
    logger.info(Code.BATCH_DONE, "after")
    data += _drain(read_fd)
    entries = parse(data[filled - select.PIPE_BUF :].decode())
    assert [entry["message"] for entry in entries][::2] == ["big", "after"]
    assert entries[1]["error_code"] == "LOG_LINES_DROPPED"
    assert entries[1]["context"] == {"lines_dropped": 1}
    assert logger.dropped == 1


def test_broken_pipe_drops(pipe: tuple[int, TextIO]) -> None:
    """A pipe whose reader has gone drops lines instead of raising."""
    read_fd, stream = pipe
    os.close(read_fd)
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "nobody listens")
    assert logger.dropped == 1


def test_fd_writer_busy_lock_gives_up(pipe: tuple[int, TextIO]) -> None:
    """If another thread is stuck writing to the same pipe, the line is dropped in bounded time."""
    _, stream = pipe
    writer = log_writer._fd_writer(stream)
    assert writer is not None
    writer.lock.acquire()
    try:
        logger, _ = make(stream=stream)
        logger.info(Code.BATCH_DONE, "m")
    finally:
        writer.lock.release()
    assert logger.dropped == 1


def test_nonblocking_fd_that_refuses_is_bounded(
    pipe: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write refused with EAGAIN (O_NONBLOCK set elsewhere) retries only within the budget."""
    _, stream = pipe

    attempts: list[int] = []

    def refuse(fd: int, data: bytes) -> int:
        attempts.append(fd)
        raise BlockingIOError

    shim = types.SimpleNamespace(write=refuse, fstat=os.fstat)
    monkeypatch.setattr(log_writer, "os", shim)
    logger, _ = make(stream=stream)
    logger.info(Code.BATCH_DONE, "m")  # returns although every write is refused
    assert attempts
    assert logger.dropped == 1


def test_socket_is_written_through_the_bounded_writer() -> None:
    """A socket stream (as a log collector might use) takes the bounded path too."""
    left, right = socket.socketpair()
    with left, right:
        stream = left.makefile("w", encoding="utf-8")
        logger, _ = make(stream=stream)
        logger.info(Code.BATCH_DONE, "over a socket")
        assert log_writer._fd_writer(stream) is not None
        (entry,) = parse(right.recv(65536).decode())
        stream.close()
    assert entry["message"] == "over a socket"


# ------------------------------------------------------------------------- process-wide


def route() -> tuple[JsonLogger, io.StringIO]:
    """install_process_logging with a logger writing to a StringIO (undone after the test).

    Called inside the test, not from a fixture: pytest's capture puts its own sys.stdout
    and sys.stderr back between the setup and call phases.
    """
    logger, buffer = make(run_id=RUN_P)
    install_process_logging(logger)
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
def test_library_records_become_json(level: int, severity: str) -> None:
    """A library logger's record becomes a LIBRARY_LOG entry with mapped severity and name."""
    _, buffer = route()
    library = logging.getLogger("httpx")
    library.setLevel(logging.DEBUG)
    try:
        library.log(
            level, "HTTP Request: POST %s", "https://x.supabase.co/rest/v1/rpc?apikey=abc123"
        )
    finally:
        library.setLevel(logging.NOTSET)
    (entry,) = parse(buffer.getvalue())
    assert entry["error_code"] == "LIBRARY_LOG"
    assert entry["severity"] == severity
    assert entry["context"]["logger"] == "httpx"
    assert (
        entry["message"]
        == "HTTP Request: POST https://x.supabase.co/rest/v1/rpc?apikey=[REDACTED:credential]"
    )
    assert entry["logging.googleapis.com/sourceLocation"]["function"] == (
        "test_library_records_become_json"
    )
    assert entry["cron_run_id"] == RUN_P


def test_library_record_with_exception_and_stack() -> None:
    """exc_info becomes stack_trace; stack_info too; bad %-arguments do not break the line."""
    _, buffer = route()
    library = logging.getLogger("psycopg.pool")
    try:
        raise ConnectionError("server closed the connection")
    except ConnectionError:
        library.exception("connection lost")
    library.warning("where am I", stack_info=True)
    (handler,) = [
        h for h in logging.getLogger().handlers if isinstance(h, log_capture._JsonHandler)
    ]
    handler.handle(
        logging.LogRecord("psycopg", logging.WARNING, HERE, 1, "bad %d args", ("x",), None)
    )
    handler.handleError(logging.LogRecord("psycopg", logging.WARNING, HERE, 1, "m", None, None))
    failed, located, bad = parse(buffer.getvalue())
    assert failed["stack_trace"].endswith("ConnectionError: server closed the connection\n")
    assert failed["severity"] == "ERROR"
    assert failed["@type"] == ERROR_EVENT_TYPE
    assert located["stack_trace"].startswith("Stack (most recent call last):")
    assert bad["message"] == "bad %d args (unformattable log arguments)"


def test_library_handlers_are_replaced_and_restored() -> None:
    """Libraries' own handlers are removed while routed and put back by uninstall."""
    library = logging.getLogger("werkzeug")
    own = logging.StreamHandler(io.StringIO())
    library.addHandler(own)
    library.propagate = False
    library.disabled = True
    child = logging.getLogger("google.auth.transport")
    child.disabled = True
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    try:
        logger, buffer = make()
        install_process_logging(logger)
        assert library.handlers == []
        assert library.propagate
        assert not library.disabled
        assert not child.disabled
        assert len(root.handlers) == 1
        assert root.level == logging.INFO
        child.info("refreshing credentials")
        (entry,) = parse(buffer.getvalue())
        assert entry["context"]["logger"] == "google.auth.transport"
        uninstall_process_logging()
        assert library.handlers == [own]
        assert not library.propagate
        assert library.disabled
        assert child.disabled
        assert root.handlers == root_handlers
        assert root.level == root_level
    finally:
        library.removeHandler(own)
        library.propagate = True
        library.disabled = False
        child.disabled = False


def test_install_is_idempotent() -> None:
    """A second install adds nothing and only switches the logger the routes write to."""
    first, first_buffer = make()
    second, second_buffer = make()
    install_process_logging(first)
    hook = sys.excepthook
    stdout = sys.stdout
    install_process_logging(second)
    assert len(logging.getLogger().handlers) == 1
    assert sys.excepthook is hook
    assert sys.stdout is stdout
    logging.getLogger("flask").warning("after switch")
    assert first_buffer.getvalue() == ""
    assert parse(second_buffer.getvalue())[0]["message"] == "after switch"


def test_uninstall_restores_everything() -> None:
    """uninstall puts back hooks, streams, warnings and root handlers; a second call is a no-op."""
    saved = (sys.excepthook, threading.excepthook, sys.unraisablehook, sys.stdout, sys.stderr)
    showwarning = warnings.showwarning
    logger, _ = make()
    install_process_logging(logger)
    assert sys.excepthook is not saved[0]
    assert sys.stdout is not saved[3]
    uninstall_process_logging()
    uninstall_process_logging()
    assert (
        sys.excepthook,
        threading.excepthook,
        sys.unraisablehook,
        sys.stdout,
        sys.stderr,
    ) == saved
    assert warnings.showwarning is showwarning


def test_print_to_stdout_and_stderr_becomes_json() -> None:
    """Plain text on stdout (INFO) and stderr (WARNING) becomes one entry per line."""
    _, buffer = route()
    print("hello from a library, ola@example.no")
    print("two\nlines\r", file=sys.stderr)
    print("", file=sys.stderr)
    out, two, lines = parse(buffer.getvalue())
    assert out == {**out, "severity": "INFO", "error_code": "LIBRARY_LOG"}
    assert out["message"] == "hello from a library, [REDACTED:email]"
    assert out["context"] == {"logger": "stdout"}
    assert (two["message"], two["severity"], two["context"]["logger"]) == (
        "two",
        "WARNING",
        "stderr",
    )
    assert lines["message"] == "lines"


def test_traceback_on_stderr_becomes_one_error() -> None:
    """A traceback printed to stderr becomes a single ERROR entry with the stack trace."""
    _, buffer = route()
    try:
        raise KeyError("missing ola@example.no")
    except KeyError:
        traceback.print_exc()
    sys.stderr.write("after\n")
    error, after = parse(buffer.getvalue())
    assert error["severity"] == "ERROR"
    assert error["error_code"] == "UNEXPECTED_EXCEPTION"
    assert error["message"] == "KeyError: '?'"  # the message's quoted value is templated
    assert error["stack_trace"].startswith("Traceback (most recent call last):\n")
    assert error["stack_trace"].endswith("KeyError: '?'\n")
    assert error["context"] == {"logger": "stderr"}
    assert after["message"] == "after"


def test_partial_lines_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial line waits for flush; over-long partial lines and tracebacks are cut off."""
    _, buffer = route()
    monkeypatch.setattr(log_stream, "_MAX_PENDING", 10)
    monkeypatch.setattr(log_stream, "_MAX_TRACEBACK_LINES", 3)
    sys.stdout.write("no newline")
    assert buffer.getvalue() == ""
    sys.stdout.flush()
    sys.stdout.write("x" * 20)
    sys.stderr.write("Traceback (most recent call last):\n  a\n  b\n  c\n")
    sys.stderr.write("Traceback (most recent call last):\n  frame\n")
    sys.stderr.flush()
    entries = parse(buffer.getvalue())
    assert [entry["message"] for entry in entries] == [
        "no newline",
        "x" * 20,
        "  b",
        "  c",
        "  frame",
    ]
    assert entries[2]["stack_trace"] == "Traceback (most recent call last):\n  a\n  b\n"


def test_captured_stream_behaves_like_a_text_stream() -> None:
    """The stdout stand-in reports sane attributes, refuses bytes and survives close()."""
    _, buffer = route()
    captured = sys.stdout
    assert captured.writable()
    assert not captured.isatty()
    assert isinstance(captured.encoding, str)
    assert isinstance(captured.errors, str | None)
    assert isinstance(captured, log_stream._CapturedStream)
    real = captured.target
    captured.target = io.StringIO()
    with pytest.raises(io.UnsupportedOperation):  # delegated to the real stream
        captured.fileno()
    captured.target = real
    with pytest.raises(TypeError):
        captured.write(b"bytes")  # type: ignore[arg-type]
    assert captured.write("x\n") == 2
    captured.close()
    print("still works")
    assert [entry["message"] for entry in parse(buffer.getvalue())] == ["x", "still works"]


def test_excepthook_logs_one_error() -> None:
    """An exception escaping the program becomes one ERROR with the raise site as location."""
    _, buffer = route()
    try:
        raise RuntimeError("escaped with token=abc123")
    except RuntimeError as exc:
        line = exc.__traceback__.tb_lineno if exc.__traceback__ else 0
        sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.excepthook(ValueError, None, None)  # type: ignore[arg-type]
    escaped, bare = parse(buffer.getvalue())
    assert (
        escaped["message"]
        == "Unhandled exception: RuntimeError: escaped with token=[REDACTED:credential]"
    )
    assert escaped["stack_trace"].endswith(
        "RuntimeError: escaped with token=[REDACTED:credential]\n"
    )
    assert escaped["logging.googleapis.com/sourceLocation"]["line"] == str(line)
    assert escaped["context"]["error_type"] == "RuntimeError"
    assert bare["message"] == "Unhandled exception: ValueError"


def test_threading_excepthook() -> None:
    """An exception escaping a thread becomes one ERROR naming the thread; SystemExit is quiet."""
    _, buffer = route()

    def fail() -> None:
        raise LookupError("in a thread")

    def leave() -> None:
        raise SystemExit(0)

    for target, name in ((fail, "worker-1"), (leave, "worker-2")):
        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()
    threading.excepthook(
        types.SimpleNamespace(  # type: ignore[arg-type]
            exc_type=ValueError, exc_value=ValueError("x"), exc_traceback=None, thread=None
        )
    )
    failed, orphan = parse(buffer.getvalue())
    assert failed["message"] == "Unhandled exception in thread: LookupError: in a thread"
    assert failed["context"]["thread"] == "worker-1"
    assert failed["stack_trace"].endswith("LookupError: in a thread\n")
    assert orphan["context"]["thread"] is None


def test_unraisablehook() -> None:
    """Exceptions Python cannot raise (in __del__ and the like) become ERROR entries."""
    _, buffer = route()

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    sys.unraisablehook(
        types.SimpleNamespace(
            exc_type=OSError,
            exc_value=OSError("gone"),
            exc_traceback=None,
            err_msg=None,
            object=BadRepr(),
        )
    )
    sys.unraisablehook(
        types.SimpleNamespace(
            exc_type=OSError,
            exc_value=None,
            exc_traceback=None,
            err_msg="Exception in callback",
            object=1,
        )
    )
    first, second = parse(buffer.getvalue())
    assert first["message"] == "Exception ignored in: <object repr() failed>: OSError: gone"
    assert second["message"] == "Exception in callback: ?: OSError"


def test_hook_with_unformattable_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the traceback cannot be formatted, the hook still logs the exception type."""
    _, buffer = route()

    def broken(*_args: object) -> list[str]:
        raise RuntimeError("no")

    monkeypatch.setattr(log_entry, "templated_traceback", broken)
    sys.excepthook(ValueError, ValueError("v"), None)
    sys.excepthook(ValueError, None, None)  # type: ignore[arg-type]  # a C caller can pass None
    first, second = parse(buffer.getvalue())
    assert first["stack_trace"] == "ValueError: v\n"
    assert second["stack_trace"] == "ValueError\n"


def test_warnings_become_json() -> None:
    """warnings.warn output is captured as a LIBRARY_LOG WARNING from py.warnings."""
    _, buffer = route()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    (entry,) = parse(buffer.getvalue())
    assert entry["severity"] == "WARNING"
    assert entry["context"]["logger"] == "py.warnings"
    assert "old API" in entry["message"]


def test_logger_own_lines_pass_through_a_rewrapping_stream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With functions-framework's LOG_EXECUTION_ID stream in between, our lines gain the
    execution id and are not wrapped twice; plain prints are formatted once; no blank lines."""
    execution_id: Any = importlib.import_module("functions_framework.execution_id")
    logger = JsonLogger(sanitizer=Sanitizer(), run_id=RUN_FF)
    install_process_logging(logger)
    try:
        execution_id.execution_context_var.set(execution_id.ExecutionContext("exec-42", "123"))
        with contextlib.redirect_stdout(execution_id.LoggingHandlerAddExecutionId(sys.stdout)):
            logger.info(Code.BATCH_DONE, "inside a request")
            print("plain print inside a request, ola@example.no")
        execution_id.execution_context_var.set(None)
        with contextlib.redirect_stdout(execution_id.LoggingHandlerAddExecutionId(sys.stdout)):
            logger.info(Code.BATCH_DONE, "outside a request")
    finally:
        execution_id.execution_context_var.set(None)
        uninstall_process_logging()
    text = capsys.readouterr().out
    assert "\n\n" not in text
    ours, printed, outside = parse(text)
    assert ours["message"] == "inside a request"
    assert ours["logging.googleapis.com/labels"]["execution_id"] == "exec-42"
    assert ours["logging.googleapis.com/spanId"] == "123"
    assert printed["message"] == "plain print inside a request, [REDACTED:email]"
    assert printed["context"]["logger"] == "stdout"
    assert printed["logging.googleapis.com/labels"]["execution_id"] == "exec-42"
    assert outside["message"] == "outside a request"


def test_default_logger_writes_past_its_own_capture(capsys: pytest.CaptureFixture[str]) -> None:
    """A logger on sys.stdout writes straight to the real stream, not into its own capture."""
    logger = JsonLogger(sanitizer=Sanitizer())
    install_process_logging(logger)
    logger.info(Code.BATCH_DONE, "direct")
    print("printed")
    uninstall_process_logging()
    direct, printed = parse(capsys.readouterr().out)
    assert direct["message"] == "direct"
    assert direct["error_code"] == "BATCH_DONE"
    assert printed["message"] == "printed"
    assert printed["error_code"] == "LIBRARY_LOG"


def test_pass_through_drops_blank_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrapper that adds its own newline after ours (as functions-framework does outside a
    request) leaves no blank line behind."""

    class DoubleNewline(io.StringIO):
        def write(self, text: str) -> int:
            sys.stdout.write(text)
            sys.stdout.write("\n")
            return len(text)

    logger = JsonLogger(sanitizer=Sanitizer(), stream=DoubleNewline())
    install_process_logging(logger)
    logger.info(Code.BATCH_DONE, "one")
    logger.info(Code.BATCH_DONE, "two")
    uninstall_process_logging()
    text = capsys.readouterr().out
    assert "\n\n" not in text
    assert [entry["message"] for entry in parse(text)] == ["one", "two"]


def test_foreign_json_lines_are_unwrapped() -> None:
    """A captured line that is already JSON with a message is logged by its message."""
    _, buffer = route()
    print('{"message": "from another formatter"}')
    print('{"not": "a message"}')
    print("{not json}")
    first, second, third = parse(buffer.getvalue())
    assert first["message"] == "from another formatter"
    assert second["message"] == '{"?": "?"}'  # foreign text: its template
    assert third["message"] == "{not json}"


def test_pass_through_failure_counts_as_a_drop() -> None:
    """If the real stream fails under a re-wrapping stream, the logger counts the drop."""
    logger, _ = route()

    class Forward(io.StringIO):
        def write(self, text: str) -> int:
            return sys.stdout.write(text)

    captured = sys.stdout
    assert isinstance(captured, log_stream._CapturedStream)
    dead = io.StringIO()
    dead.close()
    captured.target = dead
    logger._shared.stream = Forward()
    logger.info(Code.BATCH_DONE, "lost")
    assert logger.dropped == 1


def test_install_survives_a_broken_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdout that cannot even be flushed does not stop installation."""

    class Broken(io.StringIO):
        def flush(self) -> None:
            raise OSError("broken")

    monkeypatch.setattr(sys, "stdout", Broken())
    logger, buffer = make()
    install_process_logging(logger)
    print("routed anyway")
    uninstall_process_logging()
    assert parse(buffer.getvalue())[0]["message"] == "routed anyway"


# ------------------------------------------------------------------------- properties


class Hidden(NamedTuple):
    """A generated text holding secrets or PII, as a context leaf or key."""

    text: str
    parts: tuple[str, ...]
    noise: str


def _leaf_text(sample: tuple[str, list[str], str]) -> Hidden:
    return Hidden(sample[0], tuple(sample[1]), sample[2])


@st.composite
def _sensitive_leaf(draw: st.DrawFn) -> Hidden:
    """One secret or PII snippet between noise: lighter than a whole generated text."""
    text, hidden = draw(st.one_of(secret_snippets(), pii))
    before, after = draw(noise), draw(noise)
    return Hidden(
        f"{before}{draw(separators)}{text}{draw(separators)}{after}",
        (hidden,),
        f"{before}\x00{after}",
    )


sensitive = _sensitive_leaf()
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.uuids(),
    st.datetimes(),
    sensitive,
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=8), sensitive), children, max_size=4),
    ),
    max_leaves=8,
)
contexts = st.dictionaries(
    st.sampled_from([*sorted(ALLOWED_CONTEXT_KEYS), "email", "name", "fnr"]), values, max_size=6
)


def _materialise(value: object, parts: list[str], pool: list[str]) -> object:
    """Turn Hidden leaves into their text, collecting the hidden parts and all plain text."""
    if isinstance(value, Hidden):
        parts.extend(value.parts)
        pool.append(value.noise)
        return value.text
    if isinstance(value, str):
        pool.append(value)
        return value
    if isinstance(value, list):
        return [_materialise(item, parts, pool) for item in value]
    if isinstance(value, tuple):
        return tuple(_materialise(item, parts, pool) for item in value)
    if isinstance(value, dict):
        return {
            _materialise(key, parts, pool): _materialise(item, parts, pool)
            for key, item in value.items()
        }
    if isinstance(value, bytes):
        pool.append(value.decode("utf-8", "replace"))
    return value


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed entry's free-text fields, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


@settings(max_examples=200, deadline=None)
@given(contexts, texts_with_sensitive_parts().map(_leaf_text), registered_secrets)
def test_no_line_ever_leaks(context: dict[str, object], message: Hidden, secret: str) -> None:
    """Nested context values and exception messages holding secrets and PII never leak,
    and every line is one JSON object matching the schema."""
    parts: list[str] = []
    pool: list[str] = []
    clean_context = _materialise(context, parts, pool)
    assert isinstance(clean_context, dict)
    text = _materialise(message, parts, pool)
    assert isinstance(text, str)
    sanitizer = Sanitizer()
    sanitizer.register_secret(secret)
    logger, buffer = make(sanitizer=sanitizer, run_id=RUN_H)
    logger.warning(Code.RUN_FENCED, f"{text} {secret}", **clean_context)
    try:
        raise RuntimeError(f"{secret}:{text}")
    except RuntimeError as exc:
        logger.error(Code.UNEXPECTED_EXCEPTION, text, exc=exc, details=f"x{secret}x")
    entries = parse(buffer.getvalue())
    assert len(entries) == 2
    noise_text = "\x00".join(pool)
    for entry in entries:
        for found in _strings([entry["message"], entry["context"], entry.get("stack_trace", "")]):
            assert leaked(found, parts, noise_text) == []
            assert secret not in found
