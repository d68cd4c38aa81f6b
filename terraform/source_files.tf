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
    "log",
    "log_capture",
    "log_clean",
    "log_entry",
    "log_line",
    "log_secrets",
    "log_stream",
    "log_template",
    "log_trace",
    "log_writer",
    "messages",
    "monitoring",
    "pg_store",
    "publisher",
    "reports",
    "retry",
    "sanitize",
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
