"""The job as the tests build it: one factory for every test that runs an invocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from certexpiry.log import JsonLogger
from certexpiry.publisher import Publisher
from certexpiry.settings import Settings
from certexpiry.store import Store
from certexpiry.sweep import Job
from certexpiry_ops.fakes import InMemoryPublisher
from certexpiry_ops.local import LOCAL_TOPIC
from tests.logcapture import CapturedLog


def make_job(
    store: Store,
    log: CapturedLog | JsonLogger,
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], float] | None = None,
    new_run_id: Callable[[], UUID] | None = None,
    **settings: Any,
) -> Job:
    """A `Job` on `store`, logging to `log` (a CapturedLog's logger, or a logger of the
    test's own), publishing continuations to LOCAL_TOPIC through `publisher` (default: a new
    InMemoryPublisher); `settings` are the other Settings fields (org_timezone, batch_size...).
    `clock` and `new_run_id` replace the job's monotonic clock and its run ids."""
    job = Job(
        settings=Settings(continuation_topic=LOCAL_TOPIC, **settings),
        store=store,
        publisher=publisher if publisher is not None else InMemoryPublisher(),
        log=log.logger if isinstance(log, CapturedLog) else log,
    )
    if clock is not None:
        job.clock = clock
    if new_run_id is not None:
        job.new_run_id = new_run_id
    return job
