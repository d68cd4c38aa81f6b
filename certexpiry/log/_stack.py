"""Where a line comes from: a location, and an exception's frames and types without its message
or source lines (someone else's text: psycopg quotes a row, a SyntaxError its input)."""

import os
import traceback
from types import TracebackType
from typing import NamedTuple

from certexpiry.redact import WITHHELD

MAX_STACK = 16_000
"""Characters kept of a stack trace (head and tail kept, middle frames cut)."""


class Where(NamedTuple):
    file: str
    line: int
    function: str


def located(file: str, line: int, function: str) -> Where:
    """A location someone else named: the file only if it exists (else it could be anything)."""
    return Where(file if os.path.isfile(file) else WITHHELD, line, function)


def raised_at(tb: TracebackType | None) -> Where | None:
    """The innermost frame of a traceback: where the exception was raised."""
    if tb is None:
        return None
    *_, (frame, line) = traceback.walk_tb(tb)
    return located(frame.f_code.co_filename, line, frame.f_code.co_qualname)


def stack_trace(exc: BaseException) -> str:
    """The traceback Python would print, without messages; past MAX_STACK, head and tail."""
    lines: list[str] = []
    _walk(exc, lines, set())
    text = "".join(lines)
    if len(text) <= MAX_STACK:
        return text
    head = text[: MAX_STACK // 4]
    head = head[: head.rfind("\n") + 1]
    tail = text[-(MAX_STACK * 3 // 4) :]
    tail = tail[tail.find("\n") + 1 :]
    return f"{head}  [... {len(text) - len(head) - len(tail)} characters omitted ...]\n{tail}"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _walk(exc: BaseException, lines: list[str], seen: set[int]) -> None:
    seen.add(id(exc))
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        _walk(cause, lines, seen)
        lines.append(_CAUSE)
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        _walk(context, lines, seen)
        lines.append(_CONTEXT)
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        walked = traceback.walk_tb(exc.__traceback__)
        for frame in traceback.StackSummary.extract(walked, lookup_lines=False):
            where = located(frame.filename, frame.lineno or 0, frame.name)
            lines.append(f'  File "{where.file}", line {where.line}, in {where.function}\n')
    cls = type(exc)  # as Python prints it: module.Class, builtins without a module
    module = "" if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}."
    lines.append(f"{module}{cls.__qualname__}\n")
    for member in getattr(exc, "exceptions", None) or ():  # an exception group's members
        if isinstance(member, BaseException) and id(member) not in seen:
            lines.append("  +---- member of the group above:\n")
            _walk(member, lines, seen)
