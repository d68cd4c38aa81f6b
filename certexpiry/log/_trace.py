"""Request trace context for log lines: W3C ``traceparent`` or ``X-Cloud-Trace-Context``."""

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
    """From ``traceparent``, else ``X-Cloud-Trace-Context`` (``TRACE/SPAN;o=1``, span decimal),
    else None; names in any case, malformed values absent, any mapping with ``items()``."""
    try:
        found = {str(name).lower(): str(value).strip() for name, value in headers.items()}
    except Exception:  # noqa: BLE001  # any odd mapping means "no trace", never a failure
        return None
    parent = _TRACEPARENT.fullmatch(found.get("traceparent", ""))
    if parent is not None:
        version, trace_id, span_id, flags, rest = parent.groups()
        zero = trace_id == "0" * 32 or span_id == "0" * 16
        if not (zero or version == "ff" or (version == "00" and rest is not None)):
            return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))
    cloud = _CLOUD_TRACE.fullmatch(found.get("x-cloud-trace-context", ""))
    if cloud is None or cloud[1].strip("0") == "" or int(cloud[2] or 0) >= 2**64:
        return None
    span = int(cloud[2] or 0)
    return TraceContext(cloud[1].lower(), f"{span:016x}" if span else None, cloud[3] == "1")
