"""The allow-list: for each context key a log line may carry, the form its value must have.

A form returns the value as it may be logged, or ``WITHHELD`` when the value cannot show that it
is not personal data. Forms check what a value is (its type, its shape, whether the catalog or
the project's vocabulary has it), never what it is not: a deny-list of names always misses one.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import re
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Container, Mapping
from datetime import date
from functools import lru_cache

from certexpiry.redact._http import BodyShape
from certexpiry.redact._words import WORDS

WITHHELD = "[withheld]"
"""What a value becomes when its form does not show it is safe to log."""

Form = Callable[[object], object]


class CatalogName(str):
    """A name of a constraint, table, column, schema, type or function that the database's
    catalog was asked about and has (``certexpiry.error_names``): not a value a trigger wrote."""

    __slots__ = ()


_UUID = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
_DIGITS = re.compile(r"[0-9]{1,32}")


def is_uuid(value: object) -> bool:
    """True for a UUID object or its canonical text."""
    return isinstance(value, uuid.UUID) or (isinstance(value, str) and bool(_UUID.fullmatch(value)))


def is_sqlstate(value: object) -> bool:
    """True for a Postgres SQLSTATE (five digits or capitals), not a PostgREST PGRSTnnn code."""
    return isinstance(value, str) and _SQLSTATE.fullmatch(value) is not None


def _known_sqlstate(value: str) -> bool:
    """A SQLSTATE Postgres defines: a trigger may raise any five capitals (``RAISE ... USING
    ERRCODE = 'KARIN'``). psycopg's table is the catalog (imported when first needed)."""
    import psycopg.errors

    try:
        return is_sqlstate(value) and bool(psycopg.errors.lookup(value))
    except KeyError:
        return False


def _kept_if(test: Callable[[object], object]) -> Form:
    """The form of values that pass ``test``, logged as they are."""
    return lambda value: value if test(value) else WITHHELD


def _text(test: Callable[[str], object]) -> Form:
    """The form of strings that pass ``test``."""
    return _kept_if(lambda value: isinstance(value, str) and test(value))


def _shaped(pattern: str) -> Form:
    """The form of strings whose whole text has the shape of ``pattern``."""
    return _text(re.compile(pattern).fullmatch)


def _one_of(known: Callable[[], Container[str]]) -> Form:
    """The form of strings in what ``known()`` returns (asked at each value: it grows)."""
    return _text(lambda value: value in known())


def _list_of(form: Form) -> Form:
    return lambda value: (
        [form(item) for item in value]
        if isinstance(value, (list, tuple, set, frozenset))
        else WITHHELD
    )


def _uuid(value: object) -> object:
    return str(value) if is_uuid(value) else WITHHELD


def _number(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # an IntEnum as the number JSON has
    return value if isinstance(value, float) and math.isfinite(value) else WITHHELD


def _date(value: object) -> object:
    """A date, or its ISO text (a real date: 2026-13-45 is not one)."""
    if isinstance(value, date):
        return value.isoformat()[:10]
    if isinstance(value, str) and len(value) == 10:
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value).isoformat()
    return WITHHELD


def _word(value: object) -> object:
    """A word of the project's vocabulary, or a member of one of its enums."""
    if isinstance(value, enum.Enum):
        value = value.value
    return value if isinstance(value, str) and value in WORDS else WITHHELD


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _exception_names() -> set[str]:
    """The names of the exception classes this process has (walked afresh: error lines are
    rare, and a class made later must not be missed)."""
    names, pending = set(), [BaseException]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return names


def _message_id(value: object) -> object:
    """Pub/Sub's message ids are digits; a local driver's, UUIDs."""
    return value if isinstance(value, str) and _DIGITS.fullmatch(value) else _uuid(value)


def _cursor(value: object) -> object:
    """A resume cursor: words of the vocabulary, dates and UUIDs joined by "/"."""
    parts = value.split("/") if isinstance(value, str) else [None]
    safe = all(is_uuid(part) or (_word(part), _date(part)) != (WITHHELD,) * 2 for part in parts)
    return value if safe else WITHHELD


_POSTGREST_CODE = _text(
    lambda value: re.fullmatch("PGRST[0-9]{3}", value) or _known_sqlstate(value)
)


def _body(value: object) -> object:
    """A body's structure (``body_shape``), its code checked like a PostgREST code."""
    if not isinstance(value, BodyShape):
        return WITHHELD
    shape = dict(value)
    if "code" in shape:
        shape["code"] = _POSTGREST_CODE(shape["code"])
    return shape


# The keys by form, written as words: a list literal of 25 names would fill a screen.
_NUMBERS = (  # noqa: SIM905  # see above
    "attempt batch_size batches budget_s certifications certifications_paused delivery_attempt"
    " duration_ms elapsed_ms estimate_ms failures http_status lines_dropped mentors"
    " mentors_paused missed_pause_count notices_queued peak_rss_kb position remaining_ms"
    " reminders_queued reminders_superseded segment segments total_count outbox_undelivered"
    " outbox_claimed outbox_oldest_age_s outbox_failed outbox_dropped"
).split()
_CATALOG = "constraint_name schema_name table_name column_name datatype_name routine".split()  # noqa: SIM905  # see above

CONTEXT_FORMS: Mapping[str, Form] = {
    **dict.fromkeys(_NUMBERS, _number),
    **dict.fromkeys(_CATALOG, _kept_if(lambda value: isinstance(value, CatalogName))),
    **dict.fromkeys(("certification_id", "peer_mentor_id", "run_id"), _uuid),
    **dict.fromkeys(
        ("message_id", "published_message_id", "event_id", "execution_id"), _message_id
    ),
    **dict.fromkeys(("dry_run", "truncated"), _kept_if(lambda value: isinstance(value, bool))),
    **dict.fromkeys(("nightly_key", "today"), _date),
    **dict.fromkeys(("operation", "status", "outcome", "setting", "event_type"), _word),
    # Text the project's code writes from literals and allowed values, never one read at run time.
    **dict.fromkeys(
        ("reason", "remediation", "hint"), _kept_if(lambda value: isinstance(value, str))
    ),
    # A Pub/Sub topic or subscription: names an operator configured, not data the job reads.
    **dict.fromkeys(
        ("topic", "subscription"),
        _shaped(
            r"projects/[a-z][a-z0-9-]{0,28}[a-z0-9]/(?:topics|subscriptions)/[A-Za-z][\w.~+%-]{2,254}"
        ),
    ),
    # Dates (the nights missed) or the project's own text.
    "details": lambda value: value if isinstance(value, str) else _list_of(_date)(value),
    "sqlstate": _text(_known_sqlstate),
    "postgrest_code": _POSTGREST_CODE,
    "missed_ids": _list_of(_uuid),
    "cursor": _cursor,
    "timezone": _one_of(_zones),
    "error_type": _one_of(_exception_names),
    # A logger the process's code created, or one of the two streams.
    "logger": _one_of(lambda: {"stdout", "stderr", "root", *logging.Logger.manager.loggerDict}),
    # The name of a thread alive now (the hook that reports it runs in it).
    "thread": _one_of(lambda: {thread.name for thread in threading.enumerate()}),
    "response_body": _body,
}
"""Every context key a log line may carry, and the form of its value."""


def allowed(key: str, value: object) -> object:
    """``value`` as it may be logged under ``key`` (None stays None); WITHHELD when its form
    does not show it is safe. Raises KeyError for a key outside the allow-list."""
    return None if value is None else CONTEXT_FORMS[key](value)
