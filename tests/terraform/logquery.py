"""A small evaluator for the part of the Cloud Logging query language terraform/ uses, and the
log entries Cloud Run makes of the function's output, so a test can say which lines a
log-based metric counts and what its extractors read.

Supported, as the Logging query language documents them: comparisons `path OP value` with
OP in = != > >= < <= and `:` (has; `:*` is "the field exists"), `log_id("...")`, NOT, AND
(also implicit, by juxtaposition), OR, parentheses; NOT binds tighter than OR, and OR tighter
than AND. Extractors: `EXTRACT(path)`. Anything else raises UnsupportedQuery, so a filter that
starts to use more of the language fails the test loudly instead of being misread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

SEVERITIES: tuple[str, ...] = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)

# stdout/stderr JSON fields Cloud Run lifts out of jsonPayload into the LogEntry
# ("Special JSON fields in messages" of Cloud Logging's structured logging).
_LIFTED = {
    "severity": "severity",
    "httpRequest": "httpRequest",
    "logging.googleapis.com/labels": "labels",
    "logging.googleapis.com/trace": "trace",
    "logging.googleapis.com/spanId": "spanId",
    "logging.googleapis.com/trace_sampled": "traceSampled",
    "logging.googleapis.com/sourceLocation": "sourceLocation",
    "logging.googleapis.com/insertId": "insertId",
    "logging.googleapis.com/operation": "operation",
    "time": "timestamp",
    "timestamp": "timestamp",
}

Entry = dict[str, Any]
Predicate = Callable[[Entry], bool]


class UnsupportedQuery(ValueError):
    """The filter or extractor uses syntax this evaluator does not implement."""


def cloud_run_resource(service: str) -> dict[str, Any]:
    """The monitored resource of a Cloud Run revision of `service`."""
    return {"type": "cloud_run_revision", "labels": {"service_name": service}}


def entry_from_line(line: str, *, stream: str, service: str, project: str = "local-demo") -> Entry:
    """The LogEntry Cloud Run writes for one line of the container's stdout or stderr."""
    entry: Entry = {
        "logName": f"projects/{project}/logs/{quote(f'run.googleapis.com/{stream}', safe='')}",
        "resource": cloud_run_resource(service),
    }
    try:
        payload = json.loads(line)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        entry["textPayload"] = line
        entry["severity"] = "DEFAULT"
        return entry
    body = dict(payload)
    for field, target in _LIFTED.items():
        if field in body:
            entry[target] = body.pop(field)
    entry.setdefault("severity", "DEFAULT")
    entry["jsonPayload"] = body
    return entry


# What Cloud Run writes in textPayload of a request entry it answered itself (the function
# never saw the request, or its instance failed), as seen in request logs and its
# troubleshooting guide. Only the presence of a payload matters to the metrics, not its words.
NO_AVAILABLE_INSTANCE = (
    "The request was aborted because there was no available instance. Additional "
    "troubleshooting documentation can be found at: "
    "https://cloud.google.com/run/docs/troubleshooting#abort-request"
)
INSTANCE_FAILED_TO_START = (
    "The request failed because either the HTTP response was malformed or connection to the "
    "instance had an error. Additional troubleshooting documentation can be found at: "
    "https://cloud.google.com/run/docs/troubleshooting#malformed-response-or-connection-error"
)


def request_entry(
    status: int, *, service: str, project: str = "local-demo", platform: str | None = None
) -> Entry:
    """The platform's request log entry for one HTTP request of the service.

    `platform` is None for an answer of the function itself: no payload, ERROR for 5xx,
    WARNING for 4xx, INFO otherwise. Otherwise Cloud Run answered (a 429 "no available
    instance" when every instance is busy, a 503 when the instance failed to start or its
    connection broke, a 504 timeout): its explanation is the entry's textPayload and the entry
    is an ERROR whatever the status, 429 included, which is what trips an errors metric that
    reads severity only."""
    if platform is not None:
        severity = "ERROR"
    else:
        severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    entry: Entry = {
        "logName": f"projects/{project}/logs/{quote('run.googleapis.com/requests', safe='')}",
        "resource": cloud_run_resource(service),
        "severity": severity,
        "httpRequest": {"requestMethod": "POST", "status": status},
    }
    if platform is not None:
        entry["textPayload"] = platform
    return entry


