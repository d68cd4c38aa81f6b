"""One JSON object per line, for Cloud Logging and Error Reporting, with nothing personal (what
a line may carry is ``certexpiry.redact``'s allow-list). Never raises, never blocks for long.
The design, and why not google-cloud-logging's handler: docs/logging.md."""

from certexpiry.log._capture import bind_run, install_process_logging, uninstall_process_logging
from certexpiry.log._logger import JsonLogger, new_invocation_id
from certexpiry.log._trace import TraceContext, trace_from_headers

__all__ = [
    "JsonLogger",
    "TraceContext",
    "bind_run",
    "install_process_logging",
    "new_invocation_id",
    "trace_from_headers",
    "uninstall_process_logging",
]
