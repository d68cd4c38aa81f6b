"""``JsonLogger``: the job's own lines, one JSON object per line, never raising.

A thin front over a structlog ``BoundLogger`` whose processor chain (``_chain``) allows the
context, formats the stack and renders the line; this module adds what structlog leaves to the
application: the run id every line carries, the severity filter, and the write that never
raises and never waits long (a failed line is counted and reported by the next one).
"""

from __future__ import annotations

import inspect
import sys
import threading
import uuid
from typing import Any, TextIO

import structlog
from structlog.types import Processor

from certexpiry.codes import CATALOGUE, Code, Severity
from certexpiry.log._chain import Service, enabled, minimal_line
from certexpiry.log._stack import Where, call_site
from certexpiry.log._trace import TraceContext
from certexpiry.log._writer import WRITE_BUDGET_S, FdWriter, Output
from certexpiry.redact import Secrets


def new_invocation_id() -> str:
    """A UUID for lines that belong to no run (yet): a process, or an invocation that never
    reaches one (an invalid message or settings), so that every line carries a cron_run_id."""
    return str(uuid.uuid4())


def _caller() -> Where | None:
    """Where the logging method that called this was called from."""
    frame = inspect.currentframe()
    for _ in range(2):  # this function's frame, then the logging method's
        frame = frame.f_back if frame is not None else None
    return call_site(frame) if frame is not None else None


class _Sink:
    """structlog's "logger": hands the rendered line back."""

    def msg(self, line: str) -> str:
        return line


class _Shared:
    """What a logger and every logger bound from it share."""

    def __init__(self, service: Service, stream: TextIO | None, min_severity: Severity) -> None:
        self.service = service
        self.chain = service.chain()
        self.output = Output(stream)
        self.enabled = enabled(min_severity)
        self.emitting: set[int] = set()  # threads inside a write: a stream that logs
        self.captured: FdWriter | None = None  # the real stdout, once the process is captured


class JsonLogger:
    """Writes Cloud Logging entries, one JSON object per line, for the job's own code.

    ``bind`` a copy per run or request to stamp ``cron_run_id`` and the trace; without a run id
    a logger stamps a UUID of its own. The message is the project's own words; the context goes
    through the allow-list (``certexpiry.redact``); an exception adds its frames, never its text.
    """

    def __init__(
        self,
        *,
        secrets: Secrets,
        service: str = "certexpiry",
        version: str = "dev",
        project: str | None = None,
        run_id: str | None = None,
        trace: TraceContext | None = None,
        stream: TextIO | None = None,
        min_severity: Severity = Severity.DEBUG,
    ) -> None:
        shared = _Shared(Service(secrets, service, version, project), stream, min_severity)
        self._setup(shared, new_invocation_id() if run_id is None else run_id, trace)

    def _setup(self, shared: _Shared, run_id: str, trace: TraceContext | None) -> None:
        self._shared = shared
        self._run_id = run_id
        self._trace = trace
        self._bound = structlog.BoundLogger(
            _Sink(), shared.chain, {"run_id": run_id, "trace": trace}
        )

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
        """The ``cron_run_id`` stamped on every line."""
        return self._run_id

    @property
    def trace(self) -> TraceContext | None:
        """The trace stamped on every line, if any."""
        return self._trace

    @property
    def secrets(self) -> Secrets:
        """The shared secret registry (register credentials on it)."""
        return self._shared.service.secrets

    @property
    def dropped(self) -> int:
        """Lines dropped so far (stream failed or stalled), over the process's lifetime."""
        return self._shared.output.dropped

    def debug(self, code: Code, message: str, **context: object) -> None:
        """Log a DEBUG entry."""
        self.emit(Severity.DEBUG, code, message, context, where=_caller())

    def info(self, code: Code, message: str, **context: object) -> None:
        """Log an INFO entry."""
        self.emit(Severity.INFO, code, message, context, where=_caller())

    def warning(self, code: Code, message: str, **context: object) -> None:
        """Log a WARNING entry."""
        self.emit(Severity.WARNING, code, message, context, where=_caller())

    def error(
        self, code: Code, message: str, *, exc: BaseException | None = None, **context: object
    ) -> None:
        """Log an ERROR entry (Error Reporting); ``exc`` adds its frames as stack_trace."""
        self.emit(Severity.ERROR, code, message, context, exc=exc, where=_caller())

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
        known = CATALOGUE.get(code)
        chosen = severity or (known.severity if known is not None else Severity.ERROR)
        self.emit(chosen, code, message, context, exc=exc, where=_caller())

    def emit(
        self,
        severity: Severity,
        code: Code,
        message: str,
        context: dict[str, Any],
        *,
        exc: BaseException | None = None,
        where: Where | None = None,
    ) -> None:
        """Build and write one entry; never raises. The entry point the process capture
        shares (it gives the location of a library record or a hook's exception)."""
        if severity not in self._shared.enabled:
            return
        try:
            line = self._bound.msg(
                message, severity=severity, code=code, context=context, exc=exc, where=where
            )
        except Exception as failure:  # noqa: BLE001  # logging must never take the job down
            line = minimal_line(self._shared.service, self._run_id, severity, failure)
        self.write(line)

    def write(self, line: str) -> None:
        """Write one rendered line (after a drop notice if lines were dropped)."""
        shared = self._shared
        output = shared.output
        thread = threading.get_ident()
        if thread in shared.emitting:  # the stream itself logged: no recursion
            output.count_drop()
            return
        if not output.lock.acquire(timeout=WRITE_BUDGET_S):
            output.count_drop()
            return
        shared.emitting.add(thread)
        try:
            fallback = shared.captured if shared.captured is not None else sys.stdout
            pending = output.unreported
            if pending:
                notice = self._bound.msg(
                    f"{pending} log line(s) were dropped: the log stream failed or stalled",
                    severity=Severity.WARNING,
                    code=Code.LOG_LINES_DROPPED,
                    context={"lines_dropped": pending},
                    exc=None,
                    where=None,
                )
                if not output.put(notice + "\n", fallback):
                    output.count_drop()
                    return
                output.reported(pending)
            if not output.put(line + "\n", fallback):
                output.count_drop()
        finally:
            shared.emitting.discard(thread)
            output.lock.release()

    def writes(self, severity: Severity) -> bool:
        """Whether this logger writes lines of ``severity`` (its min_severity)."""
        return severity in self._shared.enabled

    def chain(self) -> list[Processor]:
        """The processor chain of this logger's lines (library records take it too)."""
        return self._shared.chain

    def capture_to(self, writer: FdWriter | None) -> None:
        """Write to ``writer`` (the real stdout) when no stream was given: the process
        capture calls this, since fd 1 itself now leads back into the capture."""
        self._shared.captured = writer
