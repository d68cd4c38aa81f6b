"""Each part of a credential that could be printed alone, for redaction by value.

Why: registering only a whole DATABASE_URL left its password alone (an exception quoting it),
the tail of a password holding an unencoded "@" (libpq reads it as the host) and a non-URL
value (libpq quotes its words) to be logged as they are. ``certexpiry.settings.load_settings``
registers every part this module finds on the shared sanitiser.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["secret_parts"]


def secret_parts(value: str) -> list[str]:
    """The whole credential and each part of it that could be printed alone.

    A connection URL: its user info, its password (raw and decoded) and, when the password
    holds an unencoded ``@``, what libpq reads as the host (``tail@host``) and each piece
    around the ``@``.  A key=value connection string or any other non-URL value: each
    password value and each bare word.  A JWT: its payload and signature.  A Supabase key:
    its part after the prefix.  Parts shorter than ``sanitize.MIN_SECRET_LENGTH`` are left
    to ``Sanitizer.register_secret`` to ignore.
    """
    value = value.strip()
    parts = [value]
    if "://" in value:
        parts += _url_parts(value)
    elif value.count(".") == 2 and value.startswith("eyJ"):
        parts += value.split(".")[1:]
    elif value.startswith(("sb_secret_", "sb_publishable_", "sbp_")):
        parts.append(value.split("_", 2 if value.startswith("sb_") else 1)[-1])
    else:
        for word in re.split(r"\s+", value):
            key, equals, setting = word.partition("=")
            if not equals:
                parts.append(word)
            elif key.lower() in ("password", "pass", "pwd", "passwd"):
                parts.append(setting.strip("'\""))
    return [part for part in dict.fromkeys(parts) if part]


def _url_parts(value: str) -> list[str]:
    """Secret parts of a URL, read as urllib does (last ``@``) and as libpq does (first)."""
    scheme_end = value.find("://") + 3
    authority = re.split(r"[/?#]", value[scheme_end:], maxsplit=1)[0]
    if "@" not in authority:
        return []
    userinfo = authority.rpartition("@")[0]
    parts = [userinfo, unquote(userinfo)]
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password:
        parts += [password, unquote(password)]
    first_user, _, libpq_host = authority.partition("@")
    parts.append(first_user)
    if "@" in libpq_host:  # an unencoded "@" in the password: libpq names the rest the host
        parts += [libpq_host, libpq_host.rsplit(":", 1)[0]]
        parts += userinfo.replace(":", "@").split("@")
    return parts
