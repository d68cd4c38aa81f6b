"""certexpiry.error_names (issue 22, "Nothing personal leaves"): of an error's diagnostics'
names and the functions its context names, only those the database's catalog has. A trigger
can set every one of those fields to any text, so a name is kept because the catalog has it,
never because it looks like one."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from certexpiry.errors import DatabaseError
from certexpiry.store.postgres import PgTransport, as_api_role, checked_names
from tests import faults

Conn = psycopg.Connection[Any]

# What a trigger may put in the fields: a name, a national id, free text.
ATTACK = {
    "p_constraint": "Kari Nordmann",
    "p_schema": "ola",
    "p_table": "nordmann",
    "p_column": "kari",
    "p_datatype": "åse",
}


def names(
    db: Conn,
    *,
    p_constraint: str | None = None,
    p_schema: str | None = None,
    p_table: str | None = None,
    p_column: str | None = None,
    p_datatype: str | None = None,
    p_context: str | None = None,
) -> dict[str, str]:
    """certexpiry.error_names as the job calls it: as service_role."""
    with as_api_role(db):
        row = db.execute(
            "select certexpiry.error_names(%s, %s, %s, %s, %s, %s)",
            (p_constraint, p_schema, p_table, p_column, p_datatype, p_context),
        ).fetchone()
    assert row is not None
    result: dict[str, str] = row[0]
    return result


def test_names_the_catalog_has_are_kept(db: Conn) -> None:
    assert names(
        db,
        p_constraint="certification_idempotency_log_once",
        p_schema="certexpiry",
        p_table="certifications",
        p_column="expiry_date",
        p_datatype="date",
    ) == {
        "constraint_name": "certification_idempotency_log_once",
        "schema_name": "certexpiry",
        "table_name": "certifications",
        "column_name": "expiry_date",
        "datatype_name": "date",
    }


def test_names_a_trigger_made_up_are_dropped(db: Conn) -> None:
    """RAISE ... USING COLUMN = 'kari', CONSTRAINT = 'Kari Nordmann', ...: nothing is kept."""
    assert names(db, **ATTACK) == {}
    assert names(db, **ATTACK, p_context="Kari Nordmann 01019012345") == {}


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_are_absent(db: Conn, value: str | None) -> None:
    assert (
        names(
            db,
            p_constraint=value,
            p_schema=value,
            p_table=value,
            p_column=value,
            p_datatype=value,
            p_context=value,
        )
        == {}
    )


def test_each_name_is_checked_on_its_own(db: Conn) -> None:
    """A real table next to a made-up schema: the table is kept, the schema is not."""
    assert names(db, p_schema="ola", p_table="peer_mentors") == {"table_name": "peer_mentors"}
    assert names(db, p_schema="public", p_table="nordmann") == {"schema_name": "public"}


def test_a_name_must_be_the_catalogs_exactly(db: Conn) -> None:
    """Checked, not pattern-matched: a datatype by its catalog name (int4, not integer), a
    name in another case or with a qualifier is not the catalog's."""
    assert names(db, p_datatype="int4") == {"datatype_name": "int4"}
    assert names(db, p_datatype="integer") == {}
    assert names(db, p_table="Certifications") == {}
    assert names(db, p_table="public.certifications") == {}
    assert names(db, p_schema="PUBLIC") == {}


def test_a_table_is_a_relation_of_a_table_kind(db: Conn) -> None:
    """Tables, views and the like count; an index or a composite type is no table."""
    db.execute("create view public.mentor_names as select id from public.peer_mentors")
    assert names(db, p_table="mentor_names") == {"table_name": "mentor_names"}
    assert names(db, p_table="certifications_pkey") == {}  # an index
    assert names(db, p_table="page_row") == {}  # certexpiry's composite type


