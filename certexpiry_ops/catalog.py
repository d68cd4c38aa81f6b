"""Compare what two databases define, read from the server's own catalog (make schema-diff).

Why: the project keeps its schema twice, as the migrations that built production
(`supabase/migrations/`) and as a readable current schema (`supabase/schemas/`, the source of the
baseline migration). Both must build the same database. Comparing the SQL files tells nothing
(the migrations are a history of changes; the schemas are the end state), and comparing
`pg_dump` output is order- and format-sensitive. So each database is read back from `pg_catalog`
with the server's own deparsers (`pg_get_functiondef`, `pg_get_indexdef`, `pg_get_constraintdef`,
`pg_get_triggerdef`, `pg_get_expr`, ...) into a snapshot, "object key" -> canonical text, and two
snapshots are compared key by key. Privileges are normalised (an unset ACL reads as the
built-in default it stands for; items sorted), so the order of grants, or an explicit grant of
the default, is no difference.

What is read: schemas, functions/procedures/aggregates, tables (columns, row level security,
partitioning, options), constraints, indexes, triggers, rules, policies, sequences, views,
types (enums, domains, ranges, composites), default privileges, extensions (by name),
publications and event triggers, with their ACLs, owners and comments. Not read: roles and role
membership (cluster-wide, the same for every database of a server), the migration history
(`supabase_migrations`), objects that belong to an extension (its own version defines them),
statistics, table data.

The command builds one database from each directory on a throwaway embedded server and prints
the differences (exit 1), or one line saying they are the same (exit 0). For each function that
the schemas change or add it also prints the function's `create or replace` text from the
schemas database: a start for the next migration, to review before use. Exit 2: a directory
does not build.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow, tuple_row

from certexpiry_ops import embedded, schema

__all__ = [
    "HEADING",
    "BuildFailed",
    "compare_builds",
    "diff",
    "main",
    "next_migration_start",
    "report",
    "snapshot",
]

Snapshot = dict[str, str]
_Cursor = psycopg.Cursor[TupleRow]

HEADING = "-- a start for the next migration (review before use):"
DIFF_CONTEXT = 2  # unchanged lines around each change in a "differs" entry
DIFF_MAX_LINES = 60  # per key: a rewritten function body is cut here, the key still named

# Schemas the project does not define: the server's own and the migration history.
_NOT_PROJECT = ("information_schema", "supabase_migrations")

_DEFAULT_ACL_TYPES = {
    "r": "tables",
    "S": "sequences",
    "f": "functions",
    "T": "types",
    "n": "schemas",
}
_FUNCTION_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "function"}
_RELATION_KINDS = {
    "r": "table",
    "p": "table",
    "f": "foreign table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "c": "type",
}
_POLICY_COMMANDS = {"*": "all", "r": "select", "a": "insert", "w": "update", "d": "delete"}
_TRIGGER_STATES = {"O": "enabled", "D": "disabled", "R": "enabled replica", "A": "enabled always"}


# -- snapshot ---------------------------------------------------------------------------------


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """Everything the project defines in `conn`'s database, as "object key" -> canonical text.

    Read with `search_path` set to `pg_catalog` only (restored afterwards), so every deparsed
    name outside pg_catalog is schema-qualified whatever the caller's session had.
    """
    found: Snapshot = {}
    with conn.cursor(row_factory=tuple_row) as cur, _catalog_search_path(cur):
        schemas = _schemas(cur, found)
        _functions(cur, schemas, found)
        tables, defined = _relations(cur, schemas, found)
        _columns(cur, tables, defined, found)
        _constraints(cur, tables, found)
        _indexes(cur, tables, found)
        _triggers(cur, tables, found)
        _rules(cur, tables, found)
        _policies(cur, tables, found)
        _sequences(cur, schemas, found)
        _types(cur, schemas, found)
        _default_privileges(cur, found)
        _extensions(cur, found)
        _publications(cur, found)
        _event_triggers(cur, found)
    return found


@contextmanager
def _catalog_search_path(cur: _Cursor) -> Iterator[None]:
    row = cur.execute("select current_setting('search_path')").fetchone()
    cur.execute("select set_config('search_path', 'pg_catalog', false)")
    try:
        yield
    finally:
        cur.execute("select set_config('search_path', %s, false)", (row[0] if row else "",))


def _acl(owner: str, items: Sequence[str] | None) -> str:
    """An object's owner and privileges, one aclitem a line, sorted (grant order is no
    difference)."""
    return "\n".join([f"owner {owner}", *sorted(items or [])])


def _put(found: Snapshot, key: str, value: str, comment: str | None = None) -> None:
    found[key] = value
    if comment is not None:
        found[f"comment {key}"] = comment


def _schemas(cur: _Cursor, found: Snapshot) -> list[int]:
    """The project's schemas; returns their oids, which bound every other query."""
    oids = []
    for oid, name, owner, acl, comment in cur.execute(
        "select n.oid, quote_ident(n.nspname), pg_get_userbyid(n.nspowner),"
        " coalesce(n.nspacl, acldefault('n', n.nspowner))::text[],"
        " obj_description(n.oid, 'pg_namespace')"
        " from pg_namespace n"
        " where n.nspname !~ '^pg_' and n.nspname <> all(%s)",
        (list(_NOT_PROJECT),),
    ):
        oids.append(oid)
        _put(found, f"schema {name}", f"schema {name}", comment)
        found[f"acl schema {name}"] = _acl(owner, acl)
    return oids


