"""Whose objects sqlnet uses: only its own, the network's owner's, and nothing that runs code behind its back.

sqlnet often runs as a superuser or a database owner in databases where other roles create objects.
Whatever one of them attaches to a table sqlnet writes (a trigger, a rule, a row-level-security policy,
a check constraint or default that calls a function of theirs) or puts into sqlnet's own schemas would
run with the runner's privileges, or make a write silently do something else. So, before it writes,
sqlnet looks, in a few catalog queries, at

- its own schemas (``sqlnet``, ``sqlnet_trace``): who owns the schema and everything in it, who else
  may create objects there, and whether ``sqlnet.progress`` is still the function sqlnet made;
- the network's tables: triggers, rules, row-level security, and every function, operator or type a
  table, view, constraint, default or index of theirs depends on outside ``pg_catalog``;

and refuses, naming the object, its owner and what to do. A trusted role is the current role, a
superuser, the database's owner, or the owner of the network's parameter tables (the network's owner,
who can change those tables at will anyway). The search path is pinned separately
(``sqlnet.db.connection``), so no name sqlnet writes resolves to another role's object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from sqlnet.compile.tables import TableMap
from sqlnet.compile.training import TRACE_SCHEMA
from sqlnet.db import store
from sqlnet.errors import SqlnetError


class Untrusted(SqlnetError):
    """An object sqlnet would use was made, or changed, by a role it does not trust."""


# a role is trusted when it is the current role, a superuser, the database's owner (or the
# pg_database_owner role standing for it), or one of the extra roles given (the network's owners)
TRUSTED = """
  (r.rolname = current_user OR r.rolsuper OR r.rolname = 'pg_database_owner'
   OR r.oid = (SELECT datdba FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   OR r.oid = ANY (%(extra)s::pg_catalog.oid[]))
"""


def network_owners(pg: psycopg.Connection, schema: str | None) -> list[int]:
    """The owners of the parameter tables (weights1.., biases1..) in the network's schema, as role oids:
    read from the catalog, so they are known before the tables are (and before schema sqlnet is read)."""
    if schema is None:
        return []
    rows = pg.execute(
        "SELECT DISTINCT c.relowner::pg_catalog.int8 FROM pg_catalog.pg_class AS c "
        "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND pg_catalog.lower(c.relname) ~ '^(weights|biases)[0-9]+$'",
        (schema,),
    ).fetchall()
    return [int(r[0]) for r in rows]


# every object in a schema with its owner: relations, functions, operators and types
SCHEMA_OBJECTS = """
SELECT kind, name, r.rolname, """ + TRUSTED + """ AS trusted
FROM (
  SELECT 'table' AS kind, c.relname::text AS name, c.relowner AS owner
    FROM pg_catalog.pg_class AS c WHERE c.relnamespace = n.oid
  UNION ALL
  SELECT 'function', p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', p.proowner
    FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = n.oid
  UNION ALL
  SELECT 'operator', o.oprname::text, o.oprowner FROM pg_catalog.pg_operator AS o WHERE o.oprnamespace = n.oid
  UNION ALL
  SELECT 'type', t.typname::text, t.typowner FROM pg_catalog.pg_type AS t WHERE t.typnamespace = n.oid
) AS objects JOIN pg_catalog.pg_roles AS r ON r.oid = objects.owner
"""


def check_own_schema(
    pg: psycopg.Connection,
    schema: str,
    extra: Sequence[int] = (),
    functions: dict[str, str] | None = None,
) -> bool:
    """Refuse schema `schema` (sqlnet's own) if a role sqlnet does not trust owns it or anything in it,
    may create objects in it, or if anything is attached to its tables; `functions` maps each function
    sqlnet made there (name(args)) to its body, which must be unchanged. Returns whether it exists."""
    row = pg.execute(
        "SELECT n.oid, r.rolname, " + TRUSTED + " FROM pg_catalog.pg_namespace AS n "
        "JOIN pg_catalog.pg_roles AS r ON r.oid = n.nspowner WHERE n.nspname = %(schema)s",
        {"schema": schema, "extra": list(extra)},
    ).fetchone()
    if row is None:
        return False
    oid, owner, trusted = row
    fix = (
        f"if you did not make it, find out who did; to start afresh, a superuser can "
        f"DROP SCHEMA {schema} CASCADE (sqlnet recreates it, losing its records)"
    )
    if not trusted:
        raise Untrusted(
            f"schema {schema!r} belongs to role {owner!r}, which sqlnet does not trust (it trusts the current "
            f"role, superusers, the database owner and the network's owner): whatever that role put there "
            f"would run with your privileges; {fix}"
        )
    creators = pg.execute(
        "SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE NOT " + TRUSTED
        + " AND pg_catalog.has_schema_privilege(r.oid, %(ns)s::pg_catalog.oid, 'CREATE') ORDER BY 1",
        {"ns": oid, "extra": list(extra)},
    ).fetchall()
    if creators:
        names = ", ".join(repr(c[0]) for c in creators)
        raise Untrusted(
            f"role {names} may create objects in schema {schema!r}, so it could replace what sqlnet uses "
            f"there: REVOKE CREATE ON SCHEMA {schema} FROM {creators[0][0]}"
        )
    objects = pg.execute(
        SCHEMA_OBJECTS.replace("n.oid", "%(ns)s::pg_catalog.oid"), {"ns": oid, "extra": list(extra)}
    ).fetchall()
    for kind, name, object_owner, object_trusted in objects:
        if not object_trusted:
            raise Untrusted(
                f"{kind} {schema}.{name} belongs to role {object_owner!r}, which sqlnet does not trust; {fix}"
            )
    expected = functions or {}
    bodies: dict[str, str] = dict(
        pg.execute(
            "SELECT p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', "
            "p.prosrc FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = %s::pg_catalog.oid",
            (oid,),
        ).fetchall()
    )
    for name, body in bodies.items():
        if name not in expected:
            raise Untrusted(f"function {schema}.{name} is not sqlnet's: drop it (DROP FUNCTION {schema}.{name})")
        if body.strip() != expected[name].strip():
            raise Untrusted(
                f"function {schema}.{name} is not the one sqlnet made (its body was changed): drop it "
                f"(DROP FUNCTION {schema}.{name}) and sqlnet makes it again"
            )
    other = pg.execute(
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class AS c WHERE c.relnamespace = %s::pg_catalog.oid "
        "AND c.relkind NOT IN ('r', 'S', 'i') ORDER BY 1 LIMIT 1",
        (oid,),
    ).fetchone()
    if other:
        raise Untrusted(
            f"{schema}.{other[0]} is not a table (relkind {other[1]!r}): sqlnet makes only tables in its "
            f"schemas, and reading a view runs its owner's query with your privileges; {fix}"
        )
    # by oid: naming them would need USAGE on the schema, which a role lacking it does not have
    relations = [
        r[0]
        for r in pg.execute(
            "SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relnamespace = %s::pg_catalog.oid AND c.relkind = 'r'",
            (oid,),
        )
    ]
    problems = attachments(pg, relations, rls=False)
    if problems:
        raise Untrusted(
            f"{problems[0]}: sqlnet's own tables carry nothing sqlnet did not put there. Drop it, or ask "
            f"whoever added it"
        )
    return True


# the code a relation runs, or depends on, beyond its columns of built-in types
ATTACHED = """
WITH rel AS (SELECT pg_catalog.unnest(%(rels)s::pg_catalog.oid[]) AS oid),
owned AS (
  SELECT 'pg_class'::pg_catalog.regclass AS classid, rel.oid AS objid FROM rel
  UNION ALL SELECT 'pg_constraint'::pg_catalog.regclass, c.oid
    FROM pg_catalog.pg_constraint AS c JOIN rel ON c.conrelid = rel.oid
  UNION ALL SELECT 'pg_attrdef'::pg_catalog.regclass, d.oid
    FROM pg_catalog.pg_attrdef AS d JOIN rel ON d.adrelid = rel.oid
  UNION ALL SELECT 'pg_class'::pg_catalog.regclass, i.indexrelid
    FROM pg_catalog.pg_index AS i JOIN rel ON i.indrelid = rel.oid
  UNION ALL SELECT 'pg_rewrite'::pg_catalog.regclass, w.oid
    FROM pg_catalog.pg_rewrite AS w JOIN rel ON w.ev_class = rel.oid
  UNION ALL SELECT 'pg_policy'::pg_catalog.regclass, p.oid
    FROM pg_catalog.pg_policy AS p JOIN rel ON p.polrelid = rel.oid
)
SELECT what FROM (
  SELECT 1 AS o, pg_catalog.format('trigger %%I on %%s', t.tgname, t.tgrelid::pg_catalog.regclass) AS what
    FROM pg_catalog.pg_trigger AS t JOIN rel ON t.tgrelid = rel.oid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 2, pg_catalog.format('rule %%I on %%s', w.rulename, w.ev_class::pg_catalog.regclass)
    FROM pg_catalog.pg_rewrite AS w JOIN rel ON w.ev_class = rel.oid WHERE w.rulename <> '_RETURN'
  UNION ALL
  SELECT 3, pg_catalog.format('row-level security on %%s', c.oid::pg_catalog.regclass)
    FROM pg_catalog.pg_class AS c JOIN rel ON c.oid = rel.oid
    WHERE %(rls)s AND c.relrowsecurity OR %(rls)s AND EXISTS (SELECT FROM pg_catalog.pg_policy AS p WHERE p.polrelid = c.oid)
  UNION ALL
  SELECT 4, pg_catalog.format('%%s depends on %%s, which is not part of PostgreSQL',
                   pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
                   pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0))
    FROM pg_catalog.pg_depend AS d JOIN owned ON d.classid = owned.classid AND d.objid = owned.objid
    WHERE (d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.refobjid) <> 'pg_catalog'::pg_catalog.regnamespace)
       OR (d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND (SELECT oprnamespace FROM pg_catalog.pg_operator WHERE oid = d.refobjid) <> 'pg_catalog'::pg_catalog.regnamespace)
       OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.deptype = 'n'
           AND (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.refobjid) <> 'pg_catalog'::pg_catalog.regnamespace)
) AS found ORDER BY o, what
"""


def attachments(pg: psycopg.Connection, relations: Iterable[int], rls: bool = True) -> list[str]:
    """What runs code when these relations (oids) are read or written, one phrase each:
    triggers, rules, row-level security (unless `rls` is False: sqlnet's own tables carry policies
    their trusted owner made), and functions, operators or types from outside pg_catalog that they,
    their views' queries, constraints, defaults, indexes or policies use."""
    rels = list(relations)
    if not rels:
        return []
    return [r[0] for r in pg.execute(ATTACHED, {"rels": rels, "rls": rls}).fetchall()]


