"""The secret registry: credentials removed from every line by value, as the last net behind the
allow-list (a credential could still be inside the project's own text, by mistake)."""

import json
import re
from urllib.parse import quote, unquote, urlsplit

MIN_SECRET_LENGTH = 6
"""Registered values shorter than this are ignored: replacing them would garble lines."""

SECRET_MARK = "[REDACTED:secret]"  # noqa: S105  # the redaction marker, not a secret


class Secrets:
    """Registered secret values, replaced by SECRET_MARK wherever they appear."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def register(self, value: str) -> None:
        """A credential, whole and by part (``credential_parts``), also JSON- and URL-escaped."""
        forms = set(self._values)
        for part in credential_parts(value):
            if len(part) >= MIN_SECRET_LENGTH:
                escaped = json.dumps(part)[1:-1]  # and that in a JSON string, as a line has it
                unescaped = json.dumps(part, ensure_ascii=False)[1:-1]
                forms |= {part, escaped, json.dumps(escaped)[1:-1], unescaped, quote(part, safe="")}
        self._values = sorted(forms, key=len, reverse=True)  # one holding another: whole

    def scrub(self, text: str) -> str:
        """``text`` with every registered value replaced."""
        for value in self._values:
            text = text.replace(value, SECRET_MARK)
        return text


_SHARED = Secrets()


def shared_secrets() -> Secrets:
    """The process's registry, for the edges (main.py, the CLI) to register on and pass down."""
    return _SHARED


def credential_parts(value: str) -> list[str]:
    """The whole credential and each part that could be printed alone: a URL's (``_url_parts``);
    a JWT's payload and signature; a Supabase key's part after its prefix; any other value's
    password settings and bare words."""
    value = value.strip()
    parts = [value]
    if "://" in value:
        parts += _url_parts(value)
    elif value.count(".") == 2 and value.startswith("eyJ"):
        parts += value.split(".")[1:]
    elif value.startswith(("sb_secret_", "sb_publishable_", "sbp_")):
        parts.append(value.split("_", 2 if value.startswith("sb_") else 1)[-1])
    else:
        parts += re.findall(r"(?i)\bpass(?:word|wd)?\s*=\s*'((?:[^'\\]|\\.)*)'", value)
        for word in re.split(r"\s+", value):
            key, equals, setting = word.partition("=")
            if not equals:
                parts.append(word)
            elif key.lower() in ("password", "pass", "pwd", "passwd"):
                parts.append(setting.strip("'\""))
    return [part for part in dict.fromkeys(parts) if part]


def _url_parts(value: str) -> list[str]:
    """A URL's user info and password (raw and decoded), read as urllib does (last ``@``, up to
    ``?`` or ``#``) and as libpq does (first ``@``, up to the path: an unencoded ``@``, ``?`` or
    ``#`` in a password makes the rest what libpq names the host)."""
    scheme_end = value.find("://") + 3
    authority = re.split(r"[/?#]", value[scheme_end:], maxsplit=1)[0]
    raw = value[scheme_end:].split("/", 1)[0].rpartition("@")[0]
    parts = [raw, raw.partition(":")[2]] if raw else []
    if "@" not in authority:
        return parts
    userinfo = authority.rpartition("@")[0]
    parts += [userinfo, unquote(userinfo)]
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password:
        parts += [password, unquote(password)]
    first_user, _, libpq_host = authority.partition("@")
    parts.append(first_user)
    if "@" in libpq_host:
        parts += [libpq_host, libpq_host.rsplit(":", 1)[0]]
        parts += userinfo.replace(":", "@").split("@")
    return parts
