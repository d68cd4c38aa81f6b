"""Cloud Functions entry point: `nightly_sweep`, triggered by Pub/Sub through Eventarc.

Only wiring lives here. The settings, store, publisher and logger are built once per instance
(on the first event, so a bad setting is reported as one JSON line instead of a crash at
import), then each event is handed to `certexpiry.sweep.handle_event`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import cloudevents.exceptions as cloud_exceptions
import flask
import functions_framework
from werkzeug.exceptions import ServiceUnavailable

from certexpiry.codes import Code
from certexpiry.errors import SchemaNotReady, SettingsError
from certexpiry.log import (
    JsonLogger,
    install_process_logging,
    new_invocation_id,
    trace_from_headers,
)
from certexpiry.redact import shared_secrets
from certexpiry.retry import retries_reported_to
from certexpiry.settings import load_settings
from certexpiry.sweep import Job, Outcome, handle_event, log_retry
from certexpiry.wiring import make_job, make_logger

_secrets = shared_secrets()
_log: JsonLogger = make_logger(_secrets)
install_process_logging(_log)
_job: Job | None = None


def _get_job(log: JsonLogger) -> Job | None:
    """The instance's job, built on first use; None (after one ERROR line on ``log``, the
    invocation's) if settings are bad."""
    global _job
    if _job is None:
        try:
            settings = load_settings()
            process_log = make_logger(_secrets, settings)
            with retries_reported_to(functools.partial(log_retry, log)):
                job = make_job(settings, process_log, schema_log=log)
        except SettingsError as exc:
            log.error(
                Code.INVALID_SETTINGS, "The function's settings are invalid.", **exc.log_context()
            )
            return None
        except SchemaNotReady:  # logged (SCHEMA_MISMATCH); checked again on the next delivery
            return None
        install_process_logging(process_log)
        _job = job
    return _job


def _unreadable_body(exc: Exception) -> tuple[str, int]:
    """A request functions-framework's CloudEvent parser raised on (a body nested deeper than
    Python recurses, an integer of thousands of digits, bytes that are not UTF-8, headers it
    cannot read): one INVALID_MESSAGE line and 200, so Pub/Sub drops it instead of retrying it
    to the dead letter. Any other exception escaping the function is re-raised: the framework's
    crash handling stands."""
    request = flask.request
    try:
        json.loads(request.get_data())
    except RecursionError:
        reason = "event body nested too deeply"
    except json.JSONDecodeError:  # not JSON: the parser reads that as text, and never raises
        reason = None
    except ValueError:
        reason = "event body is JSON that cannot be read (a number too long, or not UTF-8)"
    else:
        reason = None
    if reason is None:
        if not isinstance(exc, cloud_exceptions.GenericException):
            raise exc
        reason = "request is not a CloudEvent this function can read"
    headers = dict(request.headers)
    _log.bind(run_id=new_invocation_id(), trace=trace_from_headers(headers)).error(
        Code.INVALID_MESSAGE,
        "Ignored a request whose body could not be read as an event.",
        reason=reason,
        error_type=type(exc).__name__,
        message_id=request.headers.get("ce-id"),
    )
    return "OK", 200


# functions-framework's documented hook (a no-op outside its app). The parser raises these
# before the function runs (the binary mode wraps its errors in DataUnmarshallerError, the
# structured mode lets json.loads' own through); the function itself never does: handle_event
# never raises, and a settings error is caught in _get_job.
for _parse_error in (cloud_exceptions.GenericException, RecursionError, ValueError):
    functions_framework.errorhandler(_parse_error)(_unreadable_body)


@functions_framework.cloud_event
def nightly_sweep(cloud_event: Any) -> None:
    """Handle one Pub/Sub message: the nightly trigger or a continuation."""
    headers = dict(flask.request.headers) if flask.has_request_context() else {}
    trace = trace_from_headers(headers)
    job = _get_job(_log.bind(run_id=new_invocation_id(), trace=trace))
    if job is None:
        raise ServiceUnavailable("not ready; see the INVALID_SETTINGS or SCHEMA_MISMATCH line")
    outcome = handle_event(job, cloud_event.get("type"), cloud_event.get_data(), trace=trace)
    if outcome is Outcome.RETRY:
        # An HTTP error without a traceback: Eventarc redelivers with backoff.
        raise ServiceUnavailable("retry later")
