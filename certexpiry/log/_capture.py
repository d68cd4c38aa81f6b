"""Everything else the process writes, as the job's lines (docs/logging.md, "Nothing else
reaches the log"): library records, the hooks, warnings and the bytes on fds 1 and 2."""

from __future__ import annotations

import bisect
import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog
from structlog.types import EventDict

from certexpiry.codes import Code, Severity
from certexpiry.log._fd import FdCapture
from certexpiry.log._logger import JsonLogger
from certexpiry.log._stack import located, raised_at
from certexpiry.log._writer import FdWriter

LIBRARY_LOGGERS = tuple(  # a word list: a name per line would fill a screen
    "httpx httpcore psycopg google grpc werkzeug flask functions_framework urllib3 tenacity"  # noqa: SIM905
    " gunicorn py.warnings".split()
)
"""Loggers (and their children) made to propagate to the root's JSON handler."""

_RECORD = "A library logged a record; its text is not logged (see logger and sourceLocation)."
_WARNING = "A warning was issued; its text is not logged (see error_type and sourceLocation)."
_LINE = "A line was written to {} outside the logger; its text is not logged."
_TRACEBACK = "A traceback was written to {} outside the logger; its text is not logged."
_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR)  # where each next severity begins


def _severity_for(levelno: int) -> Severity:
    """A stdlib level as one of the four severities (CRITICAL -> ERROR)."""
    return list(Severity)[bisect.bisect_right(_LEVELS, levelno)]


_open_runs: list[JsonLogger] = []  # bound now, latest last: the run an instance works on


def bind_run(logger: JsonLogger) -> Callable[[], None]:
    """Tie what the process logs in this context, and what it writes meanwhile with no context
    of its own (fds 1 and 2, a new thread), to ``logger``'s run; returns the untying function."""
    tokens = structlog.contextvars.bind_contextvars(run_id=logger.run_id, trace=logger.trace)
    _open_runs.append(logger)

    def unbind() -> None:
        structlog.contextvars.reset_contextvars(**tokens)
        with contextlib.suppress(ValueError):  # unbound twice
            _open_runs.remove(logger)

    return unbind