def field(entry: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of an entry, or None when any part is missing."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<string>"(?:[^"\\]|\\.)*") |
        (?P<op>>=|<=|!=|=~|!~|=|>|<|:) |
        (?P<word>[A-Za-z0-9_.@/*+-]+)
    )""",
    re.X,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise UnsupportedQuery(f"cannot read {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


@dataclass
class _Parser:
    tokens: list[tuple[str, str]]
    pos: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise UnsupportedQuery("unexpected end of filter")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.conjunction()
        if self.peek() is not None:
            raise UnsupportedQuery(f"unexpected {self.peek()!r}")
        return predicate

    def conjunction(self) -> Predicate:
        parts = [self.disjunction()]
        while (token := self.peek()) is not None and token[0] != "rparen":
            if token == ("word", "AND"):
                self.take()
            parts.append(self.disjunction())
        return lambda entry: all(part(entry) for part in parts)

    def disjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.negation())
        return lambda entry: any(part(entry) for part in parts)

    def negation(self) -> Predicate:
        if self.peek() == ("word", "NOT"):
            self.take()
            inner = self.negation()
            return lambda entry: not inner(entry)
        return self.primary()

    def primary(self) -> Predicate:
        kind, text = self.take()
        if kind == "lparen":
            inner = self.conjunction()
            if self.take()[0] != "rparen":
                raise UnsupportedQuery("unbalanced parentheses")
            return inner
        if kind != "word":
            raise UnsupportedQuery(f"unexpected {text!r}")
        if text == "log_id" and self.peek() == ("lparen", "("):
            self.take()
            kind, argument = self.take()
            if kind != "string" or self.take()[0] != "rparen":
                raise UnsupportedQuery("log_id takes one string")
            suffix = "/logs/" + quote(_unquote(argument), safe="")
            return lambda entry: str(entry.get("logName", "")).endswith(suffix)
        op_kind, op = self.take()
        if op_kind != "op" or op in ("=~", "!~"):
            raise UnsupportedQuery(f"unsupported operator after {text!r}: {op!r}")
        value_kind, value = self.take()
        if value_kind not in ("string", "word"):
            raise UnsupportedQuery(f"unsupported value {value!r}")
        return _comparison(text, op, _unquote(value) if value_kind == "string" else value)


def _unquote(text: str) -> str:
    return str(json.loads(text))


def _comparison(path: str, op: str, value: str) -> Predicate:
    if op == ":" and value == "*":
        return lambda entry: field(entry, path) is not None

    def compare(entry: Entry) -> bool:
        actual = field(entry, path)
        if actual is None or isinstance(actual, Mapping | list):
            return False
        if op == ":":
            return value.lower() in str(actual).lower()
        left: Any
        right: Any
        if path == "severity":
            left, right = SEVERITIES.index(str(actual)), SEVERITIES.index(value)
        elif _is_number(actual) and _is_number(value):
            left, right = float(actual), float(value)
        else:
            left, right = str(actual), value
        outcome: bool = {
            "=": left == right,
            "!=": left != right,
            ">": left > right,
            ">=": left >= right,
            "<": left < right,
            "<=": left <= right,
        }[op]
        return outcome

    return compare


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def compile_filter(text: str) -> Predicate:
    """A predicate over LogEntry dicts that is true where the filter matches."""
    return _Parser(_tokens(text)).parse()


_EXTRACT = re.compile(r"^EXTRACT\(([A-Za-z0-9_.]+)\)$")


def extract(extractor: str, entry: Entry) -> str | None:
    """What `EXTRACT(path)` gives for an entry: the field's value as text, or None (missing,
    or not a single value)."""
    match = _EXTRACT.match(extractor.strip())
    if match is None:
        raise UnsupportedQuery(f"unsupported extractor {extractor!r}")
    value = field(entry, match.group(1))
    if value is None or isinstance(value, Mapping | list):
        return None
    return json.dumps(value) if isinstance(value, bool) else str(value)
