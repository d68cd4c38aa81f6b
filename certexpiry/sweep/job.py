"""What an invocation works with (the job, wired once per instance) and what it answers."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from certexpiry.log import JsonLogger
from certexpiry.publisher import Publisher
from certexpiry.settings import Settings
from certexpiry.store import Store


class Outcome(enum.Enum):
    """What the entry point tells Pub/Sub."""

    ACK = "ack"
    RETRY = "retry"


@dataclass
class Job:
    """Everything an invocation needs, wired once per instance by main.py."""

    settings: Settings
    store: Store
    publisher: Publisher
    log: JsonLogger
    clock: Callable[[], float] = time.monotonic
    new_run_id: Callable[[], UUID] = uuid.uuid4