def test_a_column_is_checked_against_its_table(db: Conn) -> None:
    """A column of the table the error names, when the catalog has that table; of any table
    otherwise. A composite type's attribute and a dropped column are no column."""
    assert names(db, p_table="certifications", p_column="status") == {
        "table_name": "certifications",
        "column_name": "status",
    }
    # national_id is the mentors' column, not the certifications'.
    assert names(db, p_table="certifications", p_column="national_id") == {
        "table_name": "certifications"
    }
    assert names(db, p_column="national_id") == {"column_name": "national_id"}
    assert names(db, p_table="nordmann", p_column="national_id") == {"column_name": "national_id"}
    assert names(db, p_column="after_tonight") == {}  # an attribute of certexpiry.page_row
    db.execute("create table public.scratch (id integer, kari_nordmann text)")
    assert names(db, p_column="kari_nordmann") == {"column_name": "kari_nordmann"}
    db.execute("alter table public.scratch drop column kari_nordmann")
    assert names(db, p_column="kari_nordmann") == {}
    assert names(db, p_column="ctid") == {}  # a system column (attnum < 0)


def _context_of(db: Conn, call: str) -> str:
    """The context of the error `call` raises, as an exception block reads it."""
    db.execute(
        "create or replace function public.context_of(p_call text) returns text "
        "language plpgsql as $$ declare v_context text; begin execute p_call; return null; "
        "exception when others then get stacked diagnostics v_context = pg_exception_context; "
        "return v_context; end $$"
    )
    row = db.execute("select public.context_of(%s)", (call,)).fetchone()
    assert row is not None
    assert row[0]
    context: str = row[0]
    return context


def test_routine_names_the_contexts_functions_innermost_first(db: Conn) -> None:
    """PL/pgSQL and SQL functions, qualified, quoted or on the search path, as a real error's
    context names them: innermost first, joined by " < "; the statements quoted in between
    (which may hold any text) are not."""
    db.execute(
        'create schema "Odd Schema"; '
        'create function "Odd Schema"."refuse ""it"" now"() returns void language plpgsql as '
        "$$ begin raise exception 'no for Kari Nordmann'; end $$; "
        "create function public.through_sql() returns void language sql as "
        '$$ select 1; select "Odd Schema"."refuse ""it"" now"() $$; '
        "create function public.outer_one() returns void language plpgsql set search_path = '' "
        "as $$ begin perform public.through_sql(); end $$"
    )
    context = _context_of(db, "select public.outer_one()")
    assert 'PL/pgSQL function "Odd Schema"."refuse ""it"" now"() line 1 at RAISE' in context
    assert 'SQL function "through_sql" statement 2' in context  # two: not inlined
    assert names(db, p_context=context) == {
        "routine": 'Odd Schema.refuse "it" now < through_sql < public.outer_one < context_of'
    }


def test_routine_keeps_only_functions_the_catalog_has(db: Conn) -> None:
    """A function name is kept only if pg_proc has it (in that schema when qualified): a
    statement quoting a line shaped like a context's, an anonymous block, a dropped function
    and a function in a schema that has none by that name are not."""
    context = "\n".join(
        [
            "PL/pgSQL function kari.nordmann() line 1 at RAISE",
            "PL/pgSQL function public.apply_effects(uuid) line 3 at SQL statement",
            'SQL function "Kari Nordmann" statement 1',
            "PL/pgSQL function inline_code_block line 1 at RAISE",
            'SQL statement "select 1',
            'PL/pgSQL function "Ola Nordmann"() line 1 at PERFORM"',
            "PL/pgSQL function certexpiry.apply_auto_pauses(uuid,date,uuid[]) line 5 at SQL statement",
            'SQL function "apply_effects" statement 1',
            "PL/pgSQL function public.process_expiry_batch(uuid,integer,text,integer,integer[],"
            "integer,text[]) line 74 at assignment",
        ]
    )
    assert names(db, p_context=context) == {
        "routine": "certexpiry.apply_auto_pauses < apply_effects < public.process_expiry_batch"
    }
    assert names(db, p_context="SQL statement \"select 'Kari Nordmann'\"") == {}


def test_error_names_is_service_roles_alone(db: Conn) -> None:
    row = db.execute(
        "select has_function_privilege(r, 'certexpiry.error_names(text,text,text,text,text,text)',"
        " 'EXECUTE') from unnest(array['service_role', 'anon', 'authenticated']) r"
    ).fetchall()
    assert [r[0] for r in row] == [True, False, False]


