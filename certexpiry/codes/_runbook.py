"""The catalogue: each code's default severity, what the entry means and what the operator
does; the on-call runbook table (``runbook_markdown``) is rendered from it, so the docs cannot
drift from the code."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from certexpiry.codes._names import Code, Severity


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
            "A nightly trigger took over tonight's unfinished run after its lease lapsed (the "
            "invocation holding it died); it resumes from the stored checkpoint with a new "
            "segment.",
            "None if rare. Read the previous invocation's last lines (crash, timeout, out of "
            "memory).",
        ),
        Code.SEGMENT_STARTED: CodeInfo(
            _I,
            "A continuation message claimed the next segment of a run; it resumes from the "
            "checkpoint the previous segment stored.",
            "None.",
        ),
        Code.BATCH_DONE: CodeInfo(
            _I,
            "A batch of certifications was processed (counts in context).",
            "None.",
        ),
        Code.BATCH_SHRUNK: CodeInfo(
            _W,
            "A batch failed as a whole: the database's statement timeout (57014), or an error "
            "no row's isolation caught (sqlstate, operation; routine and the diagnostics' names "
            "when known). Nothing of it was kept, and the segment tries the same page again with "
            "half as many certifications per batch (batch_size), down to one (ROW_FAILED_ALONE).",
            "None if rare and the run completes. If it repeats, read the sqlstate: 57014 is a "
            "slow batch (lower BATCH_SIZE) or one slow row; any other is a row the database "
            "refuses, reported by id in the DB_OPERATION_FAILED line that follows.",
        ),
        Code.ROW_FAILED_ALONE: CodeInfo(
            _W,
            "The certification right after cursor fails even in a batch of one (sqlstate, "
            "operation, routine when known; position: how many in a row). The next batch "
            "passes it as failed, with its DB_OPERATION_FAILED line by id, and the night goes "
            "on; the failed certification is read again the next night (an auto-pause stays "
            "on the schedule and counts in MISSED_AUTO_PAUSE; a reminder is marked for the "
            "next night, unless it outlived the statement timeout). A second certification in "
            "a row that times out alone means the database, not a row, is slow: the batch's "
            "ERROR follows and Pub/Sub redelivers, nothing passed.",
            "Read the DB_OPERATION_FAILED line that follows: the app's trigger or constraint "
            "on that certification or its mentor (routine, table_name, constraint_name), or, "
            "for 57014, a trigger slower than the statement timeout. Fix it in the app; the "
            "next night does the work.",
        ),
        Code.TRANSIENT_RETRY: CodeInfo(
            _W,
            "A call to the database failed transiently and is tried again in-process, after a "
            "short backoff (operation, attempt: the one that failed; sqlstate, or http_status "
            "and postgrest_code, or reason connection lost; error_type, the driver's class). "
            "Every RPC is idempotent, so the retry changes nothing else: a database restart or "
            "failover mid-night shows as these lines and a night that completes as usual.",
            "None if the night completes. If the retries run out, the call's ERROR line follows "
            "and Pub/Sub redelivers; frequent ones point at the database's health (restarts, "
            "53300 too many connections, 40P01 deadlocks, PostgREST's 502/503/504).",
        ),
        Code.CONTINUATION_PUBLISHED: CodeInfo(
            _I,
            "The segment ran out of budget and published a message to continue the run.",
            "None.",
        ),
        Code.CONTINUATION_PUBLISH_FAILED: CodeInfo(
            _E,
            "The continuation could not be published after a bounded retry. The checkpoint is "
            "stored; the function answered 503, so Pub/Sub redelivers this message, which resumes "
            "the run once its lease lapses.",
            "Check that the function's service account may publish to the topic, and Pub/Sub's "
            "status. Runs resume by themselves; to finish one now: certexpiry run.",
        ),
        Code.DUPLICATE_DELIVERY: CodeInfo(
            _I,
            "A message for a run that has moved past it or completed (a Pub/Sub redelivery or a "
            "second scheduler trigger); acknowledged and skipped.",
            "None: delivery is at least once.",
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
            "Read that run's logs (certexpiry logs RUN_ID) to see why it stopped.",
        ),
        Code.NIGHTS_MISSED: CodeInfo(
            _W,
            "Organisation-local nights before tonight have no run at all (details: the dates, "
            "oldest first; also in the run's cron_audit_log.missed_nights): the scheduler job "
            "was paused, skipped or failing, or no function was deployed. Tonight's sweep "
            "catches up on everything still due; superseded reminders are not sent.",
            "Check the Cloud Scheduler job (enabled, its last attempt) and the deploy for those "
            "nights; nothing to re-run.",
        ),
        Code.MONITORING_CLEAN: CodeInfo(
            _I,
            "The post-run monitoring query found no expired certification left unpaused.",
            "None.",
        ),
        Code.MISSED_AUTO_PAUSE: CodeInfo(
            _W,
            "The post-run monitoring query found expired certifications that are not paused and "
            "have no auto_pause record (missed_ids, capped in the line; complete in "
            "cron_audit_log).",
            "certexpiry remediate RUN_ID, then certexpiry check, then "
            "certexpiry audit resolve RUN_ID. DB_OPERATION_FAILED lines of the same run give "
            "the cause.",
        ),
        Code.MONITORING_FAILED: CodeInfo(
            _W,
            "A query of the end of the run failed; the run's outcome stands. operation "
            "get_missed_auto_pauses: the monitoring query, so the run is unverified (the audit "
            "row says monitoring_failed); operation outbox_backlog: the outbox backlog is "
            "unknown tonight (no OUTBOX_BACKLOG line).",
            "Run certexpiry check (it shows both); see operation, sqlstate or "
            "http_status in context.",
        ),
        Code.AUDIT_WRITTEN: CodeInfo(
            _I,
            "The run's audit row was written.",
            "None.",
        ),
        Code.AUDIT_FAILED: CodeInfo(
            _W,
            "The cron_audit_log row could not be written; the run's work is done, and its totals "
            "are in its RUN_COMPLETED line and in cron_runs.",
            "Check the upsert_cron_audit RPC (migration applied, execute granted to service_role).",
        ),
        Code.OUTBOX_BACKLOG: CodeInfo(
            _I,
            "The end of every night (after the audit row): what waits in notification_outbox for "
            "the app's sender (outbox_backlog): outbox_undelivered (outbox_claimed of them under "
            "a live claim), outbox_oldest_age_s (whole seconds; 0 when nothing waits), "
            "outbox_failed and outbox_dropped (all time). The night's own messages are queued "
            "minutes before it, so a small age is normal; Terraform's alert watches the age.",
            "None while outbox_oldest_age_s stays below a day. Higher: the app's sender stopped "
            'or is slow; see docs/operations.md, "The outbox and the app\'s sender" (When the '
            "alert fires); certexpiry check shows the backlog now.",
        ),
        Code.RUN_COMPLETED: CodeInfo(
            _I,
            "The run finished; the context holds its summary counts.",
            "None. Compare counts with previous nights for anomalies.",
        ),
        Code.RUN_STOPPED: CodeInfo(
            _W,
            "The night stopped half-way, in place of RUN_COMPLETED: a call failed with an "
            "error that is neither transient nor one row's (the call itself refused: a grant, "
            "a missing function, an answer outside the contract, or the call that only passes "
            "a certification failing alone failing too), or an unexpected exception. The "
            "error's own ERROR line comes first (operation, sqlstate or http_status, cursor); "
            "what came before it is done and checkpointed; monitoring ran and the audit row "
            "says failed, its missed_ids the expired certifications left unpaused. The message "
            "is acknowledged, the run left unfinished: the next night supersedes it "
            "(RUN_ABANDONED) and sweeps again.",
            "Read the ERROR line before it: a grant or a missing function (42501, PGRST202: "
            "run the migrations), a contract mismatch (SCHEMA_MISMATCH), or the trigger or "
            "constraint refusing the certifications after cursor. Fix it, then "
            "certexpiry run finishes tonight's run; or remediate RUN_ID the missed auto-pauses.",
        ),
        Code.SUPABASE_RPC_FAILED: CodeInfo(
            _E,
            "A call to Supabase's API failed (operation, http_status, postgrest_code, and "
            "response_body: the body's structure, never its text). Transient ones (502/503/504, "
            "PGRST000-003) are retried, then redelivered by Pub/Sub.",
            "404 PGRST202: a migration is missing. 401/403: the service-role key or grants. 5xx: "
            "Supabase status.",
        ),
        Code.SUPABASE_TIMEOUT: CodeInfo(
            _E,
            "A call to Supabase's API timed out after its retries (operation, elapsed_ms); "
            "Pub/Sub redelivers the message.",
            "Check Supabase status and the RPC's query plan; the run resumes by itself.",
        ),
        Code.DB_OPERATION_FAILED: CodeInfo(
            _E,
            "A direct Postgres call failed (operation, sqlstate), or a batch reported a "
            "certification it could not process (certification_id, peer_mentor_id, operation); "
            "the rest of the batch was kept.",
            "Look up the SQLSTATE: 23xxx or P0001 point at the row or a trigger (monitoring flags "
            "it), 08xxx and 53xxx at connectivity (retried).",
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
            "An exception escaped (stack_trace attached). The message is acknowledged, since a "
            "bug fails every retry; the run is resumed by a redelivery or superseded the next "
            "night.",
            "Open the Error Reporting group and fix the bug; then certexpiry run "
            "finishes tonight's run.",
        ),
        Code.LOG_LINES_DROPPED: CodeInfo(
            _W,
            "Log lines were dropped because stdout failed or stalled (lines_dropped).",
            "Expect gaps in this run's log; check instance health if it recurs.",
        ),
        Code.LIBRARY_LOG: CodeInfo(
            _I,
            "A library logged a record, or a line was written to stdout/stderr outside the "
            "logger (logger names it; sourceLocation where a record was logged). Its text is "
            "never logged: it may hold anything.",
            "Depends on the severity; WARNING/ERROR ones are worth a look: reproduce on the "
            "demo, or read the library's code at sourceLocation.",
        ),
        Code.REMEDIATION_DONE: CodeInfo(
            _I,
            "A remediation (pause or reminder repair) was applied (remediation in context).",
            "None; verify with the monitoring check.",
        ),
        # The database's schema (issue 13's block).
        Code.SCHEMA_MISMATCH: CodeInfo(
            _E,
            "At cold start the job's schema in the database (public.schema_version: the newest "
            "migration in the job's own ledger, certexpiry.schema_migrations) is older than the "
            "one this release was built for, or the job is not installed; the function answers "
            "503 and does nothing until it matches (reason names both versions; a failed call's "
            "HTTP status, PostgREST code and body structure, or SQLSTATE, come with it).",
            "Install or upgrade the job: push its migrations with the app's (certexpiry "
            "export-migrations, then supabase db push from the app's repository) or run "
            "certexpiry migrate with DATABASE_URL set to the database; the next delivery checks "
            "again, no redeploy (docs/deploy.md).",
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
