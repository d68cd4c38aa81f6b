"""One JSON object per line, shaped for Cloud Logging and Error Reporting, with no PII.

Why our own formatter: Cloud Functions turns each stdout line that is a JSON object into
a structured entry, and Error Reporting picks up ERROR entries typed as
``ReportedErrorEvent``.  google-cloud-logging's ``StructuredLogHandler`` drops our
``timestamp``/``time`` keys and writes a diagnostic line first, so we format lines here.

Guarantees the rest of the code relies on:

* every line is one ``stream.write(line + "\\n")`` of a JSON object matching
  ``docs/log-entry.schema.json``; message, context strings and stack traces pass the
  injected ``Sanitizer``; context keys outside ``ALLOWED_CONTEXT_KEYS`` are dropped;
* logging never raises to the caller and never blocks for long: a failing stream drops
  the line (counted, and reported on the next good line); a pipe or socket is written
  with ``poll`` + chunks of at most ``PIPE_BUF`` bytes under a ~50 ms budget, so a
  stalled reader costs one budget and then only non-waiting attempts until it drains;
  no background thread (Cloud Functions throttles CPU once the handler returns);
* ``install_process_logging`` routes everything else the process writes (root and
  library loggers, warnings, escaping exceptions, raw stdout/stderr) through the same
  formatter, so no plain-text line or multi-line traceback reaches the log.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import select
import stat
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from itertools import islice
from types import FrameType, TracebackType
from typing import NamedTuple, TextIO, cast

from certexpiry.codes import CATALOGUE, Code, Severity
from certexpiry.sanitize import Sanitizer

__all__ = [
    "ALLOWED_CONTEXT_KEYS",
    "ERROR_EVENT_TYPE",
    "JsonLogger",
    "Severity",
    "TraceContext",
    "install_process_logging",
    "trace_from_headers",
    "uninstall_process_logging",
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
WRITE_BUDGET_S = 0.05
"""Longest a single line may wait for a stalled pipe, or for another thread's write."""
TRUNCATION_MARK = "...[truncated]"
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)

_PRE_CUT = 64_000  # strings are cut to this before sanitising, to bound the regex cost
_PRE_CUT_STACK = 1_000_000
_ID_VALUE_MAX = 100
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
        "cursor",
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
        "postgrest_code",
        "published_message_id",
        "reason",
        "remaining_ms",
        "remediation",
        "reminders_queued",
        "reminders_superseded",
        "response_body",
        "run_id",
        "segment",
        "segments",
        "setting",
        "sqlstate",
        "status",
        "subscription",
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

_RANK = {Severity.DEBUG: 10, Severity.INFO: 20, Severity.WARNING: 30, Severity.ERROR: 40}
_EMITTING: set[int] = set()  # threads inside a logger write (a set beats threading.local)


# --------------------------------------------------------------------------- trace


class TraceContext(NamedTuple):
    """Trace id (32 hex), span id (16 hex) and sampling flag of the current request."""

    trace_id: str
    span_id: str | None
    sampled: bool


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([0-9]))?")


def trace_from_headers(headers: Mapping[str, str]) -> TraceContext | None:
    """Trace context from W3C ``traceparent``, else ``X-Cloud-Trace-Context``; else None.

    Header names are matched case-insensitively; a malformed value counts as absent.
    Works with any mapping with ``items()`` (Flask headers, CloudEvent attributes).
    """
    try:
        found = {str(name).lower(): value for name, value in headers.items()}
    except Exception:  # noqa: BLE001  # any odd mapping means "no trace", never a failure
        return None
    return _parse_traceparent(found.get("traceparent")) or _parse_cloud_trace(
        found.get("x-cloud-trace-context")
    )


def _parse_traceparent(value: object) -> TraceContext | None:
    """W3C Trace Context ``version-traceid-spanid-flags``."""
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if (
        version == "ff"
        or (version == "00" and rest is not None)
        or trace_id == "0" * 32
        or span_id == "0" * 16
    ):
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def _parse_cloud_trace(value: object) -> TraceContext | None:
    """Google's ``TRACE_ID/SPAN_ID;o=1``; the decimal span id is turned into 16 hex."""
    if not isinstance(value, str):
        return None
    match = _CLOUD_TRACE.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, span, sampled = match.groups()
    if trace_id.strip("0") == "":
        return None
    span_id = None
    if span is not None:
        number = int(span)
        if number >= 2**64:
            return None
        span_id = f"{number:016x}" if number else None
    return TraceContext(trace_id.lower(), span_id, sampled == "1")


