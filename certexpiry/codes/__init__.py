"""Error-code catalogue: every log line carries one of these codes.

Why a catalogue: the on-call runbook, the log-entry JSON Schema and the CLI that reads
entries back all key on ``error_code``.  Keeping the code, its default severity, what it
means and what to do about it in one table means the runbook (``runbook_markdown()``) is
generated from the same source the code uses and cannot drift from it. Two modules: the
names (``Code``, ``Severity``) and the runbook text (``CATALOGUE``).
"""

from certexpiry.codes._names import Code, Severity
from certexpiry.codes._runbook import CATALOGUE, CodeInfo, runbook_markdown

__all__ = ["CATALOGUE", "Code", "CodeInfo", "Severity", "runbook_markdown"]
