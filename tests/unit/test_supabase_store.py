"""The Supabase adapter at the HTTP level: PostgREST's documented requests, answers and errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import respx

from certexpiry.errors import RpcError, RpcTimeout
from certexpiry.retry import RetryPolicy
from certexpiry.store import RpcStore
from certexpiry.store.postgrest import SupabaseTransport

URL = "https://abcdefghijklmnop.supabase.co"
KEY = "sb_secret_TESTKEY_not_a_real_key_1234567890"
RPC = f"{URL}/rest/v1/rpc/get_missed_auto_pauses"
FAST = RetryPolicy(attempts=3, max_seconds=5, initial_wait_s=0.001, max_wait_s=0.002)

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


@pytest.fixture
def transport() -> Iterator[SupabaseTransport]:
    t = SupabaseTransport(URL, KEY, retry=FAST)
    yield t
    t.close()


@respx.mock
def test_rpc_request_shape_and_json_answer(transport: SupabaseTransport) -> None:
    """An RPC is POST /rest/v1/rpc/<name> with the key headers and the params as a JSON body."""
    missed = str(uuid.uuid4())
    route = respx.post(RPC).mock(
        return_value=httpx.Response(
            200, json={"missed_pause_count": 1, "missed_ids": [missed], "today": "2026-11-28"}
        )
    )
    report = RpcStore(transport).missed_auto_pauses("Europe/Oslo", None, limit=1000)
    assert report.missed_pause_count == 1
    assert list(report.missed_ids) == [missed]
    request = route.calls.last.request
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "p_timezone": "Europe/Oslo",
        "p_today": None,
        "p_limit": 1000,
    }
    assert request.extensions.get("http_version", b"HTTP/1.1") in (b"HTTP/1.1", "HTTP/1.1")


@respx.mock
def test_postgrest_json_error_keeps_status_body_code_details_hint(
    transport: SupabaseTransport,
) -> None:
    """A 404 PGRST202 (function missing after a bad migration) is not retried and keeps the
    status, the code and the body's structure: PostgREST's message, details and hint are free
    text and are never kept (issue 22)."""
    body = {
        "code": "PGRST202",
        "details": "Searched for the function public.get_missed_auto_pauses with parameters p_timezone, p_today",
        "hint": "Perhaps you meant to call the function public.get_missed",
        "message": "Could not find the function public.get_missed_auto_pauses(p_timezone, p_today) in the schema cache",
    }
    route = respx.post(RPC).mock(return_value=httpx.Response(404, json=body))
    with pytest.raises(RpcError) as caught:
        transport.call("get_missed_auto_pauses", {"p_timezone": "Europe/Oslo", "p_today": None})
    error = caught.value
    assert route.call_count == 1
    assert error.http_status == 404
    assert error.postgrest_code == "PGRST202"
    assert error.body == {
        "length": len(json.dumps(body, separators=(",", ":"))),
        "content_type": "application/json",
        "keys": ["code", "details", "hint", "message"],
        "other_keys": 0,
        "code": "PGRST202",
    }
    assert str(error) == "get_missed_auto_pauses failed (HTTP 404, PGRST202)"
    assert error.transient is False
    assert error.log_context()["http_status"] == 404


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        (500, {"code": "P0001", "details": None, "hint": None, "message": "boom"}, False),
        (
            503,
            {
                "code": "PGRST002",
                "details": None,
                "hint": None,
                "message": "Could not query the database for the schema cache. Retrying.",
            },
            True,
        ),
        (
            504,
            {
                "code": "PGRST003",
                "details": None,
                "hint": None,
                "message": "Timed out acquiring connection from connection pool.",
            },
            True,
        ),
        (
            500,
            {
                "code": "40001",
                "details": None,
                "hint": None,
                "message": "could not serialize access",
            },
            True,
        ),
        (
            401,
            {
                "message": "Invalid API key",
                "hint": "Double check your Supabase `anon` or `service_role` API key.",
            },
            False,
        ),
        (
            403,
            {
                "code": "42501",
                "details": None,
                "hint": None,
                "message": "permission denied for function get_missed_auto_pauses",
            },
            False,
        ),
    ],
)
@respx.mock
def test_error_statuses_are_classified(
    transport: SupabaseTransport, status: int, body: dict[str, object], transient: bool
) -> None:
    """Transient PostgREST/SQLSTATE errors are retried to the bound; 4xx and other 5xx are not."""
    route = respx.post(RPC).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(RpcError) as caught:
        transport.call("get_missed_auto_pauses", {})
    assert caught.value.http_status == status
    assert caught.value.transient is transient
    assert route.call_count == (FAST.attempts if transient else 1)


@respx.mock
def test_gateway_html_502_is_kept_as_body_and_retried(transport: SupabaseTransport) -> None:
    """A 502 HTML page from the gateway becomes an RpcError with the page as body, after retries."""
    route = respx.post(RPC).mock(
        return_value=httpx.Response(502, text=HTML_502, headers={"content-type": "text/html"})
    )
    with pytest.raises(RpcError) as caught:
        transport.call("get_missed_auto_pauses", {})
    assert route.call_count == FAST.attempts
    assert caught.value.http_status == 502
    assert caught.value.body == {"length": len(HTML_502), "content_type": "text/html"}


@respx.mock
def test_transient_failure_then_success(transport: SupabaseTransport) -> None:
    """A 503 followed by a 200 succeeds: the idempotent RPC is retried."""
    respx.post(RPC).mock(
        side_effect=[
            httpx.Response(503, json={"code": "PGRST001", "message": "no connection"}),
            httpx.Response(200, json={"missed_pause_count": 0, "missed_ids": []}),
        ]
    )
    assert transport.call("get_missed_auto_pauses", {}) == {
        "missed_pause_count": 0,
        "missed_ids": [],
    }


@respx.mock
def test_read_timeout_becomes_supabase_timeout(transport: SupabaseTransport) -> None:
    """A read timeout raises RpcTimeout (SUPABASE_TIMEOUT) with the operation and elapsed time."""
    respx.post(RPC).mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(RpcTimeout) as caught:
        transport.call("get_missed_auto_pauses", {})
    assert caught.value.code == "SUPABASE_TIMEOUT"
    assert caught.value.operation == "get_missed_auto_pauses"
    assert caught.value.elapsed_ms >= 0


@respx.mock
def test_connection_reset_is_a_transient_rpc_error(transport: SupabaseTransport) -> None:
    """A reset connection is retried, then reported as SUPABASE_RPC_FAILED without an HTTP status."""
    route = respx.post(RPC).mock(
        side_effect=httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )
    with pytest.raises(RpcError) as caught:
        transport.call("get_missed_auto_pauses", {})
    assert route.call_count == FAST.attempts
    assert caught.value.http_status is None
    assert caught.value.transient is True


@respx.mock
def test_batch_answer_is_parsed(transport: SupabaseTransport) -> None:
    """process_expiry_batch's JSON (counts, cursor, failures) becomes a BatchResult."""
    cert, mentor = uuid.uuid4(), uuid.uuid4()
    cursor = f"2026-11-30/{uuid.uuid4()}"
    respx.post(f"{URL}/rest/v1/rpc/process_expiry_batch").mock(
        return_value=httpx.Response(
            200,
            json={
                "fenced": False,
                "mentors": 2,
                "reminders_queued": 1,
                "certifications_paused": 1,
                "batches": 1,
                "next_cursor": cursor,
                "done": True,
                "run_totals": {"mentors": 6, "certifications_paused": 2, "batches": 3},
                "failures_detail": [
                    {
                        "certification_id": str(cert),
                        "peer_mentor_id": str(mentor),
                        "operation": "auto_pause",
                        "sqlstate": "P0001",
                    }
                ],
            },
        )
    )
    result = RpcStore(transport).process_batch(uuid.uuid4(), 0, None, 50, (30, 7, 1), 120)
    assert result.next_cursor == cursor
    assert result.done is True
    assert result.counts["mentors"] == 2
    assert result.counts["certifications_paused"] == 1
    assert result.failures[0].certification_id == str(cert)
    assert result.run_totals["mentors"] == 6
    assert result.run_totals["failures"] == 0
