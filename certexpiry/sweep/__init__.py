"""The nightly job's invocation: decode, claim, sweep, then hand off or finish.

    job         the Job an invocation works with, and the Outcome it answers
    invocation  handle_event: the message, the claim and its outcomes
    segment     a claimed run's batches, its hand-off or its end
    narrowing   getting past a batch that fails as a whole

The decisions live elsewhere (what is due: SQL; when to stop: budget.py; who owns the run: the
claim RPCs); this package sequences them and logs every step.
"""

from certexpiry.sweep.invocation import handle_event, log_retry
from certexpiry.sweep.job import Job, Outcome

__all__ = ["Job", "Outcome", "handle_event", "log_retry"]
