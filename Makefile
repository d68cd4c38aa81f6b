# The two commands of the README, and a few for development.
.PHONY: demo test check lint test-fast bench schema-diff baseline venv clean

venv:
	@bash scripts/venv.sh

demo: venv
	@.venv/bin/certexpiry demo

test:
	@bash scripts/test.sh

# The contributor's loop: `make check` (lint, format, import contracts, types: the first steps of
# `make test`, a few seconds), then `make test-fast` (well under a minute), `make test` before a
# pull request. .pre-commit-config.yaml runs the same checks as `make check` on each commit.
check: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

lint: check

# The unit tests and the integration tests of the database's contract (the RPCs, the SQL rules,
# grants, run state, the sweep: each test on its own copy of the embedded Postgres template),
# without the coverage gates: about 20 s on a 2-core machine (README, "Measured"). Not here: the
# end-to-end, reliability and Terraform suites, and the integration tests that start processes or
# servers, install the job, compare schemas or run the longer nights (cli, demo_seed, embedded,
# install, migrate, night_work, poisoned_rows, schema_equal, terminal): `make test` runs them all.
# ARGS goes to pytest (ARGS=--lf, ARGS='-k sweep').
FAST_TESTS = tests/unit \
  tests/integration/test_contract.py tests/integration/test_sql_rules.py \
  tests/integration/test_security.py tests/integration/test_run_state.py \
  tests/integration/test_nights.py tests/integration/test_missed_nights.py \
  tests/integration/test_ops_api.py tests/integration/test_plan.py \
  tests/integration/test_failure_report.py tests/integration/test_sweep.py
test-fast: venv
	env -u PYTHONDONTWRITEBYTECODE XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} \
	  .venv/bin/python -m pytest -q --durations=5 -n auto --maxschedchunk 1 \
	  $(FAST_TESTS) $(ARGS)

bench: venv
	.venv/bin/python -m bench.report

# What supabase/schemas/ and supabase/migrations/ build differently (exit 1), from the catalog.
schema-diff: venv
	.venv/bin/python -m certexpiry_ops.catalog

# Regenerate the baseline migration from supabase/schemas/: only before the first release
# (tag v1.0.0); from then on a schema change goes into a new migration (see README).
baseline: venv
	@if git rev-parse -q --verify refs/tags/v1.0.0 >/dev/null; then \
	  echo "baseline: v1.0.0 is released; migrations are append-only: write a new one" \
	       "(make schema-diff prints a start)" >&2; exit 1; fi
	.venv/bin/python -c 'from certexpiry_ops import schema; print(schema.write_baseline())'

clean:
	rm -rf .venv .venv-checkov .pytest_cache .mypy_cache .ruff_cache .coverage
