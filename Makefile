# The two commands of the README, and a few for development.
.PHONY: demo test lint bench schema-diff baseline venv clean

venv:
	@bash scripts/venv.sh

demo: venv
	@.venv/bin/python -m certexpiry demo

test:
	@bash scripts/test.sh

lint: venv
	.venv/bin/ruff check . && .venv/bin/mypy

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
