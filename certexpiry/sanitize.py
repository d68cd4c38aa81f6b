"""Redaction of secrets and personal data from text before it is logged.

Why: log lines leave the process (Cloud Logging, Error Reporting, whoever reads them) and
must carry no secret and no PII.  Exception texts from psycopg and PostgREST quote row
values, so pattern rules alone are not enough: secret values known at run time (the
service-role key, passwords) are registered and redacted by value first, then the
pattern rules run.

Speed: one regex alternation of all rules, tried at every character, was measured at
~0.5 us per character in CPython's engine, far over the per-line budget.  So each rule
sits behind a cheap gate (a substring test; for digit runs a ``bytes.translate`` map)
and only rules whose gate fires run, each as its own compiled regex, most encompassing
first; rules anchored on a rare character ("@", ":", "=") start from it.  Short texts
are cached and canonical UUIDs skip the rules.

Rules are greedy where a miss would leak (tokens, passwords, connection strings) and
guarded where over-matching would garble the log: UUIDs, hashes, timestamps, dates,
SQLSTATEs, HTTP statuses and small counts are left alone.  A digit run glued to a hex
digit or letter is read as part of an identifier, not as a phone or national id.
"""

from __future__ import annotations

import json
import re
import string
from urllib.parse import quote

MIN_SECRET_LENGTH = 6
"""Registered values shorter than this are ignored: redacting them would garble text."""

SECRET_MARK = "[REDACTED:secret]"  # noqa: S105  # the redaction marker, not a secret
_CACHED_MAX_LENGTH = 200
_CACHE_MAX_ENTRIES = 4_096

_PEM = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)"
)
_CONNECTION = re.compile(
    r"(?i:(?<![a-z0-9+.-])(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?)://)"
    r"[^\s\"'`<>]*"
)
_URL_USERINFO = re.compile(r"(?i:(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://))[^\s/?#@\"'`<>]+@")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_VENDOR_KEY = re.compile(r"(?:sb_secret_|sb_publishable_|sbp_|AIza)[A-Za-z0-9_-]{8,}")
# Postgres DETAIL texts quote whole rows / key values (names, national ids): drop them
# ("(?)" is what the structural filter, certexpiry.log_template, left of one: kept).
_ROW = re.compile(r"(\bFailing row contains |\bKey \([^)\n]*\)=)\((?!\?\))[^\n]*\)")
# A row printed as a Postgres composite literal (a trigger's RAISE ... %, NEW): three or
# more fields, each quoted ("Ola Nordmann") or a bare token, joined by bare commas.  Lists
# written for people ("(a, b, c)", function signatures) have spaces and are left alone.
_ROW_LITERAL = re.compile(
    r"\((?:\"(?:[^\"]|\"\")*\"|[^,()\"\s]*)(?:,(?:\"(?:[^\"]|\"\")*\"|[^,()\"\s]*)){2,}\)"
)
# key=value, key: value, "key": "value", 'key': 'value', \"key\": \"value\", key => value.
# Matched on the lower-cased text reversed, separator first: ":" and "=" are rare literals
# the engine finds with a fast scan, and the key names are tried only there (a keyword
# alternation tried at every character of the text costs several times more).  The key
# must end in one of these names; "key" only alone or after a qualifier (api_key,
# service_role_key...), so that nightly_key or monkey are left alone.
_KEY_BEFORE = (
    r"[ \t]*(?:[\"']\\?)?(?:yek(?:[_-]?(?:ipa|elor[_-]?ecivres|terces|ssecca|etavirp|gningis"
    r"|retsam|noitpyrcne|nona|esabapus|bs)|(?![a-z0-9_-]))|terces|drowssap|dwssap|dwp|nekot"
    r"|noitazirohtua|htua|slaitnederc|laitnederc)"
)
_ASSIGNED_BY_COLON = re.compile(":" + _KEY_BEFORE)
_ASSIGNED_BY_EQUALS = re.compile("=" + _KEY_BEFORE)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ASSIGNED_VALUE = re.compile(
    r"[ \t]*(?:(?i:bearer|basic)[ \t]+)?"
    r"(\"(?:[^\"\\\n]|\\.)*\"|\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\"|'[^'\n]*'"
    r"|[^\s\"'`,;&<>(){}\[\]]+)"
)
_BEARER = re.compile(r"(?i:\b(bearer)[ \t]+)[^\s\"'`,;<>\[]+")
# Emails are found domain-first ("@" is rare), then the local part is read backwards.
_EMAIL_DOMAIN = re.compile(r"@(?:[\w-]+\.)+[\w-]{2,}")
_EMAIL_LOCAL_REVERSED = re.compile(r"[.'\w!#$%&*+/=?^`{|}~-]*")  # always matches
_EMAIL_URL_ENCODED = re.compile(r"[\w.%+/-]+%40(?:[\w-]+\.)+[\w-]{2,}")
_EMAIL_LOCAL_MAX = 64
_PHONE_INTL = re.compile(r"\+[1-9](?:[ .()-]{0,2}[0-9]){6,14}(?![0-9])")
# A canonical UUID can hold no digit run the rules below would take (each run touches a
# hex letter, a dash-framed UUID group or is 12 long), so it is passed through at once.
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_HEX_ONLY = re.compile(r"[0-9A-Fa-f-]*")
# Digit-run gate: digits and spaces mapped to "0" in the UTF-8 bytes (bytes.translate is
# far cheaper than a regex scan), then substring tests that every shape the rule below
# matches passes: eight "digits" in a row (12345678, 123 45 678, 9123 4567, 010190 12345),
# the dashed identity number 010190-12345 or the dashed phone 912-34-567.
_ZERO_DIGITS = bytes.maketrans(b"123456789 ", b"0000000000")
# Candidates: Norwegian national identity numbers and D-numbers (11 digits, also "DDMMYY
# NNNNN" and "DDMMYY-NNNNN") and Norwegian phone numbers (8 digits starting 2-9, grouped
# 8, 3-2-3, 2-2-2-2, 4-4 or 3-2-3 with dashes); whether a candidate is one is decided by
# _digit_mark from what surrounds it.
_DIGIT_PII = re.compile(
    r"(?<![0-9])(?:(?P<national_id>[0-9]{6}[ -]?[0-9]{5})"
    r"|[2-9](?:[0-9]{7}|[0-9]{2} [0-9]{2} [0-9]{3}|[0-9](?: [0-9]{2}){3}"
    r"|[0-9]{2}-[0-9]{2}-[0-9]{3}|[0-9]{3} [0-9]{4}))(?![0-9])"
)
_TOKEN_CHAR = re.compile(r"[0-9A-Za-z]*")
_HEX_TOKEN = re.compile(r"[0-9A-Fa-f]+")
_DATE8 = re.compile(
    r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])(?:19|20)[0-9]{2}"
)
_IDENTIFIER_MIN = 16  # a hex token this long is a hash or an id, not a glued number


