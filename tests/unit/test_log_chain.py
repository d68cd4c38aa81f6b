"""The processors of a log line (certexpiry.log_line), each on its own, and the chain they make
under structlog."""

from __future__ import annotations

import json
from typing import Any

import structlog

from certexpiry import log_line
from certexpiry.codes import Code, Severity
from certexpiry.log_entry import MAX_LINE, MAX_STRING, _where
from certexpiry.log_line import _Shared, fallback_line, select_context
from certexpiry.log_trace import TraceContext
from certexpiry.sanitize import Sanitizer

RUN = "6f1f4a52-3c1e-4d0c-9a57-2b1e0c7d9e11"
TRACE = TraceContext(
    trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", sampled=True
)


def _shared(project: str | None = "p") -> _Shared:
    return _Shared(Sanitizer(), None, "svc", "1.0", project, Severity.DEBUG)


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "m",
        "severity": Severity.INFO,
        "code": Code.BATCH_DONE,
        "context": {},
        "stack": None,
        "where": None,
        "run_id": RUN,
        "trace": None,
    }
    event.update(overrides)
    return event


def test_the_chain_is_structlogs() -> None:
    """A logger is a structlog BoundLogger over the chain, in the documented order."""
    shared = _shared()
    names = [step.__name__ for step in shared.chain]
    assert names == [
        "add_timestamp",
        "bind_run_and_trace",
        "select_context",
        "redact_and_cap",
        "add_error_reporting",
        "render",
    ]
    line = shared.logger(RUN, None).msg(
        "m", **{k: v for k, v in _event().items() if k not in ("event", "run_id", "trace")}
    )
    assert json.loads(line)["cron_run_id"] == RUN
    assert isinstance(shared.logger(RUN, None).bind(), structlog.BoundLogger)


def test_add_timestamp() -> None:
    """The timestamp is RFC 3339 UTC with microseconds."""
    event = _shared().add_timestamp(None, "msg", {})
    assert event["timestamp"].endswith("Z")
    assert len(event["timestamp"]) == len("2026-11-30T02:00:00.000000Z")


def test_bind_run_and_trace_caches_and_evicts() -> None:
    """The run's and the trace's members are built once per binding; the cache is bounded."""
    shared = _shared()
    event = shared.bind_run_and_trace(None, "msg", {"run_id": RUN, "trace": TRACE})
    assert event["run_json"] == f',"cron_run_id":"{RUN}"'
    fixed = json.loads("{" + event["fixed_json"][1:] + "}")
    assert fixed == {
        "logging.googleapis.com/labels": {"cron_run_id": RUN, "function": "svc"},
        "logging.googleapis.com/trace": f"projects/p/traces/{TRACE.trace_id}",
        "logging.googleapis.com/spanId": TRACE.span_id,
        "logging.googleapis.com/trace_sampled": True,
    }
    shared.bindings.update({(str(n), None): ("", "") for n in range(1_024)})
    shared.bind_run_and_trace(None, "msg", {"run_id": RUN, "trace": None})
    assert len(shared.bindings) == 1
    no_project = _shared(project=None)._binding(RUN, TraceContext(TRACE.trace_id, None, False))  # noqa: SLF001  # the binding itself
    assert "trace" not in no_project[1].replace("trace_sampled", "")


def test_select_context_keeps_the_allow_list() -> None:
    """Allowed keys go on, the logger's own keys are set aside, the rest are counted."""
    event = select_context(
        None, "msg", {"context": {"segment": 1, "full_name": "x", "truncated": True, "pw": "y"}}
    )
    assert event["members"] == [("segment", 1)]
    assert event["reserved"] == {"truncated": True}
    assert event["extra"] == ['"dropped_keys":2']


def test_redact_and_cap() -> None:
    """Message, values and stack trace are sanitised; a long value is cut and marked."""
    shared = _shared()
    event = shared.redact_and_cap(
        None,
        "msg",
        {
            "event": 42,
            "members": [("reason", "mail ola@example.no"), ("details", "x" * (MAX_STRING + 1))],
            "reserved": {},
            "stack": "Traceback\nValueError: ola@example.no\n",
        },
    )
    assert event["event"] == "42"
    assert event["members"][0] == ("reason", '"mail [REDACTED:email]"')
    assert event["reserved"] == {"truncated": "true"}
    assert event["stack"] == "Traceback\nValueError: [REDACTED:email]\n"


def test_add_error_reporting() -> None:
    """ERROR lines get Error Reporting's fields, and reportLocation without a stack trace."""
    shared = _shared()
    where = _where("f.py", 3, "fn")
    error = shared.add_error_reporting(
        None, "msg", {"severity": Severity.ERROR, "stack": None, "where": where, "extra": []}
    )
    assert error["error_json"] == shared.error_json
    assert error["extra"] == [where.report]
    info = shared.add_error_reporting(
        None, "msg", {"severity": Severity.INFO, "stack": None, "where": where, "extra": []}
    )
    assert (info["error_json"], info["extra"]) == ("", [])


def test_render_keeps_a_line_under_the_cap() -> None:
    """Over MAX_LINE a line keeps its identifying context only, then a short message too."""
    shared = _shared()
    event = shared.bind_run_and_trace(None, "msg", _event(severity=Severity.INFO))
    event.update(
        timestamp="t",
        error_json="",
        members=[("details", json.dumps("x" * MAX_LINE))],
        reserved={},
        extra=[],
        context={"segment": 2, "details": "x"},
    )
    line = json.loads(shared.render(None, "msg", event))
    assert line["context"] == {"segment": 2, "truncated": True}
    event["event"] = "y" * MAX_LINE
    line = json.loads(shared.render(None, "msg", event))
    assert line["message"] == "y" * 200 + "...[truncated]"


def test_fallback_line() -> None:
    """When the chain fails, the minimal line still carries the run and the failure's type."""
    line = json.loads(fallback_line(_shared(), RUN, Severity.ERROR, KeyError("k")))
    assert line["error_code"] == "UNEXPECTED_EXCEPTION"
    assert line["cron_run_id"] == RUN
    assert line["context"] == {"error_type": "KeyError"}
    assert log_line._SINK.msg("x") == "x"  # noqa: SLF001  # the sink hands lines back
