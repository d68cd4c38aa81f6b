"""The error-code catalogue: complete, well-formed, and the docs' runbook table is generated."""

from __future__ import annotations

import json
import re
from pathlib import Path

from certexpiry.codes import CATALOGUE, Code, CodeInfo, Severity, runbook_markdown

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "RUN_STARTED",
    "RUN_RESUMED",
    "SEGMENT_STARTED",
    "BATCH_DONE",
    "CONTINUATION_PUBLISHED",
    "CONTINUATION_PUBLISH_FAILED",
    "DUPLICATE_DELIVERY",
    "RUN_FENCED",
    "MONITORING_CLEAN",
    "MISSED_AUTO_PAUSE",
    "MONITORING_FAILED",
    "AUDIT_WRITTEN",
    "AUDIT_FAILED",
    "RUN_COMPLETED",
    "SUPABASE_RPC_FAILED",
    "SUPABASE_TIMEOUT",
    "DB_OPERATION_FAILED",
    "INVALID_MESSAGE",
    "INVALID_SETTINGS",
    "UNEXPECTED_EXCEPTION",
    "LOG_LINES_DROPPED",
    "LIBRARY_LOG",
    "REMEDIATION_DONE",
}


def test_every_required_code_exists() -> None:
    """The codes the rest of the job relies on are all in the enum."""
    assert REQUIRED.issubset(code.value for code in Code)


def test_code_values_equal_their_names() -> None:
    """A code's value is its name, so logs, enum and docs spell it the same way."""
    assert all(code.value == code.name for code in Code)


def test_catalogue_covers_every_code_and_nothing_else() -> None:
    """Every code has exactly one runbook entry."""
    assert set(CATALOGUE) == set(Code)


def test_catalogue_entries_are_complete() -> None:
    """Each entry has a severity and a non-empty one-line meaning and action."""
    for code, info in CATALOGUE.items():
        assert isinstance(info, CodeInfo), code
        assert isinstance(info.severity, Severity), code
        for text in (info.meaning, info.action):
            assert text.strip() and "\n" not in text, code


def test_severities_are_cloud_logging_names() -> None:
    """Severities use Cloud Logging's spelling: WARNING, never WARN."""
    assert [severity.value for severity in Severity] == ["DEBUG", "INFO", "WARNING", "ERROR"]


def test_runbook_markdown_has_a_row_for_every_code() -> None:
    """The rendered table has a header, a rule and one non-empty row per code, in enum order."""
    lines = runbook_markdown().splitlines()
    assert lines[0] == "| Code | Severity | Meaning | Action |"
    assert lines[1] == "|---|---|---|---|"
    rows = lines[2:]
    assert len(rows) == len(Code)
    for code, row in zip(Code, rows, strict=True):
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert cells[0] == f"`{code.value}`"
        assert cells[1] == CATALOGUE[code].severity.value
        assert all(cells), row


def test_runbook_markdown_escapes_pipes() -> None:
    """A pipe inside a cell cannot break the table."""
    from certexpiry import codes

    assert codes._cell("a | b\nc") == "a \\| b c"


def test_docs_table_is_generated_from_the_catalogue() -> None:
    """docs/logging.md holds exactly runbook_markdown() between its codes markers."""
    text = (ROOT / "docs" / "logging.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- codes:begin -->\n(.*?)<!-- codes:end -->", text, re.S)
    assert block is not None
    assert block.group(1) == runbook_markdown()


def test_schema_lists_exactly_the_catalogue() -> None:
    """The log-entry schema's error_code enum is the catalogue."""
    schema = json.loads((ROOT / "docs" / "log-entry.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["error_code"]["enum"] == [code.value for code in Code]