def _functions(cur: _Cursor, schemas: list[int], found: Snapshot) -> None:
    """Functions and procedures as `pg_get_functiondef` prints them (arguments and defaults,
    return type, language, volatility, strictness, security definer, parallel safety, cost,
    settings such as search_path, and the body); aggregates by their parts."""
    for kind, signature, definition, owner, acl, comment in cur.execute(
        "select p.prokind,"
        " quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '('"
        "   || coalesce((select string_agg(format_type(a.t, null), ', ' order by a.i)"
        "       from unnest(p.proargtypes::oid[]) with ordinality as a(t, i)), '') || ')',"
        " case when p.prokind = 'a' then"
        "   (select format('aggregate %%s: sfunc %%s, stype %%s, finalfunc %%s, combinefunc %%s,"
        " initcond %%s, kind %%s', p.oid::regprocedure, g.aggtransfn::regprocedure,"
        " format_type(g.aggtranstype, null), g.aggfinalfn, g.aggcombinefn, g.agginitval,"
        " g.aggkind) from pg_aggregate g where g.aggfnoid = p.oid)"
        " else pg_get_functiondef(p.oid) end,"
        " pg_get_userbyid(p.proowner),"
        " coalesce(p.proacl, acldefault('f', p.proowner))::text[],"
        " obj_description(p.oid, 'pg_proc')"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.oid = any(%s::oid[])"
        " and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass"
        "   and d.objid = p.oid and d.deptype = 'e')",
        (schemas,),
    ):
        key = f"{_FUNCTION_KINDS.get(kind, 'function')} {signature}"
        _put(found, key, definition, comment)
        found[f"acl {key}"] = _acl(owner, acl)


def _relations(
    cur: _Cursor, schemas: list[int], found: Snapshot
) -> tuple[dict[int, str], dict[int, str]]:
    """Tables, views and standalone composite types (their columns come from `_columns`).
    Returns oid -> "schema.name" of each of them, for the objects that hang off a relation,
    and oid -> the key of its definition, for the columns."""
    names: dict[int, str] = {}
    defined: dict[int, str] = {}
    for (
        oid,
        relkind,
        name,
        owner,
        acl,
        comment,
        settings,
        view,
        partition_key,
        partition_of,
        inherits,
    ) in cur.execute(
        "select c.oid, c.relkind, quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
        " pg_get_userbyid(c.relowner),"
        " coalesce(c.relacl, acldefault(case c.relkind when 'S' then 's' else 'r' end::\"char\","
        "   c.relowner))::text[],"
        " obj_description(c.oid, 'pg_class'),"
        " array_remove(array["
        "   case c.relpersistence when 'u' then 'unlogged' when 't' then 'temporary' end,"
        "   case when c.relrowsecurity then 'row level security enabled'"
        "        when c.relkind in ('r', 'p') then 'row level security disabled' end,"
        "   case when c.relforcerowsecurity then 'row level security forced' end,"
        "   case when c.relreplident not in ('d', 'n') or"
        "     (c.relreplident = 'n' and c.relkind in ('r', 'p'))"
        "     then 'replica identity ' || case c.relreplident when 'f' then 'full'"
        "     when 'i' then 'using index' else 'nothing' end end,"
        "   case when c.reloptions is not null then"
        "     'with (' || array_to_string(c.reloptions, ', ') || ')' end"
        " ], null),"
        " case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end,"
        " case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,"
        " case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end,"
        " (select string_agg(i.inhparent::regclass::text, ', ' order by i.inhseqno)"
        "   from pg_inherits i where i.inhrelid = c.oid)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.oid = any(%s::oid[]) and c.relkind in ('r', 'p', 'f', 'v', 'm', 'S', 'c')"
        " and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass"
        "   and d.objid = c.oid and d.deptype = 'e')",
        (schemas,),
    ):
        kind = _RELATION_KINDS[relkind]
        key = f"{kind} {name}"
        if relkind == "S":  # defined by `_sequences`; the ACL and comment are read here
            found[f"acl {key}"] = _acl(owner, acl)
            if comment is not None:
                found[f"comment {key}"] = comment
            continue
        names[oid] = name
        defined[oid] = key
        lines = [f"{kind} {name}"]
        if view is not None:
            lines.append(f"as {view.strip()}")
        if partition_key is not None:
            lines.append(f"partition by {partition_key}")
        if partition_of is not None:
            lines.append(f"partition of {inherits}: {partition_of}")
        elif inherits is not None:
            lines.append(f"inherits ({inherits})")
        lines.extend(settings)
        _put(found, key, "\n".join(lines), comment)
        if relkind != "c":  # a composite type's ACL is the type's (`_types`)
            found[f"acl {key}"] = _acl(owner, acl)
    return names, defined


