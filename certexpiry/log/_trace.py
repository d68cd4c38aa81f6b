"""Request trace context for log lines: W3C ``traceparent`` or ``X-Cloud-Trace-Context``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple


class TraceContext(NamedTuple):
    """Trace id (32 hex), span id (16 hex) and sampling flag of the current request."""

    trace_id: str
    span_id: str | None
    sampled: bool


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([0-9]))?")


def trace_from_headers(headers: Mapping[str, str]) -> TraceContext | None:
    """Trace context from W3C ``traceparent``, else ``X-Cloud-Trace-Context``; else None.

    Header names are matched case-insensitively; a malformed value counts as absent.
    Works with any mapping with ``items()`` (Flask headers, CloudEvent attributes).
    """
    try:
        found = {str(name).lower(): value for name, value in headers.items()}
    except Exception:  # noqa: BLE001  # any odd mapping means "no trace", never a failure
        return None
    return _parse_traceparent(found.get("traceparent")) or _parse_cloud_trace(
        found.get("x-cloud-trace-context")
    )


def _parse_traceparent(value: object) -> TraceContext | None:
    """W3C Trace Context ``version-traceid-spanid-flags``."""
    match = _TRACEPARENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if (
        version == "ff"
        or (version == "00" and rest is not None)
        or trace_id == "0" * 32
        or span_id == "0" * 16
    ):
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def _parse_cloud_trace(value: object) -> TraceContext | None:
    """Google's ``TRACE_ID/SPAN_ID;o=1``; the decimal span id is turned into 16 hex."""
    match = _CLOUD_TRACE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    trace_id, span, sampled = match.groups()
    if trace_id.strip("0") == "":
        return None
    span_id = None
    if span is not None:
        number = int(span)
        if number >= 2**64:
            return None
        span_id = f"{number:016x}" if number else None
    return TraceContext(trace_id.lower(), span_id, sampled == "1")
