"""`python -m certexpiry_ops`: the ops command line, which is installed as `certexpiry`."""

from __future__ import annotations

import sys

from certexpiry_ops.cli import main

if __name__ == "__main__":
    sys.exit(main())
