"""Before the first release the baseline migration is generated from supabase/schemas/, never
edited by hand (`make baseline`). At the release (tag v1.0.0) the baseline freezes: delete this
test then, and tests/integration/test_schema_equal.py keeps schemas and migrations equal."""

from __future__ import annotations

from certexpiry_ops import schema


def test_the_baseline_is_what_make_baseline_writes() -> None:
    """The committed baseline is the schemas, file by file, as `make baseline` writes them."""
    (baseline,) = schema.migrations()
    assert baseline.name == schema.BASELINE_NAME
    assert baseline.text() == schema.baseline_text()


def test_the_baseline_names_every_schema_file_in_order() -> None:
    """Each schema file appears once, in file-name order, so a reader of the migration can find
    where each part is kept."""
    text = schema.baseline_text()
    marks = [text.index(f"supabase/schemas/{path.name} =====") for path in schema.schema_files()]
    assert marks == sorted(marks)
    assert len(marks) >= 8
