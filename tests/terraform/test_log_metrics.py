"""Every log-based metric of terraform/ against what the function really logs.

The function runs end to end (functions-framework, the fake Pub/Sub, the embedded Postgres)
through a night that writes every line a metric exists for: a missed night, failing records
(DB_OPERATION_FAILED, MISSED_AUTO_PAUSE), continuations, a duplicate trigger answered 503
(RUN_BUSY), a malformed message, the completion and the outbox backlog it leaves for the app's
sender (OUTBOX_BACKLOG). Its output lines become the LogEntries Cloud
Run makes of them, beside the platform's request log of each HTTP answer, and of three
requests only the platform answers: a crash (500), a delivery turned away while every instance
was busy (429 "no available instance", logged at ERROR) and a 503 from an instance that failed
to start. Terraform renders the metrics (log_metrics.tf), and each
filter, label extractor and value extractor is evaluated on those entries (logquery.py).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.redact import CONTEXT_FORMS, Secrets
from certexpiry_ops.harness import FunctionProcess, function_env
from certexpiry_ops.pubsub_fake import FakePubSub
from tests import faults
from tests.chain import over_http
from tests.clock import OrgDay
from tests.seeding import add_cert, add_mentor
from tests.terraform.logquery import (
    INSTANCE_FAILED_TO_START,
    NO_AVAILABLE_INSTANCE,
    Entry,
    compile_filter,
    entry_from_line,
    extract,
    field,
    request_entry,
)
from tests.terraform.test_terraform_cli import needs_terraform
from tests.terraform.tfmodule import evaluate, scratch_module

Conn = psycopg.Connection[Any]
SERVICE = "certexpiry-nightly-sweep"  # the default function_name: the Cloud Run service


@dataclass(frozen=True)
class Logged:
    """One LogEntry and what it was, before any field was taken out of it."""

    entry: Entry
    code: str | None  # the app line's error_code; None for a platform request entry
    severity: str
    status: int | None  # the request entry's HTTP status
    platform: bool = False  # a request entry of an answer Cloud Run made, not the function


def _app(code: str) -> Callable[[Logged], bool]:
    return lambda logged: logged.code == code


# Which entries each metric exists for; every other entry must give it no point.
EXPECTED: dict[str, Callable[[Logged], bool]] = {
    # An app ERROR line, a crash, and a 503 the platform made (an instance that failed to
    # start); never the function's own 503 nor a 429 (every instance busy).
    "errors": lambda logged: (
        (logged.code is not None and logged.severity == "ERROR")
        or logged.status == 500
        or (logged.status == 503 and logged.platform)
    ),
    "events": lambda logged: logged.code is not None,
    "missed_pause": _app("MISSED_AUTO_PAUSE"),
    "nights_missed": _app("NIGHTS_MISSED"),
    "run_completed": _app("RUN_COMPLETED"),
    "duration_ms": _app("RUN_COMPLETED"),
    "segments": _app("RUN_COMPLETED"),
    "reminders": _app("RUN_COMPLETED"),
    "paused": _app("RUN_COMPLETED"),
    "missed_count": lambda logged: logged.code in ("MISSED_AUTO_PAUSE", "MONITORING_CLEAN"),
    "outbox_oldest_age": _app("OUTBOX_BACKLOG"),
}

# The fields of the function's lines the metrics read (jsonPayload paths).
READ_FIELDS = [
    "error_code",
    "context.duration_ms",
    "context.segments",
    "context.reminders_queued",
    "context.certifications_paused",
    "context.missed_pause_count",
    "context.outbox_oldest_age_s",
]

# The context of the OUTBOX_BACKLOG line (docs/logging.md); the metric reads the age.
OUTBOX_KEYS = (
    "outbox_undelivered",
    "outbox_claimed",
    "outbox_oldest_age_s",
    "outbox_failed",
    "outbox_dropped",
)


def _night(db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay) -> list[Logged]:
    """Run the function through the night described in the module docstring; its entries."""
    bad = []
    for i in range(12):
        mentor = add_mentor(db, name=f"Ola Testesen {i}")
        expired = add_cert(db, mentor, org.today - timedelta(days=1 + i % 3))
        add_cert(db, mentor, org.today + timedelta(days=7))
        if i < 2:
            bad.append(expired)
    faults.refuse(db, "certifications", bad)
    db.execute(
        "insert into certexpiry.cron_runs (run_id, nightly_key, timezone, status, lease_until, "
        "finished_at) values (%s, %s, %s, 'completed', now(), now())",
        (uuid.uuid4(), org.today - timedelta(days=3), org.timezone),
    )
    function = FunctionProcess(
        env=function_env(
            database_url,
            pubsub,
            org_timezone=org.timezone,
            time_budget_s=0.001,
            batch_size=5,
            monitoring_reserve_s=0,
        )
    ).start()
    try:
        chain = over_http(function, pubsub)
        statuses = chain.run(copies=2)  # every message twice: the second trigger is busy
        statuses.append(function.deliver(b"{not json").status)
    finally:
        function.stop()
    assert 503 in statuses
    assert 200 in statuses
    logged = []
    for stream, line in function.lines:
        entry = entry_from_line(line, stream=stream, service=SERVICE)
        code = field(entry, "jsonPayload.error_code")
        logged.append(Logged(entry, code, entry["severity"], None))
    for status in [*statuses, 500]:  # 500: a crash, which only the platform logs
        entry = request_entry(status, service=SERVICE)
        logged.append(Logged(entry, None, entry["severity"], status))
    for status, text in [(429, NO_AVAILABLE_INSTANCE), (503, INSTANCE_FAILED_TO_START)]:
        entry = request_entry(status, service=SERVICE, platform=text)
        logged.append(Logged(entry, None, entry["severity"], status, platform=True))
    codes = {item.code for item in logged}
    assert {"RUN_BUSY", "NIGHTS_MISSED", "MISSED_AUTO_PAUSE", "DB_OPERATION_FAILED"} <= codes
    assert {"CONTINUATION_PUBLISHED", "INVALID_MESSAGE", "RUN_COMPLETED"} <= codes
    backlog = [item for item in logged if item.code == "OUTBOX_BACKLOG"]
    assert [item.severity for item in backlog] == ["INFO"], "one OUTBOX_BACKLOG line a night"
    assert set(OUTBOX_KEYS) <= set(field(backlog[0].entry, "jsonPayload.context") or {})
    return logged


def _metrics(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """terraform's rendering of local.log_metrics for the default variables."""
    module = scratch_module(tmp_path, "variables.tf", "log_metrics.tf")
    metrics: dict[str, dict[str, Any]] = evaluate(
        module, "local.log_metrics", "project_id=certexpiry-test"
    )
    return metrics


