"""The PostgREST transport of the store (Supabase's HTTP API): the same RPCs, with supabase-py.

supabase-py's APIError carries neither the HTTP status nor the raw body, and postgrest-py
never retries a POST. So the client is given our own httpx.Client (HTTP/1.1, explicit
timeouts, a response hook that keeps the last response), every failure becomes an RpcError
with `http_status`, the body's structure (never its text: PostgREST's `details` quote the row)
and PostgREST's `code`, and transient failures are retried with backoff here (every RPC is
idempotent, so a retried POST is safe).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from certexpiry.errors import (
    TRANSIENT_HTTP_STATUSES,
    TRANSIENT_POSTGREST_CODES,
    RpcError,
    RpcTimeout,
    is_transient_sqlstate,
)
from certexpiry.redact import body_shape, is_error_code
from certexpiry.retry import DEFAULT_RETRY, RetryPolicy
from certexpiry.store.rpc import RpcStore

READ_TIMEOUT_S = 30.0  # an RPC's answer; the connection has its own, shorter timeout
CONNECT_TIMEOUT_S = 5.0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class SupabaseTransport:
    """Calls the SQL API as `POST /rest/v1/rpc/<name>` with the service-role key."""

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.retry = retry
        from supabase.lib.client_options import SyncClientOptions

        from supabase import create_client  # heavy: imported only when Supabase is used

        self._last_response: httpx.Response | None = None
        self.http = httpx.Client(
            http1=True,
            http2=False,
            timeout=timeout or httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            event_hooks={"response": [self._keep_response]},
            transport=transport,
        )
        options = SyncClientOptions(httpx_client=self.http, postgrest_client_retry=False)
        self.client = create_client(url, service_role_key, options=options)

    def _keep_response(self, response: httpx.Response) -> None:
        response.read()
        self._last_response = response

    def call(self, operation: str, params: Mapping[str, Any]) -> Any:
        from postgrest.exceptions import APIError

        def attempt() -> Any:
            self._last_response = None
            started = time.monotonic()
            try:
                return self.client.rpc(operation, dict(params)).execute().data
            except httpx.TimeoutException as exc:
                elapsed_ms = int((time.monotonic() - started) * 1000)
                raise RpcTimeout(operation, elapsed_ms=elapsed_ms) from exc
            except httpx.TransportError as exc:
                raise RpcError(operation, transient=True) from exc
            except APIError as exc:
                raise self._api_error(operation, exc) from exc

        return self.retry.call(attempt)

    def _api_error(self, operation: str, exc: Any) -> RpcError:
        response = self._last_response
        status = response.status_code if response is not None else None
        body = (
            body_shape(response.text, response.headers.get("content-type"))
            if response is not None
            else None
        )
        code = _text(exc.code)
        transient = (
            (status in TRANSIENT_HTTP_STATUSES)
            or (code in TRANSIENT_POSTGREST_CODES)
            or is_transient_sqlstate(code)
        )
        return RpcError(
            operation,
            http_status=status,
            body=body,
            postgrest_code=code if is_error_code(code) else None,
            transient=transient,
        )

    def close(self) -> None:
        self.http.close()


def supabase_store(url: str, service_role_key: str, **options: Any) -> RpcStore:
    """The store over Supabase's HTTP API."""
    return RpcStore(SupabaseTransport(url, service_role_key, **options))
