#!/usr/bin/env bash
# The README's test command: lint, types, the whole test suite with the coverage gates,
# Terraform format and the checkov scan. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
# Bytecode is cached (__pycache__, ignored by git) even where the environment says not to: with
# PYTHONDONTWRITEBYTECODE set, each pytest worker rewrites the asserts of every test module
# again (8.5 s of collection instead of 2 s) and every process a test starts compiles the
# project again.
unset PYTHONDONTWRITEBYTECODE

# The tests leave a core idle about a third of the time (they wait on processes, the database
# and the disk), so mypy and checkov (its own virtualenv: install, then the scan) run beside
# them at the lowest CPU priority (the tests wait on neither); their output and status are
# reported after the tests'.
checkov_log=$(mktemp)
mypy_log=$(mktemp)
(nice -n 19 bash scripts/checkov.sh --install-only && nice -n 19 bash scripts/checkov.sh) \
  >"$checkov_log" 2>&1 &
checkov_job=$!
mypy_pid=
trap 'kill $checkov_job $mypy_pid 2>/dev/null || true; rm -f "$checkov_log" "$mypy_log"' EXIT

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== import contracts (the runtime never imports the tooling)"
.venv/bin/lint-imports
echo "== mypy --strict: started, reported after the tests"
nice -n 19 .venv/bin/mypy >"$mypy_log" 2>&1 &
mypy_pid=$!
# Two workers on a 2-core machine (pytest-xdist; PYTEST_WORKERS=0 runs in one process; three were
# slower, 247 s against 223 s): each starts its own embedded Postgres; tests/leak_plugin.py adds
# up the workers' leak scans. --maxschedchunk 1: a worker takes the next test from one list, the
# long ones first (tests/conftest.py), so both end together (185 s; 236 s in xdist's default
# chunks of a quarter of the list, the long tests all on one worker).
echo "== pytest (${PYTEST_WORKERS:-auto} workers)"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 \
  -n "${PYTEST_WORKERS:-auto}" --maxschedchunk 1 \
  --cov --cov-branch --cov-report=term:skip-covered "$@"
status=$?
# mypy's verdict is shown even when the tests failed: both are worth fixing before the next run.
echo "== mypy --strict (ran beside the tests)"
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
set -e
if [ $status -eq 5 ]; then
  echo "pytest collected no test: failing" >&2
  exit 1
fi
[ $status -eq 0 ] || exit $status
[ $mypy_status -eq 0 ] || exit $mypy_status
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
echo "== checkov (installed and ran beside the tests)"
checkov_status=0
wait "$checkov_job" || checkov_status=$?
cat "$checkov_log" >&2
exit $checkov_status