def _assignment_starts(text: str) -> list[int]:
    """Where the value of each secret-bearing assignment starts, in text order."""
    lower = text.lower()
    if len(lower) != len(text):  # a few non-ASCII letters lower-case to two characters
        lower = text.translate(_ASCII_LOWER)
    backwards = lower[::-1]
    last = len(text) - 1
    separators = []
    if ":" in text:
        separators += [last - found.start() for found in _ASSIGNED_BY_COLON.finditer(backwards)]
    if "=" in text:
        separators += [last - found.start() for found in _ASSIGNED_BY_EQUALS.finditer(backwards)]
    separators.sort()
    return [at + 2 if text.startswith("=>", at) else at + 1 for at in separators]


def _redact_assignments(text: str) -> str:
    """Replace the value of every ``secret_key <sep> value`` with a marker, keeping quotes."""
    parts: list[str] = []
    done = 0
    for start in _assignment_starts(text):
        if start <= done:  # inside a value already redacted
            continue
        value = _ASSIGNED_VALUE.match(text, start)
        if value is None:
            continue
        raw = value.group(1)
        quote_char = '\\"' if raw.startswith('\\"') else raw[0] if raw[0] in "\"'" else ""
        parts += (text[done : value.start(1)], quote_char, "[REDACTED:credential]", quote_char)
        done = value.end()
    return "".join(parts) + text[done:] if parts else text


def _redact_emails(text: str) -> str:
    """Replace every email address with a marker."""
    parts: list[str] = []
    done = 0
    at = text.find("@")
    while at >= 0:
        domain = _EMAIL_DOMAIN.match(text, at)
        if domain is not None:
            # The local part is the run of address characters just before "@" (read
            # backwards), minus leading dots and quotes: those belong to the sentence.
            before = text[max(done, at - _EMAIL_LOCAL_MAX) : at]
            opening = before.rfind('"', 0, len(before) - 1)
            if before.endswith('"') and opening >= 0:  # a quoted local part: "kari nordmann"@
                local = before[opening:]
            else:
                found = _EMAIL_LOCAL_REVERSED.match(before[::-1])
                local = (found.group() if found else "").rstrip(".'/")  # reversed: leading end
            if local:
                parts += (text[done : at - len(local)], "[REDACTED:email]")
                done = domain.end()
        at = text.find("@", max(done, at + 1))
    return "".join(parts) + text[done:] if parts else text


