"""certexpiry_ops: the local tooling of the nightly job (CLI, demo, embedded Postgres, fakes).

It imports the runtime package `certexpiry` and is never imported by it, and it is never
deployed: the function's archive holds `certexpiry/` alone (terraform/source_files.tf).
"""
