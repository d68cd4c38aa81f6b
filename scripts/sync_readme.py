"""Rewrite the error-code tables (README.md, docs/logging.md) from certexpiry/codes/_runbook.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certexpiry.codes import runbook_markdown  # after the path set-up

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (ROOT / "README.md", ROOT / "docs" / "logging.md")
BLOCK = re.compile(r"(<!-- codes:begin -->\n).*?(<!-- codes:end -->)", re.S)


def synced(text: str) -> str:
    return BLOCK.sub(
        lambda m: m.group(1) + runbook_markdown().rstrip("\n") + "\n" + m.group(2), text
    )


if __name__ == "__main__":
    for target in TARGETS:
        target.write_text(synced(target.read_text()))
