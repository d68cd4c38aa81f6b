"""What every command shares about talking to a person: the program name, exit codes, and the
one exception that turns into `error: ...` on stderr with exit 2."""

from __future__ import annotations

import argparse
from uuid import UUID

PROG = "python -m certexpiry"

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A usage, configuration or connection problem: message on stderr, exit 2."""


def parse_uuid(value: str, what: str = "RUN_ID") -> UUID:
    """A UUID argument, or a usage error naming the argument."""
    try:
        return UUID(value.strip())
    except ValueError:
        raise UsageError(f"{what} must be a UUID, got {value!r}") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value
