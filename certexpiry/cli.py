"""The ops command line: `python -m certexpiry COMMAND`.

    demo                  the real function over HTTP on a seeded local database (make demo)
    run                   one sweep, in process, against the configured database
    seed                  generate a demo organisation into an empty local database
    audit list|show|resolve   the cron_audit_log rows; acknowledge a remediated run
    remediate RUN_ID      auto-pause exactly the certifications a run missed
    check                 the monitoring query, now (exit 1 if missed auto-pauses remain)
    logs RUN_ID           every Cloud Logging entry of a run, in order, as JSON lines

The database is DATABASE_URL, else Supabase (SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY), else
the embedded PostgreSQL the demo uses (`--data-dir`, default .pgdata/). Data is read and
written only through the SQL API (certexpiry.store, certexpiry.ops); `seed` is the one
exception, and refuses any database that is not local.

Output: on a terminal, tables and summaries (and a progress line on stderr for `run`); piped,
or with --json, JSON lines on stdout. Errors go to stderr. No personal data is ever printed:
log lines pass the sanitiser, and the SQL API returns IDs and counts only.

Exit codes: 0 ok; 1 missed auto-pauses remain (or resolve refused); 2 usage, configuration,
connection or credential error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from certexpiry import __version__
from certexpiry.codes import Code
from certexpiry.console import CliIO, Console, json_default
from certexpiry.errors import CertexpiryError, SettingsError, StoreError
from certexpiry.monitoring import remediation_for
from certexpiry.ops import DEFAULT_LIST_LIMIT, AuditEntry, OpsStore
from certexpiry.sanitize import Sanitizer
from certexpiry.settings import Settings
from certexpiry.store import RpcStore
from certexpiry.sweep import log_record_failures

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2

PROG = "python -m certexpiry"
# Lines that show the chain is moving (a run that logs errors without them is failing).
_PROGRESS_CODES = frozenset({
    "RUN_STARTED", "RUN_RESUMED", "SEGMENT_STARTED", "BATCH_DONE", "CONTINUATION_PUBLISHED",
    "RUN_COMPLETED", "DUPLICATE_DELIVERY", "RUN_BUSY",
})
_FAILED_INVOCATIONS_LIMIT = 3
CHECK_REMEDIATION = (
    f"Find the run that reported them (`{PROG} audit list`), then `{PROG} remediate RUN_ID`; "
    f"or pause exactly these with `{PROG} remediate --ids ID,ID,...`."
)


class UsageError(Exception):
    """A usage, configuration or connection problem: message on stderr, exit 2."""


def _parse_uuid(value: str, what: str = "RUN_ID") -> UUID:
    try:
        return UUID(value.strip())
    except ValueError:
        raise UsageError(f"{what} must be a UUID, got {value!r}") from None


def _entry_dict(entry: AuditEntry) -> dict[str, Any]:
    data = asdict(entry)
    data["unresolved"] = entry.unresolved
    return data


# --------------------------------------------------------------------------- the database


@dataclass
class Target:
    """The configured database and the stores over it."""

    settings: Settings
    conninfo: str | None  # a direct Postgres connection string (None with Supabase)
    embedded: bool
    store: RpcStore

    @property
    def ops(self) -> OpsStore:
        return OpsStore(self.store.transport)


@contextlib.contextmanager
def _target(args: argparse.Namespace, *, direct: bool = False) -> Iterator[Target]:
    """DATABASE_URL, else Supabase, else the embedded server in --data-dir."""
    from certexpiry.local import LOCAL_TOPIC
    from certexpiry.settings import load_settings
    from certexpiry.wiring import make_store

    overrides: dict[str, object] = {"continuation_topic": LOCAL_TOPIC}
    server = None
    conninfo: str | None
    if os.environ.get("DATABASE_URL"):
        conninfo = os.environ["DATABASE_URL"]
    elif os.environ.get("SUPABASE_URL"):
        if direct:
            raise UsageError(f"`{args.command}` needs a direct Postgres connection: set "
                             "DATABASE_URL (Supabase's HTTP API cannot do it)")
        conninfo = None
    else:
        from certexpiry.demo import open_embedded

        server, conninfo = open_embedded(Path(args.data_dir))
        overrides["database_url"] = conninfo
    try:
        try:
            settings = load_settings(**overrides)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        store = make_store(settings)
        try:
            yield Target(settings=settings, conninfo=conninfo, embedded=server is not None,
                         store=store)
        finally:
            store.close()
    finally:
        if server is not None:
            server.stop()


# --------------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace, cli_io: CliIO) -> int:
    from certexpiry.demo import DemoOptions, run_demo

    options = DemoOptions(
        data_dir=Path(args.data_dir), mentors=args.mentors, seed=args.seed, fresh=args.fresh,
        with_failures=args.with_failures, time_budget_s=args.time_budget,
        batch_size=args.batch_size, monitoring_reserve_s=args.monitoring_reserve,
    )
    return run_demo(options, cli_io.stdout)


class _ChainFailing(Exception):
    """Several invocations in a row logged errors without progress: stop retrying."""


def cmd_run(args: argparse.Namespace, cli_io: CliIO) -> int:
    from certexpiry.local import run_chain
    from certexpiry.publisher import InMemoryPublisher
    from certexpiry.sweep import Job

    console = Console(cli_io, args.output, progress=True)
    with _target(args) as target:
        settings = target.settings
        try:
            target.store.missed_auto_pauses(settings.org_timezone, None)  # can we talk to it?
        except StoreError as exc:
            reason = console.sanitizer.clean(" ".join(str(exc).split()))
            raise UsageError(f"cannot use the database: {reason}") from None
        publisher = InMemoryPublisher()
        job = Job(settings=settings, store=target.store, publisher=publisher,
                  log=console.logger(settings))
        seen = 0
        strikes = 0

        def watch(_invocations: int) -> None:
            nonlocal seen, strikes
            new, seen = console.entries[seen:], len(console.entries)
            progressed = any(e.get("error_code") in _PROGRESS_CODES for e in new)
            failed = any(e.get("severity") == "ERROR" for e in new)
            strikes = strikes + 1 if failed and not progressed else 0
            if strikes >= _FAILED_INVOCATIONS_LIMIT:
                raise _ChainFailing

        try:
            run_chain(job, publisher, on_invocation=watch, max_invocations=args.max_invocations)
        except _ChainFailing:
            console.finish()
            cli_io.stderr.write(f"{PROG}: error: the run keeps failing; see the ERROR lines\n")
            return EXIT_USAGE
        finally:
            console.finish()
        codes = [e.get("error_code") for e in console.entries]
        run_id = next((e.get("cron_run_id") for e in reversed(console.entries)
                       if e.get("error_code") in ("RUN_COMPLETED", "DUPLICATE_DELIVERY")), None)
        if run_id is None:
            cli_io.stderr.write(f"{PROG}: error: the run did not complete; see the ERROR lines\n")
            return EXIT_USAGE
        left = target.store.missed_auto_pauses(settings.org_timezone, None)
        audit = target.ops.get_audit(UUID(str(run_id)))
        if not console.json:
            console.out("")
            if "RUN_COMPLETED" in codes and audit is not None:
                console.out(f"Run {run_id} completed: {audit.segments} segment(s), "
                            f"{(audit.duration_ms or 0) / 1000:.2f} s.")
                console.out("  " + _totals_text(audit.totals))
            else:
                console.out(f"Tonight's run {run_id} had already completed: nothing was done.")
            console.out(f"  missed auto-pauses now: {left.missed_pause_count}")
            console.out(f"Next: {PROG} audit show {run_id}")
            if left.missed_pause_count:
                console.out(f"      {PROG} remediate {run_id}")
        return EXIT_MISSED if left.missed_pause_count else EXIT_OK


def _totals_text(totals: Mapping[str, int]) -> str:
    return (f"reminders queued {totals.get('reminders_queued', 0):,} "
            f"(superseded {totals.get('reminders_superseded', 0):,}), "
            f"certifications paused {totals.get('certifications_paused', 0):,}, "
            f"mentors paused {totals.get('mentors_paused', 0):,}, "
            f"failures {totals.get('failures', 0):,}")


def cmd_seed(args: argparse.Namespace, cli_io: CliIO) -> int:
    from certexpiry import demo_seed

    console = Console(cli_io, args.output)
    conninfo = os.environ.get("DATABASE_URL") or None
    if conninfo is None and os.environ.get("SUPABASE_URL"):
        raise UsageError("`seed` needs a direct Postgres connection: set DATABASE_URL")
    if conninfo is not None and not demo_seed.is_local(conninfo) and not args.allow_remote:
        raise UsageError(
            f"refusing to seed a database that is not local (host "
            f"{console.sanitizer.clean(demo_seed.host_of(conninfo))}); pass --allow-remote if "
            "you really mean to write generated people into it")
    with _target(args, direct=True) as target:
        assert target.conninfo is not None
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            if not demo_seed.is_empty(conn):
                raise UsageError("the database already has peer mentors; `seed` only fills an "
                                 "empty one (`demo --fresh` starts the local one over)")
            today = datetime.now(ZoneInfo(target.settings.org_timezone)).date()
            report = demo_seed.seed(conn, mentors=args.mentors, seed=args.seed, today=today)
    console.data(asdict(report))
    console.out(f"Seeded {report.mentors:,} mentors and {report.certifications:,} certifications "
                f"in {report.seconds:.2f} s (seed {args.seed}): {report.already_paused:,} already "
                f"paused, {report.to_pause_tonight:,} to pause tonight, {report.renewed:,} "
                "renewed.")
    return EXIT_OK


def cmd_audit_list(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    with _target(args) as target:
        entries = _call(target.ops.list_audit, args.limit)
    if console.json:
        for entry in entries:
            console.data(_entry_dict(entry))
        return EXIT_OK
    if not entries:
        console.out("No audit rows yet.")
        return EXIT_OK
    header = f"  {'RUN AT (UTC)':<19}  {'RUN ID':<36}  {'NIGHT':<10}  {'STATUS':<17}  " \
             f"{'SEG':>3}  {'MISSED':>6}  RESOLVED"
    console.out(header)
    for entry in entries:
        mark = "!" if entry.unresolved else " "
        run_at = entry.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if entry.run_at else ""
        resolved = "yes" if entry.resolved else ("NO" if entry.unresolved else "-")
        night = str(entry.nightly_key or "")
        console.out(f"{mark} {run_at:<19}  {entry.run_id!s:<36}  {night:<10}  "
                    f"{entry.status:<17}  {entry.segments or 0:>3}  "
                    f"{entry.missed_pause_count:>6}  {resolved}")
    if any(entry.unresolved for entry in entries):
        console.out(f"\n! = missed auto-pauses not yet resolved: {PROG} audit show RUN_ID")
    return EXIT_OK


def cmd_audit_show(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = _parse_uuid(args.run_id)
    with _target(args) as target:
        entry = _call(target.ops.get_audit, run_id)
    if entry is None:
        raise UsageError(f"no audit row for run {run_id}")
    still = set(entry.still_missed or ())
    console.data(_entry_dict(entry))
    duration = f"{entry.duration_ms / 1000:.2f} s" if entry.duration_ms is not None else "-"
    console.out(f"Run          {entry.run_id}")
    console.out(f"Run at       {entry.run_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
                if entry.run_at else "Run at       -")
    console.out(f"Night        {entry.nightly_key or '-'}")
    console.out(f"Status       {entry.status}")
    console.out(f"Segments     {entry.segments if entry.segments is not None else '-'}")
    console.out(f"Duration     {duration}")
    console.out(f"Totals       {_totals_text(entry.totals)}")
    console.out(f"Missed       {entry.missed_pause_count} auto-pause(s) at the end of the run; "
                f"{len(still)} still missed now")
    for cert_id in entry.missed_ids:
        console.out(f"             {cert_id}  {'STILL MISSED' if cert_id in still else 'done'}")
    resolved = f"yes, at {entry.resolved_at:%Y-%m-%d %H:%M:%S %Z}" if entry.resolved and \
        entry.resolved_at else ("yes" if entry.resolved else "no")
    console.out(f"Resolved     {resolved}")
    if still:
        console.out(f"Next         {PROG} remediate {entry.run_id}")
    elif entry.unresolved:
        console.out(f"Next         {PROG} audit resolve {entry.run_id}")
    return EXIT_MISSED if still else EXIT_OK


def cmd_audit_resolve(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = _parse_uuid(args.run_id)
    with _target(args) as target:
        result = _call(target.ops.resolve_audit, run_id, force=args.force)
    if not result.found:
        raise UsageError(f"no audit row for run {run_id}")
    console.data({"run_id": str(run_id), **asdict(result)})
    if result.refused:
        cli_io.stderr.write(
            f"{PROG}: refusing to resolve run {run_id}: {len(result.still_missed)} of its missed "
            f"certifications are still not paused ({', '.join(result.still_missed[:5])}"
            f"{' ...' if len(result.still_missed) > 5 else ''}).\n"
            f"Run `{PROG} remediate {run_id}` first, or pass --force to acknowledge anyway.\n")
        return EXIT_MISSED
    when = f" at {result.resolved_at:%Y-%m-%d %H:%M:%S %Z}" if result.resolved_at else ""
    console.out(f"Run {run_id} resolved{when}.")
    if result.forced:
        console.out(f"Forced: {len(result.still_missed)} certification(s) of this run are still "
                    "not paused.")
    return EXIT_OK


def cmd_remediate(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    run_id = _parse_uuid(args.run_id) if args.run_id else None
    ids = [str(_parse_uuid(item, "--ids entry")) for item in (args.ids or "").split(",")
           if item.strip()]
    if run_id is None and not ids:
        raise UsageError("give a RUN_ID (its missed certifications) or --ids a,b,c")
    with _target(args, direct=args.drop_demo_trigger) as target:
        settings = target.settings
        if run_id is not None:
            entry = _call(target.ops.get_audit, run_id)
            if entry is None:
                raise UsageError(f"no audit row for run {run_id}")
            targets = ids or list(entry.missed_ids)
        else:
            targets = ids
        if args.drop_demo_trigger:
            _drop_demo_trigger(target, console)
        remediation_id = run_id or uuid.uuid4()  # recorded on the auto_pause rows
        log = console.logger(settings).bind(run_id=str(remediation_id))
        result = _call(target.store.remediate, remediation_id, targets, settings.org_timezone)
        log_record_failures(log, result.failures)
        counts = {key: result.counts.get(key, 0)
                  for key in ("certifications_paused", "mentors_paused", "failures")}
        log.info(Code.REMEDIATION_DONE,
                 f"Remediation auto-paused {counts['certifications_paused']} of "
                 f"{len(targets)} certifications.",
                 remediation="auto_pause", certifications_paused=counts["certifications_paused"],
                 mentors_paused=counts["mentors_paused"], failures=counts["failures"],
                 missed_ids=targets)
        report = _call(target.store.missed_auto_pauses, settings.org_timezone, None)
        if report.missed_pause_count:
            log.warning(Code.MISSED_AUTO_PAUSE,
                        f"{report.missed_pause_count} expired certifications are still not paused.",
                        missed_pause_count=report.missed_pause_count,
                        missed_ids=list(report.missed_ids),
                        remediation=remediation_for(remediation_id))
        else:
            log.info(Code.MONITORING_CLEAN, "Monitoring found no missed auto-pauses.",
                     missed_pause_count=0)
    left = set(report.missed_ids)
    of_run = [item for item in targets if item in left]
    console.out("")
    console.out(f"Remediated {counts['certifications_paused']} of {len(targets)} certification(s) "
                f"({counts['mentors_paused']} mentor(s) paused); monitoring now finds "
                f"{report.missed_pause_count} missed auto-pause(s), {len(of_run)} of them among "
                "the certifications remediated here.")
    if run_id is not None and not of_run:
        console.out(f"Next: {PROG} audit resolve {run_id}")
    return EXIT_MISSED if report.missed_pause_count else EXIT_OK


def cmd_check(args: argparse.Namespace, cli_io: CliIO) -> int:
    console = Console(cli_io, args.output)
    with _target(args) as target:
        settings = target.settings
        log = console.logger(settings)
        report = _call(target.store.missed_auto_pauses, settings.org_timezone, None)
    if report.missed_pause_count:
        log.warning(Code.MISSED_AUTO_PAUSE,
                    f"{report.missed_pause_count} expired certifications are still not paused.",
                    missed_pause_count=report.missed_pause_count,
                    missed_ids=list(report.missed_ids), remediation=CHECK_REMEDIATION)
        return EXIT_MISSED
    log.info(Code.MONITORING_CLEAN, "Monitoring found no missed auto-pauses.",
             missed_pause_count=0)
    return EXIT_OK


def _drop_demo_trigger(target: Target, console: Console) -> None:
    from certexpiry import demo_seed

    assert target.conninfo is not None
    if not demo_seed.is_local(target.conninfo):
        raise UsageError("--drop-demo-trigger only works on a local database")
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        dropped = demo_seed.drop_refusal(conn)
    console.out("Dropped the demo trigger." if dropped else "No demo trigger to drop.")


def cmd_logs(args: argparse.Namespace, cli_io: CliIO) -> int:
    from google.api_core import exceptions as api_exceptions
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError
    from google.cloud.logging import ASCENDING

    run_id = _parse_uuid(args.run_id)
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
    since = datetime.now(UTC) - timedelta(days=args.days)
    filter_ = (f'jsonPayload.cron_run_id="{run_id}" '
               f'AND timestamp>="{since:%Y-%m-%dT%H:%M:%SZ}"')
    sanitizer = Sanitizer()
    count = 0
    try:
        client = cli_io.logging_client(project)
        for entry in client.list_entries(filter_=filter_, order_by=ASCENDING):
            line = json.dumps(_clean(sanitizer, _log_entry_json(entry)), default=json_default)
            cli_io.stdout.write(line + "\n")
            count += 1
        cli_io.stdout.flush()
    except DefaultCredentialsError:
        raise UsageError(
            "no Google Cloud credentials: run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS (the account needs roles/logging.viewer)") from None
    except (GoogleAuthError, api_exceptions.GoogleAPIError) as exc:
        raise UsageError(f"Cloud Logging: {sanitizer.clean(str(exc))}") from None
    except OSError as exc:  # the client could not determine a project
        raise UsageError(f"Cloud Logging: {sanitizer.clean(str(exc))} (pass --project or set "
                         "GOOGLE_CLOUD_PROJECT)") from None
    if count == 0:
        cli_io.stderr.write(f"{PROG}: no log entries for run {run_id} in the last {args.days} "
                            f"days{f' in project {project}' if project else ''}\n")
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
    for attribute, key in (("insert_id", "insertId"), ("trace", "logging.googleapis.com/trace"),
                           ("labels", "logging.googleapis.com/labels")):
        value = getattr(entry, attribute, None)
        if value:
            out.setdefault(key, dict(value) if isinstance(value, Mapping) else value)
    return out


def _clean(sanitizer: Sanitizer, value: Any) -> Any:
    """Defence in depth: entries were sanitised when written; sanitise their strings again."""
    if isinstance(value, str):
        return sanitizer.clean(value)
    if isinstance(value, Mapping):
        return {str(key): _clean(sanitizer, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(sanitizer, item) for item in value]
    return value


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A store call whose failure is a connection/configuration problem for the CLI."""
    try:
        return func(*args, **kwargs)
    except StoreError as exc:
        reason = Sanitizer().clean(" ".join(str(exc).split()))
        raise UsageError(f"the database call {exc.operation} failed: {reason}") from None


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse writing to the CLI's streams."""

    cli_io: CliIO | None = None

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and self.cli_io is not None:
            stream = self.cli_io.stderr if file is sys.stderr else self.cli_io.stdout
            stream.write(message)
            return
        super()._print_message(message, file)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(cli_io: CliIO | None = None) -> argparse.ArgumentParser:
    """The argument parser (every command has --help)."""
    from certexpiry.demo import default_data_dir

    _Parser.cli_io = cli_io
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir", default=str(default_data_dir()), metavar="DIR",
        help="data directory of the embedded PostgreSQL, used when neither DATABASE_URL nor "
             "SUPABASE_URL is set (default: $CERTEXPIRY_DATA_DIR or .pgdata/ in the repository)")
    output = _Parser(add_help=False)
    output.add_argument(
        "--format", dest="output", choices=("auto", "json", "text"), default="auto",
        help="auto (default): text on a terminal, JSON lines when piped")
    output.add_argument("--json", dest="output", action="store_const", const="json",
                        help="same as --format json")
    parser = _Parser(
        prog=PROG,
        description="Operate the nightly certification-expiry job: demo, run, audit, "
                    "remediate, read logs.",
        epilog="Database: DATABASE_URL, else SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, else the "
               "embedded PostgreSQL in --data-dir. Exit codes: 0 ok, 1 missed auto-pauses "
               "remain, 2 usage/configuration/connection error. See docs/operations.md.",
    )
    parser.add_argument("--version", action="version", version=f"certexpiry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", parents=[common], help="run the real function on a seeded local database",
        description="Start the embedded PostgreSQL, seed a generated organisation if it is "
                    "empty, and run main.nightly_sweep through functions-framework and a fake "
                    "Pub/Sub: the nightly trigger, then every continuation. Prints the "
                    "function's JSON log lines, then a summary. Run it twice the same day to see "
                    "that nothing new is sent.")
    demo.add_argument("--mentors", type=_positive_int, default=5_000,
                      help="mentors to generate into an empty database (default 5000)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    demo.add_argument("--fresh", action="store_true",
                      help="drop the demo database first and start over")
    demo.add_argument("--with-failures", action="store_true",
                      help="install a trigger refusing to pause 2 certifications, so the run "
                           "ends with MISSED_AUTO_PAUSE (remove it with remediate "
                           "--drop-demo-trigger, or --fresh)")
    demo.add_argument("--time-budget", type=_positive_float, default=0.1, metavar="SECONDS",
                      help="TIME_BUDGET_S of the function: small, so the run continues itself "
                           "(default 0.1)")
    demo.add_argument("--batch-size", type=_positive_int, default=50,
                      help="BATCH_SIZE (default 50)")
    demo.add_argument("--monitoring-reserve", type=float, default=0.02, metavar="SECONDS",
                      help="MONITORING_RESERVE_S (default 0.02)")
    demo.set_defaults(handler=cmd_demo)

    run = commands.add_parser(
        "run", parents=[common, output], help="one sweep, in process, on the configured database",
        description="Run tonight's sweep in this process with an in-memory publisher: the "
                    "nightly trigger, then every continuation, exactly as the deployed function "
                    "handles them (settings from the environment, as the function reads them). "
                    "A second run the same night is a no-op. Exit 1 if missed auto-pauses remain.")
    run.add_argument("--max-invocations", type=_positive_int, default=10_000,
                     help="stop after this many invocations (default 10000)")
    run.set_defaults(handler=cmd_run)

    seed = commands.add_parser(
        "seed", parents=[common, output], help="generate a demo organisation into an empty "
                                               "local database",
        description="Generate peer mentors and certifications (Norwegian-style fake people) into "
                    "an empty database. Refuses a database that is not local (Unix socket, "
                    "localhost, 127.0.0.1, ::1) unless --allow-remote.")
    seed.add_argument("--mentors", type=_positive_int, default=5_000,
                      help="mentors to generate (default 5000)")
    seed.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    seed.add_argument("--allow-remote", action="store_true",
                      help="allow a database that is not on this machine")
    seed.set_defaults(handler=cmd_seed)

    audit = commands.add_parser(
        "audit", help="the cron_audit_log rows: list, show, resolve",
        description="Read the audit log (one row per run) and acknowledge remediated runs.")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND",
                                          required=True)
    listing = audit_commands.add_parser(
        "list", parents=[common, output], help="the newest runs, unresolved ones marked",
        description="The newest audit rows, newest first; '!' marks runs with missed "
                    "auto-pauses not yet resolved.")
    listing.add_argument("--limit", type=_positive_int, default=DEFAULT_LIST_LIMIT,
                         help=f"rows to show, at most 1000 (default {DEFAULT_LIST_LIMIT})")
    listing.set_defaults(handler=cmd_audit_list)
    show = audit_commands.add_parser(
        "show", parents=[common, output], help="one run, with its missed IDs",
        description="One audit row: totals, missed certification IDs and which of them are "
                    "still missed now. Exit 1 if any still is.")
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(handler=cmd_audit_show)
    resolve = audit_commands.add_parser(
        "resolve", parents=[common, output], help="mark a run resolved after remediation",
        description="Set resolved = true (and resolved_at) on a run's audit row. Refused (exit "
                    "1) while any of the run's missed certifications is still expired and not "
                    "paused, unless --force.")
    resolve.add_argument("run_id", metavar="RUN_ID")
    resolve.add_argument("--force", action="store_true",
                         help="resolve even though some missed certifications are still unpaused")
    resolve.set_defaults(handler=cmd_audit_resolve)

    remediate = commands.add_parser(
        "remediate", parents=[common, output],
        help="auto-pause exactly the certifications a run missed",
        description="Auto-pause the certifications a run reported as missed (or those given "
                    "with --ids) through the same SQL as the sweep (remediate_auto_pauses; "
                    "idempotent: only those still expired and active are touched), then re-run "
                    "the monitoring query. Exit 1 if it still finds missed auto-pauses.")
    remediate.add_argument("run_id", metavar="RUN_ID", nargs="?",
                           help="the run whose missed_ids to remediate")
    remediate.add_argument("--ids", metavar="ID,ID,...",
                           help="only these certification IDs (comma-separated)")
    remediate.add_argument("--drop-demo-trigger", action="store_true",
                           help="first remove the trigger `demo --with-failures` installed "
                                "(local databases only)")
    remediate.set_defaults(handler=cmd_remediate)

    check = commands.add_parser(
        "check", parents=[common, output], help="run the monitoring query now",
        description="The monitoring query the sweep runs at its end (get_missed_auto_pauses), "
                    "now: expired certifications that are neither paused nor recorded as "
                    "auto-paused. Exit 1 if there are any. Writes nothing.")
    check.set_defaults(handler=cmd_check)

    logs = commands.add_parser(
        "logs", help="read a run's entries back from Cloud Logging",
        description="Every Cloud Logging entry with jsonPayload.cron_run_id = RUN_ID, oldest "
                    "first, as JSON lines. Needs Application Default Credentials "
                    "(gcloud auth application-default login) with roles/logging.viewer.")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("--project", help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    logs.add_argument("--days", type=_positive_int, default=30,
                      help="how far back to look (default 30, Cloud Logging's retention)")
    logs.set_defaults(handler=cmd_logs)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def main(argv: Sequence[str] | None = None, *, cli_io: CliIO | None = None) -> int:
    """Parse the arguments, run the command, return the exit code."""
    cli_io = cli_io or CliIO()
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver's platformdirs
    parser = build_parser(cli_io)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    try:
        return int(args.handler(args, cli_io))
    except UsageError as exc:
        cli_io.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except CertexpiryError as exc:
        cli_io.stderr.write(f"{PROG}: error: {Sanitizer().clean(str(exc))}\n")
        return EXIT_USAGE
    except (psycopg.Error, RuntimeError, OSError) as exc:  # no database / embedded server
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        cli_io.stderr.write(f"{PROG}: error: {Sanitizer().clean(first_line)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        cli_io.stderr.write(f"{PROG}: interrupted\n")
        return 130
