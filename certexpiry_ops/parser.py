"""The argument parser: the options every command shares, then each command group's own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
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
from certexpiry_ops.target import (
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    MIN_CONNECT_TIMEOUT_S,
)
from certexpiry_ops.usage import EXIT_USAGE, PROG, bounded_int

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


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions in one line are wrapped to the terminal; a text with line breaks (every
    epilog's "examples:" block) is kept as written, as RawDescriptionHelpFormatter keeps every
    text, so an example stays one pasteable line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """argparse writing to the CLI's streams; every command's help in HelpFormatter's layout
    (the subcommands' parsers are made by this class too)."""

    cli_io: CliIO | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and self.cli_io is not None:
            stream = self.cli_io.stderr if file is sys.stderr else self.cli_io.stdout
            stream.write(message)
            return
        super()._print_message(message, file)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


EPILOG = f"""\
examples:
  {PROG} demo
  DATABASE_URL=postgresql://... {PROG} check
  {PROG} --json audit list --demo --limit 5

The database, always named: DATABASE_URL, or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY, or --demo
(the embedded PostgreSQL in --data-dir); without one a command refuses. --json (or --format
FORMAT) may stand anywhere on the line.

exit codes: 0 ok; 1 missed auto-pauses remain; 2 usage or configuration; 3 not found (the run,
night or version asked for); 4 the database could not be reached or refused the work;
130 interrupted; 141 the reader of the output went away (| head).
The table, and every command's own page: docs/operations.md, "Output and exit codes"."""

_OUTPUT_FLAGS = ("--json",)
_OUTPUT_OPTIONS = ("--format",)  # with a value


def output_options_last(argv: Sequence[str]) -> list[str]:
    """The line with --json and --format FORMAT moved behind the command, where its parser
    reads them: so `certexpiry --json audit list` and `certexpiry audit --json list` mean
    `certexpiry audit list --json`. Nothing after `--` moves; a --format without a value stays
    for argparse to refuse."""
    front: list[str] = []
    moved: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            break
        if word in _OUTPUT_FLAGS or word.startswith(tuple(f"{o}=" for o in _OUTPUT_OPTIONS)):
            moved.append(word)
        elif word in _OUTPUT_OPTIONS and index + 1 < len(argv):
            moved += argv[index : index + 2]
            index += 1
        else:
            front.append(word)
        index += 1
    return front + moved + list(argv[index:])


def build_parser(cli_io: CliIO | None = None) -> argparse.ArgumentParser:
    """The argument parser (every command has --help)."""
    _Parser.cli_io = cli_io
    common = _Parser(add_help=False)
    common.add_argument(
        "--demo",
        action="store_true",
        help="use the embedded demo database in --data-dir (the one `demo` fills); without it "
        "the database is DATABASE_URL, or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY",
    )
    common.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        metavar="DIR",
        help="data directory of the embedded PostgreSQL, used with --demo "
        "(default: $CERTEXPIRY_DATA_DIR or .pgdata/ in the repository)",
    )
    common.add_argument(
        "--connect-timeout",
        type=bounded_int(MIN_CONNECT_TIMEOUT_S, 600),
        metavar="SECONDS",
        help=f"give up connecting to the database after this long (default: "
        f"${CONNECT_TIMEOUT_ENV} or {DEFAULT_CONNECT_TIMEOUT_S})",
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
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"certexpiry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands, common, output)
    return parser
