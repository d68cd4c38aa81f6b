"""What a log entry may hold and the small pieces it is built from.

Split out of ``certexpiry.log`` (which re-exports the public limits and the context-key
allow-list): the size limits, the allow-list, the cached source locations and the
exception texts are shared by the line builder (``certexpiry.log_line``) and the process
capture (``certexpiry.log_capture``), and keeping them here keeps each module under 400
lines.
"""

from __future__ import annotations

import json
from types import FrameType, TracebackType
from typing import NamedTuple

from certexpiry.codes import Code
from certexpiry.log_template import Redact, template, templated_traceback

__all__ = [
    "ALLOWED_CONTEXT_KEYS",
    "ERROR_EVENT_TYPE",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_LINE",
    "MAX_STACK",
    "MAX_STRING",
    "TRUNCATION_MARK",
]

MAX_STRING = 2_000
"""Characters kept of any one string (message, response body, context value)."""
MAX_ITEMS = 100
"""Items kept of any one list or mapping in the context."""
MAX_STACK = 16_000
"""Characters kept of a stack trace (head and tail kept, middle frames cut)."""
MAX_LINE = 64_000
"""Hard cap on a serialised line (Cloud Logging's limit is 256 KB an entry)."""
MAX_DEPTH = 6
"""Nesting kept in context values; deeper values (and cycles) become a placeholder."""
TRUNCATION_MARK = "...[truncated]"
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)

_LOCATION_CACHE_MAX = 4_096

ALLOWED_CONTEXT_KEYS: frozenset[str] = frozenset(
    {
        "attempt",
        "batch_size",
        "batches",
        "budget_s",
        "certification_id",
        "certifications",
        "certifications_paused",
        "column_name",
        "constraint_name",
        "cursor",
        "datatype_name",
        "delivery_attempt",
        "details",
        "dry_run",
        "duration_ms",
        "elapsed_ms",
        "error_type",
        "estimate_ms",
        "event_id",
        "event_type",
        "execution_id",
        "failures",
        "hint",
        "http_status",
        "lines_dropped",
        "logger",
        "mentors",
        "mentors_paused",
        "message_id",
        "missed_ids",
        "missed_pause_count",
        "nightly_key",
        "notices_queued",
        "operation",
        "outcome",
        "peak_rss_kb",
        "peer_mentor_id",
        "position",
        "postgrest_code",
        "published_message_id",
        "reason",
        "remaining_ms",
        "remediation",
        "reminders_queued",
        "reminders_superseded",
        "response_body",
        "routine",
        "run_id",
        "schema_name",
        "segment",
        "segments",
        "setting",
        "sqlstate",
        "status",
        "subscription",
        "table_name",
        "thread",
        "timezone",
        "today",
        "topic",
        "total_count",
        "truncated",
    }
)
"""Context keys a caller may pass; others are dropped and counted in ``dropped_keys``.
The logger itself adds ``dropped_keys``, ``truncated``/``total_count`` and, on ERROR lines
without a stack trace, ``reportLocation``."""

_ID_CONTEXT_KEYS = (
    "certification_id",
    "peer_mentor_id",
    "run_id",
    "nightly_key",
    "message_id",
    "published_message_id",
    "segment",
    "operation",
    "error_type",
    "sqlstate",
    "http_status",
    "postgrest_code",
    "logger",
    "setting",
    "status",
    "outcome",
    "attempt",
)


class _Caps:
    """What got cut while cleaning one entry's values."""

    __slots__ = ("total", "truncated")

    def __init__(self) -> None:
        self.truncated = False
        self.total = 0

    def cut(self, total: int) -> None:
        self.truncated = True
        self.total = max(self.total, total)


class _Where(NamedTuple):
    """A source location as ready-made JSON members: ``sourceLocation`` for the entry and
    ``reportLocation`` for the context (Error Reporting needs the latter on entries
    without a stack trace)."""

    json: str
    report: str


_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False).encode
_QUOTE = json.encoder.encode_basestring_ascii
_WHERE_CACHE: dict[tuple[object, ...], _Where] = {}


def _where(file: str, line: int, function: str, key: tuple[object, ...] | None = None) -> _Where:
    """A location, cached (by ``key`` when given, for frames) since call sites repeat."""
    cache_key = (file, line, function) if key is None else key
    found = _WHERE_CACHE.get(cache_key)
    if found is None:
        if len(_WHERE_CACHE) >= _LOCATION_CACHE_MAX:
            _WHERE_CACHE.clear()
        member = _ENCODE({"file": file, "line": str(line), "function": function})
        report = _ENCODE({"filePath": file, "lineNumber": line, "functionName": function})
        found = _Where(
            f',"logging.googleapis.com/sourceLocation":{member}', f'"reportLocation":{report}'
        )
        _WHERE_CACHE[cache_key] = found
    return found


def _frame_where(frame: FrameType) -> _Where:
    """Where a logging call was made."""
    code = frame.f_code
    line = frame.f_lineno
    found = _WHERE_CACHE.get((code, line))
    if found is None:
        found = _where(code.co_filename, line, code.co_qualname, (code, line))
    return found


def _traceback_where(tb: TracebackType | None) -> _Where | None:
    """The innermost frame of a traceback: where the exception was raised."""
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return _where(code.co_filename, tb.tb_lineno, code.co_qualname)


def _cut_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of a stack trace, drop the middle.

    Cuts fall on line boundaries where the kept part has one; a single enormous line (a
    huge exception message) is cut inside, so that its end, the ``ExcType: message``
    line Error Reporting needs, is kept.
    """
    head = text[: limit // 4]
    head = head[: head.rfind("\n") + 1]
    tail = text[-(limit * 3 // 4) :]
    newline = tail.find("\n")
    if newline < len(tail) - 1:
        tail = tail[newline + 1 :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}  [... {omitted} characters omitted ...]\n{tail}"


def _code_value(code: object) -> str:
    """The catalogue value for a code given as a plain string; unknown ones are mapped."""
    try:
        return Code(str(code)).value
    except ValueError:
        return Code.UNEXPECTED_EXCEPTION.value


def _describe(exc: BaseException, redact: Redact) -> str:
    """``ExcType: message`` for an exception, whatever its ``__str__`` does."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001  # a broken __str__ must not break the line
        text = "<exception str() failed>"
    name = type(exc).__name__
    return f"{name}: {template(text, redact)}" if text else name


def _format_exception(exc: BaseException, redact: Redact) -> str:
    """The text ``traceback.format_exc()`` would print for ``exc``, messages templated."""
    try:
        return templated_traceback(exc, redact)
    except Exception:  # noqa: BLE001  # e.g. a broken __notes__: keep at least the type
        return _describe(exc, redact) + "\n"