def problems(metrics: dict[str, dict[str, Any]], logged: list[Logged]) -> list[str]:
    """Where a metric gets a point from an entry it does not exist for, none from one it does,
    or its extractors read nothing (an empty list: every metric counts what it should)."""
    found = []
    for key, metric in metrics.items():
        matches = compile_filter(metric["filter"])
        expected = [item for item in logged if EXPECTED[key](item)]
        counted = [item for item in logged if matches(item.entry)]
        if not expected:
            found.append(f"{key}: the night wrote no entry this metric exists for")
        if [id(i) for i in counted] != [id(i) for i in expected]:
            extra = sorted({f"{i.code}/{i.status}" for i in counted if i not in expected})
            lost = sorted({f"{i.code}/{i.status}" for i in expected if i not in counted})
            found.append(f"{key}: counts {extra} it should not, misses {lost}")
        for item in counted:
            for label, extractor in metric["label_extractors"].items():
                value = extract(extractor, item.entry)
                if item.code is not None and value != item.code:
                    found.append(f"{key}: label {label} of a {item.code} line is {value!r}")
            if metric["value_extractor"] is not None:
                value = extract(metric["value_extractor"], item.entry)
                if value is None or not value.lstrip("-").isdigit():
                    found.append(f"{key}: no value from a {item.code} line ({value!r})")
    return found


def _without(logged: list[Logged], path: str) -> list[Logged]:
    """The same entries with jsonPayload.`path` deleted from every app line."""
    out = []
    for item in logged:
        entry = {**item.entry}
        if "jsonPayload" in entry:
            payload = dict(entry["jsonPayload"])
            node: dict[str, Any] = payload
            *parents, leaf = path.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    break
                node[part] = dict(node[part])
                node = node[part]
            else:
                node.pop(leaf, None)
            entry["jsonPayload"] = payload
        out.append(Logged(entry, item.code, item.severity, item.status, item.platform))
    return out


@needs_terraform
def test_every_metric_counts_exactly_the_lines_it_exists_for(
    tmp_path: Path, db: Conn, database_url: str, pubsub: FakePubSub, org: OrgDay
) -> None:
    """Each metric's filter, label extractor and value extractor, rendered by Terraform, gets
    points from the function's real lines it exists for and from no other entry (the request
    log of an intentional 503 included), and deleting any field a metric reads from the lines
    makes that fail."""
    metrics = _metrics(tmp_path)
    assert set(metrics) == set(EXPECTED), "a new metric needs its expectation here"
    logged = _night(db, database_url, pubsub, org)
    assert problems(metrics, logged) == []
    for path in READ_FIELDS:
        assert problems(metrics, _without(logged, path)), f"nothing reads jsonPayload.{path}"


