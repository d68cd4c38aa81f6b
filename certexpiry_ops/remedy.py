"""Which command fixes the missed auto-pauses monitoring finds now, for the commands that find
them outside a run (`check`, `remediate`, `run` after the night): `remediate RUN_ID` naming a
run whose audit row recorded them (a run that exists, so the command works as printed), and
`remediate --ids` for those no audit row records (the night's audit row failed, or they became
missed after it was written).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from certexpiry_ops.ops import OpsStore
from certexpiry_ops.target import call_store
from certexpiry_ops.usage import PROG

AUDIT_ROWS_SEARCHED = 100  # the newest audit rows looked through for the IDs
SHOWN_IDS = 10  # IDs written out in a `remediate --ids` hint; more are "the missed_ids"


def runs_that_recorded(ops: OpsStore, missed_ids: Sequence[str]) -> tuple[list[UUID], list[str]]:
    """The runs (newest first) whose audit rows recorded the given IDs as missed, each named
    once and only while it covers an ID no newer one did; then the IDs none of them records."""
    left = list(dict.fromkeys(_uuid_text(item) for item in missed_ids if _uuid_text(item)))
    runs: list[UUID] = []
    if not left:
        return runs, left
    for summary in call_store(ops.list_audit, AUDIT_ROWS_SEARCHED):
        if not left:
            break
        if summary.missed_pause_count == 0:
            continue
        entry = call_store(ops.get_audit, summary.run_id)
        recorded = {_uuid_text(item) for item in entry.missed_ids} if entry is not None else set()
        if any(item in recorded for item in left):
            runs.append(summary.run_id)
            left = [item for item in left if item not in recorded]
    return runs, left


def remediation_hint(ops: OpsStore, missed_ids: Sequence[str]) -> str:
    """The instruction a MISSED_AUTO_PAUSE line found outside a run carries: the commands that
    work as printed, for exactly the IDs found."""
    runs, unrecorded = runs_that_recorded(ops, missed_ids)
    steps = [f"`{PROG} remediate {run_id}`" for run_id in runs]
    if unrecorded:
        ids = (
            ",".join(unrecorded)
            if len(unrecorded) <= SHOWN_IDS
            else f"ID,ID,... (the {len(unrecorded)} missed_ids no audit row records)"
        )
        steps.append(f"`{PROG} remediate --ids {ids}`")
    text = f"Run {' and '.join(steps)} to auto-pause exactly these certifications"
    if runs:
        resolves = " and ".join(f"`{PROG} audit resolve {run_id}`" for run_id in runs)
        text += f", then {resolves} once monitoring reports none left"
    return text + "."


def _uuid_text(value: object) -> str:
    """The canonical text of a UUID, or "" for anything else (an audit row's missed_ids are
    jsonb as the sweep wrote them, and the hint holds only values the allow-list admits)."""
    try:
        return str(UUID(str(value)))
    except ValueError:
        return ""