def _in_identifier(text: str, start: int, end: int) -> bool:
    """True when text[start:end] is part of a UUID or of a long hex token (a hash)."""
    left = start - len(_TOKEN_CHAR.match(text[max(0, start - 64) : start][::-1]).group())  # type: ignore[union-attr]  # the pattern always matches
    right = _TOKEN_CHAR.match(text, end).end()  # type: ignore[union-attr]  # always matches
    token = text[left:right]
    if not _HEX_TOKEN.fullmatch(token):
        return False
    if len(token) >= _IDENTIFIER_MIN:
        return True
    # finditer's positions are in `text`, whatever the start position of the search.
    return any(
        found.start() <= left and found.end() >= right
        for found in _UUID.finditer(text, max(0, left - 28), right + 28)
    )


def _digit_mark(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    found = match.group()
    if _in_identifier(text, start, end) or text[start - 2 : start] in ("0x", "0X"):
        return found  # an id, a hash, a hex literal
    if text[start - 1 : start] == "." and text[start - 2 : start - 1].isdigit():
        return found  # the fraction of a decimal (0.12345678, 3.14159265358)
    if match.group("national_id"):  # glued to letters, or a decimal's whole part: still an id
        return "[REDACTED:national_id]"
    if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():
        return found  # the whole part of a decimal (12345678.5)
    if _DATE8.fullmatch(found) or (found[4:5] == " " and _DATE8.fullmatch(found[:4] + found[5:])):
        return found  # a compact date (20261130, 30112026)
    return "[REDACTED:phone]"


def _redact_digit_runs(text: str) -> str:
    """National identity numbers and Norwegian phone numbers, if a digit run is there."""
    shape = text.encode("utf-8", "surrogatepass").translate(_ZERO_DIGITS)
    if b"00000000" in shape or b"000000-00000" in shape or b"000-00-000" in shape:
        return _DIGIT_PII.sub(_digit_mark, text)
    return text


class Sanitizer:
    """Redacts registered secret values, then secret and PII patterns, from text.

    One instance is created per process and injected into the logger, so that the
    configuration code can register the secrets it loads (by value) on the same object.
    """

    def __init__(self) -> None:
        self._secrets: list[str] = []
        self._cache: dict[str, str] = {}

    def register_secret(self, value: str) -> None:
        """Redact ``value`` (and its JSON- and URL-escaped forms) wherever it appears.

        Surrounding whitespace is ignored (secret files often end in a newline); values
        shorter than MIN_SECRET_LENGTH are ignored, since redacting them would garble text.
        """
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return
        forms = {
            value,
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            quote(value, safe=""),
        }
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(set(self._secrets) | forms, key=len, reverse=True)
        self._cache = {}

    def clean(self, text: str) -> str:
        """Return ``text`` with every registered secret and every pattern redacted.

        Short texts repeat (messages, operation names, run ids), so their results are
        cached; the cache is dropped whenever a secret is registered.
        """
        if len(text) == 36 and _UUID.fullmatch(text):  # ids, the commonest value
            # Only a registered secret can hide in a UUID: no digit run the PII rules take
            # can be left in one (each touches a hex letter or a dash-framed group).
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, SECRET_MARK)
            return text
        if len(text) > _CACHED_MAX_LENGTH:
            return self._clean(text)
        cached = self._cache.get(text)
        if cached is None:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache = {}
            cached = self._cache[text] = self._clean(text)
        return cached

    def _clean(self, text: str) -> str:  # noqa: C901  # one pass per redaction rule, in order
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, SECRET_MARK)
        if _HEX_ONLY.fullmatch(text):  # ids, hashes: only a digit run can be personal data
            return _redact_digit_runs(text)
        if "PRIVATE KEY" in text:
            text = _PEM.sub("[REDACTED:private_key]", text)
        if "://" in text:
            text = _CONNECTION.sub("[REDACTED:connection_string]", text)
            text = _URL_USERINFO.sub(r"\1[REDACTED:credentials]@", text)
        if "eyJ" in text:
            text = _JWT.sub("[REDACTED:jwt]", text)
        if ("sb" in text and ("sb_" in text or "sbp_" in text)) or "AIza" in text:
            text = _VENDOR_KEY.sub("[REDACTED:api_key]", text)
        if "(" in text:
            if "row contains" in text or "Key (" in text:
                text = _ROW.sub(r"\1([REDACTED:row])", text)
            if "," in text:
                text = _ROW_LITERAL.sub("([REDACTED:row])", text)
        if ":" in text or "=" in text:
            text = _redact_assignments(text)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(r"\1 [REDACTED:bearer]", text)
        if "@" in text:
            text = _redact_emails(text)
        if "%40" in text:
            text = _EMAIL_URL_ENCODED.sub("[REDACTED:email]", text)
        if "+" in text:
            text = _PHONE_INTL.sub("[REDACTED:phone]", text)
        return _redact_digit_runs(text)


_SHARED = Sanitizer()


def shared_sanitizer() -> Sanitizer:
    """The process's one sanitiser: the function's logger and the CLI's error paths use it, so a
    secret registered once (``certexpiry.settings.load_settings`` does) is redacted everywhere."""
    return _SHARED