@needs_terraform
def test_the_error_metric_ignores_the_functions_503s_and_429s_only(tmp_path: Path) -> None:
    """The ERROR metric skips the request entry of the function's own 503 and of a 429 (Cloud
    Run's "no available instance", logged at ERROR), and counts a 500, a 504 and a 503 the
    platform made (an instance that failed to start)."""
    errors = compile_filter(_metrics(tmp_path)["errors"]["filter"])
    busy = request_entry(429, service=SERVICE, platform=NO_AVAILABLE_INSTANCE)
    assert busy["severity"] == "ERROR", "a 429 the platform answers is logged as an error"
    assert not errors(busy)
    assert not errors(request_entry(503, service=SERVICE))
    assert errors(request_entry(503, service=SERVICE, platform=INSTANCE_FAILED_TO_START))
    assert errors(request_entry(500, service=SERVICE))
    assert errors(request_entry(504, service=SERVICE))
    assert not errors(request_entry(500, service="another-service"))


@needs_terraform
def test_an_instance_that_failed_to_start_pages_through_the_errors_alert(tmp_path: Path) -> None:
    """Which alert catches a platform 503 from an instance that failed to start: the "nightly
    sweep logged an ERROR" policy (log_alerts.errors, incident with an empty error_code), and
    only it among the log-line alerts; neither a 429 nor the function's own 503 opens any. (A
    message that keeps failing either way also trips the stuck-message alert, on the
    subscription's oldest unacked message age, which reads no log line.)"""
    module = scratch_module(tmp_path, "variables.tf", "log_metrics.tf")
    rendered = evaluate(
        module,
        "{ alerts = local.log_alerts, metrics = local.log_metrics }",
        "project_id=certexpiry-test",
    )
    alert_filters = {
        name: compile_filter(rendered["metrics"][alert["metric"]]["filter"])
        for name, alert in rendered["alerts"].items()
    }

    def paged_by(entry: Entry) -> list[str]:
        return sorted(name for name, matches in alert_filters.items() if matches(entry))

    failed_start = request_entry(503, service=SERVICE, platform=INSTANCE_FAILED_TO_START)
    assert paged_by(failed_start) == ["errors"]
    assert rendered["alerts"]["errors"]["group_by"] == ["metric.label.error_code"]
    assert (
        extract(rendered["metrics"]["errors"]["label_extractors"]["error_code"], failed_start)
        is None
    )
    assert paged_by(request_entry(429, service=SERVICE, platform=NO_AVAILABLE_INSTANCE)) == []
    assert paged_by(request_entry(503, service=SERVICE)) == []


def _backlog_entry(**context: object) -> Entry:
    """The LogEntry of an OUTBOX_BACKLOG line written by the project's own logger."""
    stream = io.StringIO()
    logger = JsonLogger(secrets=Secrets(), stream=stream)
    logger.info(Code.OUTBOX_BACKLOG, "The outbox backlog at the end of the night.", **context)
    (line,) = stream.getvalue().splitlines()
    return entry_from_line(line, stream="stdout", service=SERVICE)


@needs_terraform
def test_the_outbox_age_metric_reads_the_age_the_function_logs(tmp_path: Path) -> None:
    """The outbox age metric (what the "sender stopped" alert compares with
    outbox_stall_threshold_s) takes from an OUTBOX_BACKLOG line, as the project's logger writes
    it, exactly the age logged: 0 when nothing waits, a stalled sender's days. The outbox_* keys
    must be in the log's allow-list: the logger drops a key the allow-list does not know, and a
    line without outbox_oldest_age_s still matches the filter but records no value (Cloud
    Logging skips an entry whose extraction fails), so the alert could never fire."""
    metric = _metrics(tmp_path)["outbox_oldest_age"]
    matches = compile_filter(metric["filter"])
    assert set(OUTBOX_KEYS) <= set(CONTEXT_FORMS)
    for age in (0, 3 * 86400 + 17):
        entry = _backlog_entry(
            outbox_undelivered=4 if age else 0,
            outbox_claimed=1 if age else 0,
            outbox_oldest_age_s=age,
            outbox_failed=2,
            outbox_dropped=1,
        )
        assert entry["severity"] == "INFO"
        assert "dropped_keys" not in entry["jsonPayload"]["context"], entry
        assert matches(entry)
        assert extract(metric["value_extractor"], entry) == str(age)
    without_age = _backlog_entry(outbox_undelivered=4, outbox_failed=0)
    assert matches(without_age)
    assert extract(metric["value_extractor"], without_age) is None
    other = _backlog_entry(outbox_oldest_age_s=5)
    other["jsonPayload"]["error_code"] = "RUN_COMPLETED"
    assert not matches(other), "only OUTBOX_BACKLOG lines feed the age"
