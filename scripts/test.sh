#!/usr/bin/env bash
# The README's test command: lint, types, the whole test suite with the coverage gates,
# Terraform format and the checkov scan. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contracts (the runtime never imports the tooling)"
.venv/bin/lint-imports
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 \
  --cov --cov-branch --cov-report=term:skip-covered "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "pytest collected no test: failing" >&2
  exit 1
fi
[ $status -eq 0 ] || exit $status
echo "== 100% branch coverage: logging, redaction, monitoring, reports"
.venv/bin/python -m coverage report --fail-under=100 \
  --include='certexpiry/log/*.py,certexpiry/redact/*.py,certexpiry/monitoring.py,certexpiry/reports.py'
# Everything measured (certexpiry/ and certexpiry_ops/): a floor just below what the suite reaches
# (90.33% on 2026-12-03). coverage rounds the total to whole percents before comparing, so this
# fails below 89.5%: room for a few timing-dependent branches (about 45 lines or branches), none
# for an untested module. Raise it as the figure rises; never lower it to let a change pass.
echo "== coverage floor: 90% of lines and branches over everything measured (total:)"
.venv/bin/python -m coverage report --fail-under=90 --format=total
echo "== terraform fmt"
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive terraform
else
  echo "terraform binary not present: fmt check not run"
fi
echo "== checkov"
bash scripts/checkov.sh
