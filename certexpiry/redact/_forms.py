"""The allow-list: for each context key a log line may carry, the form its value must have. A
form returns the value as it may be logged, or ``WITHHELD``; it checks what a value is (type,
shape, a catalog or vocabulary that has it), never what it is not (no pattern of names). Here
too, what the forms take: the project's words and a response body's structure."""

import contextlib
import enum
import json
import logging
import math
import re
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Container, Mapping
from datetime import date
from functools import cache

WITHHELD = "[withheld]"
"""What a value becomes when its form does not show it is safe to log."""

WORDS: set[str] = set()
"""The words the project defines (operations, statuses, setting names), added by its modules
from constants at import: a lower-case word has the form of "kari" too, so only these are
logged, never a word read at run time."""

Form = Callable[[object], object]
_LISTS = (list, tuple, set, frozenset)


class CatalogName(str):
    """A name the database's catalog was asked about and has (``certexpiry.error_names``): a
    constraint, table, column, schema, type or function, not a value a trigger wrote."""

    __slots__ = ()


class BodyShape(dict[str, object]):
    """What ``body_shape`` kept of a body: only structure, so the log takes it as it is."""


def _matches(pattern: str, value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def is_uuid(value: object) -> bool:
    """True for a UUID object or its canonical text."""
    hex_uuid = r"(?i)[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    return isinstance(value, uuid.UUID) or _matches(hex_uuid, value)


def is_sqlstate(value: object) -> bool:
    """True for a Postgres SQLSTATE (five digits or capitals), not a PostgREST PGRSTnnn code."""
    return _matches("[0-9A-Z]{5}", value)


def _is_postgrest_own_code(value: object) -> bool:
    """True for a code PostgREST defines itself (PGRSTnnn), not one it passes on from Postgres."""
    return _matches("PGRST[0-9]{3}", value)


def is_error_code(value: object) -> bool:
    """True for an error code a database call answers with: a SQLSTATE or PostgREST's PGRSTnnn."""
    return is_sqlstate(value) or _is_postgrest_own_code(value)


_JSON_TYPES = ("application/json", "application/problem+json", "application/vnd.pgrst.object+json")
_KNOWN_TYPES = frozenset((*_JSON_TYPES, "text/plain", "text/html"))
_KNOWN_KEYS = frozenset(("code", "message", "details", "hint", "error", "msg", "status"))


def body_shape(body: str, content_type: str | None = None) -> BodyShape:
    """A failed call's body by its structure, never its text (PostgREST quotes the row in
    ``details``): content type (known ones), length, a JSON object's known keys, a count of the
    others and a code-shaped ``code`` (the log's form decides if it is a known one)."""
    shape = BodyShape(length=len(body))
    if media := (content_type or "").split(";", 1)[0].strip().lower():
        shape["content_type"] = media if media in _KNOWN_TYPES else "other"
    with contextlib.suppress(ValueError, RecursionError):
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            shape["keys"] = sorted(key for key in parsed if key in _KNOWN_KEYS)
            shape["other_keys"] = sum(1 for key in parsed if key not in _KNOWN_KEYS)
            if is_error_code(code := parsed.get("code")):
                shape["code"] = code
    return shape


def _known_sqlstate(value: object) -> bool:
    """A SQLSTATE Postgres defines: a trigger may raise any five capitals (``RAISE ... USING
    ERRCODE = 'KARIN'``). psycopg's table is the catalog (imported when first needed)."""
    import psycopg.errors

    with contextlib.suppress(KeyError):
        return is_sqlstate(value) and bool(psycopg.errors.lookup(str(value)))
    return False


def _kept_if(test: Callable[[object], bool]) -> Form:
    """The form of values that pass ``test``, logged as they are."""
    return lambda value: value if test(value) else WITHHELD


def _one_of(known: Callable[[], Container[str]]) -> Form:
    """The form of strings in what ``known()`` returns (asked at each value: it grows)."""
    return _kept_if(lambda value: isinstance(value, str) and value in known())


def _list_of(form: Form) -> Form:
    """The form of a list, tuple or set whose items each have ``form``."""
    return lambda value: [form(item) for item in value] if isinstance(value, _LISTS) else WITHHELD


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
    value = value.value if isinstance(value, enum.Enum) else value
    return value if isinstance(value, str) and value in WORDS else WITHHELD


def _exception_names() -> set[str]:
    """The names of the exception classes this process has (walked afresh: error lines are
    rare, and a class made later must not be missed)."""
    names, pending = set(), [BaseException]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return names


def _cursor(value: object) -> object:
    """A resume cursor: words of the vocabulary, dates and UUIDs joined by "/"."""
    parts = value.split("/") if isinstance(value, str) else [None]
    safe = all(is_uuid(part) or (_word(part), _date(part)) != (WITHHELD,) * 2 for part in parts)
    return value if safe else WITHHELD


_postgrest_code = _kept_if(lambda value: _is_postgrest_own_code(value) or _known_sqlstate(value))


def _body(value: object) -> object:
    """A body's structure (``body_shape``), its code checked like a PostgREST code."""
    if not isinstance(value, BodyShape):
        return WITHHELD
    shape = dict(value)
    if "code" in shape:
        shape["code"] = _postgrest_code(shape["code"])
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
_MESSAGE_IDS = ("message_id", "published_message_id", "event_id", "execution_id")
# A Pub/Sub topic or subscription: names an operator configured, not data the job reads.
_TOPIC = r"projects/[a-z][a-z0-9-]{0,28}[a-z0-9]/(topics|subscriptions)/[A-Za-z][\w.~+%-]{2,254}"
_text = _kept_if(lambda value: isinstance(value, str))

CONTEXT_FORMS: Mapping[str, Form] = {
    **dict.fromkeys(_NUMBERS, _number),
    **dict.fromkeys(_CATALOG, _kept_if(lambda value: isinstance(value, CatalogName))),
    **dict.fromkeys(("certification_id", "peer_mentor_id", "run_id"), _uuid),
    # Pub/Sub's message ids are digits; a local driver's, UUIDs.
    **dict.fromkeys(_MESSAGE_IDS, lambda v: v if _matches("[0-9]{1,32}", v) else _uuid(v)),
    **dict.fromkeys(("dry_run", "truncated"), _kept_if(lambda value: isinstance(value, bool))),
    **dict.fromkeys(("nightly_key", "today"), _date),
    **dict.fromkeys(("operation", "status", "outcome", "setting", "event_type"), _word),
    # Text the project's code writes from literals and allowed values, never one read at run time.
    **dict.fromkeys(("reason", "remediation", "hint"), _text),
    **dict.fromkeys(("topic", "subscription"), _kept_if(lambda value: _matches(_TOPIC, value))),
    # The nights missed, or the project's own text.
    "details": lambda value: value if isinstance(value, str) else _list_of(_date)(value),
    "sqlstate": _kept_if(_known_sqlstate),
    "postgrest_code": _postgrest_code,
    "missed_ids": _list_of(_uuid),
    "cursor": _cursor,
    "timezone": _one_of(cache(zoneinfo.available_timezones)),
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
