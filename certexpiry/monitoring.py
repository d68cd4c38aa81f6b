"""The end of a run: the monitoring query, its WARNING, the audit row, then the outbox backlog.

This section never raises. A broken monitoring query, audit upsert or backlog query is logged as
a WARNING and the run's outcome stands: a failure here must not mask what the sweep did. The
backlog comes last: it is a report on the app's sender, and must not delay the night's own row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from uuid import UUID

from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.reports import remediation_for, report_missed
from certexpiry.store import AuditRow, MissedReport, OutboxBacklog, Store


def monitor_and_audit(
    store: Store,
    log: JsonLogger,
    *,
    run_id: UUID,
    timezone: str,
    today: date | None,
    segments: int,
    totals: Mapping[str, int],
    duration_ms: int,
    missed_ids_limit: int,
    stopped: bool = False,
) -> None:
    """Run the monitoring query, warn about missed auto-pauses, upsert the audit row.

    `stopped`: the night stopped half-way (the sweep could not get past a batch); the row's
    status is then `failed` whatever monitoring found, and its missed ids are what is missing.
    """
    report: MissedReport | None
    try:
        report = store.missed_auto_pauses(timezone, today, limit=missed_ids_limit)
    except Exception as exc:  # noqa: BLE001  # monitoring must never mask the sweep's outcome
        report = None
        log.warning(
            Code.MONITORING_FAILED,
            "The monitoring query failed; missed auto-pauses could not be checked for this run.",
            error_type=type(exc).__name__,
            **_error_context(exc),
        )
    else:
        report_missed(log, report, remediation_for(run_id))

    row = AuditRow(
        run_id=run_id,
        missed_pause_count=report.missed_pause_count if report else 0,
        missed_ids=list(report.missed_ids) if report else [],
        status="failed" if stopped else "completed" if report else "monitoring_failed",
        nightly_key=today,
        segments=segments,
        totals=dict(totals),
        duration_ms=duration_ms,
    )
    _write_audit(store, log, row)
    report_backlog(store, log)


def _write_audit(store: Store, log: JsonLogger, row: AuditRow) -> None:
    try:
        store.upsert_audit(row)
    except Exception as exc:  # noqa: BLE001  # the audit row is a report, not the work itself
        log.warning(
            Code.AUDIT_FAILED,
            "The cron_audit_log row could not be written for this run.",
            error_type=type(exc).__name__,
            **_error_context(exc),
        )
        return
    log.info(
        Code.AUDIT_WRITTEN,
        "The cron_audit_log row for this run is written.",
        missed_pause_count=row.missed_pause_count,
        status=row.status,
    )


def report_backlog(store: Store, log: JsonLogger) -> OutboxBacklog | None:
    """Log the outbox backlog (OUTBOX_BACKLOG, INFO), or MONITORING_FAILED if it cannot be read.

    outbox_oldest_age_s is always there, an integer: 0 when nothing waits, so the log-based
    metric has a point every night (a stopped sender and a drained outbox are told apart by it).
    """
    try:
        backlog = store.outbox_backlog()
    except Exception as exc:  # noqa: BLE001  # a report on the sender must not fail the night
        log.warning(
            Code.MONITORING_FAILED,
            "The outbox backlog could not be read; the app's sender is unwatched tonight.",
            error_type=type(exc).__name__,
            **_error_context(exc),
        )
        return None
    age = backlog.oldest_age_s or 0
    log.info(
        Code.OUTBOX_BACKLOG,
        f"The outbox holds {backlog.undelivered} undelivered message(s); the oldest has waited "
        f"{age} s.",
        outbox_undelivered=backlog.undelivered,
        outbox_claimed=backlog.claimed,
        outbox_oldest_age_s=age,
        outbox_failed=backlog.failed,
        outbox_dropped=backlog.dropped,
    )
    return backlog


def _error_context(exc: Exception) -> dict[str, object]:
    log_context = getattr(exc, "log_context", None)
    return dict(log_context()) if callable(log_context) else {}
