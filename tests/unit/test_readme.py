"""The README's error-code table is the catalogue in certexpiry/codes/_runbook.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_code_table_matches_catalogue() -> None:
    """The table between the codes markers is what codes.runbook_markdown() renders."""
    spec = importlib.util.spec_from_file_location(
        "sync_readme", ROOT / "scripts" / "sync_readme.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.synced(text) == text, "run: .venv/bin/python scripts/sync_readme.py"
