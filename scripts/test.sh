#!/usr/bin/env bash
# The README's test command: lint, types, the whole test suite with the coverage gates,
# Terraform format and the checkov scan. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

# checkov's own virtualenv (scripts/checkov.sh) installs in the background while lint, types
# and tests run: the install waits on the network and the disk, the tests on the CPU.
checkov_log=$(mktemp)
bash scripts/checkov.sh --install-only >"$checkov_log" 2>&1 &
checkov_install=$!
trap 'kill "$checkov_install" 2>/dev/null || true; rm -f "$checkov_log"' EXIT

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contracts (the runtime never imports the tooling)"
.venv/bin/lint-imports
echo "== mypy --strict"
.venv/bin/mypy
# Two workers on a 2-core machine (pytest-xdist; PYTEST_WORKERS=0 runs in one process): each
# starts its own embedded Postgres; tests/leak_plugin.py adds up the workers' leak scans.
echo "== pytest (${PYTEST_WORKERS:-auto} workers)"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 -n "${PYTEST_WORKERS:-auto}" \
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
if ! wait "$checkov_install"; then
  cat "$checkov_log" >&2
  echo "checkov: the install failed" >&2
  exit 1
fi
cat "$checkov_log" >&2
bash scripts/checkov.sh
