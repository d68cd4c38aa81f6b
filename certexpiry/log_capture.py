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
import io
import json
import logging
import sys
import threading
import traceback
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, TextIO, cast

from certexpiry.codes import Code, Severity
from certexpiry.log_entry import _describe, _format_exception, _traceback_where, _where
from certexpiry.log_writer import _EMITTING, _put

if TYPE_CHECKING:
    from certexpiry.log import JsonLogger

__all__ = ["LIBRARY_LOGGERS", "install_process_logging", "uninstall_process_logging"]


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
        self._installation.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
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
            self._installation.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
                self._severity, Code.LIBRARY_LOG, _unwrap(line), {"logger": self._name}, None, None
            )

    def _emit_traceback(self) -> None:
        group = self._traceback or []
        self._traceback = None
        self._installation.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
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
