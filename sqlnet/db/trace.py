"""The phase trace: one table per phase in schema ``sqlnet_trace``, every value each phase computed.

The trace tables are named after the phases of the network traced, so they are composed with
``psycopg.sql`` like the training statement itself; each carries the row-level security of sqlnet's
run records (a role sees the trace of the runs it sees).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from sqlnet.compile.training import TRACE_SCHEMA
from sqlnet.db.connection import Session
from sqlnet.db.policies import ensure_policy, sees_run
from sqlnet.db.store import lock_for_ddl
from sqlnet.db.tables import relations, schema_exists
from sqlnet.model.phases import Phase

TRACE_COLUMNS = (
    ("run_id", "integer"),
    ("epoch", "integer"),
    ("batch", "integer"),
    ("sample", "bigint"),
    ("layer", "integer"),
    ("quantity", "text"),
    ("input_node", "integer"),
    ("node", "integer"),
    ("value", "double precision"),
)


def ensure_trace_schema(s: Session) -> None:
    if not schema_exists(s.pg, TRACE_SCHEMA):
        lock_for_ddl(s)
        s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(TRACE_SCHEMA)))


def _tables(s: Session) -> dict[str, list[str]]:
    """The tables of schema sqlnet_trace, with their columns."""
    return {t: [c for c, _, _ in cols] for t, cols in relations(s.pg, TRACE_SCHEMA).items()}


def ensure_trace_tables(s: Session, phases: list[Phase]) -> None:
    """One table per phase in schema sqlnet_trace, commented with what the phase computes.

    Tables an older sqlnet made get the columns they lack, so a new trace never fails on them.
    """
    ensure_trace_schema(s)
    existing = _tables(s)
    if any(phase.table not in existing for phase in phases):
        lock_for_ddl(s)
        existing = _tables(s)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in TRACE_COLUMNS
    )
    for phase in phases:
        table = sql.Identifier(TRACE_SCHEMA, phase.table)
        if phase.table not in existing:
            s.pg.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
            s.pg.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    table, sql.Literal(f"phase {phase.number} · {phase.name}: {phase.comment}")
                )
            )
            ensure_policy(s, TRACE_SCHEMA, phase.table, sees_run(phase.table))
            continue
        have = set(existing[phase.table])
        for name, type_ in TRACE_COLUMNS:
            if name not in have:
                s.pg.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        table, sql.Identifier(name), sql.SQL(type_)
                    )
                )


def trace_rows(s: Session, phase: Phase, run_id: int, epoch: int | None = None) -> list[tuple[Any, ...]]:
    """A phase's values in a traced run, of one epoch or all; phase 0 of epoch e holds the weights e began with."""
    table = sql.Identifier(TRACE_SCHEMA, phase.table)
    query = sql.SQL(
        "SELECT epoch, batch, sample, layer, quantity, input_node, node, value FROM {} WHERE run_id = %s"
        " AND (%s::int IS NULL OR epoch = %s) ORDER BY epoch, batch, layer, quantity DESC, sample, input_node, node"
    ).format(table)
    return s.pg.execute(query, (run_id, epoch, epoch)).fetchall()
