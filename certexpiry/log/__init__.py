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

The work is split over flat modules, each under 400 lines: ``log_trace`` (trace headers),
``log_entry`` (limits, allow-list, locations, exception text), ``log_line`` (building a
line), ``log_writer`` (bounded writes to pipes and sockets) and ``log_capture``
(``install_process_logging``).  This module keeps ``JsonLogger`` and re-exports the
public names, so callers import everything from ``certexpiry.log``.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Mapping
from types import FrameType
from typing import TextIO, cast

from certexpiry.codes import CATALOGUE, Code, Severity
from certexpiry.log_capture import (
    LIBRARY_LOGGERS,
    install_process_logging,
    route_process_logging,
    uninstall_process_logging,
)
from certexpiry.log_entry import (
    ALLOWED_CONTEXT_KEYS,
    ERROR_EVENT_TYPE,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LINE,
    MAX_STACK,
    MAX_STRING,
    TRUNCATION_MARK,
    _format_exception,
    _frame_where,
    _Where,
)
from certexpiry.log_line import _Shared, fallback_line
from certexpiry.log_stream import _CapturedStream
from certexpiry.log_trace import TraceContext, trace_from_headers
from certexpiry.log_writer import _EMITTING, _FD_WRITERS, WRITE_BUDGET_S, _put
from certexpiry.sanitize import Sanitizer

__all__ = [
    "ALLOWED_CONTEXT_KEYS",
    "ERROR_EVENT_TYPE",
    "LIBRARY_LOGGERS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_LINE",
    "MAX_STACK",
    "MAX_STRING",
    "TRUNCATION_MARK",
    "WRITE_BUDGET_S",
    "JsonLogger",
    "Severity",
    "TraceContext",
    "install_process_logging",
    "new_invocation_id",
    "route_process_logging",
    "trace_from_headers",
    "uninstall_process_logging",
]


def new_invocation_id() -> str:
    """A UUID for lines that belong to no run (yet): a process, or an invocation that never
    reaches one (an invalid message or settings), so that every line carries a cron_run_id."""
    return str(uuid.uuid4())


class JsonLogger:
    """Writes sanitised Cloud Logging entries, one JSON object per line.

    Create one per process with the process's ``Sanitizer``; ``bind`` a copy per run /
    request to stamp ``cron_run_id`` and the trace.  Every logger has a run id: without one
    it stamps a UUID of its own (``new_invocation_id``).  Bound loggers share the sanitizer,
    the stream, the lock and the dropped-line counter.  A line is built by the processor
    chain of ``certexpiry.log_line`` (structlog) and written by ``_write``.
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
        self._setup(shared, new_invocation_id() if run_id is None else run_id, trace)

    def _setup(self, shared: _Shared, run_id: str, trace: TraceContext | None) -> None:
        self._shared = shared
        self._run_id = run_id
        self._trace = trace
        self._chain = shared.logger(run_id, trace)

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
    def run_id(self) -> str:
        """The ``cron_run_id`` stamped on every line (the run's, else the invocation's UUID)."""
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
        self._log(Severity.DEBUG, code, message, context, None, sys._getframe(1))  # noqa: SLF001  # CPython's public-by-convention frame accessor

    def info(self, code: Code, message: str, **context: object) -> None:
        """Log an INFO entry."""
        self._log(Severity.INFO, code, message, context, None, sys._getframe(1))  # noqa: SLF001  # CPython's public-by-convention frame accessor

    def warning(self, code: Code, message: str, **context: object) -> None:
        """Log a WARNING entry."""
        self._log(Severity.WARNING, code, message, context, None, sys._getframe(1))  # noqa: SLF001  # CPython's public-by-convention frame accessor

    def error(
        self, code: Code, message: str, *, exc: BaseException | None = None, **context: object
    ) -> None:
        """Log an ERROR entry (Error Reporting); ``exc`` adds its sanitised stack_trace."""
        self._log(Severity.ERROR, code, message, context, exc, sys._getframe(1))  # noqa: SLF001  # CPython's public-by-convention frame accessor

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
        self._log(chosen, code, message, context, exc, sys._getframe(1))  # noqa: SLF001  # CPython's public-by-convention frame accessor

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
                stack = _format_exception(exc, self._shared.sanitizer.clean)
                if "error_type" not in context:
                    context = {**context, "error_type": type(exc).__name__}
            line = self._line(severity, code, message, context, stack, where)
        except Exception as failure:  # noqa: BLE001  # logging must never take the job down
            line = fallback_line(self._shared, self._run_id, severity, failure)
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
        """One entry through the processor chain: its JSON line."""
        line = self._chain.msg(
            message, severity=severity, code=code, context=context, stack=stack, where=where
        )
        return cast(str, line)

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
