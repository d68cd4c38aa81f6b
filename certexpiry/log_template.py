"""The structural filter: free text reduced to its template before it can reach a line.

Why: pattern redaction cannot know a name.  Text written by the database (a trigger's RAISE,
psycopg's DETAIL/HINT/CONTEXT), by PostgREST or by an exception is free text that may quote a
row; so such text reaches a line only as its template.  What is kept is what an engineer needs
and what cannot hold a value: the words of the message, identifiers, UUIDs, function names in
CONTEXT, the key columns of a unique violation, dates, source line numbers and numbers with a
unit (durations, sizes).
What is replaced: quoted values (``"?"``), parenthesised values (``(?)``), other numbers
(``?``), runs of capitalised words (``[name]``) and the free text after ``DETAIL:``,
``HINT:`` and ``CONTEXT:``.  The names of constraints, tables and columns travel as structured
fields (psycopg's diagnostics, PostgREST's ``code``), not in this text.  The pattern
sanitiser (``certexpiry.sanitize``) still runs on the result, as the last net.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from http import HTTPStatus

Redact = Callable[[str], str]
"""The sanitiser (``Sanitizer.clean``), run before the template too: a template cuts a secret or
a token into pieces ("key-?", "eyJ0000.?.?") that neither redaction by value nor a pattern
recognises any more."""


def _unchanged(text: str) -> str:
    return text


__all__ = [
    "RAISED_MESSAGE",
    "Redact",
    "db_message",
    "detail_template",
    "routines",
    "template",
    "templated_traceback",
]

RAISED_MESSAGE = "[message raised by a database function]"
"""What is left of a P0001 message: RAISE EXCEPTION text is the function author's free text."""

_SECTION = re.compile(r"(?m)(?:^|(?<=\s))(DETAIL|HINT|CONTEXT):[ \t]*")
_KEY_DETAIL = re.compile(
    r"Key \(([a-z_][\w$]*(?:, ?[a-z_][\w$]*)*)\)=\(.*\) "
    r"(already exists|is not present in table|is still referenced from table)"
)
_CONTEXT_LINE = re.compile(
    r"(?:PL/pgSQL|SQL) function [\w$.\"]+(?:\([\w$.\"\[\], ]*\))?"
    r"(?: line [0-9]+)?(?: at [A-Za-z ]+| statement [0-9]+)?"
)
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_UNIT = r"[ \t]?(?:ms|us|µs|ns|s|sec|secs|seconds?|minutes?|bytes?|B|[kKMGT]i?B|%)(?![\w])"
_DATE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?(?![0-9])"
    r"|(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(?![0-9])"
    r"|(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])(?:19|20)[0-9]{2}(?![0-9])"
)
_TOKEN = re.compile(
    rf"(?P<uuid>{_UUID})"
    r"|\((?P<paren>[^()\n]*)\)"
    r"|(?P<dq>\"(?:[^\"\\\n]|\\.)*\"|“[^”\n]*”)"
    r"|(?P<sq>(?<![\w])'(?:[^'\\\n]|\\.)*'(?![\w]))"
    r"|(?P<name>[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:[ \t-]+[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ.]+)+)"
    r"|(?P<word>[A-Za-z_][\w$]*)"
    rf"|(?<![0-9])(?P<date>{_DATE})"
    r"|(?P<line>(?<=\.py:)[0-9]+|(?<=line )[0-9]+(?![0-9]))"
    rf"|(?P<number>\+?[0-9](?:[0-9]|[ .,:/-](?=[0-9]))*)(?P<unit>{_UNIT})?"
)
_IDENTIFIERS = re.compile(r"[ \t]*(?:[a-z_][\w$.\[\]]*(?:[ \t]*,?[ \t]*[a-z_][\w$.\[\]]*)*)?[ \t]*")
_WHOLE_UUID = re.compile(_UUID)
_HTTP_PHRASES = frozenset(status.phrase for status in HTTPStatus)  # "Bad Gateway" is no name


def _token(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in ("uuid", "word", "date", "line", "unit"):  # unit: a duration or a size
        return match.group()
    if kind == "number":
        return "?"
    if kind == "paren":
        inner = match.group("paren")
        return match.group() if _IDENTIFIERS.fullmatch(inner) else "(?)"
    if kind == "name":
        return match.group() if match.group() in _HTTP_PHRASES else "[name]"
    quoted = match.group()
    if _WHOLE_UUID.fullmatch(quoted[1:-1]):
        return quoted
    return '"?"' if kind == "dq" else "'?'"


def _words(text: str) -> str:
    return _TOKEN.sub(_token, text)


def detail_template(text: str) -> str:
    """A DETAIL text as it may be logged: the key columns of a key violation, else nothing."""
    key = _KEY_DETAIL.match(text)
    if key is not None:  # the key columns of a unique or foreign-key violation
        return f"Key ({key.group(1)})=(?) {key.group(2)}"
    return "[detail]"


def routines(text: str) -> str:
    """The functions (and lines) a CONTEXT text names, innermost first; nothing else of it."""
    functions = [found.group() for found in _CONTEXT_LINE.finditer(text)]
    return " < ".join(functions) if functions else "[context]"


def template(text: str, redact: Redact = _unchanged) -> str:
    """``text`` reduced to its template (see the module's docstring), after ``redact``."""
    sections = _SECTION.split(redact(text))
    parts = [_words(sections[0])]
    for at in range(1, len(sections) - 1, 2):
        label, body = sections[at], sections[at + 1]
        if label == "DETAIL":
            kept = detail_template(body)
        elif label == "HINT":
            kept = "[hint]"
        else:
            kept = routines(body)
        parts.append(f"{label}: {kept}" + ("\n" if body.endswith("\n") else " "))
    return "".join(parts).rstrip(" ") if len(parts) > 1 else parts[0]


def db_message(message: str, sqlstate: str | None, redact: Redact = _unchanged) -> str:
    """A database error's message as it may be logged: the template, or nothing of a RAISE."""
    if sqlstate == "P0001":
        return RAISED_MESSAGE
    return template(message, redact)


def _filter(exception: traceback.TracebackException, redact: Redact) -> None:
    """Replace each message of an exception chain with its template, frames untouched.

    TracebackException has already cut cycles out of the chain, so the walk ends."""
    # CPython keeps the formatted str(exc) in _str, which format() reads; there is no setter.
    exception._str = template(exception._str, redact)  # type: ignore[attr-defined]  # noqa: SLF001  # see above
    notes = exception.__notes__
    if notes is not None:  # format() prints a list's items, anything else as one text
        items = notes if isinstance(notes, list) else [notes]
        exception.__notes__ = [template(str(note), redact) for note in items]
    for linked in (exception.__cause__, exception.__context__):
        if linked is not None:
            _filter(linked, redact)
    for member in getattr(exception, "exceptions", None) or ():
        _filter(member, redact)


def templated_traceback(exc: BaseException, redact: Redact = _unchanged) -> str:
    """``traceback.format_exception(exc)`` text with every exception message templated."""
    formatted = traceback.TracebackException.from_exception(exc, compact=True)
    _filter(formatted, redact)
    return "".join(formatted.format())
