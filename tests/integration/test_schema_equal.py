"""supabase/schemas/ and supabase/migrations/ build the same catalog (certexpiry_ops.catalog).

The equality test builds one database from each directory and compares their catalog
snapshots. The other tests show the comparison is worth trusting: two builds from the
migrations compare equal, and each kind of change a schema edit can make (a body, a grant, a
revoke, an index predicate, a function setting, a policy, a comment, a default, a default
privilege, a trigger) planted in one of two equal databases is reported, naming the object.

The migrations are applied once per module (`migrated`); every other database here is a copy
of that one (CREATE DATABASE ... TEMPLATE, a file copy), dropped when its test ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from certexpiry_ops import catalog, embedded, schema

PROCESS_EXPIRY_BATCH = (
    "function public.process_expiry_batch(uuid, integer, text, integer, integer[], integer, text[])"
)
DAYS_LEFT = "function certexpiry.days_left(date, date)"
NEW_DAYS_LEFT = (
    "create or replace function certexpiry.days_left(p_expiry_date date, p_today date)"
    " returns integer language sql immutable as $$ select p_today - p_expiry_date $$"
)


def _create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(statement)
    return make_conninfo(admin, dbname=name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def _snapshot(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return catalog.snapshot(conn)


def _execute(url: str, statements: tuple[str, ...]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def migrated(pg_admin_url: str) -> Iterator[str]:
    """The name of a database built from the migrations, once for the module."""
    name = f"se_migrated_{uuid.uuid4().hex[:12]}"
    schema.apply(_create(pg_admin_url, name))
    yield name
    _drop(pg_admin_url, name)


@pytest.fixture
def new_database(pg_admin_url: str) -> Iterator[Callable[[str | None], str]]:
    """Make a database (a copy of `template` when given), dropped at the end of the test."""
    names: list[str] = []

    def make(template: str | None = None) -> str:
        names.append(f"se_{uuid.uuid4().hex[:16]}")
        return _create(pg_admin_url, names[-1], template)

    yield make
    for name in names:
        _drop(pg_admin_url, name)


@pytest.fixture
def two_copies(migrated: str, new_database: Callable[[str | None], str]) -> tuple[str, str]:
    """Two copies of the migrated database: A as built, B to plant a difference in."""
    return new_database(migrated), new_database(migrated)


def test_schemas_and_migrations_define_the_same_catalog(
    migrated: str, new_database: Callable[[str | None], str]
) -> None:
    from_migrations = _snapshot(new_database(migrated))
    schemas_url = new_database(None)
    schema.apply_schemas(schemas_url)
    from_schemas = _snapshot(schemas_url)

    differences = catalog.diff(from_migrations, from_schemas)
    assert differences == [], "\n".join(["supabase/schemas/ differs:", *differences])
    assert PROCESS_EXPIRY_BATCH in from_schemas
    assert "table public.cron_audit_log" in from_schemas
    assert len(from_schemas) >= 40


def test_two_builds_of_the_migrations_define_the_same_catalog(
    migrated: str, new_database: Callable[[str | None], str]
) -> None:
    """The comparison the equality test relies on: independent builds (other OIDs, another
    order of creation in the server) snapshot the same."""
    rebuilt_url = new_database(None)
    schema.apply(rebuilt_url)
    copy_url = new_database(migrated)
    with psycopg.connect(copy_url, autocommit=True) as conn:
        conn.execute("set search_path = public, certexpiry")
        copy = catalog.snapshot(conn)
        # The snapshot reads with its own search_path and gives the caller's back.
        assert conn.execute("show search_path").fetchone() == ("public, certexpiry",)
    rebuilt = _snapshot(rebuilt_url)

    assert catalog.diff(rebuilt, copy) == []
    assert rebuilt == copy
    assert len(rebuilt) >= 40
    assert PROCESS_EXPIRY_BATCH in rebuilt
    assert "acl table certexpiry.cron_runs" in rebuilt
    assert "index public.certifications_on_schedule_idx" in rebuilt
    # The migration history is the runner's, not the schema's: the schemas build has none.
    assert not [key for key in rebuilt if "supabase_migrations" in key]


@dataclass(frozen=True)
class Plant:
    """Statements that change one object, and the line of the diff that must name it."""

    statements: tuple[str, ...]
    line: str


PLANTS = {
    "function-body": Plant((NEW_DAYS_LEFT,), f"differs: {DAYS_LEFT}"),
    "grant-added": Plant(
        ("grant select on public.cron_audit_log to anon",),
        "differs: acl table public.cron_audit_log",
    ),
    "grant-revoked": Plant(
        ("revoke execute on function public.schema_version() from service_role",),
        "differs: acl function public.schema_version()",
    ),
    "index-predicate": Plant(
        (
            "drop index public.certifications_on_schedule_idx",
            "create index certifications_on_schedule_idx on public.certifications"
            " (expiry_date, id) include (peer_mentor_id) where status = 'active'",
        ),
        "differs: index public.certifications_on_schedule_idx",
    ),
    "function-setting": Plant(
        ("alter function public.complete_run(uuid, integer) set lock_timeout = '1s'",),
        "differs: function public.complete_run(uuid, integer)",
    ),
    "policy-added": Plant(
        (
            "create policy cron_audit_log_planted_read on public.cron_audit_log"
            " for select to authenticated using (resolved)",
        ),
        "only in B: policy public.cron_audit_log.cron_audit_log_planted_read",
    ),
    "comment-changed": Plant(
        ("comment on column certexpiry.cron_runs.segment is 'Planted.'",),
        "differs: comment column certexpiry.cron_runs.segment",
    ),
    "column-default": Plant(
        ("alter table certexpiry.cron_runs alter column segment set default 1",),
        "differs: table certexpiry.cron_runs",
    ),
    "default-privilege": Plant(
        ("alter default privileges in schema certexpiry grant select on tables to anon",),
        "only in B: default privileges for role postgres in schema certexpiry on tables",
    ),
    "trigger-changed": Plant(
        (
            "drop trigger certifications_next_action on public.certifications",
            "create trigger certifications_next_action before insert or update of expiry_date"
            " on public.certifications for each row execute function certexpiry.reset_next_action()",
        ),
        "differs: trigger public.certifications.certifications_next_action",
    ),
    "index-dropped": Plant(
        ("drop index certexpiry.cron_runs_unfinished_idx",),
        "only in A: index certexpiry.cron_runs_unfinished_idx",
    ),
    "column-type": Plant(
        ("alter table public.cron_audit_log alter column segments type bigint",),
        "differs: table public.cron_audit_log",
    ),
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_difference_is_reported_by_name(
    two_copies: tuple[str, str], plant: Plant
) -> None:
    a_url, b_url = two_copies
    _execute(b_url, plant.statements)
    differences = catalog.diff(_snapshot(a_url), _snapshot(b_url))
    assert differences
    assert plant.line in differences, "\n".join(differences)
    # The other entries are the diff of that one object: nothing else is reported.
    assert [line for line in differences if not line.startswith(" ")] == [plant.line]


def test_the_order_of_grants_is_no_difference(two_copies: tuple[str, str]) -> None:
    """The owner's privileges taken away and given back move its ACL item behind
    service_role's: the same privileges, in another order."""
    a_url, b_url = two_copies
    _execute(
        b_url,
        (
            "revoke all on public.cron_audit_log from postgres",
            "grant all on public.cron_audit_log to postgres",
        ),
    )
    with psycopg.connect(b_url) as conn:
        acl = conn.execute(
            "select relacl::text[] from pg_class where oid = 'public.cron_audit_log'::regclass"
        ).fetchone()
    assert acl is not None
    assert acl[0][0].startswith("service_role=")  # the order did change
    assert catalog.diff(_snapshot(a_url), _snapshot(b_url)) == []


