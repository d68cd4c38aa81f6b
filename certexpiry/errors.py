"""The exceptions of certexpiry, and which failures are worth retrying.

    CertexpiryError
    ├── InvalidMessage        a Pub/Sub message that is not ours: acknowledged, never retried
    ├── SettingsError         a setting is missing or malformed: fix the deployment
    ├── StoreError            a call to the SQL API failed (`operation` names the RPC)
    │   ├── RpcError          through Supabase's HTTP API: HTTP status, body, PostgREST code
    │   │   └── RpcTimeout    no answer in time
    │   ├── DatabaseError     through a direct Postgres connection: SQLSTATE
    │   └── ContractError     an answer outside the typed SQL contract (certexpiry.contract)
    ├── RunBusy               another invocation holds the run's lease: retry later
    └── PublishError          the continuation could not be published

Each error knows its catalogued log code and the context fields it contributes, so the code
that logs it does not have to know which adapter raised it.

Private by construction: a store error keeps no free text from the database or PostgREST. It
keeps the SQLSTATE / PostgREST code, the names psycopg's diagnostics give (constraint, schema,
table, column, datatype), the functions named in CONTEXT and the message as its template
(``certexpiry.log_template``); so neither its log context nor its ``str()`` in a stack trace
can carry a row value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from certexpiry.codes import Code
from certexpiry.log_template import db_message, detail_template, routines, template
from certexpiry.sanitize import shared_sanitizer

_REDACT = shared_sanitizer().clean  # secrets and patterns go before any template

# Transient failures, retried with backoff: PostgREST could not reach or use its pool
# (PGRST000-003), gateway errors, and the SQLSTATE classes of connection loss (08), resource
# exhaustion (53), serialization failure (40001), deadlock (40P01), admin shutdown (57P01) and
# statement timeout (57014: a lock held for a while; failing the night for it would stall it).
TRANSIENT_HTTP_STATUSES = frozenset({502, 503, 504, 520})
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57014"})
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")


STATEMENT_TIMEOUT = "57014"


_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


def is_sqlstate(code: str) -> bool:
    """True for a Postgres SQLSTATE (five digits or capitals), not a PostgREST PGRSTnnn code."""
    return _SQLSTATE.fullmatch(code) is not None


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    """True for the SQLSTATEs that a retry can cure."""
    if not sqlstate:
        return False
    return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)


class CertexpiryError(Exception):
    """Base of every error this package raises on purpose."""

    code: Code = Code.UNEXPECTED_EXCEPTION

    def log_context(self) -> dict[str, Any]:
        """System fields for the log line's context (never row values)."""
        return {}


# Pub/Sub's ids are decimal digits; local drivers (the demo, the harness) use UUIDs.
_PUBSUB_MESSAGE_ID = re.compile(
    r"[0-9]{1,32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
NOT_A_MESSAGE_ID = "[not a Pub/Sub message id]"


def loggable_message_id(value: str | None) -> str | None:
    """A message id as it may be logged: Pub/Sub's shape (or a local driver's UUID); anything
    else is input someone else chose (it could be anything) and is replaced whole."""
    if value is None or _PUBSUB_MESSAGE_ID.fullmatch(value):
        return value
    return NOT_A_MESSAGE_ID


class InvalidMessage(CertexpiryError):
    """The event is not a message this function accepts; `reason` says why."""

    code = Code.INVALID_MESSAGE

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id

    def log_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"reason": template(self.reason, _REDACT)}
        if self.message_id is not None:
            context["message_id"] = loggable_message_id(self.message_id)
        return context


class SettingsError(CertexpiryError):
    """A setting is missing or malformed; `setting` names it."""

    code = Code.INVALID_SETTINGS

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"setting {setting} is invalid: {reason}")
        self.setting = setting
        self.reason = reason

    def log_context(self) -> dict[str, Any]:
        return {"setting": self.setting, "reason": self.reason}