# -- the job's side: certexpiry.store.postgres asks the database which names it may keep ------------

RAISE_MADE_UP_NAMES = (
    "raise exception 'x for Kari Nordmann' using column = 'kari', "
    "constraint = 'Kari Nordmann', table = 'nordmann', schema = 'ola', datatype = 'åse', "
    "detail = 'national id 01019012345', hint = 'ask Kari'"
)


def _service_role(database_url: str) -> Conn:
    """An autocommit connection shaped like PgTransport's: role service_role."""
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute("set role service_role")
    return conn


def _error_of(conn: Conn, query: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(query)
    return caught.value


def test_checked_names_drop_what_a_trigger_made_up(db: Conn, database_url: str) -> None:
    """A trigger's RAISE with made-up names, over the connection that failed (idle again, in
    autocommit): only the routine, which the catalog has, is kept."""
    faults.inject(db, "courses", RAISE_MADE_UP_NAMES, name="made_up", events="insert")
    with _service_role(database_url) as conn:
        db.execute("grant insert on public.courses to service_role")
        error = _error_of(conn, "insert into public.courses (title) values ('t')")
        assert error.diag.column_name == "kari"  # what psycopg's diagnostics hold
        assert checked_names(conn, error.diag) == {"routine": "public.made_up"}


def test_checked_names_keep_a_real_constraints_names(db: Conn, database_url: str) -> None:
    """A real check violation keeps its constraint, schema and table."""
    with _service_role(database_url) as conn:
        db.execute("grant insert on public.courses to service_role")
        db.execute(
            "alter table public.courses add constraint courses_title_check check (title <> '')"
        )
        error = _error_of(conn, "insert into public.courses (title) values ('')")
        assert checked_names(conn, error.diag) == {
            "constraint_name": "courses_title_check",
            "schema_name": "public",
            "table_name": "courses",
        }


def test_checked_names_are_none_without_a_usable_connection(db: Conn, database_url: str) -> None:
    """No connection, a closed one, one inside a failed transaction, or a check that fails
    itself (a role that may not run certexpiry.error_names): no names at all."""
    faults.inject(db, "courses", RAISE_MADE_UP_NAMES, name="made_up", events="insert")
    db.execute("grant insert on public.courses to service_role, anon")
    with _service_role(database_url) as conn:
        diag = _error_of(conn, "insert into public.courses (title) values ('t')").diag
        assert checked_names(None, diag) is None
        with psycopg.connect(database_url) as in_transaction:  # not autocommit
            in_transaction.execute("set role service_role")
            failed = _error_of(in_transaction, "insert into public.courses (title) values ('t')")
            assert in_transaction.info.transaction_status == TransactionStatus.INERROR
            assert checked_names(in_transaction, failed.diag) is None
        with psycopg.connect(database_url, autocommit=True) as anon:
            anon.execute("set role anon")
            assert checked_names(anon, diag) is None  # permission denied for error_names
            assert anon.execute("select 1").fetchone() == (1,)  # and the connection still works
        conn.close()
        assert checked_names(conn, diag) is None


def test_the_transports_error_carries_only_checked_names(db: Conn, database_url: str) -> None:
    """PgTransport.call's DatabaseError: the SQLSTATE and the names the catalog has, never
    the made-up ones, the message, its detail or its hint."""
    faults.inject(db, "certexpiry.cron_runs", RAISE_MADE_UP_NAMES, name="made_up", events="insert")
    transport = PgTransport(database_url)
    try:
        with pytest.raises(DatabaseError) as caught:
            transport.call(
                "claim_nightly_run",
                {"p_run_id": uuid.uuid4(), "p_timezone": "Europe/Oslo", "p_lease_seconds": 60},
            )
    finally:
        transport.close()
    error = caught.value
    assert error.sqlstate == "P0001"
    assert dict(error.names or {}) == {"routine": "public.made_up < public.claim_nightly_run"}
    for text in ("Kari", "kari", "nordmann", "åse", "01019012345"):
        assert text not in repr(vars(error))
        assert text not in str(error)
