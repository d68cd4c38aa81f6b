"""Rewrite the README's error-code table from certexpiry/codes.py (the one source)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certexpiry.codes import runbook_markdown  # after the path set-up

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- codes:begin -->\n).*?(<!-- codes:end -->)", re.S)


def synced(text: str) -> str:
    return BLOCK.sub(
        lambda m: m.group(1) + runbook_markdown().rstrip("\n") + "\n" + m.group(2), text
    )


if __name__ == "__main__":
    README.write_text(synced(README.read_text()))
