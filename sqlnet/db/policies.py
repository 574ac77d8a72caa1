"""Row-level security on sqlnet's own tables: networks kept apart.

A role sees and changes the records of a network only when it may update that network's weights1
(what `sqlnet grants ROLE --schema S` gives), and the records of a run only when it sees the run. The
tables' owner (and superusers) see everything, as PostgreSQL exempts them. Expressions are written out
in full, with pg_catalog names only: no function to trust.
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.db.connection import Session

POLICY = "sqlnet_network"


def may_train(network: str) -> str:
    """SQL that is true when the current role may train the network in schema `network` (a column)."""
    return (
        "EXISTS (SELECT FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {network} AND c.relname = 'weights1' "
        "AND pg_catalog.has_table_privilege(c.oid, 'UPDATE'))"
    )


def sees_run(table: str) -> str:
    return f"EXISTS (SELECT FROM sqlnet.runs AS r WHERE r.run_id = {table}.run_id)"


def ensure_policy(s: Session, schema: str, table: str, expression: str) -> None:
    """Row-level security on one of sqlnet's tables, made by its owner (no one else may): a role that
    does not own the table leaves it as it is."""
    row = s.pg.execute(
        "SELECT c.relrowsecurity, EXISTS (SELECT FROM pg_catalog.pg_policy AS p WHERE p.polrelid = c.oid "
        "AND p.polname = %s), pg_catalog.pg_has_role(c.relowner, 'USAGE') "
        "FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (POLICY, schema, table),
    ).fetchone()
    if row is None or (row[0] and row[1]) or not row[2]:
        return
    ident = sql.Identifier(schema, table)
    if not row[1]:
        s.pg.execute(
            sql.SQL("CREATE POLICY {p} ON {t} USING ({e}) WITH CHECK ({e})").format(
                p=sql.Identifier(POLICY), t=ident, e=sql.SQL(expression)
            )
        )
    s.pg.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
