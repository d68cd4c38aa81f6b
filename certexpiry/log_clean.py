"""Cleaning a log entry's values: sanitised, JSON-safe, capped.

Split out of ``certexpiry.log_line`` (the processor chain), whose ``redact_and_cap`` and
``render`` steps use it: what a value of any type becomes in a line (strings sanitised and cut
at MAX_STRING, collections cut at MAX_ITEMS and MAX_DEPTH, an 11-digit integer taken for a
national id), a stack trace's cap, and the identifying context kept by a line over MAX_LINE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import islice

from certexpiry.log_entry import (
    _ID_CONTEXT_KEYS,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STACK,
    MAX_STRING,
    TRUNCATION_MARK,
    _Caps,
    _cut_middle,
    _describe,
)
from certexpiry.sanitize import Sanitizer

_PRE_CUT = 64_000  # strings are cut to this before sanitising, to bound the regex cost
_PRE_CUT_STACK = 1_000_000
_ID_VALUE_MAX = 100
_ID_LIMIT = 10**10  # ints of 11 digits could be national ids; smaller ones pass as they are


class Cleaner:
    """Cleans values with one sanitiser."""

    def __init__(self, sanitizer: Sanitizer) -> None:
        self._sanitizer = sanitizer

    def clean_text(self, text: str, caps: _Caps) -> str:
        """Sanitise a string and cap it at MAX_STRING characters."""
        text = self._sanitizer.clean(text[:_PRE_CUT])
        if len(text) > MAX_STRING:
            caps.truncated = True
            text = text[:MAX_STRING] + TRUNCATION_MARK
        return text

    def clean_stack(self, stack: str) -> str:
        """Sanitise a stack trace and cap it at MAX_STACK, keeping its head and tail."""
        if len(stack) > _PRE_CUT_STACK:
            stack = _cut_middle(stack, _PRE_CUT_STACK)
        stack = self._sanitizer.clean(stack)
        return _cut_middle(stack, MAX_STACK) if len(stack) > MAX_STACK else stack

    def clean(self, value: object, depth: int, caps: _Caps) -> object:  # noqa: C901  # one branch per JSON kind
        """A JSON-safe, sanitised, capped copy of a context value."""
        if value is None or type(value) is bool:
            return value
        if isinstance(value, str):  # str subclasses (StrEnum) included
            return self.clean_text(str.__str__(value), caps)
        if isinstance(value, int):  # IntEnum included
            number = int(value)
            if _ID_LIMIT <= abs(number) < 10 * _ID_LIMIT:  # 11 digits: could be a national id
                return "[REDACTED:national_id]"
            return number if -(2**63) <= number < 2**63 else str(number)
        if isinstance(value, float):
            real = float(value)
            return real if math.isfinite(real) else str(real)
        if depth > MAX_DEPTH:
            return "[max depth]"
        if isinstance(value, Mapping):
            if len(value) > MAX_ITEMS:
                caps.cut(len(value))
            return {
                self.clean_text(str(key), caps): self.clean(item, depth + 1, caps)
                for key, item in islice(value.items(), MAX_ITEMS)
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            if len(value) > MAX_ITEMS:
                caps.cut(len(value))
            return [self.clean(item, depth + 1, caps) for item in islice(value, MAX_ITEMS)]
        if isinstance(value, (bytes, bytearray)):
            return self.clean_text(bytes(value[:_PRE_CUT]).decode("utf-8", "replace"), caps)
        if isinstance(value, BaseException):
            return self.clean_text(_describe(value, self._sanitizer.clean), caps)
        try:
            text = str(value)
        except Exception:  # noqa: BLE001  # a broken __str__ must not break the line
            text = f"<unprintable {type(value).__name__}>"
        return self.clean_text(text, caps)

    def ids_only(self, context: Mapping[str, object]) -> dict[str, object]:
        """The context reduced to short identifying scalars, for a line over MAX_LINE."""
        reduced: dict[str, object] = {}
        for key in _ID_CONTEXT_KEYS:
            value = context.get(key)
            if isinstance(value, str):
                reduced[key] = self._sanitizer.clean(value[:_ID_VALUE_MAX])
            elif isinstance(value, (int, float)):
                reduced[key] = self.clean(value, 1, _Caps())
        reduced["truncated"] = True
        return reduced
