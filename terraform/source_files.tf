# The function's source archive: main.py, requirements.txt and the runtime
# modules of certexpiry/, each named. An explicit allow-list rather than a
# glob, so the ops toolkit (certexpiry_ops/: CLI, demo, embedded Postgres,
# fakes), tests/, bench/, .venv/ or any file added to the repo later can never
# reach production. A new runtime module is deployed once it is listed here;
# tests/terraform/test_wiring.py fails until every module of certexpiry/ is
# either listed or named as not deployed.

locals {
  # terraform/ sits next to main.py, requirements.txt and certexpiry/.
  repo_root = abspath("${path.module}/..")

  source_top_level_files = ["main.py", "requirements.txt"]

  # certexpiry/__main__.py is not listed: it only opens the ops command line.
  runtime_modules = [
    "__init__",
    "budget",
    "codes",
    "contract",
    "errors",
    "log/__init__",
    "log/_capture",
    "log/_chain",
    "log/_fd",
    "log/_logger",
    "log/_stack",
    "log/_trace",
    "log/_writer",
    "messages",
    "monitoring",
    "pg_store",
    "publisher",
    "redact/__init__",
    "redact/_forms",
    "redact/_http",
    "redact/_secrets",
    "redact/_words",
    "reports",
    "retry",
    "settings",
    "store",
    "supabase_store",
    "sweep",
    "wiring",
  ]

  source_files = sort(concat(
    local.source_top_level_files,
    [for module in local.runtime_modules : "certexpiry/${module}.py"],
  ))
}