class StoreError(CertexpiryError):
    """A call to the SQL API failed."""

    code = Code.DB_OPERATION_FAILED

    def __init__(self, operation: str, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.operation = operation
        self.transient = transient

    @property
    def statement_timeout(self) -> bool:
        """True when the database cancelled the statement at its statement_timeout (57014)."""
        return False

    def log_context(self) -> dict[str, Any]:
        return {"operation": self.operation}

    def retry_context(self) -> dict[str, Any]:
        """The fields a TRANSIENT_RETRY line carries: the operation, the error's class (the
        driver's or the HTTP client's when it caused this one: ConnectError, AdminShutdown)
        and its code; never its message, whatever template it was reduced to."""
        cause = self.__cause__
        return {
            "operation": self.operation,
            "error_type": type(cause if cause is not None else self).__name__,
        }


class RpcError(StoreError):
    """Supabase's HTTP API answered with an error, or the connection failed."""

    code = Code.SUPABASE_RPC_FAILED

    def __init__(
        self,
        operation: str,
        message: str,
        *,
        http_status: int | None = None,
        response_body: str | None = None,
        postgrest_code: str | None = None,
        details: str | None = None,
        hint: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(
            operation, db_message(message, postgrest_code, _REDACT), transient=transient
        )
        self.http_status = http_status
        self.response_body = None if response_body is None else body_template(response_body)
        self.postgrest_code = None if postgrest_code is None else error_code(postgrest_code)
        self.details = None if details is None else detail_template(details)
        self.hint = None if hint is None else "[hint]"

    @property
    def statement_timeout(self) -> bool:
        return self.postgrest_code == STATEMENT_TIMEOUT

    def retry_context(self) -> dict[str, Any]:
        fields = {"http_status": self.http_status, "postgrest_code": self.postgrest_code}
        return {**super().retry_context(), **{k: v for k, v in fields.items() if v is not None}}

    def log_context(self) -> dict[str, Any]:
        fields = {
            "operation": self.operation,
            "http_status": self.http_status,
            "response_body": self.response_body,
            "postgrest_code": self.postgrest_code,
            "details": self.details,
            "hint": self.hint,
        }
        return {key: value for key, value in fields.items() if value is not None}


class RpcTimeout(RpcError):
    """The HTTP call did not complete in time."""

    code = Code.SUPABASE_TIMEOUT

    def __init__(self, operation: str, message: str, *, elapsed_ms: int) -> None:
        super().__init__(operation, message, transient=True)
        self.elapsed_ms = elapsed_ms

    def log_context(self) -> dict[str, Any]:
        return {**super().log_context(), "elapsed_ms": self.elapsed_ms}

    def retry_context(self) -> dict[str, Any]:
        return {**super().retry_context(), "elapsed_ms": self.elapsed_ms}


DIAGNOSTIC_NAMES = ("constraint_name", "schema_name", "table_name", "column_name", "datatype_name")
"""psycopg's diagnostics (Postgres' error fields) that name objects, never values."""


class DatabaseError(StoreError):
    """A direct Postgres call failed; `sqlstate` is Postgres' error code, `names` the objects
    the error is about, `routines` the functions its CONTEXT names; the message is a template."""

    code = Code.DB_OPERATION_FAILED

    def __init__(
        self,
        operation: str,
        message: str,
        *,
        sqlstate: str | None,
        connection_lost: bool = False,
        names: Mapping[str, str | None] | None = None,
        context: str | None = None,
    ) -> None:
        transient = connection_lost or is_transient_sqlstate(sqlstate)
        super().__init__(operation, db_message(message, sqlstate, _REDACT), transient=transient)
        self.sqlstate = sqlstate
        self.connection_lost = connection_lost
        self.names = {
            key: value for key, value in (names or {}).items() if key in DIAGNOSTIC_NAMES and value
        }
        self.routines = routines(_REDACT(context)) if context else None

    @property
    def statement_timeout(self) -> bool:
        return self.sqlstate == STATEMENT_TIMEOUT

    def retry_context(self) -> dict[str, Any]:
        context = super().retry_context()
        if self.sqlstate:
            context["sqlstate"] = self.sqlstate
        elif self.connection_lost:
            context["reason"] = "connection lost"
        return context

    def log_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"operation": self.operation}
        if self.sqlstate:
            context["sqlstate"] = self.sqlstate
        context.update(self.names)
        if self.routines:
            context["routine"] = self.routines
        context["details"] = str(self)
        return context


_ERROR_CODE = re.compile(r"[0-9A-Z]{5}|PGRST[0-9]{3}")


def error_code(value: str) -> str:
    """A SQLSTATE or PostgREST code as it may be logged: its shape, or "?"."""
    return value if _ERROR_CODE.fullmatch(value) else "?"


def body_template(body: str) -> str:
    """A PostgREST error body as it may be logged: each string value of a JSON object as its
    template (``details`` as a DETAIL, ``hint`` dropped), anything else as the text's template."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return template(body, _REDACT)
    if not isinstance(parsed, dict):
        return template(body, _REDACT)
    kept: dict[str, object] = {}
    for key, value in parsed.items():
        if not isinstance(value, str):
            kept[str(key)] = value if value is None or isinstance(value, (bool, int)) else "?"
        elif key == "code":
            kept[key] = error_code(value)
        elif key == "details":
            kept[key] = detail_template(value)
        elif key == "hint":
            kept[key] = "[hint]"
        else:
            kept[str(key)] = db_message(value, str(parsed.get("code")), _REDACT)
    return json.dumps(kept, separators=(",", ":"))


class ContractError(StoreError):
    """An RPC answered outside the SQL contract: a key missing, renamed or mistyped, or an
    outcome or status this code does not know.

    The SQL and the Python disagree (a migration and a deploy of different releases); a retry
    gets the same answer, so it is never transient. `fields` lists each offending field path
    with pydantic's error type; neither they nor the message ever carry a value (values may be
    personal data).
    """

    code = Code.DB_OPERATION_FAILED

    def __init__(self, operation: str, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        super().__init__(
            operation,
            f"{operation} answered outside the SQL contract: {'; '.join(self.fields)}",
            transient=False,
        )

    def log_context(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "details": "answer outside the SQL contract: " + "; ".join(self.fields),
        }


class RunBusy(CertexpiryError):
    """Another invocation holds the run's lease: raising makes Pub/Sub redeliver later."""

    code = Code.RUN_BUSY

    def __init__(self, run_id: str, segment: int) -> None:
        super().__init__(f"run {run_id} segment {segment} is held by a live invocation")
        self.run_id = run_id
        self.segment = segment

    def log_context(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "segment": self.segment}


class PublishError(CertexpiryError):
    """The continuation message could not be published (after bounded retries)."""

    code = Code.CONTINUATION_PUBLISH_FAILED

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(template(message, _REDACT))
        self.topic = topic

    def log_context(self) -> dict[str, Any]:
        return {"topic": self.topic}
