"""The allow-list: for each context key a log line may carry, the form its value must have.

A form takes a value and returns it as it may be logged, or ``WITHHELD`` when the value cannot
show that it is not personal data. Forms check what a value is (its type, its shape, whether
the catalog or the project's vocabulary has it), never what it is not: there is no pattern of
names, e-mails or phone numbers here, because a deny-list always misses one.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
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


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
_POSTGREST_CODE = re.compile(r"PGRST[0-9]{3}")
_PUBSUB_ID = re.compile(r"[0-9]{1,32}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A Pub/Sub topic or subscription: names an operator configured, not data the job reads.
_RESOURCE = re.compile(
    r"projects/[a-z][a-z0-9-]{0,28}[a-z0-9]/(?:topics|subscriptions)/[A-Za-z][\w.~+%-]{2,254}"
)


def is_uuid(value: object) -> bool:
    """True for a UUID object or its canonical text."""
    return isinstance(value, uuid.UUID) or (
        isinstance(value, str) and _UUID.fullmatch(value) is not None
    )


def is_sqlstate(value: object) -> bool:
    """True for a Postgres SQLSTATE (five digits or capitals), not a PostgREST PGRSTnnn code."""
    return isinstance(value, str) and _SQLSTATE.fullmatch(value) is not None


def _uuid(value: object) -> object:
    return str(value) if is_uuid(value) else WITHHELD


def _message_id(value: object) -> object:
    """Pub/Sub's ids are decimal digits; local drivers (the demo, the harness) use UUIDs."""
    if isinstance(value, str) and _PUBSUB_ID.fullmatch(value):
        return value
    return _uuid(value)


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return WITHHELD
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else WITHHELD
    return int(value)


def _flag(value: object) -> object:
    return value if isinstance(value, bool) else WITHHELD


def _sqlstate(value: object) -> object:
    return value if is_sqlstate(value) else WITHHELD


def _error_code(value: object) -> object:
    """A SQLSTATE or a PostgREST code."""
    if isinstance(value, str) and _POSTGREST_CODE.fullmatch(value):
        return value
    return _sqlstate(value)


def _date(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()[:10]
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return WITHHELD
    return WITHHELD


def _word(value: object) -> object:
    """A word of the project's vocabulary, or a member of one of its enums."""
    if isinstance(value, enum.Enum):
        value = value.value
    return value if isinstance(value, str) and value in WORDS else WITHHELD


def _catalog(value: object) -> object:
    return str.__str__(value) if isinstance(value, CatalogName) else WITHHELD


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: object) -> object:
    return value if isinstance(value, str) and value in _zones() else WITHHELD


def _exception_names() -> set[str]:
    """The names of the exception classes this process has (walked afresh: error lines are
    rare, and a class made later must not be missed)."""
    names: set[str] = set()
    pending: list[type[BaseException]] = [BaseException]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


def _error_type(value: object) -> object:
    return value if isinstance(value, str) and value in _exception_names() else WITHHELD


def _logger(value: object) -> object:
    """A logger the process's code created, or one of the two streams."""
    if value in ("stdout", "stderr", "root"):
        return value
    known = isinstance(value, str) and value in logging.Logger.manager.loggerDict
    return value if known else WITHHELD


def _thread(value: object) -> object:
    """The name of a thread alive now (the hook that reports it runs in it)."""
    alive = {thread.name for thread in threading.enumerate()}
    return value if isinstance(value, str) and value in alive else WITHHELD


def _resource(value: object) -> object:
    return value if isinstance(value, str) and _RESOURCE.fullmatch(value) else WITHHELD


def _cursor(value: object) -> object:
    """A resume cursor: words of the vocabulary, dates and UUIDs joined by "/"."""
    if not isinstance(value, str):
        return WITHHELD
    for part in value.split("/"):
        if _word(part) is WITHHELD and _date(part) is WITHHELD and not is_uuid(part):
            return WITHHELD
    return value


def _own_text(value: object) -> object:
    """Text the project's code writes (a reason, a remediation): never a value read at run
    time. The sources of these keys build them from literals and allowed values only."""
    return value if isinstance(value, str) else WITHHELD


def _body(value: object) -> object:
    return dict(value) if isinstance(value, BodyShape) else WITHHELD


def _list_of(form: Form) -> Form:
    def each(value: object) -> object:
        if isinstance(value, (list, tuple, set, frozenset)):
            return [form(item) for item in value]
        return WITHHELD

    return each


def _first_of(*forms: Form) -> Form:
    def first(value: object) -> object:
        for form in forms:
            found = form(value)
            if found is not WITHHELD:
                return found
        return WITHHELD

    return first


_NUMBERS = [
    "attempt",
    "batch_size",
    "batches",
    "budget_s",
    "certifications",
    "certifications_paused",
    "delivery_attempt",
    "duration_ms",
    "elapsed_ms",
    "estimate_ms",
    "failures",
    "http_status",
    "lines_dropped",
    "mentors",
    "mentors_paused",
    "missed_pause_count",
    "notices_queued",
    "peak_rss_kb",
    "position",
    "remaining_ms",
    "reminders_queued",
    "reminders_superseded",
    "segment",
    "segments",
    "total_count",
]

CONTEXT_FORMS: Mapping[str, Form] = {
    **dict.fromkeys(_NUMBERS, _number),
    **dict.fromkeys(("certification_id", "peer_mentor_id", "run_id"), _uuid),
    **dict.fromkeys(("message_id", "published_message_id", "event_id"), _message_id),
    **dict.fromkeys(("execution_id",), _first_of(_uuid, _message_id)),
    **dict.fromkeys(("dry_run", "truncated"), _flag),
    **dict.fromkeys(("nightly_key", "today"), _date),
    **dict.fromkeys(("operation", "status", "outcome", "setting", "event_type"), _word),
    **dict.fromkeys(
        ("constraint_name", "schema_name", "table_name", "column_name", "datatype_name"), _catalog
    ),
    **dict.fromkeys(("reason", "remediation", "hint"), _own_text),
    **dict.fromkeys(("topic", "subscription"), _resource),
    "details": _first_of(_list_of(_date), _own_text),
    "routine": _catalog,
    "sqlstate": _sqlstate,
    "postgrest_code": _error_code,
    "missed_ids": _list_of(_uuid),
    "cursor": _cursor,
    "timezone": _timezone,
    "error_type": _error_type,
    "logger": _logger,
    "thread": _thread,
    "response_body": _body,
}
"""Every context key a log line may carry, and the form of its value."""


def allowed(key: str, value: object) -> object:
    """``value`` as it may be logged under ``key`` (None stays None); WITHHELD when its form
    does not show it is safe. Raises KeyError for a key outside the allow-list."""
    form = CONTEXT_FORMS[key]
    return None if value is None else form(value)
