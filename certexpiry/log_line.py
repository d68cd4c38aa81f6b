"""Turning one log entry into one capped, sanitised JSON line.

Split out of ``certexpiry.log``: ``_LineBuilder`` holds JsonLogger's line-building
methods (cleaning context values, capping strings and stack traces, shrinking a line over
``MAX_LINE``, the timestamp) and ``_Shared`` the state bound loggers share.  JsonLogger
(in ``certexpiry.log``) is its only subclass and adds the public API and the writing;
the methods are unchanged, only moved, so that each module stays under 400 lines.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from itertools import islice
from typing import TextIO

from certexpiry.codes import Code, Severity
from certexpiry.log_entry import (
    _ENCODE,
    _ID_CONTEXT_KEYS,
    _QUOTE,
    ALLOWED_CONTEXT_KEYS,
    ERROR_EVENT_TYPE,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LINE,
    MAX_STACK,
    MAX_STRING,
    TRUNCATION_MARK,
    _Caps,
    _code_value,
    _cut_middle,
    _describe,
    _Where,
)
from certexpiry.sanitize import Sanitizer

_PRE_CUT = 64_000  # strings are cut to this before sanitising, to bound the regex cost
_PRE_CUT_STACK = 1_000_000
_ID_VALUE_MAX = 100

_RANK = {Severity.DEBUG: 10, Severity.INFO: 20, Severity.WARNING: 30, Severity.ERROR: 40}


class _Shared:
    """State shared by a logger and every logger bound from it."""

    def __init__(
        self,
        sanitizer: Sanitizer,
        stream: TextIO | None,
        service: str,
        version: str,
        project: str | None,
        min_severity: Severity,
    ) -> None:
        self.sanitizer = sanitizer
        self.stream = stream
        self.service = service
        self.project = project
        self.enabled = frozenset(
            level.value for level in Severity if _RANK[level] >= _RANK[min_severity]
        )
        self.error_json = f',"@type":"{ERROR_EVENT_TYPE}","serviceContext":' + _ENCODE(
            {"service": service, "version": version}
        )
        self.lock = threading.Lock()  # one line at a time on the stream
        self.count_lock = threading.Lock()
        self.dropped = 0
        self.unreported = 0
        self.clock = (-1, "")


_ERROR = Severity.ERROR
_time_ns = time.time_ns  # module-level, so tests can move the clock
_STACK_KEY = ',"stack_trace":'
# Allowed context keys -> whether the logger sets the key too (then the values are merged).
_KEY_KIND = {key: key in ("truncated", "total_count") for key in ALLOWED_CONTEXT_KEYS}
_ID_LIMIT = 10**10  # ints of 11 digits could be national ids; smaller ones pass as they are


class _LineBuilder:
    """JsonLogger's line building: everything from an entry's parts to its JSON text.

    A mixin with JsonLogger as its only subclass, which sets the three attributes below
    in ``_setup``.
    """

    _shared: _Shared
    _run_id_json: str
    _fixed_json: str

    def _line(  # noqa: C901  # the line's fields in order; issue 11 turns it into processors
        self,
        severity: Severity,
        code: Code,
        message: str,
        context: Mapping[str, object],
        stack: str | None,
        where: _Where | None,
    ) -> str:
        """Serialise one entry, shrinking it if it exceeds MAX_LINE.

        The context JSON is built in the same pass that cleans the values (keys are
        allow-listed identifiers and need no escaping); strings and small ints, nearly
        every value, are handled inline because a call per value costs more than the work.
        """
        caps = _Caps()
        sanitize = self._shared.sanitizer.clean
        members: list[str] = []
        reserved: dict[str, str] = {}  # truncated / total_count given by the caller
        dropped_keys = 0
        for key, value in context.items():
            kind = _KEY_KIND.get(key)
            if kind is None:
                dropped_keys += 1
                continue
            if type(value) is str:
                text = sanitize(value[:_PRE_CUT])
                if len(text) > MAX_STRING:
                    caps.truncated = True
                    text = text[:MAX_STRING] + TRUNCATION_MARK
                encoded = _QUOTE(text)
            elif type(value) is int and -_ID_LIMIT < value < _ID_LIMIT:
                encoded = str(value)
            else:
                encoded = _ENCODE(self._clean(value, 1, caps))
            if kind:
                reserved[key] = encoded
            else:
                members.append(f'"{key}":{encoded}')
        text = sanitize((message if type(message) is str else str(message))[:_PRE_CUT])
        if len(text) > MAX_STRING:
            caps.truncated = True
            text = text[:MAX_STRING] + TRUNCATION_MARK
        if stack is not None:
            stack = self._clean_stack(stack)
        if caps.truncated:
            reserved["truncated"] = "true"
            if caps.total:
                reserved["total_count"] = str(caps.total)
        for key, encoded in reserved.items():
            members.append(f'"{key}":{encoded}')
        if dropped_keys:
            members.append(f'"dropped_keys":{dropped_keys}')
        is_error = severity is _ERROR
        if is_error and stack is None and where is not None:
            members.append(where.report)
        timestamp = self._timestamp()
        code_value = code._value_ if type(code) is Code else _code_value(code)
        # The common case assembled inline (as in _assemble): a call costs ~2% of a line.
        line = (
            f'{{"timestamp":"{timestamp}","time":"{timestamp}","severity":"{severity._value_}"'
            f',"message":{_QUOTE(text)}{self._run_id_json},"error_code":"{code_value}"'
            f',"context":{{{",".join(members)}}}'
            f"{'' if stack is None else _STACK_KEY + _QUOTE(stack)}{self._fixed_json}"
            f"{'' if where is None else where.json}"
            f"{self._shared.error_json if is_error else ''}}}"
        )
        if len(line) > MAX_LINE:
            parts = (timestamp, severity._value_, code_value, where, is_error)
            ids = _ENCODE(self._ids_only(context))
            line = self._assemble(parts, text, ids, stack)
            if len(line) > MAX_LINE:
                short_stack = None if stack is None else _cut_middle(stack, 2_000)
                line = self._assemble(parts, text[:200] + TRUNCATION_MARK, ids, short_stack)
        return line

    def _assemble(
        self,
        parts: tuple[str, str, str, _Where | None, bool],
        text: str,
        context_json: str,
        stack: str | None,
    ) -> str:
        """The JSON line: fixed members are precomputed fragments, the rest is encoded."""
        timestamp, severity, code, where, is_error = parts
        stack_json = "" if stack is None else _STACK_KEY + _QUOTE(stack)
        where_json = "" if where is None else where.json
        error_json = self._shared.error_json if is_error else ""
        return (
            f'{{"timestamp":"{timestamp}","time":"{timestamp}","severity":"{severity}"'
            f',"message":{_QUOTE(text)}{self._run_id_json},"error_code":"{code}"'
            f',"context":{context_json}{stack_json}{self._fixed_json}{where_json}{error_json}}}'
        )

    def _ids_only(self, context: Mapping[str, object]) -> dict[str, object]:
        """The context reduced to short identifying scalars, for a line over MAX_LINE."""
        reduced: dict[str, object] = {}
        for key in _ID_CONTEXT_KEYS:
            value = context.get(key)
            if isinstance(value, str):
                reduced[key] = self._shared.sanitizer.clean(value[:_ID_VALUE_MAX])
            elif isinstance(value, (int, float)):
                reduced[key] = self._clean(value, 1, _Caps())
        reduced["truncated"] = True
        return reduced

    def _clean_text(self, text: str, caps: _Caps) -> str:
        """Sanitise a string and cap it at MAX_STRING characters."""
        text = self._shared.sanitizer.clean(text[:_PRE_CUT])
        if len(text) > MAX_STRING:
            caps.truncated = True
            text = text[:MAX_STRING] + TRUNCATION_MARK
        return text

    def _clean_stack(self, stack: str) -> str:
        """Sanitise a stack trace and cap it at MAX_STACK, keeping its head and tail."""
        if len(stack) > _PRE_CUT_STACK:
            stack = _cut_middle(stack, _PRE_CUT_STACK)
        stack = self._shared.sanitizer.clean(stack)
        return _cut_middle(stack, MAX_STACK) if len(stack) > MAX_STACK else stack

    def _clean(self, value: object, depth: int, caps: _Caps) -> object:  # noqa: C901  # one branch per JSON kind
        """A JSON-safe, sanitised, capped copy of a context value."""
        if value is None or type(value) is bool:
            return value
        if isinstance(value, str):  # str subclasses (StrEnum) included
            return self._clean_text(str.__str__(value), caps)
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
                self._clean_text(str(key), caps): self._clean(item, depth + 1, caps)
                for key, item in islice(value.items(), MAX_ITEMS)
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            if len(value) > MAX_ITEMS:
                caps.cut(len(value))
            return [self._clean(item, depth + 1, caps) for item in islice(value, MAX_ITEMS)]
        if isinstance(value, (bytes, bytearray)):
            return self._clean_text(bytes(value[:_PRE_CUT]).decode("utf-8", "replace"), caps)
        if isinstance(value, BaseException):
            return self._clean_text(_describe(value, self._shared.sanitizer.clean), caps)
        try:
            text = str(value)
        except Exception:  # noqa: BLE001  # a broken __str__ must not break the line
            text = f"<unprintable {type(value).__name__}>"
        return self._clean_text(text, caps)

    def _timestamp(self) -> str:
        """RFC 3339 UTC with microseconds; the seconds part is formatted once a second."""
        seconds, nanos = divmod(_time_ns(), 1_000_000_000)
        shared = self._shared
        cached_second, text = shared.clock
        if cached_second != seconds:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            shared.clock = (seconds, text)
        return f"{text}.{nanos // 1000:06d}Z"

    def _fallback_line(self, severity: Severity, failure: Exception) -> str:
        """A minimal, always-encodable entry for when building the real one failed."""
        parts = (self._timestamp(), severity._value_, Code.UNEXPECTED_EXCEPTION.value, None, False)
        context = _ENCODE({"error_type": type(failure).__name__})
        return self._assemble(parts, "log entry could not be built", context, None)
