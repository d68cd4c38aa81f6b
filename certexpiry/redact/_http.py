"""A failed service call's body by its structure, never its text: the specification asks for the
body, and a body is someone else's text (PostgREST quotes the row in ``details``)."""

import json
import re

_JSON_TYPES = ("application/json", "application/problem+json", "application/vnd.pgrst.object+json")
_KNOWN_TYPES = frozenset((*_JSON_TYPES, "text/plain", "text/html"))
_KNOWN_KEYS = frozenset(("code", "message", "details", "hint", "error", "msg", "status"))
_CODE = re.compile(r"[0-9A-Z]{5}|PGRST[0-9]{3}")


class BodyShape(dict[str, object]):
    """What ``body_shape`` kept of a body: only structure, so the log takes it as it is."""


def body_shape(body: str, content_type: str | None = None) -> BodyShape:
    """Content type (known ones), length, and for a JSON object its known keys, a count of the
    others and a code-shaped ``code`` (the log's form decides if it is a known one)."""
    shape = BodyShape(length=len(body))
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media:
        shape["content_type"] = media if media in _KNOWN_TYPES else "other"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return shape
    if isinstance(parsed, dict):
        shape["keys"] = sorted(key for key in parsed if key in _KNOWN_KEYS)
        shape["other_keys"] = sum(1 for key in parsed if key not in _KNOWN_KEYS)
        if isinstance(code := parsed.get("code"), str) and _CODE.fullmatch(code):
            shape["code"] = code
    return shape
