"""``JsonLogger``: the job's lines, each through ``_chain`` (run by structlog) to ``_writer``."""

import copy
import inspect
import uuid
from typing import Any, Self, TextIO

import structlog

from certexpiry.codes import Code, Severity
from certexpiry.log._chain import Service
from certexpiry.log._stack import Where
from certexpiry.log._trace import TraceContext
from certexpiry.log._writer import FdWriter, Output
from certexpiry.redact import Secrets


def new_invocation_id() -> str:
    """A UUID for lines of no run (yet): every line carries a cron_run_id."""
    return str(uuid.uuid4())


def _caller() -> Where | None:
    """Where the logging method that called this was called from."""
    here = inspect.currentframe()
    method = here.f_back if here is not None else None
    caller = method.f_back if method is not None else None
    return (
        None
        if caller is None
        else Where(caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_qualname)
    )


class JsonLogger:
    """The job's own lines, each with ``run_id`` (a UUID of its own if none) and ``trace``."""

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
        self.run_id = new_invocation_id() if run_id is None else run_id
        self.trace = trace
        self._service = Service(secrets, service, version, project)
        # ReturnLogger hands the rendered line back, for write() to send out
        self._chain = structlog.BoundLogger(structlog.ReturnLogger(), self._service.chain(), {})
        self._output = Output(stream)  # bound copies share these
        levels = list(Severity)  # in order
        self._enabled = frozenset(levels[levels.index(min_severity) :])

    def bind(self, *, run_id: str | None = None, trace: TraceContext | None = None) -> Self:
        """A logger with this run id and/or trace (None keeps the current one)."""
        bound = copy.copy(self)
        bound.run_id = self.run_id if run_id is None else run_id
        bound.trace = self.trace if trace is None else trace
        return bound

    @property
    def secrets(self) -> Secrets:
        """The shared secret registry (register credentials on it)."""
        return self._service.secrets

    @property
    def dropped(self) -> int:
        """Lines dropped so far (stream failed or stalled)."""
        return self._output.dropped

    def debug(self, code: Code, message: str, **context: object) -> None:
        self.emit(Severity.DEBUG, code, message, context, where=_caller())

    def info(self, code: Code, message: str, **context: object) -> None:
        self.emit(Severity.INFO, code, message, context, where=_caller())

    def warning(self, code: Code, message: str, **context: object) -> None:
        self.emit(Severity.WARNING, code, message, context, where=_caller())

    def error(
        self, code: Code, message: str, *, exc: BaseException | None = None, **context: object
    ) -> None:
        """An ERROR entry (Error Reporting); ``exc`` adds its frames as stack_trace."""
        self.emit(Severity.ERROR, code, message, context, exc=exc, where=_caller())

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
        """Build and write one entry; never raises."""
        if not self.writes(severity):
            return
        try:
            event = {"severity": severity, "code": code, "context": context, "exc": exc}
            line = self.render(message, where=where, **event)
        except Exception as failure:  # noqa: BLE001  # logging must never take the job down
            context = {"error_type": type(failure).__name__}  # and nothing of the input
            event = {"severity": severity, "code": Code.UNEXPECTED_EXCEPTION, "context": context}
            line = self.render("log entry could not be built", **event)
        self.write(line)

    def render(self, message: str, **event: Any) -> str:
        """One entry (``event``: severity, code, context, exc, where) as its line; may raise."""
        return str(self._chain.msg(message, run_id=self.run_id, trace=self.trace, **event))

    def write(self, line: str) -> None:
        """Write one rendered line (after a drop notice if lines were dropped)."""
        self._output.write(line, self._drop_notice)

    def _drop_notice(self, count: int) -> str:
        message = f"{count} log line(s) were dropped: the log stream failed or stalled"
        notice = {"severity": Severity.WARNING, "code": Code.LOG_LINES_DROPPED}
        return self.render(message, context={"lines_dropped": count}, **notice)

    def writes(self, severity: Severity) -> bool:
        """Whether this logger writes lines of ``severity`` (its min_severity)."""
        return severity in self._enabled

    def capture_to(self, writer: FdWriter | None) -> None:
        """Write to ``writer`` (the real stdout, once fd 1 leads into the capture) if no stream."""
        self._output.captured = writer
