"""Before the first release the baseline migration is generated from supabase/schemas/, never
edited by hand (`make baseline`). At the release (tag v1.0.0) the baseline freezes: delete this
test then, and tests/integration/test_schema_equal.py keeps schemas and migrations equal."""

from __future__ import annotations

from certexpiry_ops import schema


def test_the_baseline_is_what_make_baseline_writes() -> None:
    """The committed migrations are the schemas as `make baseline` writes them: the baseline,
    then one migration per online index."""
    committed = schema.migrations()
    assert committed[0].name == schema.BASELINE_NAME
    generated = schema.baseline_files(committed[0].version)
    assert [(m.path.name, m.text()) for m in committed] == generated


def test_only_the_online_indexes_run_outside_a_transaction() -> None:
    """Each online migration is one CONCURRENTLY statement; the baseline is none, and it
    records itself in the job's ledger, so the schema check requires it."""
    baseline, *online = schema.migrations()
    assert not baseline.online
    assert online
    assert all(m.online for m in online)
    assert all(m.text().lower().count("create index concurrently") == 1 for m in online)
    assert f"values ('{baseline.version}', 'baseline')" in baseline.text()
    assert schema.required_version() == baseline.version


def test_the_baseline_names_every_schema_file_in_order() -> None:
    """Each schema file appears once, in file-name order, so a reader of the migration can find
    where each part is kept."""
    text = schema.baseline_text()
    files = [path for path in schema.schema_files() if "concurrently" not in path.read_text()]
    marks = [text.index(f"supabase/schemas/{path.name} =====") for path in files]
    assert marks == sorted(marks)
    assert len(marks) >= 8
