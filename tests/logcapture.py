"""A JsonLogger writing into memory, and helpers to read its lines back."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets

_observers: list[Callable[[CapturedLog], None]] = []


def observe(callback: Callable[[CapturedLog], None]) -> None:
    """Call `callback` with every CapturedLog created from now on (the leak scan uses it)."""
    _observers.append(callback)


class CapturedLog:
    """The logger under test and the JSON entries it wrote."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.stream = io.StringIO()
        self.secrets = secrets
        registry = Secrets()
        for secret in secrets:
            registry.register(secret)
        self.logger = JsonLogger(
            secrets=registry,
            service="certexpiry-test",
            version="test",
            project="test-project",
            stream=self.stream,
        )
        for callback in _observers:
            callback(self)

    @property
    def raw_lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.raw_lines]

    def codes(self) -> list[str]:
        return [entry["error_code"] for entry in self.entries]

    def with_code(self, code: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["error_code"] == code]

    def severities(self) -> set[str]:
        return {entry["severity"] for entry in self.entries}
