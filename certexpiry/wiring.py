"""Build the job's parts from the settings: the store adapter, the publisher and the logger.

Kept out of main.py so the CLI, the demo and the tests wire the job exactly as the deployed
function does.
"""

from __future__ import annotations

from certexpiry import __version__
from certexpiry.errors import SettingsError
from certexpiry.log import JsonLogger
from certexpiry.publisher import Publisher, PubSubPublisher
from certexpiry.sanitize import Sanitizer
from certexpiry.settings import Settings
from certexpiry.store import RpcStore, RpcTransport
from certexpiry.sweep import Job


def make_logger(sanitizer: Sanitizer, settings: Settings | None = None) -> JsonLogger:
    """The process's logger; secrets in the settings are registered for redaction by value."""
    if settings is not None:
        for secret in settings.secret_values():
            sanitizer.register_secret(secret)
    return JsonLogger(
        sanitizer=sanitizer,
        service=settings.service_name if settings else "certexpiry",
        version=settings.service_version
        if settings and settings.service_version != "dev"
        else __version__,
        project=settings.google_cloud_project if settings else None,
    )


def make_transport(settings: Settings) -> RpcTransport:
    """Direct Postgres when DATABASE_URL is set, else Supabase's HTTP API."""
    if settings.database_url is not None:
        from certexpiry.pg_store import PgTransport

        return PgTransport(settings.database_url.get_secret_value())
    if settings.supabase_url and settings.supabase_service_role_key is not None:
        from certexpiry.supabase_store import SupabaseTransport

        return SupabaseTransport(
            settings.supabase_url, settings.supabase_service_role_key.get_secret_value()
        )
    raise SettingsError(
        "DATABASE_URL", "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
    )


def make_store(settings: Settings) -> RpcStore:
    """The sweep's store over the configured transport."""
    return RpcStore(make_transport(settings))


def make_job(settings: Settings, log: JsonLogger, publisher: Publisher | None = None) -> Job:
    """The job for one function instance (stores and clients are reused across invocations)."""
    return Job(
        settings=settings,
        store=make_store(settings),
        publisher=publisher if publisher is not None else PubSubPublisher(),
        log=log,
    )