# --------------------------------------------------------------------------- writing


class _FdWriter:
    """Bounded-time writes of whole lines to a pipe or socket.

    ``poll`` for writability, then ``os.write`` at most ``PIPE_BUF`` bytes: such a write
    never blocks once poll says the pipe has room.  Whatever of a line is not written
    within the budget is kept as a tail and written before the next line, so lines stay
    whole.  After a timeout the writer is "stalled" and waits no more until a write
    succeeds, so a stuck reader costs one budget, not one budget per line.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.tail = b""
        self.stalled = False
        self._poller = select.poll()
        self._poller.register(fd, select.POLLOUT)

    def write(self, data: bytes) -> bool:
        """Write ``data`` (whole or started); False if nothing of it could be written."""
        if not self.lock.acquire(timeout=WRITE_BUDGET_S):
            return False
        try:
            deadline = time.monotonic() + (0.0 if self.stalled else WRITE_BUDGET_S)
            if self.tail:
                self.tail = self._drain(self.tail, deadline)
                if self.tail:
                    self.stalled = True
                    return False
            rest = self._drain(data, deadline)
            self.stalled = bool(rest)
            if len(rest) == len(data):
                return False
            self.tail = rest
            return True
        except OSError:  # broken pipe, closed fd: nothing more will get through
            self.tail = b""
            return False
        finally:
            self.lock.release()

    def _drain(self, data: bytes, deadline: float) -> bytes:
        """Write as much of ``data`` as the deadline allows; return the unwritten rest."""
        while data:
            wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not self._poller.poll(wait_ms):
                break
            try:
                data = data[os.write(self.fd, data[: select.PIPE_BUF]) :]
            except BlockingIOError:  # O_NONBLOCK set by someone else and full after all
                if time.monotonic() >= deadline:
                    break
        return data


_FD_WRITERS: dict[int, tuple[object, _FdWriter | None]] = {}  # id(stream) -> (stream, writer)
_FD_WRITERS_MAX = 64


def _fd_writer(stream: object) -> _FdWriter | None:
    """The bounded writer for ``stream`` if it is backed by a pipe or socket, else None."""
    known = _FD_WRITERS.get(id(stream))
    if known is not None and known[0] is stream:
        return known[1]
    writer = None
    try:
        fd = cast(TextIO, stream).fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            writer = _FdWriter(fd)
    except Exception:  # noqa: BLE001  # no fileno (StringIO, capture), closed, odd object
        writer = None
    if len(_FD_WRITERS) >= _FD_WRITERS_MAX:
        _FD_WRITERS.clear()
    _FD_WRITERS[id(stream)] = (stream, writer)
    return writer


def _put(stream: object, text: str) -> bool:
    """Write ``text`` to ``stream`` in one call and flush; False if it did not go out."""
    writer = _fd_writer(stream)
    if writer is not None:
        return writer.write(text.encode("utf-8", "backslashreplace"))
    try:
        stream.write(text)  # type: ignore[attr-defined]  # any object with write/flush
        stream.flush()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  # whatever the stream raises, the line is dropped
        return False
    return True


# --------------------------------------------------------------------------- logger


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


class _Shared:
    """State shared by a logger and every logger bound from it."""

    def __init__(
        self,
        sanitizer: Sanitizer,
        stream: TextIO | None,
        service: str,
        version: str,
        project: str | None,
        min_severity: Severity,
    ) -> None:
        self.sanitizer = sanitizer
        self.stream = stream
        self.service = service
        self.project = project
        self.enabled = frozenset(
            level.value for level in Severity if _RANK[level] >= _RANK[min_severity]
        )
        self.error_json = f',"@type":"{ERROR_EVENT_TYPE}","serviceContext":' + _ENCODE(
            {"service": service, "version": version}
        )
        self.lock = threading.Lock()  # one line at a time on the stream
        self.count_lock = threading.Lock()
        self.dropped = 0
        self.unreported = 0
        self.clock = (-1, "")


_ERROR = Severity.ERROR
_time_ns = time.time_ns  # module-level, so tests can move the clock
_STACK_KEY = ',"stack_trace":'
# Allowed context keys -> whether the logger sets the key too (then the values are merged).
_KEY_KIND = {key: key in ("truncated", "total_count") for key in ALLOWED_CONTEXT_KEYS}
_ID_LIMIT = 10**10  # ints of 11 digits could be national ids; smaller ones pass as they are


class JsonLogger:
    """Writes sanitised Cloud Logging entries, one JSON object per line.

    Create one per process with the process's ``Sanitizer``; ``bind`` a copy per run /
    request to stamp ``cron_run_id`` and the trace.  Bound loggers share the sanitizer,
    the stream, the lock and the dropped-line counter.  The JSON is assembled from
    fragments precomputed per logger, so a line only encodes what varies.
    """

    def __init__(
        self,
        *,
        sanitizer: Sanitizer,
        service: str = "certexpiry",
        version: str = "dev",
        project: str | None = None,
        run_id: str | None = None,
        trace: TraceContext | None = None,
        stream: TextIO | None = None,
        min_severity: Severity = Severity.DEBUG,
    ) -> None:
        shared = _Shared(sanitizer, stream, service, version, project, min_severity)
        self._setup(shared, run_id, trace)

    def _setup(self, shared: _Shared, run_id: str | None, trace: TraceContext | None) -> None:
        """Precompute this logger's constant JSON members."""
        self._shared = shared
        self._run_id = run_id
        self._trace = trace
        labels = {"function": shared.service}
        if run_id is not None:
            labels = {"cron_run_id": run_id, **labels}
        fixed: dict[str, object] = {"logging.googleapis.com/labels": labels}
        if trace is not None:
            if shared.project:
                fixed["logging.googleapis.com/trace"] = (
                    f"projects/{shared.project}/traces/{trace.trace_id}"
                )
            if trace.span_id:
                fixed["logging.googleapis.com/spanId"] = trace.span_id
            fixed["logging.googleapis.com/trace_sampled"] = trace.sampled
        self._run_id_json = f',"cron_run_id":{_ENCODE(run_id)}'
        self._fixed_json = "," + _ENCODE(fixed)[1:-1]

    def bind(self, *, run_id: str | None = None, trace: TraceContext | None = None) -> JsonLogger:
        """A logger with this run id and/or trace (None keeps the current one)."""
        bound = object.__new__(JsonLogger)
        bound._setup(
            self._shared,
            self._run_id if run_id is None else run_id,
            self._trace if trace is None else trace,
        )
        return bound

    @property
    def run_id(self) -> str | None:
        """The ``cron_run_id`` stamped on every line (None before a run exists)."""
        return self._run_id

    @property
    def trace(self) -> TraceContext | None:
        """The trace stamped on every line, if any."""
        return self._trace

    @property
    def sanitizer(self) -> Sanitizer:
        """The shared sanitiser (register secrets on it)."""
        return self._shared.sanitizer

    @property
    def dropped(self) -> int:
        """Lines dropped so far (stream failed or stalled), over the process's lifetime."""
        return self._shared.dropped

    # -- public logging methods -------------------------------------------------------

    def debug(self, code: Code, message: str, **context: object) -> None:
        """Log a DEBUG entry."""
        self._log(Severity.DEBUG, code, message, context, None, sys._getframe(1))

    def info(self, code: Code, message: str, **context: object) -> None:
        """Log an INFO entry."""
        self._log(Severity.INFO, code, message, context, None, sys._getframe(1))

    def warning(self, code: Code, message: str, **context: object) -> None:
        """Log a WARNING entry."""
        self._log(Severity.WARNING, code, message, context, None, sys._getframe(1))

    def error(
        self, code: Code, message: str, *, exc: BaseException | None = None, **context: object
    ) -> None:
        """Log an ERROR entry (Error Reporting); ``exc`` adds its sanitised stack_trace."""
        self._log(Severity.ERROR, code, message, context, exc, sys._getframe(1))

    def log(
        self,
        code: Code,
        message: str,
        *,
        severity: Severity | None = None,
        exc: BaseException | None = None,
        **context: object,
    ) -> None:
        """Log at ``severity``, by default the code's severity in the catalogue."""
        chosen = CATALOGUE[code].severity if severity is None else severity
        self._log(chosen, code, message, context, exc, sys._getframe(1))

    # -- building lines ---------------------------------------------------------------

    def _log(
        self,
        severity: Severity,
        code: Code,
        message: str,
        context: Mapping[str, object],
        exc: BaseException | None,
        frame: FrameType | None,
        *,
        stack: str | None = None,
        where: _Where | None = None,
    ) -> None:
        """Build, encode and write one entry; never raises."""
        try:
            if severity._value_ not in self._shared.enabled:
                return
            if frame is not None:
                where = _frame_where(frame)
            if exc is not None:
                stack = _format_exception(exc)
                if "error_type" not in context:
                    context = {**context, "error_type": type(exc).__name__}
            line = self._line(severity, code, message, context, stack, where)
        except Exception as failure:  # noqa: BLE001  # logging must never take the job down
            line = self._fallback_line(severity, failure)
        self._write(line)

    def _line(
        self,
        severity: Severity,
        code: Code,
        message: str,
        context: Mapping[str, object],
        stack: str | None,
        where: _Where | None,
    ) -> str:
        """Serialise one entry, shrinking it if it exceeds MAX_LINE.

        The context JSON is built in the same pass that cleans the values (keys are
        allow-listed identifiers and need no escaping); strings and small ints, nearly
        every value, are handled inline because a call per value costs more than the work.
        """
        caps = _Caps()
        sanitize = self._shared.sanitizer.clean
        members: list[str] = []
        reserved: dict[str, str] = {}  # truncated / total_count given by the caller
        dropped_keys = 0
        for key, value in context.items():
            kind = _KEY_KIND.get(key)
            if kind is None:
                dropped_keys += 1
                continue
            if type(value) is str:
                text = sanitize(value[:_PRE_CUT])
                if len(text) > MAX_STRING:
                    caps.truncated = True
                    text = text[:MAX_STRING] + TRUNCATION_MARK
                encoded = _QUOTE(text)
            elif type(value) is int and -_ID_LIMIT < value < _ID_LIMIT:
                encoded = str(value)
            else:
                encoded = _ENCODE(self._clean(value, 1, caps))
            if kind:
                reserved[key] = encoded
            else:
                members.append(f'"{key}":{encoded}')
        text = sanitize((message if type(message) is str else str(message))[:_PRE_CUT])
        if len(text) > MAX_STRING:
            caps.truncated = True
            text = text[:MAX_STRING] + TRUNCATION_MARK
        if stack is not None:
            stack = self._clean_stack(stack)
        if caps.truncated:
            reserved["truncated"] = "true"
            if caps.total:
                reserved["total_count"] = str(caps.total)
        for key, encoded in reserved.items():
            members.append(f'"{key}":{encoded}')
        if dropped_keys:
            members.append(f'"dropped_keys":{dropped_keys}')
        is_error = severity is _ERROR
        if is_error and stack is None and where is not None:
            members.append(where.report)
        timestamp = self._timestamp()
        code_value = code._value_ if type(code) is Code else _code_value(code)
        # The common case assembled inline (as in _assemble): a call costs ~2% of a line.
        line = (
            f'{{"timestamp":"{timestamp}","time":"{timestamp}","severity":"{severity._value_}"'
            f',"message":{_QUOTE(text)}{self._run_id_json},"error_code":"{code_value}"'
            f',"context":{{{",".join(members)}}}'
            f"{'' if stack is None else _STACK_KEY + _QUOTE(stack)}{self._fixed_json}"
            f"{'' if where is None else where.json}"
            f"{self._shared.error_json if is_error else ''}}}"
        )
        if len(line) > MAX_LINE:
            parts = (timestamp, severity._value_, code_value, where, is_error)
            ids = _ENCODE(self._ids_only(context))
            line = self._assemble(parts, text, ids, stack)
            if len(line) > MAX_LINE:
                short_stack = None if stack is None else _cut_middle(stack, 2_000)
                line = self._assemble(parts, text[:200] + TRUNCATION_MARK, ids, short_stack)
        return line

    def _assemble(
        self,
        parts: tuple[str, str, str, _Where | None, bool],
        text: str,
        context_json: str,
        stack: str | None,
    ) -> str:
        """The JSON line: fixed members are precomputed fragments, the rest is encoded."""
        timestamp, severity, code, where, is_error = parts
        stack_json = "" if stack is None else _STACK_KEY + _QUOTE(stack)
        where_json = "" if where is None else where.json
        error_json = self._shared.error_json if is_error else ""
        return (
            f'{{"timestamp":"{timestamp}","time":"{timestamp}","severity":"{severity}"'
            f',"message":{_QUOTE(text)}{self._run_id_json},"error_code":"{code}"'
            f',"context":{context_json}{stack_json}{self._fixed_json}{where_json}{error_json}}}'
        )

    def _ids_only(self, context: Mapping[str, object]) -> dict[str, object]:
        """The context reduced to short identifying scalars, for a line over MAX_LINE."""
        reduced: dict[str, object] = {}
        for key in _ID_CONTEXT_KEYS:
            value = context.get(key)
            if isinstance(value, str):
                reduced[key] = self._shared.sanitizer.clean(value[:_ID_VALUE_MAX])
            elif isinstance(value, (int, float)):
                reduced[key] = self._clean(value, 1, _Caps())
        reduced["truncated"] = True
        return reduced

    def _clean_text(self, text: str, caps: _Caps) -> str:
        """Sanitise a string and cap it at MAX_STRING characters."""
        text = self._shared.sanitizer.clean(text[:_PRE_CUT])
        if len(text) > MAX_STRING:
            caps.truncated = True
            text = text[:MAX_STRING] + TRUNCATION_MARK
        return text

    def _clean_stack(self, stack: str) -> str:
        """Sanitise a stack trace and cap it at MAX_STACK, keeping its head and tail."""
        if len(stack) > _PRE_CUT_STACK:
            stack = _cut_middle(stack, _PRE_CUT_STACK)
        stack = self._shared.sanitizer.clean(stack)
        return _cut_middle(stack, MAX_STACK) if len(stack) > MAX_STACK else stack

    def _clean(self, value: object, depth: int, caps: _Caps) -> object:
        """A JSON-safe, sanitised, capped copy of a context value."""
        if value is None or type(value) is bool:
            return value
        if isinstance(value, str):  # str subclasses (StrEnum) included
            return self._clean_text(str.__str__(value), caps)
        if isinstance(value, int):  # IntEnum included
            number = int(value)
            if _ID_LIMIT <= abs(number) < 10 * _ID_LIMIT:  # 11 digits: could be a national id
                return "[REDACTED:national_id]"
            return number if -(2**63) <= number < 2**63 else str(number)
        if isinstance(value, float):
            real = float(value)
            return real if math.isfinite(real) else str(real)
        if depth > MAX_DEPTH:
            return "[max depth]"
        if isinstance(value, Mapping):
            if len(value) > MAX_ITEMS:
                caps.cut(len(value))
            return {
                self._clean_text(str(key), caps): self._clean(item, depth + 1, caps)
                for key, item in islice(value.items(), MAX_ITEMS)
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            if len(value) > MAX_ITEMS:
                caps.cut(len(value))
            return [self._clean(item, depth + 1, caps) for item in islice(value, MAX_ITEMS)]
        if isinstance(value, (bytes, bytearray)):
            return self._clean_text(bytes(value[:_PRE_CUT]).decode("utf-8", "replace"), caps)
        if isinstance(value, BaseException):
            return self._clean_text(_describe(value), caps)
        try:
            text = str(value)
        except Exception:  # noqa: BLE001  # a broken __str__ must not break the line
            text = f"<unprintable {type(value).__name__}>"
        return self._clean_text(text, caps)

    def _timestamp(self) -> str:
        """RFC 3339 UTC with microseconds; the seconds part is formatted once a second."""
        seconds, nanos = divmod(_time_ns(), 1_000_000_000)
        shared = self._shared
        cached_second, text = shared.clock
        if cached_second != seconds:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            shared.clock = (seconds, text)
        return f"{text}.{nanos // 1000:06d}Z"

    def _fallback_line(self, severity: Severity, failure: Exception) -> str:
        """A minimal, always-encodable entry for when building the real one failed."""
        parts = (self._timestamp(), severity._value_, Code.UNEXPECTED_EXCEPTION.value, None, False)
        context = _ENCODE({"error_type": type(failure).__name__})
        return self._assemble(parts, "log entry could not be built", context, None)

    # -- writing ----------------------------------------------------------------------

    def _write(self, line: str) -> None:
        """Write one line (after a drop notice if lines were dropped); count failures."""
        shared = self._shared
        thread = threading.get_ident()
        if thread in _EMITTING:  # the stream itself logged: avoid recursion
            self._count_drop()
            return
        if not (shared.lock.acquire(False) or shared.lock.acquire(True, WRITE_BUDGET_S)):
            self._count_drop()
            return
        _EMITTING.add(thread)
        try:
            stream: object = shared.stream if shared.stream is not None else sys.stdout
            if isinstance(stream, _CapturedStream):
                stream = stream.target
            known = _FD_WRITERS.get(id(stream))
            if (
                known is not None
                and known[0] is stream
                and known[1] is None
                and not shared.unreported
            ):  # the common case, inline: a plain stream, nothing to report first
                try:
                    stream.write(line + "\n")  # type: ignore[attr-defined]
                    stream.flush()  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001  # whatever the stream raises, drop the line
                    self._count_drop()
                return
            pending = shared.unreported
            if pending:
                notice = self._line(
                    Severity.WARNING,
                    Code.LOG_LINES_DROPPED,
                    f"{pending} log line(s) were dropped: the log stream failed or stalled",
                    {"lines_dropped": pending},
                    None,
                    None,
                )
                if not _put(stream, notice + "\n"):
                    self._count_drop()
                    return
                with shared.count_lock:
                    shared.unreported -= pending
            if not _put(stream, line + "\n"):
                self._count_drop()
        finally:
            _EMITTING.discard(thread)
            shared.lock.release()

    def _count_drop(self) -> None:
        """Count a dropped line; it is reported by the next line that gets through."""
        shared = self._shared
        with shared.count_lock:  # also called without the write lock
            shared.dropped += 1
            shared.unreported += 1


def _code_value(code: object) -> str:
    """The catalogue value for a code given as a plain string; unknown ones are mapped."""
    try:
        return Code(str(code)).value
    except ValueError:
        return Code.UNEXPECTED_EXCEPTION.value


def _describe(exc: BaseException) -> str:
    """``ExcType: message`` for an exception, whatever its ``__str__`` does."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001  # a broken __str__ must not break the line
        text = "<exception str() failed>"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _format_exception(exc: BaseException) -> str:
    """The text ``traceback.format_exc()`` would print for ``exc``."""
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:  # noqa: BLE001  # e.g. a broken __notes__: keep at least the type
        return _describe(exc) + "\n"


def _severity_for(levelno: int) -> Severity:
    """Map a stdlib logging level onto our four severities (CRITICAL -> ERROR)."""
    if levelno >= logging.ERROR:
        return Severity.ERROR
    if levelno >= logging.WARNING:
        return Severity.WARNING
    if levelno >= logging.INFO:
        return Severity.INFO
    return Severity.DEBUG


# --------------------------------------------------------------------------- process


LIBRARY_LOGGERS = (
    "httpx",
    "httpcore",
    "psycopg",
    "google",
    "grpc",
    "werkzeug",
    "flask",
    "functions_framework",
    "urllib3",
    "tenacity",
    "gunicorn",
    "py.warnings",
)
"""Loggers (and their children) made to propagate to the root's JSON handler."""

_MAX_PENDING = 16_000  # a captured partial line longer than this is emitted as is
_MAX_TRACEBACK_LINES = 1_000


class _JsonHandler(logging.Handler):
    """Root handler: every stdlib log record becomes a LIBRARY_LOG entry."""

    def __init__(self, installation: _Installation) -> None:
        super().__init__(logging.NOTSET)
        self._installation = installation

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  # bad %-args in a library's call
            message = f"{record.msg!s} (unformattable log arguments)"
        stack = None
        if record.exc_info and record.exc_info[1] is not None:
            stack = _format_exception(record.exc_info[1])
        elif record.stack_info:
            stack = record.stack_info
        where = _where(str(record.pathname), record.lineno or 0, record.funcName or "<unknown>")
        self._installation.logger._log(
            _severity_for(record.levelno),
            Code.LIBRARY_LOG,
            message,
            {"logger": record.name},
            None,
            None,
            stack=stack,
            where=where,
        )

    def handleError(self, record: logging.LogRecord) -> None:
        """Never print logging's own "--- Logging error ---" text to stderr."""


class _CapturedStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: each plain line becomes a JSON entry.

    Lines are buffered until their newline.  A Python traceback (``Traceback (most
    recent call last):`` up to the unindented ``ExcType: message`` line) becomes one
    ERROR entry with a stack_trace.  Text written while a logger is writing (our own
    JSON, possibly re-wrapped by functions-framework's LOG_EXECUTION_ID stream) passes
    through to the real stream unchanged.
    """

    def __init__(
        self, target: TextIO, name: str, severity: Severity, installation: _Installation
    ) -> None:
        super().__init__()
        self.target = target
        self._name = name
        self._severity = severity
        self._installation = installation
        self._lock = threading.RLock()
        self._pending = ""
        self._traceback: list[str] | None = None
        self._line_start = True

    @property
    def encoding(self) -> str:  # type: ignore[override]  # typeshed: plain attribute
        return str(getattr(self.target, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]  # typeshed: plain attribute
        return cast(str | None, getattr(self.target, "errors", None))

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if threading.get_ident() in _EMITTING:
            self._pass_through(text)
            return len(text)
        with self._lock:
            pending = self._pending + text
            lines = pending.split("\n")
            self._pending = lines.pop()
            if len(self._pending) > _MAX_PENDING:
                lines.append(self._pending)
                self._pending = ""
            for line in lines:
                self._take(line)
        return len(text)

    def flush(self) -> None:
        """Emit a pending partial line and an unfinished traceback."""
        with self._lock:
            if self._pending:
                line, self._pending = self._pending, ""
                self._take(line)
            if self._traceback is not None:
                self._emit_traceback()

    def close(self) -> None:
        """Flush only: the real stream stays open, and so do we."""
        self.flush()

    def _pass_through(self, text: str) -> None:
        """Forward a logger's own (already JSON) text; collapse blank lines.

        functions-framework's LOG_EXECUTION_ID wrapper writes ``line + "\\n"`` after our
        line already ended in one; a bare empty line must not reach the log.
        """
        while "\n\n" in text:
            text = text.replace("\n\n", "\n")
        if self._line_start:
            text = text.lstrip("\n")
        if not text:
            return
        self._line_start = text.endswith("\n")
        if not _put(self.target, text):
            raise OSError("log stream write failed")

    def _take(self, line: str) -> None:
        """Route one complete line: part of a traceback, or an entry of its own."""
        line = line.rstrip("\r")
        group = self._traceback
        if group is not None:
            group.append(line)
            if not line.startswith((" ", "\t")) or len(group) >= _MAX_TRACEBACK_LINES:
                self._emit_traceback()
            return
        if line.startswith("Traceback (most recent call last):"):
            self._traceback = [line]
        elif line.strip():
            self._installation.logger._log(
                self._severity, Code.LIBRARY_LOG, _unwrap(line), {"logger": self._name}, None, None
            )

    def _emit_traceback(self) -> None:
        group = self._traceback or []
        self._traceback = None
        self._installation.logger._log(
            Severity.ERROR,
            Code.UNEXPECTED_EXCEPTION,
            group[-1],
            {"logger": self._name},
            None,
            None,
            stack="\n".join(group) + "\n",
        )


def _unwrap(line: str) -> str:
    """The message of a line another wrapper already made JSON, else the line itself.

    functions-framework's LOG_EXECUTION_ID stream turns a plain print into
    ``{"message": ..., labels}`` before it reaches us; we log that message, not the JSON.
    """
    if line.startswith("{") and line.endswith("}"):
        try:
            payload = json.loads(line)
        except ValueError:
            return line
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            return cast(str, payload["message"])
    return line


class _LoggerState(NamedTuple):
    handlers: list[logging.Handler]
    propagate: bool
    disabled: bool


class _Installation:
    """What install_process_logging changed, so that uninstall can put it back."""

    def __init__(self, logger: JsonLogger) -> None:
        self.logger = logger
        root = logging.getLogger()
        self.root_handlers = list(root.handlers)
        self.root_level = root.level
        self.loggers: dict[str, _LoggerState] = {}
        self.saved_excepthook = sys.excepthook
        self.saved_threading_excepthook = threading.excepthook
        self.saved_unraisablehook = sys.unraisablehook
        self.saved_showwarning = warnings.showwarning
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self.captured: list[_CapturedStream] = []

    def excepthook(
        self,
        exc_type: type[BaseException],
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """sys.excepthook: an exception escaping the program becomes one ERROR entry."""
        self._report(exc_type, exc_value, tb, {}, "Unhandled exception")

    def threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook: same for a thread (SystemExit is ignored, as by default)."""
        if args.exc_type is SystemExit:
            return
        thread = args.thread.name if args.thread is not None else None
        self._report(
            args.exc_type,
            args.exc_value,
            args.exc_traceback,
            {"thread": thread},
            "Unhandled exception in thread",
        )

    def unraisablehook(self, args: sys.UnraisableHookArgs) -> None:
        """sys.unraisablehook: exceptions in __del__, callbacks... become ERROR entries."""
        try:
            where = repr(args.object)
        except Exception:  # noqa: BLE001  # a broken __repr__ must not hide the error
            where = "<object repr() failed>"
        self._report(
            args.exc_type,
            args.exc_value,
            args.exc_traceback,
            {},
            f"{args.err_msg or 'Exception ignored in'}: {where}",
        )

    def _report(
        self,
        exc_type: type[BaseException],
        exc_value: BaseException | None,
        tb: TracebackType | None,
        context: dict[str, object],
        prefix: str,
    ) -> None:
        try:
            stack = "".join(traceback.format_exception(exc_type, exc_value, tb))
        except Exception:  # noqa: BLE001  # keep at least the type
            stack = f"{exc_type.__name__}\n"
        described = _describe(exc_value) if exc_value is not None else exc_type.__name__
        self.logger._log(
            Severity.ERROR,
            Code.UNEXPECTED_EXCEPTION,
            f"{prefix}: {described}",
            {**context, "error_type": exc_type.__name__},
            None,
            None,
            stack=stack,
            where=_traceback_where(tb),
        )


_installed: _Installation | None = None


def _library_loggers() -> list[logging.Logger]:
    """The configured library loggers and every existing child of theirs, once each."""
    found = {name: logging.getLogger(name) for name in LIBRARY_LOGGERS}
    prefixes = tuple(f"{name}." for name in LIBRARY_LOGGERS)
    for name, candidate in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(prefixes) and isinstance(candidate, logging.Logger):
            found[name] = candidate
    return list(found.values())


def install_process_logging(logger: JsonLogger, *, level: int = logging.INFO) -> None:
    """Route all process output through ``logger``'s JSON format.

    Root logger: our handler only, at ``level``.  Library loggers (LIBRARY_LOGGERS and
    children): own handlers removed, propagation and enabled restored (functions-
    framework's dictConfig disables existing loggers).  Warnings are captured.
    sys/threading excepthooks and sys.unraisablehook log one ERROR entry with the stack
    trace.  sys.stdout and sys.stderr are replaced by line-to-JSON streams.

    Idempotent: a second call only switches the logger the routes write to.
    """
    global _installed
    if _installed is not None:
        _installed.logger = logger
        return
    installation = _Installation(logger)
    root = logging.getLogger()
    for library in _library_loggers():
        installation.loggers[library.name] = _LoggerState(
            list(library.handlers), library.propagate, library.disabled
        )
        library.handlers = []
        library.propagate = True
        library.disabled = False
    root.handlers = [_JsonHandler(installation)]
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = installation.excepthook
    threading.excepthook = installation.threading_excepthook
    sys.unraisablehook = installation.unraisablehook
    for name, severity in (("stdout", Severity.INFO), ("stderr", Severity.WARNING)):
        original = cast(TextIO, getattr(sys, name))
        # A closed or broken stream: nothing buffered can be saved anyway.
        with contextlib.suppress(Exception):
            original.flush()
        captured = _CapturedStream(original, name, severity, installation)
        installation.captured.append(captured)
        setattr(sys, name, cast(TextIO, captured))
    _installed = installation


def uninstall_process_logging() -> None:
    """Undo install_process_logging (tests): restore handlers, hooks and streams."""
    global _installed
    installation = _installed
    if installation is None:
        return
    _installed = None
    for captured in installation.captured:
        captured.flush()
    sys.stdout = installation.stdout
    sys.stderr = installation.stderr
    logging.captureWarnings(False)
    warnings.showwarning = installation.saved_showwarning
    sys.excepthook = installation.saved_excepthook
    threading.excepthook = installation.saved_threading_excepthook
    sys.unraisablehook = installation.saved_unraisablehook
    root = logging.getLogger()
    root.handlers = installation.root_handlers
    root.setLevel(installation.root_level)
    for name, state in installation.loggers.items():
        library = logging.getLogger(name)
        library.handlers = state.handlers
        library.propagate = state.propagate
        library.disabled = state.disabled