def _columns(
    cur: _Cursor, relations: dict[int, str], defined: dict[int, str], found: Snapshot
) -> None:
    """Each relation's columns, in order (dropped ones left out), in its definition; column
    ACLs and comments as their own keys."""
    columns: dict[int, list[str]] = {}
    for relation, column, definition, acl, comment in cur.execute(
        "select a.attrelid, quote_ident(a.attname),"
        " quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)"
        " || case when a.attcollation <> t.typcollation then"
        "   ' collate ' || a.attcollation::regcollation::text else '' end"
        " || case when a.attgenerated = 's' then"
        "   ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored'"
        "   when d.adbin is not null then ' default ' || pg_get_expr(d.adbin, d.adrelid)"
        "   else '' end"
        " || case a.attidentity when 'a' then ' generated always as identity'"
        "   when 'd' then ' generated by default as identity' else '' end"
        " || case when a.attnotnull then ' not null' else '' end,"
        " a.attacl::text[], col_description(a.attrelid, a.attnum)"
        " from pg_attribute a join pg_type t on t.oid = a.atttypid"
        " left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
        " where a.attrelid = any(%s::oid[]) and a.attnum > 0 and not a.attisdropped"
        " order by a.attrelid, a.attnum",
        (list(relations),),
    ):
        columns.setdefault(relation, []).append(definition)
        name = f"{relations[relation]}.{column}"
        if acl:
            found[f"acl column {name}"] = "\n".join(sorted(acl))
        if comment is not None:
            found[f"comment column {name}"] = comment
    for relation, lines in columns.items():
        key = defined[relation]
        head, *rest = found[key].split("\n")
        found[key] = "\n".join([f"{head} (", *(f"    {line}" for line in lines), ")", *rest])


def _constraints(cur: _Cursor, tables: dict[int, str], found: Snapshot) -> None:
    for table, name, definition, comment in cur.execute(
        "select c.conrelid, quote_ident(c.conname), pg_get_constraintdef(c.oid),"
        " obj_description(c.oid, 'pg_constraint')"
        " from pg_constraint c where c.conrelid = any(%s::oid[])",
        (list(tables),),
    ):
        _put(found, f"constraint {tables[table]}.{name}", definition, comment)


def _indexes(cur: _Cursor, tables: dict[int, str], found: Snapshot) -> None:
    """Indexes as `pg_get_indexdef` prints them (method, keys, include, predicate, options)."""
    for name, definition, clustered, valid, replica, comment in cur.execute(
        "select quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
        " pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisvalid, i.indisreplident,"
        " obj_description(i.indexrelid, 'pg_class')"
        " from pg_index i join pg_class c on c.oid = i.indexrelid"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where i.indrelid = any(%s::oid[])",
        (list(tables),),
    ):
        marks = [
            mark
            for mark, present in (
                (" -- invalid", not valid),
                (" -- clustered", clustered),
                (" -- replica identity", replica),
            )
            if present
        ]
        _put(found, f"index {name}", definition + "".join(marks), comment)


