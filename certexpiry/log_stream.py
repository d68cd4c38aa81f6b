"""stdout and stderr as JSON: the stand-in streams ``install_process_logging`` puts in place.

Split out of ``certexpiry.log_capture`` (the hooks and the installation), because turning a
raw text stream into entries (line buffering, grouping a printed traceback, passing the
logger's own JSON through) is a job of its own.  Text that is not ours is free text: each line
is logged as its template (``certexpiry.log_template``), a printed traceback keeps its frames
and loses its message to the template.
"""

from __future__ import annotations

import io
import json
import threading
from typing import TYPE_CHECKING, TextIO, cast

from certexpiry.codes import Code, Severity
from certexpiry.log_template import Redact, template
from certexpiry.log_writer import _EMITTING, _put

if TYPE_CHECKING:
    from certexpiry.log_capture import _Installation

_MAX_PENDING = 16_000  # a captured partial line longer than this is emitted as is
_MAX_TRACEBACK_LINES = 1_000


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
                self._severity,
                Code.LIBRARY_LOG,
                template(_unwrap(line), self._installation.redact()),
                {"logger": self._name},
                None,
                None,
            )

    def _emit_traceback(self) -> None:
        group = self._traceback or []
        self._traceback = None
        group[-1] = _templated_last(group[-1], self._installation.redact())
        self._installation.logger._log(  # noqa: SLF001  # the logger's own entry point, shared by its modules
            Severity.ERROR,
            Code.UNEXPECTED_EXCEPTION,
            group[-1],
            {"logger": self._name},
            None,
            None,
            stack="\n".join(group) + "\n",
        )


def _templated_last(line: str, redact: Redact) -> str:
    """A traceback's ``ExcType: message`` line with the message templated (frames are kept)."""
    name, colon, message = line.partition(": ")
    if colon and name and " " not in name.strip():
        return f"{name}: {template(message, redact)}"
    return template(line, redact)


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
