"""`logs RUN_ID`: every log entry of a run, in order, as JSON lines (or one line each on a
terminal): from Cloud Logging, or from a file of the function's JSON lines (`--file`, or the
demo's own with `--demo`), so the runbook's first step can be practised without Google Cloud.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from certexpiry.redact import Secrets, shared_secrets
from certexpiry_ops.console import CliIO, Console, json_default, render_entry
from certexpiry_ops.demo_log import DEMO_LOG_NAME, demo_log_path
from certexpiry_ops.usage import (
    EXIT_OK,
    PROG,
    NotFoundError,
    UsageError,
    parse_uuid,
    positive_int,
)


def cmd_logs(args: argparse.Namespace, cli_io: CliIO) -> int:
    run_id = parse_uuid(args.run_id)
    console = Console(cli_io, args.output)
    # `--demo` is the common flag of parser.py (the embedded demo database in --data-dir); read
    # with getattr so that this command works the same before and after it is added there.
    path = _log_file(args.file, bool(getattr(args, "demo", False)), Path(args.data_dir))
    if path is not None:
        entries, where = _file_entries(path, run_id), f"in {path}"
    else:
        entries, where = _cloud_entries(args, cli_io, run_id)
    secrets = shared_secrets()
    count = 0
    for entry in entries:
        cleaned = _clean(secrets, entry)
        if console.json:
            console.io.stdout.write(json.dumps(cleaned, default=json_default) + "\n")
        else:
            console.out(f"{str(cleaned.get('timestamp', ''))[:23]:<23} {render_entry(cleaned)}")
        count += 1
    cli_io.stdout.flush()
    if count == 0:
        raise NotFoundError(f"no log entries for run {run_id} {where}")
    return EXIT_OK


def _log_file(file: str | None, demo: bool, data_dir: Path) -> Path | None:
    """The file to read instead of Cloud Logging: --file, else the demo's with --demo."""
    if file is not None:
        return Path(file)
    return demo_log_path(data_dir) if demo else None


def _file_entries(path: Path, run_id: UUID) -> Iterator[dict[str, Any]]:
    """The run's entries in a file of JSON log lines, oldest first by their timestamp (the
    function writes to two streams, read by two threads: the file's order can differ by a
    line from the order they were written in; Cloud Logging sorts by timestamp too). Lines
    that are not a JSON object are passed over: the file is not ours to police."""
    wanted = str(run_id)
    found: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("cron_run_id") == wanted:
                    found.append(entry)
    except FileNotFoundError:
        raise UsageError(
            f"no log file at {path}: the demo writes one in its data directory (`{PROG} demo`); "
            "on Google Cloud leave out --file and --demo to read Cloud Logging"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read the log file {path} ({type(exc).__name__})") from None
    found.sort(key=lambda entry: str(entry.get("timestamp", "")))
    return iter(found)


def _cloud_entries(
    args: argparse.Namespace, cli_io: CliIO, run_id: UUID
) -> tuple[Iterator[dict[str, Any]], str]:
    """The run's entries in Cloud Logging, oldest first, read before anything is printed (so
    that an error of the API is an error, not half an answer), and where they were looked for."""
    from google.api_core import exceptions as api_exceptions
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
    from google.cloud.logging import ASCENDING

    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file and not os.path.isfile(key_file):
        raise UsageError(
            f"GOOGLE_APPLICATION_CREDENTIALS is set to {key_file!r}, which is not a file: point it "
            "at a service-account key, or unset it to use `gcloud auth application-default login`"
        )
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    since = datetime.now(UTC) - timedelta(days=args.days)
    filter_ = f'jsonPayload.cron_run_id="{run_id}" AND timestamp>="{since:%Y-%m-%dT%H:%M:%SZ}"'
    try:
        client = cli_io.logging_client(project)
        entries = [
            _log_entry_json(entry)
            for entry in client.list_entries(filter_=filter_, order_by=ASCENDING)
        ]
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
    where = f"in the last {args.days} days" + (f" in project {project}" if project else "")
    return iter(entries), where


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
        parents=[common, output],
        help="read a run's log entries back (Cloud Logging, or the demo's file)",
        description="Every log entry with cron_run_id = RUN_ID, oldest first: one line each on "
        "a terminal, JSON lines when piped (or --json). By default from Cloud Logging "
        "(jsonPayload.cron_run_id), which needs Application Default Credentials (gcloud auth "
        "application-default login) with roles/logging.viewer; with --file from a file of the "
        "function's JSON log lines, with --demo from the one the demo keeps in its --data-dir. "
        "Exit 3 when no entry of the run is found.",
        epilog="examples:\n"
        "  certexpiry logs RUN_ID --demo\n"
        "  certexpiry logs RUN_ID --project P\n"
        "  certexpiry logs RUN_ID --file function.jsonl | jq -c 'select(.severity == \"ERROR\")'",
    )
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument(
        "--file",
        metavar="PATH",
        help="read this file of JSON log lines instead of Cloud Logging (the demo writes "
        f"DIR/{DEMO_LOG_NAME}; --demo reads that one)",
    )
    logs.add_argument("--project", help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    logs.add_argument(
        "--days",
        type=positive_int,
        default=30,
        help="how far back to look in Cloud Logging (default 30, its retention)",
    )
    logs.set_defaults(handler=cmd_logs)