def _triggers(cur: _Cursor, tables: dict[int, str], found: Snapshot) -> None:
    """User triggers (the ones foreign keys create are internal, and covered by the key)."""
    for table, name, definition, state, comment in cur.execute(
        "select t.tgrelid, quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgenabled,"
        " obj_description(t.oid, 'pg_trigger')"
        " from pg_trigger t where t.tgrelid = any(%s::oid[]) and not t.tgisinternal",
        (list(tables),),
    ):
        text = f"{definition}\n{_TRIGGER_STATES.get(state, state)}"
        _put(found, f"trigger {tables[table]}.{name}", text, comment)


def _rules(cur: _Cursor, tables: dict[int, str], found: Snapshot) -> None:
    for table, name, definition, comment in cur.execute(
        "select r.ev_class, quote_ident(r.rulename), pg_get_ruledef(r.oid),"
        " obj_description(r.oid, 'pg_rewrite')"
        " from pg_rewrite r where r.ev_class = any(%s::oid[]) and r.rulename <> '_RETURN'",
        (list(tables),),
    ):
        _put(found, f"rule {tables[table]}.{name}", definition, comment)


def _policies(cur: _Cursor, tables: dict[int, str], found: Snapshot) -> None:
    """Row level security policies: command, permissive or restrictive, roles (sorted),
    `using` and `with check` as the server deparses them."""
    for table, name, command, permissive, roles, using, check, comment in cur.execute(
        "select p.polrelid, quote_ident(p.polname), p.polcmd, p.polpermissive,"
        " array(select case r when 0 then 'public' else pg_get_userbyid(r) end"
        "   from unnest(p.polroles) r order by 1),"
        " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),"
        " obj_description(p.oid, 'pg_policy')"
        " from pg_policy p where p.polrelid = any(%s::oid[])",
        (list(tables),),
    ):
        key = f"policy {tables[table]}.{name}"
        lines = [
            f"policy {name} on {tables[table]}",
            f"as {'permissive' if permissive else 'restrictive'}",
            f"for {_POLICY_COMMANDS.get(command, command)}",
            f"to {', '.join(roles)}",
        ]
        if using is not None:
            lines.append(f"using ({using})")
        if check is not None:
            lines.append(f"with check ({check})")
        _put(found, key, "\n".join(lines), comment)


def _sequences(cur: _Cursor, schemas: list[int], found: Snapshot) -> None:
    """Sequences with their parameters and owning column (identity columns' included)."""
    for name, definition in cur.execute(
        "select quote_ident(n.nspname) || '.' || quote_ident(c.relname),"
        " format('sequence %%s.%%s as %%s start %%s increment %%s minvalue %%s maxvalue %%s"
        " cache %%s%%s', quote_ident(n.nspname), quote_ident(c.relname),"
        " format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,"
        " s.seqcache, case when s.seqcycle then ' cycle' else '' end)"
        " || coalesce((select case d.deptype when 'i' then E'\\nidentity of ' else"
        "   E'\\nowned by ' end || d.refobjid::regclass::text || '.'"
        "   || quote_ident(a.attname) from pg_depend d join pg_attribute a"
        "   on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
        "   where d.classid = 'pg_class'::regclass and d.objid = c.oid"
        "   and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')), '')"
        " from pg_sequence s join pg_class c on c.oid = s.seqrelid"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.oid = any(%s::oid[])"
        " and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass"
        "   and d.objid = c.oid and d.deptype = 'e')",
        (schemas,),
    ):
        found[f"sequence {name}"] = definition


