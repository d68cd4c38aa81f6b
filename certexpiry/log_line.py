"""One log entry as a chain of small processors (structlog) ending in one JSON line.

Why a chain: each step of a line (the timestamp, the run and trace binding, the context
allow-list, redaction and caps, the Error Reporting fields, rendering within the size limit) is
its own function, tested on its own, and structlog runs them in order: the field's standard for
exactly this shape.  The chain hands the finished line back to ``JsonLogger`` (``_Sink``), which
writes it with the fault-proof writer (``certexpiry.log_writer``); logging never raises, so a
failure anywhere in the chain becomes the minimal line of ``fallback_line``.

A processor takes and returns structlog's event dict.  What ``JsonLogger`` puts in: ``event``
(the message), ``severity``, ``code``, ``context`` (the caller's keyword arguments), ``stack``
and ``where`` (the call site, already located), plus the bound ``run_id`` and ``trace``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor

from certexpiry.codes import Code, Severity
from certexpiry.log_clean import Cleaner
from certexpiry.log_entry import (
    _ENCODE,
    _QUOTE,
    ALLOWED_CONTEXT_KEYS,
    ERROR_EVENT_TYPE,
    MAX_LINE,
    TRUNCATION_MARK,
    _Caps,
    _code_value,
    _cut_middle,
)
from certexpiry.log_trace import TraceContext
from certexpiry.sanitize import Sanitizer

_LOGGER_SET = ("truncated", "total_count")  # the logger sets these too: the values are merged
_RANK = {Severity.DEBUG: 10, Severity.INFO: 20, Severity.WARNING: 30, Severity.ERROR: 40}
_time_ns = time.time_ns  # module-level, so tests can move the clock

Event = EventDict


class _Sink:
    """structlog's "logger": it returns the rendered line to JsonLogger, which writes it."""

    def msg(self, line: str) -> str:
        return line


_SINK = _Sink()


class _Shared:
    """State shared by a logger and every logger bound from it, and their processor chain."""

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
        self.cleaner = Cleaner(sanitizer)
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
        self.bindings: dict[tuple[str, TraceContext | None], tuple[str, str]] = {}
        self.chain: list[Processor] = [
            self.add_timestamp,
            self.bind_run_and_trace,
            select_context,
            self.redact_and_cap,
            self.add_error_reporting,
            self.render,
        ]

    def logger(self, run_id: str, trace: TraceContext | None) -> Any:
        """A structlog logger over the chain, bound to a run and a trace.

        Built directly rather than through ``wrap_logger``'s lazy proxy, which resolves
        structlog's global configuration on a logger's first call: a run binds a few loggers,
        and the chain here never depends on that configuration.
        """
        return structlog.BoundLogger(_SINK, self.chain, {"run_id": run_id, "trace": trace})

    # -- the processors that need the shared state ----------------------------------------

    def add_timestamp(self, _logger: Any, _method: str, event: Event) -> Event:
        """RFC 3339 UTC with microseconds; the seconds part is formatted once a second."""
        event["timestamp"] = self.timestamp()
        return event

    def bind_run_and_trace(self, _logger: Any, _method: str, event: Event) -> Event:
        """The run id and the labels and trace members for the bound run and trace (cached)."""
        key = (event.pop("run_id"), event.pop("trace"))
        found = self.bindings.get(key)
        if found is None:
            if len(self.bindings) >= 1_024:
                self.bindings.clear()
            found = self.bindings[key] = self._binding(*key)
        event["run_json"], event["fixed_json"] = found
        return event

    def _binding(self, run_id: str, trace: TraceContext | None) -> tuple[str, str]:
        fixed: dict[str, object] = {
            "logging.googleapis.com/labels": {"cron_run_id": run_id, "function": self.service}
        }
        if trace is not None:
            if self.project:
                fixed["logging.googleapis.com/trace"] = (
                    f"projects/{self.project}/traces/{trace.trace_id}"
                )
            if trace.span_id:
                fixed["logging.googleapis.com/spanId"] = trace.span_id
            fixed["logging.googleapis.com/trace_sampled"] = trace.sampled
        return f',"cron_run_id":{_ENCODE(run_id)}', "," + _ENCODE(fixed)[1:-1]

    def redact_and_cap(self, _logger: Any, _method: str, event: Event) -> Event:
        """Message, context values and stack trace sanitised and capped."""
        caps = _Caps()
        event["members"] = [
            (key, _ENCODE(self.cleaner.clean(value, 1, caps))) for key, value in event["members"]
        ]
        event["reserved"] = {
            key: _ENCODE(self.cleaner.clean(value, 1, caps))
            for key, value in event["reserved"].items()
        }
        message = event["event"]
        event["event"] = self.cleaner.clean_text(
            message if type(message) is str else str(message), caps
        )
        if event["stack"] is not None:
            event["stack"] = self.cleaner.clean_stack(event["stack"])
        if caps.truncated:
            event["reserved"]["truncated"] = "true"
            if caps.total:
                event["reserved"]["total_count"] = str(caps.total)
        return event

    def add_error_reporting(self, _logger: Any, _method: str, event: Event) -> Event:
        """ERROR lines: Error Reporting's type and service, and reportLocation without a stack."""
        event["error_json"] = ""
        if event["severity"] is Severity.ERROR:
            event["error_json"] = self.error_json
            if event["stack"] is None and event["where"] is not None:
                event["extra"].append(event["where"].report)
        return event

    def render(self, _logger: Any, _method: str, event: Event) -> str:
        """The JSON line; over MAX_LINE, only the identifying context is kept, then less."""
        members = [f'"{key}":{encoded}' for key, encoded in event["members"]]
        members += [f'"{key}":{encoded}' for key, encoded in event["reserved"].items()]
        members += event["extra"]
        line = _assemble(event, event["event"], "{" + ",".join(members) + "}", event["stack"])
        if len(line) > MAX_LINE:
            ids = _ENCODE(self.cleaner.ids_only(event["context"]))
            line = _assemble(event, event["event"], ids, event["stack"])
            if len(line) > MAX_LINE:
                stack = event["stack"]
                short = None if stack is None else _cut_middle(stack, 2_000)
                line = _assemble(event, event["event"][:200] + TRUNCATION_MARK, ids, short)
        return line

    def timestamp(self) -> str:
        """RFC 3339 UTC with microseconds; the seconds part is formatted once a second."""
        seconds, nanos = divmod(_time_ns(), 1_000_000_000)
        cached_second, text = self.clock
        if cached_second != seconds:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            self.clock = (seconds, text)
        return f"{text}.{nanos // 1000:06d}Z"