def check_network(pg: psycopg.Connection, tables: TableMap) -> None:
    """Refuse a network whose tables carry code, or whose inputs and outputs are views of a role sqlnet
    does not trust."""
    all_tables = [tables.inputs, tables.outputs, *tables.parameter_tables()]
    check_relations(pg, [t.ident for t in all_tables], network_owners(pg, tables.resolved_schema))


def check_relations(pg: psycopg.Connection, idents: Sequence[sql.Composable], owners: Sequence[int] = ()) -> None:
    """Refuse tables that carry code (triggers, rules, policies, functions from outside pg_catalog)
    and views of roles sqlnet does not trust."""
    names = [i.as_string(pg) for i in idents]
    rels = [r[0] for r in pg.execute("SELECT pg_catalog.unnest(%s::pg_catalog.regclass[])::pg_catalog.oid", (names,))]
    problems = attachments(pg, rels)
    if problems:
        raise Untrusted(
            f"{problems[0]}: it would run with your privileges (or change what sqlnet reads and writes). "
            f"Drop it, or ask its owner to, before using this table with sqlnet"
        )
    views = pg.execute(
        "SELECT c.oid::pg_catalog.regclass::text, r.rolname FROM pg_catalog.pg_class AS c "
        "JOIN pg_catalog.pg_roles AS r ON r.oid = c.relowner "
        "WHERE c.oid = ANY (%(rels)s::pg_catalog.oid[]) AND c.relkind IN ('v', 'm') AND NOT " + TRUSTED,
        {"rels": rels, "extra": list(owners)},
    ).fetchall()
    if views:
        name, owner = views[0]
        raise Untrusted(
            f"view {name} belongs to role {owner!r}, which sqlnet does not trust: reading it runs that role's "
            f"query with your privileges. Copy its rows into a table of your own and train on that"
        )


