# The two commands of the README, and a few for development.
.PHONY: demo test lint bench schema-diff venv clean

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

clean:
	rm -rf .venv .venv-checkov .pytest_cache .mypy_cache .ruff_cache .coverage
