"""What every command shares about talking to a person: the program name, exit codes, and the
one exception that turns into `error: ...` on stderr with exit 2."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from uuid import UUID

PROG = "python -m certexpiry"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_prefix() -> str:
    """How to call this CLI from the repository root in this shell: the venv's interpreter
    when that is what runs now (a bare `python` there may lack psycopg), else PROG."""
    venv = os.path.join(_ROOT, ".venv")
    if os.path.abspath(sys.prefix) == venv:
        return ".venv/bin/python -m certexpiry"
    return PROG


EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2


# What an unmigrated (or older) database answers: no service_role, no function, no table.
_UNMIGRATED = re.compile(
    r'role "service_role" does not exist|function public\.\w+\(.*\) does not exist'
    r'|PGRST202|Could not find the function|schema "certexpiry" does not exist'
    r'|relation "public\.\w+" does not exist',
    re.IGNORECASE,
)


def with_migrate_hint(text: str) -> str:
    """The error text, plus where to go when it is what an unmigrated database says."""
    if _UNMIGRATED.search(text):
        return (
            f"{text} (is the database migrated? `{PROG} migrate` applies supabase/migrations/ "
            "to DATABASE_URL, or to the embedded database)"
        )
    return text


class UsageError(Exception):
    """A usage, configuration or connection problem: message on stderr, exit 2."""


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