def _types(cur: _Cursor, schemas: list[int], found: Snapshot) -> None:
    """Enums (labels in order), domains (base type, default, not null, constraints), ranges
    and base types; a standalone composite type's attributes come from `_relations`. Array
    types, table row types and multiranges come with what they belong to and are not read."""
    for name, typtype, owner, acl, comment, definition in cur.execute(
        "select quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typtype,"
        " pg_get_userbyid(t.typowner), coalesce(t.typacl, acldefault('T', t.typowner))::text[],"
        " obj_description(t.oid, 'pg_type'),"
        " case t.typtype"
        " when 'e' then 'enum (' || (select string_agg(quote_literal(e.enumlabel), ', '"
        "   order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid) || ')'"
        " when 'd' then 'domain as ' || format_type(t.typbasetype, t.typtypmod)"
        "   || coalesce(' collate ' || nullif(t.typcollation, b.typcollation)::regcollation::text,"
        "     '')"
        "   || coalesce(' default ' || t.typdefault, '')"
        "   || case when t.typnotnull then ' not null' else '' end"
        "   || coalesce((select string_agg(E'\\nconstraint ' || quote_ident(k.conname) || ' '"
        "     || pg_get_constraintdef(k.oid), '' order by k.conname)"
        "     from pg_constraint k where k.contypid = t.oid), '')"
        " when 'r' then (select 'range (subtype ' || format_type(r.rngsubtype, null)"
        "   || coalesce(', collation ' || nullif(r.rngcollation, 0)::regcollation::text, '')"
        "   || ', opclass ' || r.rngsubopc::text || ', canonical ' || r.rngcanonical::text"
        "   || ', subtype_diff ' || r.rngsubdiff::text || ')' from pg_range r"
        "   where r.rngtypid = t.oid)"
        " else 'base type (input ' || t.typinput::text || ', output ' || t.typoutput::text"
        "   || ', length ' || t.typlen || ')'"
        " end"
        " from pg_type t join pg_namespace n on n.oid = t.typnamespace"
        " left join pg_type b on b.oid = t.typbasetype"
        " left join pg_class c on c.oid = t.typrelid"
        " where n.oid = any(%s::oid[])"
        " and (t.typtype in ('e', 'd', 'r', 'b') or c.relkind = 'c')"
        " and not exists (select from pg_type e where e.typarray = t.oid)"
        " and not exists (select from pg_depend d where d.classid = 'pg_type'::regclass"
        "   and d.objid = t.oid and d.deptype = 'e')",
        (schemas,),
    ):
        key = f"type {name}"
        if typtype != "c":  # a composite type was defined by `_relations`
            found[key] = f"type {name} {definition}"
        if comment is not None:
            found[f"comment {key}"] = comment
        found[f"acl {key}"] = _acl(owner, acl)


def _default_privileges(cur: _Cursor, found: Snapshot) -> None:
    """`alter default privileges`: per role, per schema (or all schemas), per object type."""
    for role, schema_name, objtype, acl in cur.execute(
        "select pg_get_userbyid(a.defaclrole), quote_ident(n.nspname), a.defaclobjtype,"
        " a.defaclacl::text[]"
        " from pg_default_acl a left join pg_namespace n on n.oid = a.defaclnamespace"
    ):
        where = f"in schema {schema_name}" if schema_name is not None else "in all schemas"
        what = _DEFAULT_ACL_TYPES.get(objtype, objtype)
        found[f"default privileges for role {role} {where} on {what}"] = "\n".join(
            sorted(acl or [])
        )


def _extensions(cur: _Cursor, found: Snapshot) -> None:
    """Extensions by name only: their objects are the extension's, and versions differ
    between servers without the project changing anything."""
    for (name,) in cur.execute("select quote_ident(extname) from pg_extension"):
        found[f"extension {name}"] = f"extension {name}"


def _publications(cur: _Cursor, found: Snapshot) -> None:
    for name, definition in cur.execute(
        "select quote_ident(p.pubname), format('publication %s%s: insert %s, update %s,"
        " delete %s, truncate %s, via root %s', quote_ident(p.pubname),"
        " case when p.puballtables then ' for all tables' else coalesce(' for ' || ("
        "   select string_agg(quote_ident(t.schemaname) || '.' || quote_ident(t.tablename),"
        "   ', ' order by 1) from pg_publication_tables t where t.pubname = p.pubname), '')"
        " end, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot)"
        " from pg_publication p"
    ):
        found[f"publication {name}"] = definition


def _event_triggers(cur: _Cursor, found: Snapshot) -> None:
    for name, definition in cur.execute(
        "select quote_ident(e.evtname), format('event trigger %s on %s%s execute %s, %s',"
        " quote_ident(e.evtname), e.evtevent,"
        " coalesce(' when tag in (' || array_to_string(e.evttags, ', ') || ')', ''),"
        " e.evtfoid::regprocedure, e.evtenabled)"
        " from pg_event_trigger e"
        " where not exists (select from pg_depend d"
        "   where d.classid = 'pg_event_trigger'::regclass and d.objid = e.oid"
        "   and d.deptype = 'e')"
    ):
        found[f"event trigger {name}"] = definition


