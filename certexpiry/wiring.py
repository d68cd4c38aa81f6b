"""Build the job's parts from the settings: the store's transport, the publisher and the logger.

Kept out of main.py so the CLI, the demo and the tests wire the job exactly as the deployed
function does.
"""

from __future__ import annotations

from typing import Any

from certexpiry import __version__
from certexpiry.codes import Code
from certexpiry.errors import DatabaseError, RpcError, SchemaNotReady, SettingsError, StoreError
from certexpiry.log import JsonLogger
from certexpiry.publisher import Publisher, PubSubPublisher
from certexpiry.redact import Secrets
from certexpiry.retry import DEFAULT_RETRY, RetryPolicy
from certexpiry.settings import Settings
from certexpiry.store import RpcStore, RpcTransport, call, contract
from certexpiry.store.answers import SchemaVersion
from certexpiry.store.contract import RPC_SIGNATURES, Signatures
from certexpiry.sweep import Job


def make_logger(secrets: Secrets, settings: Settings | None = None) -> JsonLogger:
    """The process's logger; the settings' credentials are registered to be scrubbed."""
    if settings is not None:
        for secret in settings.secret_values():
            secrets.register(secret)
    return JsonLogger(
        secrets=secrets,
        service=settings.service_name if settings else "certexpiry",
        version=settings.service_version
        if settings and settings.service_version != "dev"
        else __version__,
        project=settings.google_cloud_project if settings else None,
    )


def make_transport(
    settings: Settings,
    *,
    connect_timeout_s: int | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    signatures: Signatures = RPC_SIGNATURES,
) -> RpcTransport:
    """Direct Postgres when DATABASE_URL is set, else Supabase's HTTP API. The function keeps
    each transport's own connect timeout and the default retry policy; the command line passes
    its own, shorter ones, and its own RPCs' signatures besides the function's."""
    if settings.database_url is not None:
        from certexpiry.store.postgres import CONNECT_TIMEOUT_S, PgTransport

        return PgTransport(
            settings.database_url.get_secret_value(),
            connect_timeout_s=connect_timeout_s or CONNECT_TIMEOUT_S,
            statement_timeout_ms=int(settings.statement_timeout_s * 1000),
            retry=retry,
            signatures=signatures,
        )
    if settings.supabase_url and settings.supabase_service_role_key is not None:
        import httpx

        from certexpiry.store.postgrest import CONNECT_TIMEOUT_S as HTTP_CONNECT_S
        from certexpiry.store.postgrest import READ_TIMEOUT_S, SupabaseTransport

        return SupabaseTransport(
            settings.supabase_url,
            settings.supabase_service_role_key.get_secret_value(),
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=connect_timeout_s or HTTP_CONNECT_S),
            retry=retry,
        )
    raise SettingsError(
        "DATABASE_URL", "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
    )


# How each transport says "no such function": a database older than schema_version itself.
_UNDEFINED_FUNCTION_SQLSTATE = "42883"
_UNDEFINED_FUNCTION_POSTGREST = "PGRST202"
MIGRATE_COMMAND = (
    "push the job's migrations with the app's (certexpiry export-migrations, then supabase db "
    "push), or run certexpiry migrate with DATABASE_URL set to this database"
)


def read_schema_version(transport: RpcTransport) -> SchemaVersion:
    """The database's schema_version answer (StoreError / ContractError as any RPC)."""
    return call(transport, contract.SCHEMA_VERSION_ANSWER)


def check_schema(transport: RpcTransport, log: JsonLogger) -> str:
    """The database's newest applied migration, if it is at least contract.SCHEMA_VERSION.

    Otherwise one line is logged (SCHEMA_MISMATCH at ERROR naming both versions, or the
    failed call's own code) and SchemaNotReady raised, so the night never starts on a schema
    that would fail it halfway. Ordering by the timestamp in the version, not equality: a
    database migrated past this release (a newer migration, from any branch) is fine.
    """
    required = contract.SCHEMA_VERSION
    failed: dict[str, Any] = {}
    try:
        answer = read_schema_version(transport)
    except StoreError as exc:  # ContractError included: an answer this release cannot read
        missing = (
            isinstance(exc, DatabaseError) and exc.sqlstate == _UNDEFINED_FUNCTION_SQLSTATE
        ) or (isinstance(exc, RpcError) and exc.postgrest_code == _UNDEFINED_FUNCTION_POSTGREST)
        if not missing:
            log.error(
                exc.code, "The schema check could not read the database.", **exc.log_context()
            )
            raise SchemaNotReady(str(exc)) from None
        found = None
        # The failed call as it came (HTTP status, PostgREST code, the redacted body; or the
        # SQLSTATE): what a reader needs to tell "not installed" from "wrong project".
        failed = exc.log_context()
    else:
        found = answer.latest
        if found is not None and int(found) >= int(required):
            return found
    reason = (
        f"the job's newest migration in this database is {found}, this release needs "
        f"{required} or newer"
        if found is not None
        else f"the job is not installed in this database (no schema_version function, or no "
        f"migration in its ledger certexpiry.schema_migrations; this release needs {required})"
    )
    log.error(
        Code.SCHEMA_MISMATCH,
        "The database's schema is older than this release; nothing will run until it is migrated.",
        **{
            **failed,
            "reason": reason,
            "remediation": MIGRATE_COMMAND,
            "operation": contract.SCHEMA_VERSION_ANSWER.rpc,
        },
    )
    raise SchemaNotReady(reason)


def make_job(
    settings: Settings,
    log: JsonLogger,
    publisher: Publisher | None = None,
    *,
    schema_log: JsonLogger | None = None,
) -> Job:
    """The job for one function instance (stores and clients are reused across invocations),
    built only on a database whose schema this release was built for (check_schema). A refusal
    is logged on `schema_log`, the invocation's logger, so it carries that invocation's id."""
    transport = make_transport(settings)
    try:
        check_schema(transport, log if schema_log is None else schema_log)
    except SchemaNotReady:
        transport.close()
        raise
    return Job(
        settings=settings,
        store=RpcStore(transport),
        publisher=publisher if publisher is not None else PubSubPublisher(),
        log=log,
    )