class _Capture(logging.Handler):
    """The root logger's one handler, the hooks, ``showwarning`` and the fd reader's callback."""

    def __init__(self, logger: JsonLogger) -> None:
        super().__init__()
        self.logger = logger  # a second install switches it
        self.undo = contextlib.ExitStack()  # puts back what install replaced
        self.writer: FdWriter | None = None  # the real stdout, once fds 1 and 2 are captured
        self.in_traceback: set[str] = set()  # the streams a printed traceback is being read on
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=[self.record_line], use_get_message=False
        )
        self.setFormatter(formatter)

    def replace(self, owner: object, attribute: str, value: object) -> None:
        self.undo.callback(setattr, owner, attribute, getattr(owner, attribute))
        setattr(owner, attribute, value)

    def current(self) -> JsonLogger:
        """``logger`` bound to the context's run, else to the open one, else as it is."""
        run = structlog.contextvars.get_contextvars()
        if run.get("run_id") is None and _open_runs:
            run = {"run_id": _open_runs[-1].run_id, "trace": _open_runs[-1].trace}
        return self.logger.bind(run_id=run.get("run_id"), trace=run.get("trace"))

    def emit(self, record: logging.LogRecord) -> None:
        """A record as one line, through structlog's ``ProcessorFormatter``; never raises."""
        if self.logger.writes(_severity_for(record.levelno)):
            try:
                line = self.format(record)
            except Exception as failure:  # noqa: BLE001  # a record must never break the job
                message = "A library record could not be logged."
                context = {"error_type": type(failure).__name__}
                self.logger.emit(Severity.ERROR, Code.UNEXPECTED_EXCEPTION, message, context)
            else:
                self.logger.write(line)

    def record_line(self, _logger: Any, _method: str, event: EventDict) -> str:
        """The formatter's renderer: a record (structlog-wrapped or not) as its logger's name
        and location, never its text or event (anyone's, even unformatted)."""
        record: logging.LogRecord = event["_record"]  # a copy, its exc_info already cleared
        exc_info = event.get("exc_info")
        exc = exc_info[1] if isinstance(exc_info, tuple) else None
        where = located(str(record.pathname), record.lineno or 0, record.funcName or "?")
        event = {"severity": _severity_for(record.levelno), "code": Code.LIBRARY_LOG, "exc": exc}
        context = {"logger": record.name}
        return self.current().render(_RECORD, context=context, where=where, **event)

    def excepthook(
        self, exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        args = threading.ExceptHookArgs([exc_type, exc, tb, None])
        self.report("An exception escaped the program.", args)

    def threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:  # quiet, as Python's own hook is
            self.report("An exception escaped a thread.", args)

    def unraisablehook(self, args: sys.UnraisableHookArgs) -> None:
        self.report("An exception was ignored (in a finaliser or a callback).", args)

    def report(self, message: str, args: threading.ExceptHookArgs | sys.UnraisableHookArgs) -> None:
        """A hook's exception: one ERROR entry with its frames, its type and a thread's name."""
        exc, tb = args.exc_value, args.exc_traceback
        if exc is not None and tb is not None:
            exc = exc.with_traceback(tb)
        thread = getattr(args, "thread", None)
        context = {"thread": thread.name} if thread else {}
        context["error_type"] = args.exc_type.__name__
        code, where = Code.UNEXPECTED_EXCEPTION, raised_at(tb)
        self.current().emit(Severity.ERROR, code, message, context, exc=exc, where=where)

    def showwarning(
        self, _: object, category: type[Warning], filename: str, lineno: int, *__: object
    ) -> None:
        """warnings.showwarning: the category and where it was issued, never the text."""
        context = {"logger": "py.warnings", "error_type": category.__name__}
        where = located(filename, lineno, "?")
        self.current().emit(Severity.WARNING, Code.LIBRARY_LOG, _WARNING, context, where=where)

    def fd_line(self, stream: str, text: str) -> None:
        """A line of fd 1 or 2; a printed traceback is one entry, typed by its last line."""
        context = {"logger": stream}
        if stream in self.in_traceback:
            if not text.startswith((" ", "\t")):
                self.in_traceback.discard(stream)
                context["error_type"] = text.partition(":")[0].rpartition(".")[2].strip()
                message = _TRACEBACK.format(stream)
                self.current().emit(Severity.ERROR, Code.UNEXPECTED_EXCEPTION, message, context)
        elif text.startswith("Traceback (most recent call last):"):
            self.in_traceback.add(stream)
        elif text.strip():
            severity = Severity.INFO if stream == "stdout" else Severity.WARNING
            self.current().emit(severity, Code.LIBRARY_LOG, _LINE.format(stream), context)


_installed: _Capture | None = None


def install_process_logging(
    logger: JsonLogger, *, level: int = logging.INFO, capture_fds: bool = True
) -> None:
    """Route everything the process writes through ``logger``; a second call switches it."""
    global _installed
    if _installed is None:
        capture = _installed = _Capture(logger)
        root = logging.getLogger()
        capture.undo.callback(root.setLevel, root.level)  # setLevel: loggers' level caches reset
        prefixes = tuple(f"{name}." for name in LIBRARY_LOGGERS)
        children = [name for name in logging.Logger.manager.loggerDict if name.startswith(prefixes)]
        for name in {*LIBRARY_LOGGERS, *children}:  # functions-framework's dictConfig disables them
            library = logging.getLogger(name)  # (a placeholder becomes the logger it stood for)
            capture.replace(library, "handlers", [])
            capture.replace(library, "propagate", True)
            capture.replace(library, "disabled", False)
        capture.replace(root, "handlers", [capture])
        root.setLevel(level)
        capture.replace(warnings, "showwarning", capture.showwarning)
        capture.replace(sys, "excepthook", capture.excepthook)
        capture.replace(threading, "excepthook", capture.threading_excepthook)
        capture.replace(sys, "unraisablehook", capture.unraisablehook)
        capture.undo.callback(lambda: capture.logger.capture_to(None))
        if capture_fds:
            fds = FdCapture(capture.fd_line)
            capture.writer = FdWriter(fds.install())
            capture.undo.callback(fds.uninstall)
    _installed.logger = logger
    logger.capture_to(_installed.writer)


def uninstall_process_logging() -> None:
    """Undo install_process_logging (tests): file descriptors, hooks and handlers."""
    global _installed
    capture, _installed = _installed, None
    if capture is not None:
        capture.undo.close()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