def check_sqlnet_schemas(pg: psycopg.Connection, schema: str | None = None, trace: bool = False) -> None:
    """Refuse schema sqlnet (and, for a command that uses it, sqlnet_trace) when another role made it,
    or anything in it; the owner of the network in `schema` is trusted too. Every command calls this
    once, before it reads anything of sqlnet's."""
    owners = network_owners(pg, schema)
    check_own_schema(pg, store.SCHEMA, owners, {store.PROGRESS_IDENTITY: store.PROGRESS_BODY})
    if trace:
        check_own_schema(pg, TRACE_SCHEMA, owners)


def guard(pg: psycopg.Connection, tables: TableMap, write: bool = True) -> None:
    """Before a command reads or writes a network: lock its tables against new triggers, rules and
    policies for the rest of the transaction (with `write`), then refuse what is attached to them.
    (sqlnet's own schemas are the caller's to check, once: `check_sqlnet_schemas`.)"""
    if write:
        # ROW EXCLUSIVE (what the write-back's UPDATE takes anyway) waits out, and then blocks,
        # CREATE TRIGGER, CREATE RULE, CREATE POLICY and ALTER TABLE until the transaction ends
        for t in tables.parameter_tables():
            pg.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(t.ident))
        for t in (tables.inputs, tables.outputs):
            pg.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(t.ident))
    check_network(pg, tables)
