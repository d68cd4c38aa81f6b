"""The end of a run: monitoring, its WARNING, the audit row, and never raising."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from certexpiry.errors import RpcError
from certexpiry.monitoring import monitor_and_audit
from certexpiry.redact import body_shape
from certexpiry.store import MissedReport, OutboxBacklog
from certexpiry_ops.fakes import FakeStore
from tests.logcapture import CapturedLog

RUN = uuid.UUID("6f1c8f4e-8a0e-4d7e-9a53-3f4a2b1c0d9e")


def _run(store: FakeStore, log: CapturedLog) -> None:
    monitor_and_audit(
        store,
        log.logger,
        run_id=RUN,
        timezone="Europe/Oslo",
        today=date(2026, 11, 28),
        segments=3,
        totals={"certifications_paused": 4},
        duration_ms=1234,
        missed_ids_limit=1000,
    )


def test_clean_run_logs_info_and_writes_zero_row() -> None:
    """No missed transitions: no WARNING, an audit row with missed_pause_count=0."""
    store, log = FakeStore(), CapturedLog()
    _run(store, log)
    assert log.codes() == ["MONITORING_CLEAN", "AUDIT_WRITTEN", "OUTBOX_BACKLOG"]
    assert "WARNING" not in log.severities()
    assert store.audits[0].missed_pause_count == 0
    assert store.audits[0].status == "completed"
    assert store.audits[0].segments == 3
    assert store.audits[0].duration_ms == 1234
    assert len(store.audits) == 1


def test_missed_transitions_warn_with_ids_and_remediation() -> None:
    """Missed auto-pauses produce one WARNING with the IDs and the remediation command."""
    ids = [str(uuid.uuid4()) for _ in range(2)]
    store, log = FakeStore(missed=MissedReport(2, ids)), CapturedLog()
    _run(store, log)
    warning = log.with_code("MISSED_AUTO_PAUSE")[0]
    assert warning["severity"] == "WARNING"
    assert warning["context"]["missed_pause_count"] == 2
    assert warning["context"]["missed_ids"] == ids
    remediation = warning["context"]["remediation"]
    assert str(RUN) in remediation
    assert f"certexpiry remediate {RUN}" in remediation
    assert f"certexpiry audit resolve {RUN}" in remediation
    assert remediation.index(f"remediate {RUN}") < remediation.index(f"audit resolve {RUN}")
    assert store.audits[0].missed_ids == ids


def test_many_missed_ids_are_capped_in_the_line_but_full_in_the_row() -> None:
    """Over a hundred IDs: the log line is capped and flagged, the audit row has them all."""
    ids = [str(uuid.uuid4()) for _ in range(250)]
    store, log = FakeStore(missed=MissedReport(250, ids)), CapturedLog()
    _run(store, log)
    context = log.with_code("MISSED_AUTO_PAUSE")[0]["context"]
    assert len(context["missed_ids"]) < 250
    assert context["truncated"] is True
    assert context["total_count"] == 250
    assert len(store.audits[0].missed_ids) == 250


def test_monitoring_failure_is_a_warning_and_the_row_says_so() -> None:
    """A failing monitoring query logs MONITORING_FAILED (WARNING) and never raises."""
    error = RpcError("get_missed_auto_pauses", http_status=500, body=body_shape('{"code":"XX000"}'))
    store, log = FakeStore(raises={"missed_auto_pauses": error}), CapturedLog()
    _run(store, log)
    failed = log.with_code("MONITORING_FAILED")[0]
    assert failed["severity"] == "WARNING"
    assert failed["context"]["http_status"] == 500
    assert failed["context"]["operation"] == "get_missed_auto_pauses"
    assert store.audits[0].status == "monitoring_failed"
    assert store.audits[0].missed_ids == []


def test_audit_failure_is_a_warning() -> None:
    """A failing audit upsert logs AUDIT_FAILED (WARNING) and the outcome stands."""
    store, log = FakeStore(raises={"upsert_audit": RuntimeError("down")}), CapturedLog()
    _run(store, log)
    assert log.codes() == ["MONITORING_CLEAN", "AUDIT_FAILED", "OUTBOX_BACKLOG"]
    assert log.with_code("AUDIT_FAILED")[0]["context"]["error_type"] == "RuntimeError"
    assert store.audits == []
    assert "upsert_audit" in store.names()


def test_a_stopped_night_is_audited_failed_whatever_monitoring_found() -> None:
    """A night that stopped half-way writes its row with status failed: with the missed ids
    monitoring found, or none when monitoring failed too."""
    ids = [str(uuid.uuid4())]
    for store in (
        FakeStore(missed=MissedReport(1, ids)),
        FakeStore(raises={"missed_auto_pauses": RpcError("get_missed_auto_pauses")}),
    ):
        log = CapturedLog()
        monitor_and_audit(
            store,
            log.logger,
            run_id=RUN,
            timezone="Europe/Oslo",
            today=date(2026, 11, 28),
            segments=1,
            totals={"certifications_paused": 4},
            duration_ms=10,
            missed_ids_limit=1000,
            stopped=True,
        )
        assert len(store.audits) == 1
        assert store.audits[0].status == "failed"
        assert log.with_code("AUDIT_WRITTEN")[0]["context"]["status"] == "failed"
    assert list(store.audits[0].missed_ids) == []


BACKLOG = OutboxBacklog(
    undelivered=12,
    claimed=3,
    oldest_undelivered_at=datetime(2026, 11, 27, 1, 0, tzinfo=UTC),
    oldest_age_s=90_061,
    failed=2,
    dropped=5,
)


def test_the_outbox_backlog_is_one_info_line_after_the_audit_row() -> None:
    """Every night ends with OUTBOX_BACKLOG (INFO): the five counts as integers, after the audit
    row (a slow backlog query never delays the night's own record)."""
    store, log = FakeStore(backlog=BACKLOG), CapturedLog()
    _run(store, log)
    assert log.codes() == ["MONITORING_CLEAN", "AUDIT_WRITTEN", "OUTBOX_BACKLOG"]
    assert store.names() == ["missed_auto_pauses", "upsert_audit", "outbox_backlog"]
    line = log.with_code("OUTBOX_BACKLOG")[0]
    assert line["severity"] == "INFO"
    assert line["context"] == {
        "outbox_undelivered": 12,
        "outbox_claimed": 3,
        "outbox_oldest_age_s": 90_061,
        "outbox_failed": 2,
        "outbox_dropped": 5,
    }
    assert "12 undelivered" in line["message"]


def test_an_empty_outbox_logs_age_zero_not_null() -> None:
    """Nothing waiting: oldest_age_s is null in the answer, 0 in the line (an integer every
    night, so the metric has a point and a drained outbox is told from a silent one)."""
    store, log = FakeStore(), CapturedLog()
    _run(store, log)
    context = log.with_code("OUTBOX_BACKLOG")[0]["context"]
    assert context["outbox_oldest_age_s"] == 0
    assert context["outbox_undelivered"] == 0
    assert all(type(value) is int for value in context.values())


def test_a_failing_backlog_query_is_a_warning_and_the_night_goes_on() -> None:
    """outbox_backlog failing logs MONITORING_FAILED (WARNING) with its operation; monitoring,
    the audit row and the outcome stand, and nothing raises."""
    error = RpcError("outbox_backlog", http_status=404, body=body_shape('{"code":"PGRST202"}'))
    store, log = FakeStore(raises={"outbox_backlog": error}), CapturedLog()
    _run(store, log)
    assert log.codes() == ["MONITORING_CLEAN", "AUDIT_WRITTEN", "MONITORING_FAILED"]
    failed = log.with_code("MONITORING_FAILED")[0]
    assert failed["severity"] == "WARNING"
    assert failed["context"]["operation"] == "outbox_backlog"
    assert failed["context"]["http_status"] == 404
    assert failed["context"]["error_type"] == "RpcError"
    assert store.audits[0].status == "completed"
    assert len(store.audits) == 1


def test_the_backlog_is_reported_even_when_the_audit_row_fails() -> None:
    """A failed audit upsert does not skip the backlog line."""
    store = FakeStore(raises={"upsert_audit": RuntimeError("down")}, backlog=BACKLOG)
    log = CapturedLog()
    _run(store, log)
    assert log.codes() == ["MONITORING_CLEAN", "AUDIT_FAILED", "OUTBOX_BACKLOG"]
