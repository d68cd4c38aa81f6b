"""`python -m certexpiry`: the ops command line (see certexpiry.cli)."""

from __future__ import annotations

import sys

from certexpiry.cli import main

if __name__ == "__main__":
    sys.exit(main())
