"""What may leave the process: values by the form that shows they are not personal data.

The rule is an allow-list. A value reaches a log line only if its form shows it cannot be
personal data: a UUID, a SQLSTATE, a code or word the project itself defines, a number, a date,
a name the database's catalog was asked about and has. Free text from outside the project's own
code (database messages, PostgREST bodies, library exception messages, anything printed) is
never logged as text; a name cannot be caught by a pattern, in any case or script, so nothing
here tries. What a value cannot show is withheld whole (``WITHHELD``).

Secrets are the one thing removed by value: the credentials the process is given are
registered (each part that could be printed alone) and scrubbed from every line, as the last
net behind the allow-list.

This package imports nothing else of the runtime: the log, the errors and the store get what
they need from it, passed in.
"""

from certexpiry.redact._forms import (
    CONTEXT_FORMS,
    WITHHELD,
    CatalogName,
    allowed,
    is_sqlstate,
    is_uuid,
)
from certexpiry.redact._http import BodyShape, body_shape
from certexpiry.redact._secrets import (
    MIN_SECRET_LENGTH,
    SECRET_MARK,
    Secrets,
    credential_parts,
    shared_secrets,
)
from certexpiry.redact._words import WORDS, Words

__all__ = [
    "CONTEXT_FORMS",
    "MIN_SECRET_LENGTH",
    "SECRET_MARK",
    "WITHHELD",
    "WORDS",
    "BodyShape",
    "CatalogName",
    "Secrets",
    "Words",
    "allowed",
    "body_shape",
    "credential_parts",
    "is_sqlstate",
    "is_uuid",
    "shared_secrets",
]
