"""Error-code catalogue: every log line carries one of these codes.

Why a catalogue: the on-call runbook, the log-entry JSON Schema and the CLI that reads
entries back all key on ``error_code``.  Keeping the code, its default severity, what it
means and what to do about it in one table means the runbook (``runbook_markdown()``) is
generated from the same source the code uses and cannot drift from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple


class Severity(StrEnum):
    """Cloud Logging severity names we emit (``WARNING``, not the spec's ``WARN``)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Code(StrEnum):
    """Stable identifiers for everything the job reports; values equal names."""

    RUN_STARTED = "RUN_STARTED"
    RUN_RESUMED = "RUN_RESUMED"
    SEGMENT_STARTED = "SEGMENT_STARTED"
    BATCH_DONE = "BATCH_DONE"
    RECORD_FAILED = "RECORD_FAILED"
    CONTINUATION_PUBLISHED = "CONTINUATION_PUBLISHED"
    CONTINUATION_PUBLISH_FAILED = "CONTINUATION_PUBLISH_FAILED"
    DUPLICATE_DELIVERY = "DUPLICATE_DELIVERY"
    RUN_FENCED = "RUN_FENCED"
    RUN_BUSY = "RUN_BUSY"
    RUN_ABANDONED = "RUN_ABANDONED"
    MONITORING_CLEAN = "MONITORING_CLEAN"
    MISSED_AUTO_PAUSE = "MISSED_AUTO_PAUSE"
    MONITORING_FAILED = "MONITORING_FAILED"
    AUDIT_WRITTEN = "AUDIT_WRITTEN"
    AUDIT_FAILED = "AUDIT_FAILED"
    RUN_COMPLETED = "RUN_COMPLETED"
    SUPABASE_RPC_FAILED = "SUPABASE_RPC_FAILED"
    SUPABASE_TIMEOUT = "SUPABASE_TIMEOUT"
    DB_OPERATION_FAILED = "DB_OPERATION_FAILED"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_SETTINGS = "INVALID_SETTINGS"
    UNEXPECTED_EXCEPTION = "UNEXPECTED_EXCEPTION"
    LOG_LINES_DROPPED = "LOG_LINES_DROPPED"
    LIBRARY_LOG = "LIBRARY_LOG"
    REMEDIATION_DONE = "REMEDIATION_DONE"


class CodeInfo(NamedTuple):
    """Runbook row: default severity, what the entry means, what the operator does."""

    severity: Severity
    meaning: str
    action: str


_I, _W, _E = Severity.INFO, Severity.WARNING, Severity.ERROR

CATALOGUE: Mapping[Code, CodeInfo] = MappingProxyType(
    {
        Code.RUN_STARTED: CodeInfo(
            _I,
            "A nightly sweep claimed a new cron_run_id and started.",
            "None. If absent after the schedule time, check Cloud Scheduler and the trigger.",
        ),
        Code.RUN_RESUMED: CodeInfo(
            _I,
            "A continuation message resumed an existing run from its stored cursor.",
            "None. Many resumes for one run mean segments hit their time budget early.",
        ),
        Code.SEGMENT_STARTED: CodeInfo(
            _I,
            "A time-boxed segment of the run began (segment, cursor, budget_s).",
            "None.",
        ),
        Code.BATCH_DONE: CodeInfo(
            _I,
            "A batch of certifications was processed (counts in context).",
            "None.",
        ),
        Code.RECORD_FAILED: CodeInfo(
            _W,
            "One certification could not be processed; the run carried on without it.",
            "Look up certification_id; it is retried by the next run. Escalate if it repeats.",
        ),
        Code.CONTINUATION_PUBLISHED: CodeInfo(
            _I,
            "The segment ran out of budget and published a message to continue the run.",
            "None.",
        ),
        Code.CONTINUATION_PUBLISH_FAILED: CodeInfo(
            _E,
            "Publishing the continuation message failed; the run is stuck at its cursor.",
            "Check Pub/Sub topic IAM and quota; the delivery is retried, or resume the run "
            "with the CLI.",
        ),
        Code.DUPLICATE_DELIVERY: CodeInfo(
            _I,
            "Pub/Sub delivered a message already handled (same message_id/nightly_key).",
            "None: at-least-once delivery; the duplicate was acknowledged and skipped.",
        ),
        Code.RUN_FENCED: CodeInfo(
            _W,
            "Another invocation owns this run (newer fence); this one stopped without writing.",
            "None if isolated. Frequent fencing means overlapping triggers: check the schedule.",
        ),
        Code.RUN_BUSY: CodeInfo(
            _I,
            "A live invocation holds the run's lease; this delivery answers 503 so Pub/Sub "
            "redelivers it later (a duplicate, or a message that arrived before its lease lapsed).",
            "None if it settles into DUPLICATE_DELIVERY or SEGMENT_STARTED. Repeating for more "
            "than the lease (LEASE_S) plus an hour: check cron_runs for a stuck row.",
        ),
        Code.RUN_ABANDONED: CodeInfo(
            _W,
            "An earlier night's run never finished; tonight's run supersedes it and sweeps "
            "everything it would have done.",
            "Read that run's logs (python -m certexpiry logs RUN_ID) to see why it stopped.",
        ),
        Code.MONITORING_CLEAN: CodeInfo(
            _I,
            "Post-run check: no expired certification is left with an active mentor.",
            "None.",
        ),
        Code.MISSED_AUTO_PAUSE: CodeInfo(
            _E,
            "Post-run check found expired certifications whose mentor was not paused.",
            "Run the remediation CLI for missed_ids; investigate why the sweep skipped them.",
        ),
        Code.MONITORING_FAILED: CodeInfo(
            _E,
            "The post-run monitoring query itself failed; the run's result is unverified.",
            "Re-run the monitoring check from the CLI; see the sqlstate/http_status in context.",
        ),
        Code.AUDIT_WRITTEN: CodeInfo(
            _I,
            "The run's audit row was written.",
            "None.",
        ),
        Code.AUDIT_FAILED: CodeInfo(
            _E,
            "The audit row could not be written; the run's work is done but not recorded.",
            "Write the audit row with the CLI from this run's RUN_COMPLETED figures.",
        ),
        Code.RUN_COMPLETED: CodeInfo(
            _I,
            "The run finished; the context holds its summary counts.",
            "None. Compare counts with previous nights for anomalies.",
        ),
        Code.SUPABASE_RPC_FAILED: CodeInfo(
            _E,
            "A Supabase PostgREST call returned an error (http_status, postgrest_code, hint).",
            "Check the function/RPC named in operation and Supabase status; details are sanitised.",
        ),
        Code.SUPABASE_TIMEOUT: CodeInfo(
            _W,
            "A Supabase call timed out; it is retried with back-off.",
            "None if followed by success. Repeated: check Supabase status and query plans.",
        ),
        Code.DB_OPERATION_FAILED: CodeInfo(
            _E,
            "A direct Postgres operation failed (sqlstate in context).",
            "Look up the SQLSTATE; constraint errors point at data, 08xxx at connectivity.",
        ),
        Code.INVALID_MESSAGE: CodeInfo(
            _E,
            "A Pub/Sub message could not be parsed; it was acknowledged and discarded.",
            "Find the publisher that sent it (message_id); nothing to replay.",
        ),
        Code.INVALID_SETTINGS: CodeInfo(
            _E,
            "Configuration is missing or invalid (setting names the variable); nothing ran.",
            "Fix the environment variable or secret named in setting and redeploy.",
        ),
        Code.UNEXPECTED_EXCEPTION: CodeInfo(
            _E,
            "An exception escaped the handler, a thread or a library (stack_trace attached).",
            "Open the Error Reporting group; fix the bug. The delivery may be retried.",
        ),
        Code.LOG_LINES_DROPPED: CodeInfo(
            _W,
            "Log lines were dropped because stdout failed or stalled (lines_dropped).",
            "Expect gaps in this run's log; check instance health if it recurs.",
        ),
        Code.LIBRARY_LOG: CodeInfo(
            _I,
            "A line from a library logger or from raw stdout/stderr (logger names it).",
            "Depends on the severity; WARNING/ERROR ones are worth a look.",
        ),
        Code.REMEDIATION_DONE: CodeInfo(
            _I,
            "A remediation (pause or reminder repair) was applied (remediation in context).",
            "None; verify with the monitoring check.",
        ),
    }
)


def _cell(text: str) -> str:
    """Escape a value for a Markdown table cell (pipes would split the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


def runbook_markdown() -> str:
    """Render the catalogue as the Markdown runbook table used in the docs."""
    rows = ["| Code | Severity | Meaning | Action |", "|---|---|---|---|"]
    for code in Code:
        info = CATALOGUE[code]
        rows.append(
            f"| `{code.value}` | {info.severity.value} | {_cell(info.meaning)} "
            f"| {_cell(info.action)} |"
        )
    return "\n".join(rows) + "\n"
