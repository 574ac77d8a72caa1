"""Least privilege: what a role needs to train a network, checked before anything runs, and granted
by one script (`sqlnet grants ROLE`).

A training reads inputs and outputs, reads and updates the parameter tables, records the run in
schema `sqlnet` and copies mini-batches into temporary tables. Nothing else: a role with exactly
these privileges trains, and a role without one of them gets a message naming the table and the
GRANT that is missing before a single row changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from sqlnet.compile.training import TRACE_SCHEMA
from sqlnet.db import store
from sqlnet.db.tables import TableMap
from sqlnet.errors import SqlnetError

STORE_SCHEMA = store.SCHEMA
# the tables a training writes
STORE_TABLES = tuple(
    t.name
    for t in store.TABLES
)
PROGRESS = store.PROGRESS_SIGNATURE


class MissingPrivilege(SqlnetError):
    """The role may not do something a training needs; nothing was changed."""


@dataclass(frozen=True)
class Need:
    """One privilege on one object, e.g. UPDATE on TABLE public.weights2."""

    privilege: str  # SELECT, UPDATE, INSERT, DELETE, USAGE, CREATE, TEMPORARY, EXECUTE
    kind: str  # TABLE, SCHEMA, DATABASE, FUNCTION
    schema: str | None  # the schema of a table or function
    name: str  # a table, schema or database name, or a function's signature

    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def target(self) -> sql.Composable:
        """The object as GRANT names it."""
        if self.kind == "FUNCTION":  # our own signature, never user text
            return sql.SQL("{}.{}").format(sql.Identifier(self.schema or ""), sql.SQL(self.name))
        if self.schema:
            return sql.Identifier(self.schema, self.name)
        return sql.Identifier(self.name)

    def grant(self, role: str) -> sql.Composed:
        return sql.SQL("GRANT {} ON {} {} TO {}").format(
            sql.SQL(self.privilege), sql.SQL(self.kind), self.target(), sql.Identifier(role)
        )


def training_needs(
    conn: psycopg.Connection, tables: TableMap, trace: bool = False, for_script: bool = False
) -> list[Need]:
    """Every privilege a training of these tables needs, given what of sqlnet's schemas exists
    (for_script: as if they all existed, for a script to run once they do)."""
    schema = tables.resolved_schema
    needs = [Need("USAGE", "SCHEMA", None, schema)]
    needs += [Need("SELECT", "TABLE", schema, t.name) for t in (tables.inputs, tables.outputs)]
    for t in tables.parameter_tables():
        needs += [Need("SELECT", "TABLE", schema, t.name), Need("UPDATE", "TABLE", schema, t.name)]
    (database,) = conn.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
    needs.append(Need("CONNECT", "DATABASE", None, database))
    needs.append(Need("TEMPORARY", "DATABASE", None, database))  # mini-batches, in pg_temp
    present = _schema_exists(conn, STORE_SCHEMA)
    if not (for_script or present):
        needs.append(Need("CREATE", "DATABASE", None, database))  # to create schema sqlnet
    else:
        needs.append(Need("USAGE", "SCHEMA", None, STORE_SCHEMA))
        existing = _tables_in(conn, STORE_SCHEMA) if present else set(STORE_TABLES)
        if set(STORE_TABLES) - existing:
            needs.append(Need("CREATE", "SCHEMA", None, STORE_SCHEMA))
        for table in sorted(set(STORE_TABLES) & existing):
            needs += [Need(p, "TABLE", STORE_SCHEMA, table) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")]
        if present and not _progress_exists(conn):
            needs.append(Need("CREATE", "SCHEMA", None, STORE_SCHEMA))
        else:
            needs.append(Need("EXECUTE", "FUNCTION", STORE_SCHEMA, PROGRESS))
    if trace:
        if for_script or _schema_exists(conn, TRACE_SCHEMA):
            needs += [
                Need("USAGE", "SCHEMA", None, TRACE_SCHEMA),
                Need("CREATE", "SCHEMA", None, TRACE_SCHEMA),
            ]
            # trace tables another role made: this one writes and reads them (none if no schema yet)
            for table in sorted(_tables_in(conn, TRACE_SCHEMA)):
                needs += [Need(p, "TABLE", TRACE_SCHEMA, table) for p in ("SELECT", "INSERT")]
        else:
            needs.append(Need("CREATE", "DATABASE", None, database))
    return list(dict.fromkeys(needs))  # once each, in order


def _schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


# found through the catalog, not by name: resolving a name needs USAGE on its schema
# the one function of that signature: another role's overloads beside it are refused by sqlnet.db.trust
# (read from the catalog, which needs no privilege on the schema; 23, 701, 20: integer, double precision, bigint)
PROGRESS_OID = (
    "SELECT p.oid FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace "
    "WHERE n.nspname = 'sqlnet' AND p.proname = 'progress' AND p.proargtypes = '23 23 23 701 20'::pg_catalog.oidvector"
)


def _progress_exists(conn: psycopg.Connection) -> bool:
    return conn.execute(PROGRESS_OID).fetchone() is not None


def _tables_in(conn: psycopg.Connection, schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        (schema,),
    )
    return {r[0] for r in rows}


def _held_sql(need: Need) -> tuple[str, tuple[str, ...]]:
    """The SQL that says whether the current role holds one privilege (directly, through a role, or
    as owner), and its parameters."""
    if need.kind == "TABLE":
        return (
            "has_table_privilege((SELECT c.oid FROM pg_class AS c JOIN pg_namespace AS n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s), %s)",
            (need.schema or "", need.name, need.privilege),
        )
    if need.kind == "SCHEMA":
        return "has_schema_privilege(%s, %s)", (need.name, need.privilege)
    if need.kind == "DATABASE":
        return "has_database_privilege(%s, %s)", (need.name, need.privilege)
    return f"has_function_privilege(({PROGRESS_OID}), %s)", (need.privilege,)


def lacking(conn: psycopg.Connection, needs: list[Need]) -> list[Need]:
    """The needs the current role does not hold, asked in one query."""
    checks = [_held_sql(n) for n in needs]
    row = conn.execute(
        "SELECT " + ", ".join(text for text, _ in checks), [p for _, params in checks for p in params]
    ).fetchone()
    return [n for n, held in zip(needs, row or ()) if not held]


def check_privileges(conn: psycopg.Connection, tables: TableMap, trace: bool = False) -> None:
    """Fail before anything runs when the role lacks a privilege the training needs."""
    missing = lacking(conn, training_needs(conn, tables, trace))
    if not missing:
        return
    (role,) = conn.execute("SELECT current_user").fetchone()  # type: ignore[misc]
    what = ", ".join(f"{n.privilege} on {n.kind.lower()} {n.label()}" for n in missing)
    grants = "; ".join(n.grant(role).as_string(conn) for n in missing)
    extra = ""
    if any(n.kind == "DATABASE" and n.privilege == "CREATE" for n in missing):
        absent = STORE_SCHEMA if not _schema_exists(conn, STORE_SCHEMA) else TRACE_SCHEMA
        apply = f"sqlnet grants {role} --apply" + (" --trace" if absent == TRACE_SCHEMA else "")
        extra = (
            f" (schema {absent} does not exist yet and role {role} may not create it: `{apply}`, run by "
            f"the owner, creates it and grants the rest)"
        )
    raise MissingPrivilege(
        f"role {role} may not train this network: it lacks {what}{extra}. As the owner of the tables "
        f"(or a superuser) run: {grants}; `sqlnet grants {role}` prints every grant a training needs"
    )


def grant_script(needs: list[Need], role: str) -> list[sql.Composed]:
    """GRANT statements for the needs, one per privilege set and object."""
    by_object: dict[tuple[str, str | None, str], list[str]] = {}
    for n in needs:
        by_object.setdefault((n.kind, n.schema, n.name), []).append(n.privilege)
    return [
        Need(", ".join(privileges), kind, schema, name).grant(role)
        for (kind, schema, name), privileges in by_object.items()
    ]
