"""What may leave the process: a value only in a form that shows it is not personal data, else
``WITHHELD``; secrets scrubbed by value as the last net. Imports nothing else of the runtime.
Why an allow-list: docs/decisions/0029-logging-by-allow-list.md."""

from certexpiry.redact._forms import (
    CONTEXT_FORMS,
    WITHHELD,
    WORDS,
    BodyShape,
    CatalogName,
    allowed,
    body_shape,
    is_error_code,
    is_sqlstate,
)
from certexpiry.redact._secrets import (
    MIN_SECRET_LENGTH,
    SECRET_MARK,
    Secrets,
    credential_parts,
    shared_secrets,
)

__all__ = [
    "CONTEXT_FORMS",
    "MIN_SECRET_LENGTH",
    "SECRET_MARK",
    "WITHHELD",
    "WORDS",
    "BodyShape",
    "CatalogName",
    "Secrets",
    "allowed",
    "body_shape",
    "credential_parts",
    "is_error_code",
    "is_sqlstate",
    "shared_secrets",
]
