"""Whole-process capture: library records, warnings, escaping exceptions and every byte on
fds 1 and 2 become JSON lines, none of them carrying foreign text.

Library records go through ``structlog.stdlib.ProcessorFormatter`` with the job's own chain;
their text (``record.msg`` and its arguments) is someone else's and is dropped: a line names
the logger and where it logged. Bytes written below Python (gRPC's C core, ``os.write``, a
thread at exit) are read back by ``_fd.FdCapture`` and each line becomes an entry saying only
which stream it was written to; a printed traceback becomes one ERROR entry with its exception's
type, if the process has such a class. The run a line belongs to comes from ``contextvars``
(``bind_run``): records logged in a run's context carry its id; lines without one (the capture's
reader thread, a process-level record) carry the process logger's.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, TextIO

import structlog
from structlog.types import EventDict

from certexpiry.codes import Code, Severity
from certexpiry.log._fd import FdCapture
from certexpiry.log._logger import JsonLogger
from certexpiry.log._stack import located, raised_at
from certexpiry.log._writer import FdWriter

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

_RECORD = "A library logged a record; its text is not logged (see logger and sourceLocation)."
_LINE = "A line was written to {} outside the logger; its text is not logged."
_TRACEBACK = "A traceback was written to {} outside the logger; its text is not logged."


def _severity_for(levelno: int) -> Severity:
    """A stdlib level as one of the four severities (CRITICAL -> ERROR)."""
    if levelno >= logging.ERROR:
        return Severity.ERROR
    if levelno >= logging.WARNING:
        return Severity.WARNING
    return Severity.INFO if levelno >= logging.INFO else Severity.DEBUG


_open_runs: list[JsonLogger] = []
"""The runs bound now, latest last: for lines that cannot know their context (the fd reader's,
a thread's exception), the run being worked on (an instance serves one request at a time)."""


def bind_run(logger: JsonLogger) -> Callable[[], None]:
    """Tie what the process logs in this context (library records, warnings) to ``logger``'s
    run and trace, and what it writes meanwhile with no context of its own (bytes on fds 1
    and 2, a thread's exception); returns the function that unties it."""
    tokens = structlog.contextvars.bind_contextvars(run_id=logger.run_id, trace=logger.trace)
    _open_runs.append(logger)

    def unbind() -> None:
        structlog.contextvars.reset_contextvars(**tokens)
        with contextlib.suppress(ValueError):  # unbound twice
            _open_runs.remove(logger)

    return unbind


class _RecordHandler(logging.Handler):
    """The root's handler: each record through ProcessorFormatter, then the logger's write."""

    def __init__(self, installation: _Installation) -> None:
        super().__init__(logging.NOTSET)
        self.installation = installation
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[self.through_logger_chain],
                foreign_pre_chain=[structlog.contextvars.merge_contextvars, self.record_event],
                use_get_message=False,  # the text is dropped: never format its arguments
            )
        )

    def through_logger_chain(self, logger: Any, method: str, event: EventDict) -> str:
        """The current logger's chain (the installation may switch loggers). A record of a
        structlog-wrapped logger skipped the pre-chain: its event dict is rebuilt the same way,
        its own keys (anyone's text) dropped."""
        if event.get("_from_structlog"):
            event = self.record_event(logger, method, {"_record": event["_record"]})
        result: Any = event
        for processor in self.installation.logger.chain():
            result = processor(logger, method, result)
        return str(result)  # the chain ends in the renderer

    def record_event(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        record: logging.LogRecord = event["_record"]
        exc_info = record.exc_info
        event.update(
            event=_RECORD,
            severity=_severity_for(record.levelno),
            code=Code.LIBRARY_LOG,
            context={"logger": record.name},
            exc=exc_info[1] if exc_info else None,
            where=located(str(record.pathname), record.lineno or 0, record.funcName or "?"),
        )
        if "run_id" not in event:  # no run in this context: the one being worked on, if any
            fallback = self.installation.current()
            event["run_id"], event["trace"] = fallback.run_id, fallback.trace
        return event

    def emit(self, record: logging.LogRecord) -> None:
        if not self.installation.logger.writes(_severity_for(record.levelno)):
            return
        try:
            line = self.format(record)
        except Exception as failure:  # noqa: BLE001  # a record must never break the job
            self.installation.logger.emit(
                Severity.ERROR,
                Code.UNEXPECTED_EXCEPTION,
                "A library record could not be logged.",
                {"error_type": type(failure).__name__},
            )
            return
        self.installation.logger.write(line)

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
        self.hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
        self.saved_showwarning = warnings.showwarning
        self.fds: FdCapture | None = None
        self.writer: FdWriter | None = None
        self._traceback: dict[str, list[str]] = {}

    def current(self) -> JsonLogger:
        """The logger for a hook, a warning or a captured line: bound to the run of the
        calling context, else to the run being worked on, else the process's."""
        bound = structlog.contextvars.get_contextvars()
        run_id = bound.get("run_id")
        if run_id is not None:
            return self.logger.bind(run_id=run_id, trace=bound.get("trace"))
        latest = _open_runs[-1:]
        return (
            self.logger.bind(run_id=latest[0].run_id, trace=latest[0].trace)
            if latest
            else self.logger
        )

    def excepthook(
        self, exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """sys.excepthook: an exception escaping the program is one ERROR entry."""
        self._report(exc_type, exc, tb, "An exception escaped the program.", {})

    def threading_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook: the same for a thread (SystemExit ignored, as by default)."""
        if args.exc_type is SystemExit:
            return
        thread: dict[str, object] = {"thread": args.thread.name} if args.thread else {}
        self._report(
            args.exc_type,
            args.exc_value,
            args.exc_traceback,
            "An exception escaped a thread.",
            thread,
        )

    def unraisablehook(self, args: sys.UnraisableHookArgs) -> None:
        """sys.unraisablehook: an exception in __del__ or a callback, ignored by Python."""
        self._report(
            args.exc_type,
            args.exc_value,
            args.exc_traceback,
            "An exception was ignored (in a finaliser or a callback).",
            {},
        )

    def _report(
        self,
        exc_type: type[BaseException],
        exc: BaseException | None,
        tb: TracebackType | None,
        message: str,
        context: dict[str, object],
    ) -> None:
        if exc is not None and tb is not None:
            exc = exc.with_traceback(tb)
        self.current().emit(
            Severity.ERROR,
            Code.UNEXPECTED_EXCEPTION,
            message,
            {**context, "error_type": exc_type.__name__},
            exc=exc,
            where=raised_at(tb),
        )

    def showwarning(  # warnings.showwarning's signature
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """warnings.showwarning: the category and where, never the warning's text."""
        self.current().emit(
            Severity.WARNING,
            Code.LIBRARY_LOG,
            "A warning was issued; its text is not logged (see error_type and sourceLocation).",
            {"logger": "py.warnings", "error_type": category.__name__},
            where=located(filename, lineno, "?"),
        )

    def fd_line(self, stream: str, text: str) -> None:
        """A line written to fd 1 or 2 below the logger (the capture's reader thread)."""
        group = self._traceback.get(stream)
        if group is not None:
            group.append(text)
            if not text.startswith((" ", "\t")):
                del self._traceback[stream]
                error_type = text.partition(":")[0].rpartition(".")[2].strip()
                self.current().emit(
                    Severity.ERROR,
                    Code.UNEXPECTED_EXCEPTION,
                    _TRACEBACK.format(stream),
                    {"logger": stream, "error_type": error_type},
                )
            return
        if text.startswith("Traceback (most recent call last):"):
            self._traceback[stream] = [text]
        elif text.strip():
            self.current().emit(
                Severity.INFO if stream == "stdout" else Severity.WARNING,
                Code.LIBRARY_LOG,
                _LINE.format(stream),
                {"logger": stream},
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


def install_process_logging(
    logger: JsonLogger, *, level: int = logging.INFO, capture_fds: bool = True
) -> None:
    """Route everything the process writes through ``logger``'s JSON lines.

    Root logger: our handler only, at ``level``; library loggers (LIBRARY_LOGGERS and their
    children) propagate to it, their own handlers removed (functions-framework's dictConfig
    disables existing loggers: re-enabled). Warnings, sys/threading excepthooks and the
    unraisable hook log one entry each. With ``capture_fds``, fds 1 and 2 are captured and the
    logger writes to the real stdout. A second call only switches the logger.
    """
    global _installed
    if _installed is not None:
        _installed.logger = logger
        logger.capture_to(_installed.writer)
        return
    installation = _Installation(logger)
    for library in _library_loggers():
        installation.loggers[library.name] = _LoggerState(
            list(library.handlers), library.propagate, library.disabled
        )
        library.handlers, library.propagate, library.disabled = [], True, False
    root = logging.getLogger()
    root.handlers = [_RecordHandler(installation)]
    root.setLevel(level)
    warnings.showwarning = installation.showwarning
    sys.excepthook = installation.excepthook
    threading.excepthook = installation.threading_excepthook
    sys.unraisablehook = installation.unraisablehook
    if capture_fds:
        installation.fds = FdCapture(installation.fd_line)
        installation.writer = FdWriter(installation.fds.install())
        logger.capture_to(installation.writer)
    _installed = installation


def uninstall_process_logging() -> None:
    """Undo install_process_logging (tests): handlers, hooks and file descriptors."""
    global _installed
    installation = _installed
    if installation is None:
        return
    _installed = None
    if installation.fds is not None:
        installation.fds.uninstall()
    installation.logger.capture_to(None)
    warnings.showwarning = installation.saved_showwarning
    sys.excepthook, threading.excepthook, sys.unraisablehook = installation.hooks
    root = logging.getLogger()
    root.handlers = installation.root_handlers
    root.setLevel(installation.root_level)
    for name, state in installation.loggers.items():
        library = logging.getLogger(name)
        library.handlers, library.propagate, library.disabled = state
    with contextlib.suppress(Exception):
        sys.stdout.flush()
