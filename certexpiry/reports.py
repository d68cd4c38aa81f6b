"""What the job tells ops about the certifications it could not handle, in one wording that the
sweep, the end-of-run monitoring and the ops command line all use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.store import MissedReport, RecordFailure

REMEDIATION = (
    "Run `certexpiry remediate {run_id}` to auto-pause exactly these certifications, "
    "then `certexpiry audit resolve {run_id}` once monitoring reports none left."
)


def remediation_for(run_id: UUID) -> str:
    """The instruction the MISSED_AUTO_PAUSE warning of a run carries."""
    return REMEDIATION.format(run_id=run_id)


def report_missed(log: JsonLogger, report: MissedReport, remediation: str) -> None:
    """MISSED_AUTO_PAUSE with the IDs and the remediation when any are missed, else
    MONITORING_CLEAN."""
    if report.missed_pause_count > 0:
        log.warning(
            Code.MISSED_AUTO_PAUSE,
            f"{report.missed_pause_count} expired certifications are still not paused.",
            missed_pause_count=report.missed_pause_count,
            missed_ids=list(report.missed_ids),
            remediation=remediation,
        )
    else:
        log.info(
            Code.MONITORING_CLEAN,
            "Monitoring found no missed auto-pauses.",
            missed_pause_count=0,
        )


def log_record_failures(log: JsonLogger, failures: Sequence[RecordFailure]) -> None:
    """One DB_OPERATION_FAILED line per certification an RPC could not process."""
    for failure in failures:
        names: dict[str, Any] = dict(failure.names)
        log.error(
            Code.DB_OPERATION_FAILED,
            "A certification could not be processed; the others were kept.",
            operation=failure.operation,
            certification_id=failure.certification_id,
            peer_mentor_id=failure.peer_mentor_id,
            sqlstate=failure.sqlstate,
            **names,
        )
