"""What every command shares about talking to a person: the program name, the exit codes, and
the exceptions that turn into `error: ...` on stderr with their exit code.

The exit codes mean one thing each (docs/operations.md "Output and exit codes" is the table):

    0    ok
    1    missed auto-pauses remain (check, run, remediate)
    2    usage or configuration: bad arguments, no database named (UsageError)
    3    not found: the run, night or version asked for does not exist (NotFoundError)
    4    failed: the database could not be reached or refused the work (CommandFailed)
    130  interrupted (Ctrl-C)
    141  the reader of stdout went away (a broken pipe: `| head`), ended quietly
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from uuid import UUID

PROG = "certexpiry"  # the installed command (pyproject [project.scripts]); every hint uses it


EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`


# What an unmigrated (or older) database answers: no service_role, no function, no table; as
# libpq says it, or by SQLSTATE and PostgREST code in the store errors' own words (22023: the
# role service_role does not exist; 42883 function, 3F000 schema, 42P01 table).
_UNMIGRATED = re.compile(
    r'role "service_role" does not exist|function public\.\w+\(.*\) does not exist'
    r'|PGRST202|Could not find the function|schema "certexpiry" does not exist'
    r'|relation "public\.\w+" does not exist|SQLSTATE (?:22023|42883|3F000|42P01)\b',
    re.IGNORECASE,
)


_MIGRATE_HINT = (
    f" (is the database migrated? `{PROG} migrate` applies supabase/migrations/ to the "
    "database DATABASE_URL names, or with --demo to the demo database)"
)


def with_migrate_hint(text: str, said: str | None = None) -> str:
    """The error text, plus where to go when it is what an unmigrated database says; `said`
    (what the database said) is what is matched, when the text shown is not it."""
    if _UNMIGRATED.search(text if said is None else said):
        return text + _MIGRATE_HINT
    return text


# What libpq's own text says, in the command line's words: libpq's text itself is never printed,
# since it can echo part of the connection string (a password read as a host name, a DSN
# fragment after `missing "="`). The first match wins.
_LIBPQ_SAYS = (
    (
        re.compile(r"password authentication failed|no password supplied", re.I),
        "the database refused the credentials",
    ),
    (re.compile(r"connection refused", re.I), "nothing listens at the database's address"),
    (
        re.compile(r"could not translate host name|name or service not known", re.I),
        "the database's host name does not resolve",
    ),
    (re.compile(r"timeout expired|timed out", re.I), "the connection timed out"),
    (re.compile(r"no such file or directory", re.I), "no database server at that socket"),
    (
        re.compile(r"invalid connection option|missing \"=\"|invalid URI|invalid integer", re.I),
        "DATABASE_URL is not a valid connection string",
    ),
    (re.compile(r"database \"[^\"]*\" does not exist", re.I), "that database does not exist"),
    (_UNMIGRATED, "the job's objects are missing in that database"),
)


def database_error(exc: Exception) -> str:
    """A psycopg error as the command line prints it, by allow-list: its meaning in the
    project's own words, the error's class and SQLSTATE, and the migrate hint when it applies."""
    said = str(exc)
    meaning = next((words for pattern, words in _LIBPQ_SAYS if pattern.search(said)), None)
    sqlstate = getattr(exc, "sqlstate", None)
    found = type(exc).__name__ + (f", SQLSTATE {sqlstate}" if sqlstate else "")
    text = f"cannot use the database: {meaning or 'the database refused'} ({found})"
    return with_migrate_hint(text, said)


class UsageError(Exception):
    """A usage or configuration problem: message on stderr, exit 2."""

    exit_code = EXIT_USAGE


class NotFoundError(UsageError):
    """What was asked for does not exist (a run id, a night, a version): exit 3."""

    exit_code = EXIT_NOT_FOUND


class CommandFailed(UsageError):
    """The database could not be reached, or refused the work: exit 4."""

    exit_code = EXIT_FAILED


def parse_uuid(value: str, what: str = "RUN_ID") -> UUID:
    """A UUID argument, or a usage error naming the argument."""
    try:
        return UUID(value.strip())
    except ValueError:
        raise UsageError(f"{what} must be a UUID, got {value!r}") from None


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high` (no upper bound when None)."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    return parse


positive_int = bounded_int(1)


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value