def test_diff_shows_the_changed_lines() -> None:
    a = {"function f()": "body\nselect 1\nend", "only a": "x", "same": "y"}
    b = {"function f()": "body\nselect 2\nend", "only b": "z", "same": "y"}
    assert catalog.diff(a, b) == [
        "differs: function f()",
        "    --- A",
        "    +++ B",
        "    @@ -1,3 +1,3 @@",
        "     body",
        "    -select 1",
        "    +select 2",
        "     end",
        "only in A: only a",
        "only in B: only b",
    ]


def test_report_names_the_difference_and_starts_the_next_migration(
    two_copies: tuple[str, str],
) -> None:
    a_url, b_url = two_copies
    _execute(b_url, (NEW_DAYS_LEFT,))
    equal, lines = catalog.report(a_url, b_url)
    assert not equal
    assert lines[0].startswith("A: supabase/migrations/ (")
    assert lines[0].endswith("; 1 difference:")
    assert f"differs: {DAYS_LEFT}" in lines
    start = lines[lines.index(catalog.HEADING) + 1 :]
    assert start[0] == (
        "CREATE OR REPLACE FUNCTION certexpiry.days_left(p_expiry_date date, p_today date)"
    )
    assert "AS $function$ select p_today - p_expiry_date $function$;" in start
    # The start is SQL that recreates B's function: applied to A, the two are equal again.
    _execute(a_url, ("\n".join(start),))
    assert catalog.report(a_url, b_url)[0]


