"""Whole-process capture: loggers, warnings, uncaught exceptions, stdout/stderr as JSON.

Everything the process writes besides our own JsonLogger calls (root and library
loggers, warnings, exceptions escaping a thread or the program, raw stdout/stderr) is
routed through one JsonLogger.

Split out of ``certexpiry.log`` (which re-exports ``install_process_logging``,
``uninstall_process_logging`` and ``LIBRARY_LOGGERS``) because patching process-wide
state (root handlers, ``sys`` hooks, ``sys.stdout``/``sys.stderr``) is a job of its own,
done once at start-up; the logger itself lives in ``certexpiry.log``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, TextIO, cast

from certexpiry.codes import Code, Severity
from certexpiry.log_entry import _describe, _format_exception, _traceback_where, _where
from certexpiry.log_stream import _CapturedStream
from certexpiry.log_template import Redact, template

if TYPE_CHECKING:
    from certexpiry.log import JsonLogger

__all__ = [
    "LIBRARY_LOGGERS",
    "install_process_logging",
    "route_process_logging",
    "uninstall_process_logging",
]


def _severity_for(levelno: int) -> Severity:
    """Map a stdlib logging level onto our four severities (CRITICAL -> ERROR)."""
    if levelno >= logging.ERROR:
        return Severity.ERROR
    if levelno >= logging.WARNING:
        return Severity.WARNING
    if levelno >= logging.INFO:
        return Severity.INFO
    return Severity.DEBUG


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
            stack = _format_exception(record.exc_info[1], self._installation.redact())
        elif record.stack_info:
            stack = record.stack_info
        where = _where(str(record.pathname), record.lineno or 0, record.funcName or "<unknown>")
        self._installation.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
            _severity_for(record.levelno),
            Code.LIBRARY_LOG,
            template(message, self._installation.redact()),
            {"logger": record.name},
            None,
            None,
            stack=stack,
            where=where,
        )

    def handleError(self, record: logging.LogRecord) -> None:
        """Never print logging's own "--- Logging error ---" text to stderr."""


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

    def redact(self) -> Redact:
        """The logger's redaction by value, which runs before any template."""
        return self.logger.sanitizer.clean

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
            where = template(repr(args.object), self.redact())
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
        if exc_value is None:
            stack = f"{exc_type.__name__}\n"
        else:
            stack = _format_exception(exc_value.with_traceback(tb), self.redact())
        described = (
            _describe(exc_value, self.redact()) if exc_value is not None else exc_type.__name__
        )
        self.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
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


def route_process_logging(logger: JsonLogger) -> JsonLogger | None:
    """Send what the process writes to ``logger`` (a run's bound logger) from now on.

    Returns the logger it replaces, to route back to once the run's invocation ends; None
    (and nothing changed) when process logging is not installed.
    """
    installation = _installed
    if installation is None:
        return None
    previous, installation.logger = installation.logger, logger
    return previous


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