# -- comparison -------------------------------------------------------------------------------


def diff(a: Snapshot, b: Snapshot) -> list[str]:
    """What differs between two snapshots, key by key in key order: "only in A: key",
    "only in B: key", or "differs: key" followed by a short unified diff (indented) of the two
    definitions. Empty when they are equal."""
    lines: list[str] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            lines.append(f"only in A: {key}")
        elif key not in a:
            lines.append(f"only in B: {key}")
        elif a[key] != b[key]:
            lines.append(f"differs: {key}")
            changes = list(
                difflib.unified_diff(
                    a[key].splitlines(),
                    b[key].splitlines(),
                    fromfile="A",
                    tofile="B",
                    n=DIFF_CONTEXT,
                    lineterm="",
                )
            )
            if len(changes) > DIFF_MAX_LINES:
                left = len(changes) - DIFF_MAX_LINES
                changes = [*changes[:DIFF_MAX_LINES], f"... ({left} more lines)"]
            lines.extend(f"    {line}" for line in changes)
    return lines


def next_migration_start(a: Snapshot, b: Snapshot) -> list[str]:
    """The `create or replace` text (from B) of every function or procedure that B changes or
    adds, under HEADING; empty when there is none."""
    keys = [
        key
        for key in sorted(b)
        if key.startswith(("function ", "procedure ")) and a.get(key) != b[key]
    ]
    if not keys:
        return []
    lines = [HEADING]
    for key in keys:
        lines.extend([*(b[key].rstrip() + ";").splitlines(), ""])
    return lines


def report(migrations_conninfo: str, schemas_conninfo: str) -> tuple[bool, list[str]]:
    """The command's verdict and output lines for two built databases: A, the one built from
    `supabase/migrations/`, and B, the one built from `supabase/schemas/`."""
    with psycopg.connect(migrations_conninfo, autocommit=True) as conn:
        a = snapshot(conn)
    with psycopg.connect(schemas_conninfo, autocommit=True) as conn:
        b = snapshot(conn)
    differences = diff(a, b)
    if not differences:
        return True, [f"schemas/ and migrations/ define the same catalog ({len(a)} objects)"]
    count = sum(not line.startswith(" ") for line in differences)
    head = (
        f"A: supabase/migrations/ ({len(a)} objects), B: supabase/schemas/ ({len(b)} objects);"
        f" {count} difference{'' if count == 1 else 's'}:"
    )
    start = next_migration_start(a, b)
    return False, [head, *differences, *([""] if start else []), *start]


class BuildFailed(Exception):
    """One of the two directories does not build on an empty database."""


def compare_builds(admin_conninfo: str) -> tuple[bool, list[str]]:
    """On the server of `admin_conninfo` (a superuser), build a database from the migrations
    and one from the schemas, compare them with `report`, and drop both."""
    suffix = uuid.uuid4().hex[:12]
    names = {"migrations": f"catalog_migrations_{suffix}", "schemas": f"catalog_schemas_{suffix}"}
    urls = {side: make_conninfo(admin_conninfo, dbname=name) for side, name in names.items()}
    builders: dict[str, Callable[[str], object]] = {
        "migrations": schema.apply,
        "schemas": schema.apply_schemas,
    }
    try:
        for side, name in names.items():
            with psycopg.connect(admin_conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            try:
                builders[side](urls[side])
            except psycopg.Error as error:
                raise BuildFailed(f"supabase/{side}/ does not build: {error}") from error
        return report(urls["migrations"], urls["schemas"])
    finally:
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            for name in names.values():
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m certexpiry_ops.catalog` (make schema-diff): exit 0 same, 1 different,
    2 a directory does not build."""
    parser = argparse.ArgumentParser(
        prog="python -m certexpiry_ops.catalog",
        description="Build supabase/migrations/ and supabase/schemas/ on a throwaway embedded "
        "PostgreSQL and print what the two catalogs define differently.",
    )
    parser.parse_args(argv)
    data_dir = tempfile.mkdtemp(prefix="certexpiry-catalog-")
    server = embedded.start(data_dir)
    try:
        equal, lines = compare_builds(server.uri)
    except BuildFailed as error:
        print(error, file=sys.stderr)
        return 2
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    for line in lines:
        print(line)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
