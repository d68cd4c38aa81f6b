"""The function's settings, from environment variables (pydantic-settings).

A bad setting fails the invocation with one ERROR line naming it (see `load_settings`), never
a traceback. Secret values are registered (``certexpiry.redact.Secrets``) so that they are
scrubbed from every line by value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from certexpiry.errors import SettingsError
from certexpiry.redact import WORDS, Secrets, shared_secrets

SECRET_SETTINGS = ("DATABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
"""The settings that hold credentials: registered for redaction by value, whole and by part."""

FUNCTION_TIMEOUT_S = 540


class Settings(BaseSettings):
    """Environment variables of the function (names are the field names, upper-cased)."""

    # Surrounding whitespace is never part of a value: a secret saved with a trailing newline
    # (`echo "$URL" | gcloud secrets create`) is the URL, not a DSN libpq refuses forever.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    database_url: SecretStr | None = None
    supabase_url: str | None = None
    supabase_service_role_key: SecretStr | None = None
    continuation_topic: str | None = Field(default=None, pattern=r"^projects/[^/]+/topics/[^/]+$")
    time_budget_s: float = Field(default=420.0, gt=0, lt=FUNCTION_TIMEOUT_S)
    # Certifications per batch (one RPC each): the night pages over certifications, so a mentor
    # with thousands of them is split across batches and a batch costs what its rows cost. The
    # SQL API's cap, 1000, by default: every call has a fixed cost (a round trip, over PostgREST
    # an HTTPS request), which on the first night after go-live was 0.25-0.3 s of a 4.2-4.4 s
    # night at 500 (bench/, shape h); a batch of 1000 pauses took 60-150 ms there.
    batch_size: int = Field(default=1000, ge=1, le=1000)
    reminder_days: Annotated[tuple[int, ...], NoDecode] = (30, 7, 1)
    org_timezone: str = "Europe/Oslo"
    google_cloud_project: str | None = None
    lease_s: int = Field(default=120, ge=10, le=3600)
    monitoring_reserve_s: float = Field(default=15.0, ge=0)
    # How many missed IDs the monitoring query returns (and the warning line carries); the
    # audit row always gets the complete list, written by the database.
    missed_ids_limit: int = Field(default=1000, ge=1, le=100_000)
    # The statement timeout of each call on DATABASE_URL (Supabase's HTTP API applies its role's
    # own). A batch that outlives it is narrowed; one certification that outlives it alone is
    # passed as failed (docs/decisions/0028-a-row-that-fails-alone.md).
    statement_timeout_s: float = Field(default=60.0, gt=0, lt=FUNCTION_TIMEOUT_S)
    service_name: str = Field(default="certexpiry", alias="K_SERVICE")
    service_version: str = Field(default="dev")

    @field_validator("database_url", "supabase_url", "supabase_service_role_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty connection setting (e.g. `DATABASE_URL=`) means "not configured"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _refuse_transaction_pooler(cls, value: SecretStr | None) -> SecretStr | None:
        """Supabase's transaction pooler (port 6543, or a `pgbouncer=true` string) hands each
        transaction any server connection: the session settings the store makes once per
        connection (role, JWT claims, statement_timeout) and psycopg's prepared statements do
        not hold, so every night would fail. Refused at cold start, naming the setting and never
        its value (docs/deploy.md: the session pooler works)."""
        if value is not None and _is_transaction_pooler(value.get_secret_value()):
            raise ValueError(
                "DATABASE_URL points at a transaction pooler (port 6543 or pgbouncer=true), "
                "which breaks prepared statements: use Supabase's session pooler (port 5432 on "
                "the pooler host) or the direct connection"
            )
        return value

    @field_validator("reminder_days", mode="before")
    @classmethod
    def _parse_days(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            try:
                return tuple(int(part) for part in parts)
            except ValueError as exc:
                raise ValueError(
                    "expected comma-separated whole numbers of days, e.g. 30,7,1"
                ) from exc
        return value

    @field_validator("reminder_days")
    @classmethod
    def _check_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one reminder offset is required")
        if any(day < 0 or day > 365 for day in value):
            raise ValueError("each offset must be between 0 and 365 days")
        return tuple(sorted(set(value), reverse=True))

    @field_validator("org_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _check_store(self) -> Self:
        if self.supabase_url and self.supabase_service_role_key is None:
            raise ValueError("SUPABASE_SERVICE_ROLE_KEY is required with SUPABASE_URL")
        if self.supabase_service_role_key is not None and not self.supabase_url:
            raise ValueError("SUPABASE_URL is required with SUPABASE_SERVICE_ROLE_KEY")
        return self

    def secret_values(self) -> list[str]:
        """Every configured credential (``Secrets.register`` takes each part of it too)."""
        secrets = [self.database_url, self.supabase_service_role_key]
        return [secret.get_secret_value() for secret in secrets if secret is not None]


_KEYWORD_PORT = re.compile(r"(?:^|\s)port\s*=\s*'?6543\b")
_PGBOUNCER = re.compile(r"[?&\s]pgbouncer=true\b", re.IGNORECASE)


def _is_transaction_pooler(conninfo: str) -> bool:
    """Whether a libpq URI or keyword/value string names port 6543 or pgbouncer=true."""
    if _PGBOUNCER.search(conninfo):
        return True
    if "://" in conninfo:
        try:
            return urlsplit(conninfo).port == 6543
        except ValueError:  # a malformed port is libpq's to refuse
            return False
    return bool(_KEYWORD_PORT.search(conninfo))


def register_secrets(values: Iterable[str], secrets: Secrets | None = None) -> None:
    """Register each credential, whole and by part, on ``secrets`` (by default the
    process's shared registry)."""
    target = shared_secrets() if secrets is None else secrets
    for value in values:
        if value.strip():
            target.register(value)


def register_environment_secrets(extra: Iterable[str] = ()) -> None:
    """The credentials in the environment (and `extra` values) registered on the shared
    registry: for anything that may print or log before settings are read (the command line
    registers them before any command runs)."""
    register_secrets([os.environ.get(name, "") for name in SECRET_SETTINGS] + list(extra))


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a ValidationError becomes a SettingsError naming the first bad one.

    The credentials are registered on the shared registry first, whole and by part, even when
    another setting is invalid: whatever is printed or logged next cannot echo them.
    """
    register_environment_secrets(str(overrides.get(name.lower(), "")) for name in SECRET_SETTINGS)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings reads the environment
        register_secrets(settings.secret_values())
        return settings
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
        setting = location[0].upper() if location else _setting_from_message(str(error.get("msg")))
        raise SettingsError(setting, _reason(error)) from None


def _setting_from_message(message: str) -> str:
    """Whole-model checks start their message with the setting they are about."""
    first = message.removeprefix("Value error, ").split(" ", 1)[0]
    return first if first.isupper() else "SETTINGS"


def _reason(error: Mapping[str, object]) -> str:
    """Our own validators' words; for pydantic's own checks, its error type (a code), never its
    message, which is a library's text."""
    if error.get("type") == "value_error":
        return str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"invalid value ({error.get('type', 'unknown')})"


WORDS.update(name.upper() for name in Settings.model_fields)
WORDS.update(("SETTINGS", *SECRET_SETTINGS))
