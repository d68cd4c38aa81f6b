"""The argument parser: the options every command shares, then each command group's own."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from certexpiry import __version__
from certexpiry_ops.commands import (
    audit,
    check,
    deliver,
    demo,
    install,
    logs,
    migrate,
    nights,
    plan,
    remediate,
    run,
    seed,
)
from certexpiry_ops.console import CliIO
from certexpiry_ops.embedded import default_data_dir
from certexpiry_ops.usage import EXIT_USAGE, PROG

COMMAND_GROUPS = (
    demo,
    migrate,
    install,
    plan,
    run,
    nights,
    seed,
    audit,
    remediate,
    check,
    deliver,
    logs,
)


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
    _Parser.cli_io = cli_io
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        metavar="DIR",
        help="data directory of the embedded PostgreSQL, used when neither DATABASE_URL nor "
        "SUPABASE_URL is set (default: $CERTEXPIRY_DATA_DIR or .pgdata/ in the repository)",
    )
    output = _Parser(add_help=False)
    output.add_argument(
        "--format",
        dest="output",
        choices=("auto", "json", "text"),
        default="auto",
        help="auto (default): text on a terminal, JSON lines when piped",
    )
    output.add_argument(
        "--json", dest="output", action="store_const", const="json", help="same as --format json"
    )
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
    for group in COMMAND_GROUPS:
        group.register(commands, common, output)
    return parser
