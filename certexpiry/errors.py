"""The exceptions of certexpiry, and which failures are worth retrying.

    CertexpiryError
    ├── InvalidMessage        a Pub/Sub message that is not ours: acknowledged, never retried
    ├── SettingsError         a setting is missing or malformed: fix the deployment
    ├── StoreError            a call to the SQL API failed (`operation` names the RPC)
    │   ├── RpcError          through Supabase's HTTP API: HTTP status, body, PostgREST code
    │   │   └── RpcTimeout    no answer in time
    │   ├── DatabaseError     through a direct Postgres connection: SQLSTATE
    │   └── ContractError     an answer outside the typed SQL contract (certexpiry.store)
    ├── SchemaNotReady        the database's schema is older than this release: answer 503
    └── PublishError          the continuation could not be published

Each error knows its catalogued log code and the context fields it contributes, so the code
that logs it does not have to know which adapter raised it.

Private by construction: an error keeps no free text from outside the project's code. A store
error keeps the SQLSTATE or PostgREST code, the HTTP status, a body's structure
(``certexpiry.redact.body_shape``) and the names the database's catalog has
(``certexpiry.error_names``); its ``str()`` is the project's own words. So neither its log
context nor a stack trace can carry a row value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certexpiry.codes import Code
from certexpiry.redact import BodyShape, CatalogName

# Transient failures, retried with backoff: PostgREST could not reach or use its pool
# (PGRST000-003), gateway errors, and the SQLSTATE classes of connection loss (08), resource
# exhaustion (53), serialization failure (40001), deadlock (40P01), admin shutdown (57P01) and
# statement timeout (57014: a lock held for a while; failing the night for it would stall it).
TRANSIENT_HTTP_STATUSES = frozenset({502, 503, 504, 520})
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57014"})
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")


STATEMENT_TIMEOUT = "57014"


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


class InvalidMessage(CertexpiryError):
    """The event is not a message this function accepts; `reason` says why."""

    code = Code.INVALID_MESSAGE

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id

    def log_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"reason": self.reason}
        if self.message_id is not None:
            context["message_id"] = self.message_id  # logged only in a message id's form
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
    """A call to the SQL API failed; ``operation`` names the RPC."""

    code = Code.DB_OPERATION_FAILED

    def __init__(self, operation: str, message: str = "", *, transient: bool = False) -> None:
        super().__init__(message or f"{operation} failed")
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
    """Supabase's HTTP API answered with an error, or the connection failed: the HTTP status,
    the body's structure and PostgREST's code, never the body's text."""

    code = Code.SUPABASE_RPC_FAILED

    def __init__(
        self,
        operation: str,
        *,
        http_status: int | None = None,
        body: BodyShape | None = None,
        postgrest_code: str | None = None,
        transient: bool = False,
    ) -> None:
        said = ", ".join(
            part
            for part in (http_status and f"HTTP {http_status}", postgrest_code)
            if isinstance(part, str)
        )
        super().__init__(
            operation, f"{operation} failed ({said or 'no answer'})", transient=transient
        )
        self.http_status = http_status
        self.body = body
        self.postgrest_code = postgrest_code

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
            "response_body": self.body,
            "postgrest_code": self.postgrest_code,
        }
        return {key: value for key, value in fields.items() if value is not None}


class RpcTimeout(RpcError):
    """The HTTP call did not complete in time."""

    code = Code.SUPABASE_TIMEOUT

    def __init__(self, operation: str, *, elapsed_ms: int) -> None:
        super().__init__(operation, transient=True)
        self.elapsed_ms = elapsed_ms

    def log_context(self) -> dict[str, Any]:
        return {**super().log_context(), "elapsed_ms": self.elapsed_ms}

    def retry_context(self) -> dict[str, Any]:
        return {**super().retry_context(), "elapsed_ms": self.elapsed_ms}


DIAGNOSTIC_NAMES = (
    "constraint_name",
    "schema_name",
    "table_name",
    "column_name",
    "datatype_name",
    "routine",
)
"""The names an error is about (Postgres' error fields and its context's functions), each kept
only when the database's catalog has it: a trigger can set these fields to any text."""


class DatabaseError(StoreError):
    """A direct Postgres call failed: ``sqlstate`` is Postgres' error code, ``names`` the
    catalog-checked names of what it is about (``certexpiry.error_names``); no message."""

    code = Code.DB_OPERATION_FAILED

    def __init__(
        self,
        operation: str,
        *,
        sqlstate: str | None,
        connection_lost: bool = False,
        names: Mapping[str, str] | None = None,
    ) -> None:
        transient = connection_lost or is_transient_sqlstate(sqlstate)
        code = f" with SQLSTATE {sqlstate}" if sqlstate else ""
        super().__init__(operation, f"{operation} failed{code}", transient=transient)
        self.sqlstate = sqlstate
        self.connection_lost = connection_lost
        self.names = {
            key: CatalogName(value)
            for key, value in (names or {}).items()
            if key in DIAGNOSTIC_NAMES and value
        }

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
        return context


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


class SchemaNotReady(CertexpiryError):
    """The database's schema is not the one this release needs (or could not be read); the
    cause is already logged. The function answers 503 and checks again on the next delivery."""

    code = Code.SCHEMA_MISMATCH


class PublishError(CertexpiryError):
    """The continuation message could not be published (after bounded retries)."""

    code = Code.CONTINUATION_PUBLISH_FAILED

    def __init__(self, topic: str, error_type: str) -> None:
        super().__init__(f"publishing to {topic} failed ({error_type})")
        self.topic = topic
        self.error_type = error_type

    def log_context(self) -> dict[str, Any]:
        return {"topic": self.topic, "error_type": self.error_type}
