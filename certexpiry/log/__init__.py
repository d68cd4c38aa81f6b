"""One JSON object per line, shaped for Cloud Logging and Error Reporting, with nothing personal.

Why our own lines: Cloud Functions turns each stdout line that is a JSON object into a
structured entry, and Error Reporting picks up ERROR entries typed as ``ReportedErrorEvent``;
google-cloud-logging's ``StructuredLogHandler`` drops our ``timestamp``/``time`` keys and writes
a diagnostic line first.

Built as structlog is meant to be used: a chain of small processors ending in a renderer
(``_chain``), ``ProcessorFormatter`` for library records and ``contextvars`` for the run a
record belongs to (``_capture``). What a line may carry is decided by ``certexpiry.redact``'s
allow-list; the message is the project's own words; an exception adds its frames, never its
text. Logging never raises and never blocks for long (``_writer``). ``install_process_logging``
routes everything else the process writes, down to the bytes on fds 1 and 2 (``_fd``), into
the same lines.

    JsonLogger ──► structlog chain (_chain) ──► Output (_writer) ──► real stdout
    library records ─► ProcessorFormatter ─┘            ▲
    hooks, warnings ───────────────────────┘            │
    fds 1 and 2 ─► FdCapture (_fd) ─► one entry per line┘
"""

from certexpiry.codes import Severity
from certexpiry.log._capture import (
    LIBRARY_LOGGERS,
    bind_run,
    install_process_logging,
    uninstall_process_logging,
)
from certexpiry.log._chain import (
    ALLOWED_CONTEXT_KEYS,
    ERROR_EVENT_TYPE,
    MAX_ITEMS,
    MAX_STRING,
    TRUNCATION_MARK,
)
from certexpiry.log._logger import JsonLogger, new_invocation_id
from certexpiry.log._stack import MAX_STACK
from certexpiry.log._trace import TraceContext, trace_from_headers
from certexpiry.log._writer import WRITE_BUDGET_S

__all__ = [
    "ALLOWED_CONTEXT_KEYS",
    "ERROR_EVENT_TYPE",
    "LIBRARY_LOGGERS",
    "MAX_ITEMS",
    "MAX_STACK",
    "MAX_STRING",
    "TRUNCATION_MARK",
    "WRITE_BUDGET_S",
    "JsonLogger",
    "Severity",
    "TraceContext",
    "bind_run",
    "install_process_logging",
    "new_invocation_id",
    "trace_from_headers",
    "uninstall_process_logging",
]
