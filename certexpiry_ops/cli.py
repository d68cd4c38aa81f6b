"""The ops command line: `certexpiry COMMAND` (or `python -m certexpiry COMMAND`).

    demo                  the real function over HTTP on a seeded local database (make demo)
    run                   one sweep, in process, against the configured database
    seed                  generate a demo organisation into an empty local database
    audit list|show|resolve   the cron_audit_log rows; acknowledge a remediated run
    remediate RUN_ID      auto-pause exactly the certifications a run missed
    check                 the monitoring query and the outbox backlog, now (exit 1 if missed
                          auto-pauses remain)
    deliver               the toy sender: drain the outbox through the sender's RPCs
    logs RUN_ID           every Cloud Logging entry of a run, in order, as JSON lines

The database is named, always: DATABASE_URL, or Supabase (SUPABASE_URL +
SUPABASE_SERVICE_ROLE_KEY), or `--demo`, the embedded PostgreSQL the demo uses (`--data-dir`,
default .pgdata/); each command says on stderr which one it uses. Data is read and
written only through the SQL API (certexpiry.store, certexpiry_ops.ops); `seed` is the one
exception, and refuses any database that is not local.

Output: on a terminal, tables and summaries (and a progress line on stderr for `run`); piped,
or with --json, JSON lines on stdout. Errors go to stderr. No personal data is ever printed:
log lines pass the sanitiser, and the SQL API returns IDs and counts only.

Exit codes: 0 ok; 1 missed auto-pauses remain (or resolve refused); 2 usage or configuration
(no database named); 3 not found; 4 the database could not be reached or refused the work.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import psycopg

from certexpiry.errors import CertexpiryError, StoreError
from certexpiry.redact import shared_secrets
from certexpiry.settings import register_environment_secrets
from certexpiry_ops.console import CliIO
from certexpiry_ops.parser import build_parser
from certexpiry_ops.target import notices_to, store_failed
from certexpiry_ops.usage import (
    EXIT_FAILED,
    EXIT_USAGE,
    PROG,
    UsageError,
    database_error,
    with_migrate_hint,
)

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *, cli_io: CliIO | None = None) -> int:
    """Parse the arguments, run the command, return the exit code."""
    cli_io = cli_io or CliIO()
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver's platformdirs
    parser = build_parser(cli_io)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    register_environment_secrets()  # before any command can fail or print
    try:
        with notices_to(cli_io.stderr):  # which database, what it waits for
            return int(args.handler(args, cli_io))
    except UsageError as exc:  # NotFoundError and CommandFailed carry their own code
        cli_io.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.exit_code
    except StoreError as exc:  # a store call outside call_store: the same words, exit 4
        failed = store_failed(exc)
        cli_io.stderr.write(f"{PROG}: error: {failed}\n")
        return failed.exit_code
    except CertexpiryError as exc:
        reason = shared_secrets().scrub(str(exc))
        cli_io.stderr.write(f"{PROG}: error: {with_migrate_hint(reason)}\n")
        return EXIT_USAGE
    except psycopg.Error as exc:  # no database, or it refused: never libpq's own text
        cli_io.stderr.write(f"{PROG}: error: {database_error(exc)}\n")
        return EXIT_FAILED
    except (RuntimeError, OSError) as exc:  # the embedded server
        reason = _embedded_error(exc)
        cli_io.stderr.write(f"{PROG}: error: {with_migrate_hint(reason)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        cli_io.stderr.write(f"{PROG}: interrupted\n")
        return 130


def _embedded_error(exc: RuntimeError | OSError) -> str:
    """The embedded server's error in our words: its class and errno, never its text (an
    OSError quotes a path, pgserver quotes the server's log)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"the local database server failed ({type(exc).__name__}, errno {exc.errno})"
    return f"the local database server failed ({type(exc).__name__})"
