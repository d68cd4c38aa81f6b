# The function's source archive: main.py, requirements.txt and the runtime
# package certexpiry/ by directory (every .py file in it, subpackages too),
# minus __main__.py. The package is the boundary: the ops toolkit
# (certexpiry_ops/: CLI, demo, embedded Postgres, fakes), tests/, bench/ and
# .venv/ live outside it, the runtime never imports the toolkit (an
# import-linter contract in pyproject.toml), and
# tests/terraform/test_terraform_cli.py renders this list and proves no
# tooling is in it. A new runtime module is deployed without being listed.

locals {
  # terraform/ sits next to main.py, requirements.txt and certexpiry/.
  repo_root = abspath("${path.module}/..")

  source_top_level_files = ["main.py", "requirements.txt"]

  # certexpiry/__main__.py is left out: it only opens the ops command line.
  runtime_not_deployed = ["__main__.py"]

  runtime_files = [
    for name in fileset("${local.repo_root}/certexpiry", "**/*.py") : "certexpiry/${name}"
    if !contains(local.runtime_not_deployed, name)
  ]

  source_files = sort(concat(local.source_top_level_files, local.runtime_files))
}
