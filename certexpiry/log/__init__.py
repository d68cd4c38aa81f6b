"""One JSON object per line, for Cloud Logging and Error Reporting, with nothing personal (what
a line may carry is ``certexpiry.redact``'s allow-list). Never raises, never blocks for long.
The design, and why not google-cloud-logging's handler: docs/logging.md."""

from certexpiry.codes import Severity
from certexpiry.log._capture import (
    LIBRARY_LOGGERS,
    bind_run,
    install_process_logging,
    uninstall_process_logging,
)
from certexpiry.log._chain import (
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
