"""The processors of a line. The event: ``event`` (the message), ``severity``, ``code``,
``context`` (not yet allowed), ``exc``, ``where``, ``run_id`` and ``trace``."""

import json
from dataclasses import dataclass
from itertools import islice
from typing import Any

import structlog
from structlog.types import EventDict, Processor

from certexpiry.codes import Code, Severity
from certexpiry.log._stack import Where, stack_trace
from certexpiry.redact import CONTEXT_FORMS, Secrets, allowed

MAX_STRING = 2_000
"""Characters kept of a message."""
MAX_ITEMS = 100
"""Items kept of a list in the context (the ids of a long report)."""
TRUNCATION_MARK = "...[truncated]"
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)

_CODES = frozenset(Code)
_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode

add_timestamp = structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", key="timestamp")


def allow_context(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """Each value in its key's form, lists cut at MAX_ITEMS, other keys dropped and counted."""
    kept: dict[str, object] = {}
    dropped = total = 0
    for key, value in event["context"].items():
        if key not in CONTEXT_FORMS:
            dropped += 1
            continue
        if isinstance(value, (list, tuple, set, frozenset)) and len(value) > MAX_ITEMS:
            total = max(total, len(value))
            value = list(islice(value, MAX_ITEMS))
        kept[key] = allowed(key, value)
    if total:
        kept["truncated"], kept["total_count"] = True, total
    if dropped:
        kept["dropped_keys"] = dropped
    event["context"] = kept
    return event


def add_stack(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """An exception's frames and types (never its message), and its type as error_type."""
    exc = event.get("exc")
    if isinstance(exc, BaseException):
        event["stack"] = stack_trace(exc)
        event["context"].setdefault("error_type", allowed("error_type", type(exc).__name__))
    return event


@dataclass(frozen=True)
class Service:
    """What every line says about the service that wrote it, and the secrets to scrub."""

    secrets: Secrets
    name: str = "certexpiry"
    version: str = "dev"
    project: str | None = None

    def chain(self) -> list[Processor]:
        return [add_timestamp, allow_context, add_stack, self.cloud_logging, self.render]

    def cloud_logging(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        """Cloud Logging's special fields; on ERROR lines, Error Reporting's."""
        labels = {"cron_run_id": event["run_id"], "function": self.name}
        special: dict[str, object] = {"logging.googleapis.com/labels": labels}
        trace = event.get("trace")
        if trace is not None:
            if self.project:
                trace_name = f"projects/{self.project}/traces/{trace.trace_id}"
                special["logging.googleapis.com/trace"] = trace_name
            if trace.span_id:
                special["logging.googleapis.com/spanId"] = trace.span_id
            special["logging.googleapis.com/trace_sampled"] = trace.sampled
        where: Where | None = event.get("where")
        if where is not None:
            location = {"file": where.file, "line": str(where.line), "function": where.function}
            special["logging.googleapis.com/sourceLocation"] = location
        if event["severity"] is Severity.ERROR:
            special["@type"] = ERROR_EVENT_TYPE
            special["serviceContext"] = {"service": self.name, "version": self.version}
            if event.get("stack") is None and where is not None:
                event["context"]["reportLocation"] = {
                    "filePath": where.file,
                    "lineNumber": where.line,
                    "functionName": where.function,
                }
        event["special"] = special
        return event

    def render(self, _logger: Any, _method: str, event: EventDict) -> str:
        """The JSON line, each text scrubbed before it is cut (a cut secret would not be found);
        far under Cloud Logging's 256 KB by MAX_STRING, MAX_ITEMS, MAX_STACK and fixed keys."""
        code = str(event["code"])
        entry: dict[str, object] = {
            "timestamp": event["timestamp"],
            "time": event["timestamp"],
            "severity": event["severity"].value,
            "message": self.clean(str(event["event"])),
            "cron_run_id": event["run_id"],
            "error_code": code if code in _CODES else Code.UNEXPECTED_EXCEPTION.value,
            "context": self.clean(event["context"]),
        }
        if event.get("stack") is not None:
            entry["stack_trace"] = self.secrets.scrub(event["stack"])
        entry.update(event["special"])
        return _ENCODE(entry)

    def clean(self, value: Any) -> Any:
        """A value with each text in it scrubbed, then cut at MAX_STRING."""
        if isinstance(value, str):
            text = self.secrets.scrub(value)
            return text if len(text) <= MAX_STRING else text[:MAX_STRING] + TRUNCATION_MARK
        if isinstance(value, dict):
            return {key: self.clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.clean(item) for item in value]
        return value
