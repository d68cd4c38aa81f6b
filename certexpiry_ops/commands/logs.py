"""`logs RUN_ID`: every Cloud Logging entry of a run, in order, as JSON lines."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from certexpiry.redact import Secrets, shared_secrets
from certexpiry_ops.console import CliIO, Console, json_default, render_entry
from certexpiry_ops.usage import EXIT_OK, PROG, UsageError, parse_uuid, positive_int


def cmd_logs(args: argparse.Namespace, cli_io: CliIO) -> int:
    from google.api_core import exceptions as api_exceptions
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
    from google.cloud.logging import ASCENDING

    run_id = parse_uuid(args.run_id)
    console = Console(cli_io, args.output)
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file and not os.path.isfile(key_file):
        raise UsageError(
            f"GOOGLE_APPLICATION_CREDENTIALS is set to {key_file!r}, which is not a file: point it "
            "at a service-account key, or unset it to use `gcloud auth application-default login`"
        )
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    since = datetime.now(UTC) - timedelta(days=args.days)
    filter_ = f'jsonPayload.cron_run_id="{run_id}" AND timestamp>="{since:%Y-%m-%dT%H:%M:%SZ}"'
    secrets = shared_secrets()
    count = 0
    try:
        client = cli_io.logging_client(project)
        for entry in client.list_entries(filter_=filter_, order_by=ASCENDING):
            cleaned = _clean(secrets, _log_entry_json(entry))
            if console.json:
                console.io.stdout.write(json.dumps(cleaned, default=json_default) + "\n")
            else:
                console.out(f"{str(cleaned.get('timestamp', ''))[:23]:<23} {render_entry(cleaned)}")
            count += 1
        cli_io.stdout.flush()
    except DefaultCredentialsError:
        raise UsageError(
            "no Google Cloud credentials: run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS (the account needs roles/logging.viewer)"
        ) from None
    except (GoogleAuthError, api_exceptions.GoogleAPIError) as exc:
        raise UsageError(f"Cloud Logging refused the request ({_status_of(exc)})") from None
    except OSError as exc:  # the client could not determine a project
        raise UsageError(
            f"Cloud Logging: no project could be determined ({type(exc).__name__}): pass "
            "--project or set GOOGLE_CLOUD_PROJECT"
        ) from None
    if count == 0:
        cli_io.stderr.write(
            f"{PROG}: no log entries for run {run_id} in the last {args.days} "
            f"days{f' in project {project}' if project else ''}\n"
        )
    return EXIT_OK


def _log_entry_json(entry: Any) -> dict[str, Any]:
    """A Cloud Logging entry as one object: when, how severe, then our own JSON payload."""
    out: dict[str, Any] = {}
    timestamp = getattr(entry, "timestamp", None)
    if timestamp is not None:
        isoformat = getattr(timestamp, "isoformat", None)
        out["timestamp"] = isoformat() if callable(isoformat) else str(timestamp)
    severity = getattr(entry, "severity", None)
    if severity is not None:
        out["severity"] = str(getattr(severity, "name", severity))
    payload = getattr(entry, "payload", None)
    if isinstance(payload, Mapping):
        out.update({key: value for key, value in payload.items() if key not in out})
    elif payload is not None:
        out["message"] = str(payload)
    for attribute, key in (
        ("insert_id", "insertId"),
        ("trace", "logging.googleapis.com/trace"),
        ("labels", "logging.googleapis.com/labels"),
    ):
        value = getattr(entry, attribute, None)
        if value:
            out.setdefault(key, dict(value) if isinstance(value, Mapping) else value)
    return out


def _status_of(exc: Exception) -> str:
    """A Google API error by its class and HTTP status, never its text."""
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}, HTTP {code}" if isinstance(code, int) else type(exc).__name__


def _clean(secrets: Secrets, value: Any) -> Any:
    """Defence in depth: entries were written by the allow-list; scrub secrets once more."""
    if isinstance(value, str):
        return secrets.scrub(value)
    if isinstance(value, Mapping):
        return {str(key): _clean(secrets, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(secrets, item) for item in value]
    return value


def register(
    commands: Any, common: argparse.ArgumentParser, output: argparse.ArgumentParser
) -> None:
    """Add `logs` to the command line."""
    logs = commands.add_parser(
        "logs",
        parents=[output],
        help="read a run's entries back from Cloud Logging",
        description="Every Cloud Logging entry with jsonPayload.cron_run_id = RUN_ID, oldest "
        "first: one line each on a terminal, JSON lines when piped (or --json). Needs "
        "Application Default Credentials (gcloud auth application-default login) with "
        "roles/logging.viewer.",
        epilog="examples:\n"
        "  certexpiry logs RUN_ID --project P\n"
        "  certexpiry logs RUN_ID --json | jq -c 'select(.severity == \"ERROR\")'",
    )
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("--project", help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    logs.add_argument(
        "--days",
        type=positive_int,
        default=30,
        help="how far back to look (default 30, Cloud Logging's retention)",
    )
    logs.set_defaults(handler=cmd_logs)
