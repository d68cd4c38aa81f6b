"""A failed service call's body by its structure, never its text: the specification asks for the
body, and a body is someone else's text (PostgREST quotes the row in ``details``)."""

from __future__ import annotations

import json
import re

_KNOWN_TYPES = frozenset(
    {
        "application/json",
        "application/problem+json",
        "application/vnd.pgrst.object+json",
        "text/plain",
        "text/html",
    }
)
_CODE = re.compile(r"[0-9A-Z]{5}|PGRST[0-9]{3}")
_KNOWN_KEYS = frozenset({"code", "message", "details", "hint", "error", "msg", "status"})


class BodyShape(dict[str, object]):
    """What ``body_shape`` kept of a body: only structure, so the log takes it as it is."""


def body_shape(body: str, content_type: str | None = None) -> BodyShape:
    """The structure of a response body: content type (known ones), length, and for a JSON
    object its known keys and the code-shaped value of ``code``; nothing of its text."""
    shape = BodyShape(length=len(body))
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media:
        shape["content_type"] = media if media in _KNOWN_TYPES else "other"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return shape
    if isinstance(parsed, dict):
        keys = [str(key) for key in parsed]
        shape["keys"] = sorted(key for key in keys if key in _KNOWN_KEYS)
        shape["other_keys"] = sum(1 for key in keys if key not in _KNOWN_KEYS)
        code = parsed.get("code")
        if isinstance(code, str) and _CODE.fullmatch(code):
            shape["code"] = code  # the log's postgrest_code form decides if it is a known one
    return shape
