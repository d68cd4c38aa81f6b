"""The error-code catalogue: complete, well-formed, used by the code, and the docs' tables generated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from certexpiry.codes import CATALOGUE, Code, CodeInfo, Severity, runbook_markdown

ROOT = Path(__file__).resolve().parents[2]
CODES_MODULE = ROOT / "certexpiry" / "codes" / "_names.py"
CATALOGUE_MODULE = ROOT / "certexpiry" / "codes" / "_runbook.py"
SOURCE_DIRS = (ROOT / "certexpiry", ROOT / "certexpiry_ops")
CODE_REFERENCE = re.compile(r"\bCode\.([A-Z][A-Z0-9_]*)\b")
TABLES = (ROOT / "README.md", ROOT / "docs" / "logging.md")


def _source_files() -> list[Path]:
    """Every module of the runtime and the tooling, and main.py; not the catalogue itself."""
    files = [ROOT / "main.py"] + [path for root in SOURCE_DIRS for path in root.rglob("*.py")]
    return sorted(path for path in files if path not in (CODES_MODULE, CATALOGUE_MODULE))


def _references() -> dict[str, list[str]]:
    """Code name -> the files that write `Code.NAME`."""
    found: dict[str, list[str]] = {}
    for path in _source_files():
        for name in CODE_REFERENCE.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def _cells(row: str) -> list[str]:
    """The cells of one Markdown table row, unescaped."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def _table(path: Path) -> str:
    """The text between a document's codes markers."""
    text = path.read_text(encoding="utf-8")
    block = re.search(r"<!-- codes:begin -->\n(.*?)<!-- codes:end -->", text, re.S)
    assert block is not None, f"{path.name} has no codes markers"
    return block.group(1)


def test_code_values_equal_their_names() -> None:
    """A code's value is its name, so logs, enum and docs spell it the same way."""
    assert all(code.value == code.name for code in Code)


def test_no_code_is_an_alias_of_another() -> None:
    """Two members with one value would make the second an alias that vanishes from the enum."""
    assert list(Code.__members__) == [code.name for code in Code]


def test_catalogue_covers_every_code_and_nothing_else() -> None:
    """Every code has exactly one runbook entry, and the catalogue lists them in enum order."""
    assert list(CATALOGUE) == list(Code)


def test_catalogue_entries_are_complete() -> None:
    """Each entry has a severity and a non-empty one-line meaning and action."""
    for code, info in CATALOGUE.items():
        assert isinstance(info, CodeInfo), code
        assert isinstance(info.severity, Severity), code
        for text in (info.meaning, info.action):
            assert text.strip(), code
            assert "\n" not in text, code


def test_severities_are_cloud_logging_names() -> None:
    """Severities use Cloud Logging's spelling: WARNING, never WARN."""
    assert [severity.value for severity in Severity] == ["DEBUG", "INFO", "WARNING", "ERROR"]


def test_every_code_the_source_writes_exists() -> None:
    """Every `Code.NAME` in the runtime and the tooling names a code of the enum (a typo there
    would only fail when that line is reached)."""
    references = _references()
    assert references, "no Code.NAME found: the scan is broken"
    unknown = {name: files for name, files in references.items() if name not in Code.__members__}
    assert unknown == {}


def test_every_catalogued_code_is_written_somewhere() -> None:
    """A code no module writes is a runbook entry for a line that never appears."""
    unused = [code.name for code in Code if code.name not in _references()]
    assert unused == []


def test_runbook_markdown_has_a_row_for_every_code() -> None:
    """The rendered table has a header, a rule and one row per code, in enum order, carrying the
    catalogue's severity, meaning and action."""
    lines = runbook_markdown().splitlines()
    assert lines[0] == "| Code | Severity | Meaning | Action |"
    assert lines[1] == "|---|---|---|---|"
    rows = lines[2:]
    assert len(rows) == len(Code)
    for code, row in zip(Code, rows, strict=True):
        info = CATALOGUE[code]
        assert _cells(row) == [f"`{code.value}`", info.severity.value, info.meaning, info.action]


def test_runbook_markdown_escapes_pipes() -> None:
    """A pipe inside a cell cannot break the table."""
    from certexpiry.codes import _runbook

    assert _runbook._cell("a | b\nc") == "a \\| b c"  # noqa: SLF001  # the table's one escaping rule


@pytest.mark.parametrize("path", TABLES, ids=[path.name for path in TABLES])
def test_docs_tables_are_generated_from_the_catalogue(path: Path) -> None:
    """README.md and docs/logging.md hold exactly runbook_markdown() between their codes markers."""
    assert _table(path) == runbook_markdown()


@pytest.mark.parametrize("path", TABLES, ids=[path.name for path in TABLES])
def test_docs_tables_list_the_catalogue(path: Path) -> None:
    """Read back, each document's table gives every code with its catalogued severity,
    meaning and action."""
    rows = [_cells(line) for line in _table(path).splitlines()[2:]]
    assert rows == [
        [f"`{code.value}`", info.severity.value, info.meaning, info.action]
        for code, info in CATALOGUE.items()
    ]


def test_schema_lists_exactly_the_catalogue() -> None:
    """The log-entry schema's error_code enum is the catalogue."""
    schema = json.loads((ROOT / "docs" / "log-entry.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["error_code"]["enum"] == [code.value for code in Code]