def test_report_on_equal_databases_is_one_line(two_copies: tuple[str, str]) -> None:
    equal, lines = catalog.report(*two_copies)
    count = len(_snapshot(two_copies[0]))
    assert equal
    assert lines == [f"schemas/ and migrations/ define the same catalog ({count} objects)"]


@dataclass
class _SameServer:
    """Stands in for the embedded server `main` starts: the test session's server."""

    uri: str
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


def _schemas_as_migrations_plus(
    *statements: str,
) -> Callable[..., None]:
    def build(conninfo: str, *, bootstrap: bool = True) -> None:
        schema.apply(conninfo, bootstrap=bootstrap)
        _execute(conninfo, statements)

    return build


def _leftover_databases(admin: str) -> list[str]:
    with psycopg.connect(admin) as conn:
        return [
            str(name)
            for (name,) in conn.execute(
                "select datname from pg_database where datname like 'catalog\\_%'"
            )
        ]


@pytest.mark.parametrize(
    ("plant", "code"),
    [((), 0), ((NEW_DAYS_LEFT,), 1), (("select 1 / 0",), 2)],
    ids=["same", "different", "does-not-build"],
)
def test_the_command(
    pg_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    plant: tuple[str, ...],
    code: int,
) -> None:
    """`python -m certexpiry_ops.catalog` end to end, on the session's server and with a
    schemas build that is the migrations plus a planted change (the real one is the other
    engineer's work in progress)."""
    server = _SameServer(pg_admin_url)
    data_dirs: list[Path] = []

    def start(data_dir: str) -> _SameServer:
        data_dirs.append(Path(data_dir))
        return server

    monkeypatch.setattr(embedded, "start", start)
    monkeypatch.setattr(schema, "apply_schemas", _schemas_as_migrations_plus(*plant))

    assert catalog.main([]) == code
    out, err = capsys.readouterr()
    assert server.stopped
    assert not data_dirs[0].exists()
    assert _leftover_databases(pg_admin_url) == []
    if code == 0:
        assert out.startswith("schemas/ and migrations/ define the same catalog (")
        assert err == ""
    elif code == 1:
        assert f"differs: {DAYS_LEFT}\n" in out
        assert f"\n{catalog.HEADING}\nCREATE OR REPLACE FUNCTION certexpiry.days_left(" in out
    else:
        assert out == ""
        assert err.startswith("supabase/schemas/ does not build: division by zero")
