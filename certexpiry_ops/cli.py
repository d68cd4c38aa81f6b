"""The ops command line: `certexpiry COMMAND` (installed with the project's `ops` extra:
README, "Install").

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
default .pgdata/); each command says on stderr which one it uses (certexpiry_ops.target). Data
is read and written only through the SQL API (certexpiry.store, certexpiry_ops.ops); `seed` is
the one exception, and refuses any database that is not local.

Output: on a terminal, tables and summaries (and a progress line on stderr for `run`); piped,
or with --json (anywhere on the line), JSON lines on stdout. Errors go to stderr. No personal
data is ever printed: log lines pass the sanitiser, and the SQL API returns IDs and counts only.

Exit codes mean one thing each (certexpiry_ops.usage; docs/operations.md, "Output and exit
codes"): every failure ends here, in main, as its code and one `certexpiry: error:` line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

import psycopg

from certexpiry.errors import CertexpiryError, SettingsError, StoreError
from certexpiry.redact import shared_secrets
from certexpiry.settings import register_environment_secrets
from certexpiry_ops.console import CliIO
from certexpiry_ops.parser import build_parser, output_options_last
from certexpiry_ops.schema import MIGRATIONS_DIR
from certexpiry_ops.target import notices_to, store_failed
from certexpiry_ops.usage import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    UsageError,
    database_error,
    with_migrate_hint,
)

__all__ = ["main"]

NOT_A_CHECKOUT = (
    f"{PROG} runs from the project's checkout (its supabase/ migrations, main.py), and this "
    "install has none: install it editable, `pip install -e '.[ops]'` in the checkout (README, "
    '"Install")'
)


def main(argv: Sequence[str] | None = None, *, cli_io: CliIO | None = None) -> int:
    """Parse the arguments, run the command, return the exit code."""
    cli_io = cli_io or CliIO()
    try:
        return _main(sys.argv[1:] if argv is None else argv, cli_io)
    except BrokenPipeError:  # `certexpiry ... | head`: the reader has all it wanted
        _quiet_stdout(cli_io)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str], cli_io: CliIO) -> int:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver's platformdirs
    parser = build_parser(cli_io)
    try:
        args = parser.parse_args(output_options_last(argv))
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    register_environment_secrets()  # before any command can fail or print
    try:
        return _run(args, cli_io)
    except UsageError as exc:  # NotFoundError and CommandFailed carry their own code
        cli_io.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.exit_code
    except StoreError as exc:  # a store call outside call_store: the same words, exit 4
        failed = store_failed(exc)
        cli_io.stderr.write(f"{PROG}: error: {failed}\n")
        return failed.exit_code
    except SettingsError as exc:  # a setting the environment gives
        reason = shared_secrets().scrub(str(exc))
        cli_io.stderr.write(f"{PROG}: error: {reason}\n")
        return EXIT_USAGE
    except CertexpiryError as exc:  # a store call failed: the database refused the work
        reason = shared_secrets().scrub(str(exc))
        cli_io.stderr.write(f"{PROG}: error: {with_migrate_hint(reason)}\n")
        return EXIT_FAILED
    except psycopg.Error as exc:  # no database, or it refused: never libpq's own text
        cli_io.stderr.write(f"{PROG}: error: {database_error(exc)}\n")
        return EXIT_USAGE if _not_a_connection_string(exc) else EXIT_FAILED
    except BrokenPipeError:
        raise  # main's: quietly, 141
    except (RuntimeError, OSError) as exc:  # the embedded server
        reason = _embedded_error(exc)
        cli_io.stderr.write(f"{PROG}: error: {with_migrate_hint(reason)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        cli_io.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, cli_io: CliIO) -> int:
    """The command, in the checkout it reads; its code, or a broken pipe if the reader of its
    log lines went away while it worked (the Console lets the work finish)."""
    if not MIGRATIONS_DIR.is_dir():  # not supabase/: site-packages has one, the client library
        raise UsageError(NOT_A_CHECKOUT)
    with notices_to(cli_io.stderr):  # which database, what it waits for
        code = int(args.handler(args, cli_io))
    if cli_io.stdout_closed:
        raise BrokenPipeError
    return code


def _not_a_connection_string(exc: psycopg.Error) -> bool:
    """psycopg's own refusal before any server answered (no SQLSTATE): DATABASE_URL is not a
    connection string libpq can read, which is configuration (exit 2), not a failed database."""
    return isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None


def _quiet_stdout(cli_io: CliIO) -> None:
    """After a broken pipe: stdout points at /dev/null, so nothing left in its buffer (flushed
    at exit) raises again and Python prints no `Exception ignored ... Broken pipe` on stderr."""
    if cli_io.stdout is not sys.stdout:
        return  # a test's stream: nothing is flushed at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout
        return


def _embedded_error(exc: RuntimeError | OSError) -> str:
    """The embedded server's error in our words: its class and errno, never its text (an
    OSError quotes a path, pgserver quotes the server's log)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"the local database server failed ({type(exc).__name__}, errno {exc.errno})"
    return f"the local database server failed ({type(exc).__name__})"