def select_context(_logger: Any, _method: str, event: Event) -> Event:
    """The caller's context through the allow-list; the rest dropped and counted."""
    members: list[tuple[str, object]] = []
    reserved: dict[str, object] = {}  # truncated / total_count given by the caller
    dropped = 0
    for key, value in event["context"].items():
        if key not in ALLOWED_CONTEXT_KEYS:
            dropped += 1
        elif key in _LOGGER_SET:
            reserved[key] = value
        else:
            members.append((key, value))
    event["members"], event["reserved"] = members, reserved
    event["extra"] = [f'"dropped_keys":{dropped}'] if dropped else []
    return event


def _assemble(event: Event, text: str, context_json: str, stack: str | None) -> str:
    """The JSON line, its members in a fixed order."""
    code = event["code"]
    code_value = code.value if type(code) is Code else _code_value(code)
    where = event["where"]
    stack_json = "" if stack is None else ',"stack_trace":' + _QUOTE(stack)
    where_json = "" if where is None else where.json
    timestamp = event["timestamp"]
    return (
        f'{{"timestamp":"{timestamp}","time":"{timestamp}","severity":"{event["severity"].value}"'
        f',"message":{_QUOTE(text)}{event["run_json"]},"error_code":"{code_value}"'
        f',"context":{context_json}{stack_json}{event["fixed_json"]}{where_json}'
        f"{event['error_json']}}}"
    )


def fallback_line(shared: _Shared, run_id: str, severity: Severity, failure: Exception) -> str:
    """A minimal, always-encodable entry for when building the real one failed."""
    run_json, fixed_json = shared._binding(run_id, None)  # noqa: SLF001  # same module's state
    event: Event = {
        "timestamp": shared.timestamp(),
        "severity": severity,
        "code": Code.UNEXPECTED_EXCEPTION,
        "where": None,
        "run_json": run_json,
        "fixed_json": fixed_json,
        "error_json": "",
    }
    context = _ENCODE({"error_type": type(failure).__name__})
    return _assemble(event, "log entry could not be built", context, None)
