"""`python -m certexpiry`: kept as a door to the ops command line, which lives in certexpiry_ops.

This file is an entry point, never imported by the runtime, and it is left out of the deployed
archive (terraform/source_files.tf): in the function, `python -m certexpiry` has nothing to run.
The tooling is started by name so the runtime package holds no import of it.
"""

from __future__ import annotations

import runpy

if __name__ == "__main__":
    runpy.run_module("certexpiry_ops", run_name="__main__", alter_sys=True)
