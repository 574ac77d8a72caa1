"""sqlnet's own tables: the record of every run (schema `sqlnet`) and the phase trace (`sqlnet_trace`).

A run keeps its hyperparameters, the loss of every epoch and the weights before and after, so a
training can always be undone (`sqlnet restore`). The run tables are described as data (`StoreTable`); the
trace tables are named after the phases of the network traced, so they are composed with
``psycopg.sql`` like the training statement itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sqlnet.compile.tables import TableMap
from sqlnet.db.connection import Session
from sqlnet.db.guard import held_networks
from sqlnet.db.policies import POLICY, ensure_policy, may_train, sees_run
from sqlnet.db.records import (
    JSON_COLUMNS,
    SCHEMA,
    TABLES,
    networks,
    optimizer_state,
    run_losses,
    run_params,
    run_state,
    runs,
)
from sqlnet.db.tables import relations
from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params

__all__ = [
    "SCHEMA",
    "TABLES",
    "networks",
    "optimizer_state",
    "run_losses",
    "run_params",
    "run_state",
    "runs",
]


def json_value(column: str, value: Any) -> Any:
    """A value as psycopg should send it: JSON columns' lists and dicts as jsonb."""
    return Jsonb(value) if column in JSON_COLUMNS and value is not None else value


# the function's signature, by which it is found (to_regprocedure) and granted
PROGRESS_SIGNATURE = "progress(integer, integer, integer, double precision, bigint)"

PROGRESS_FUNCTION = """
CREATE FUNCTION sqlnet.progress(run integer, epoch integer, batch integer, loss double precision, samples bigint)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  -- called once per update by a training statement: the client reads the NOTICE while the statement runs
  RAISE NOTICE 'sqlnet progress % % % % %', run, epoch, batch, loss, samples;
  RETURN true;
END $$
"""


# how the catalog names it (pg_get_function_identity_arguments), and its body (prosrc): sqlnet refuses a
# sqlnet.progress that another role made or changed (sqlnet.db.trust)
PROGRESS_IDENTITY = "progress(run integer, epoch integer, batch integer, loss double precision, samples bigint)"
PROGRESS_BODY = PROGRESS_FUNCTION.split("$$")[1]


POLICIES = {
    "runs": may_train("runs.schema_name"),
    "run_losses": sees_run("run_losses"),
    "run_params": sees_run("run_params"),
    "optimizer_state": may_train("optimizer_state.network"),
    "networks": may_train("networks.network"),
    "run_state": sees_run("run_state"),
}


def _policies_complete(s: Session) -> bool:
    (n,) = s.pg.execute(
        "SELECT count(*) FROM pg_catalog.pg_policy AS p JOIN pg_catalog.pg_class AS c ON c.oid = p.polrelid "
        "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND p.polname = %s AND c.relrowsecurity AND c.relname = ANY (%s)",
        (SCHEMA, POLICY, [t.name for t in TABLES]),
    ).fetchone()  # type: ignore[misc]
    return int(n) == len(TABLES)


def lock_for_ddl(s: Session) -> None:
    """Trainings that start together on a new database would each create schema sqlnet and fail
    on the others' (duplicate key in pg_namespace): whoever creates waits for whoever is creating.
    Only the first trainings take this lock; it is released when their transaction ends."""
    s.pg.execute("SELECT pg_advisory_xact_lock(hashtextextended('sqlnet schema', 0))")


def _complete(s: Session) -> bool:
    """Whether schema sqlnet has every table, column and function this sqlnet uses (one query)."""
    wanted = [(t.name, c) for t in TABLES for c in t.column_names]
    row = s.pg.execute(
        "SELECT count(*) = %s AND to_regprocedure(%s) IS NOT NULL "
        "FROM information_schema.columns WHERE table_schema = 'sqlnet' "
        "AND (table_name, column_name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        (len(wanted), f"{SCHEMA}.{PROGRESS_SIGNATURE}", [t for t, _ in wanted], [c for _, c in wanted]),
    ).fetchone()
    return bool(row and row[0])


# columns added after the first release: tables an older sqlnet made get them (by their owner)
ADDED_COLUMNS = {
    "run_losses": ("val_loss double precision", "val_accuracy double precision"),
    "runs": ("error text", "checkpoint text"),
    "networks": (
        "validation_fraction double precision",
        "validation_seed integer",
        "id_column text",
        "raw_table text",
    ),
}


def ensure_schema(s: Session) -> None:
    """Create what is missing of schema sqlnet. Nothing is created (or needs the privilege to be)
    when everything exists, so a role with only the grants `sqlnet grants` prints can train."""
    if _complete(s) and _policies_complete(s):
        return
    lock_for_ddl(s)
    # a fresh look: another training may have made them meanwhile
    s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    existing = table_columns(s)
    for table in TABLES:
        if table.name not in existing:
            for statement in table.ddl():
                s.pg.execute(statement)
    for name, columns in ADDED_COLUMNS.items():
        if name in existing:
            for column in columns:
                if column.split()[0] not in existing[name]:
                    s.pg.execute(f"ALTER TABLE sqlnet.{name} ADD COLUMN {column}")
    exists = s.pg.execute("SELECT to_regprocedure(%s)", (f"{SCHEMA}.{PROGRESS_SIGNATURE}",))
    if exists.fetchone()[0] is None:  # type: ignore[index]
        s.pg.execute(PROGRESS_FUNCTION)
    for table in TABLES:
        ensure_policy(s, SCHEMA, table.name, POLICIES[table.name])


def network_json(net: Network) -> dict[str, Any]:
    return {
        "sizes": list(net.sizes),
        "hidden_activation": net.hidden_activation,
        "output_activation": net.output_activation,
        "loss": net.loss,
        "bias": net.bias,
    }


def network_from_json(data: dict[str, Any]) -> Network:
    return Network(
        tuple(data["sizes"]), data["hidden_activation"], data["output_activation"], data["loss"], data["bias"]
    )


def table_columns(s: Session) -> dict[str, set[str]]:
    """sqlnet's tables that exist, with their columns (one catalog query)."""
    return {t: {c for c, _, _ in columns} for t, columns in relations(s.pg, SCHEMA, ("r", "p")).items()}


def _update_run(s: Session, run_id: int, **values: Any) -> None:
    s.pg.execute(
        sql.SQL("UPDATE sqlnet.runs SET {} WHERE run_id = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values)
        ),
        [*values.values(), run_id],
    )


def start_run(s: Session, schema: str | None, net: Network, options: dict[str, Any]) -> int:
    (run_id,) = s.pg.execute(
        "INSERT INTO sqlnet.runs (status, schema_name, network, options, epochs, learning_rate) "
        "VALUES ('running', %s, %s, %s, %s, %s) RETURNING run_id",
        (schema, Jsonb(network_json(net)), Jsonb(options), options["epochs"], options["learning_rate"]),
    ).fetchone()  # type: ignore[misc]
    return int(run_id)


def record_losses(
    s: Session,
    run_id: int,
    losses: list[float],
    first_epoch: int = 1,
    validation: dict[int, list[float | None]] | None = None,
) -> None:
    validation = validation or {}
    if losses:
        with s.pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO sqlnet.run_losses (run_id, epoch, loss, val_loss, val_accuracy) VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        run_id,
                        first_epoch + e,
                        loss,
                        validation.get(first_epoch + e, [None, None])[0],
                        validation.get(first_epoch + e, [None, None])[1],
                    )
                    for e, loss in enumerate(losses)
                ],
            )


def set_checkpoint(s: Session, run_id: int, checkpoint: str) -> None:
    _update_run(s, run_id, checkpoint=checkpoint)


def set_status(s: Session, run_id: int, status: str, error: str | None = None) -> None:
    _update_run(s, run_id, status=status, error=error)


def finish_run(
    s: Session,
    run_id: int,
    losses: list[float],
    first_epoch: int = 1,
    validation: dict[int, list[float | None]] | None = None,
) -> None:
    """Record the losses of epochs first_epoch.. and mark the run finished."""
    record_losses(s, run_id, losses, first_epoch, validation)
    s.pg.execute(
        "UPDATE sqlnet.runs SET status = 'finished', finished_at = pg_catalog.clock_timestamp(), "
        "final_loss = (SELECT loss FROM sqlnet.run_losses WHERE run_id = %s ORDER BY epoch DESC LIMIT 1) "
        "WHERE run_id = %s",
        (run_id, run_id),
    )


def last_epoch(s: Session, run_id: int) -> int:
    """The last epoch a run committed (its last checkpoint); 0 when none."""
    (epoch,) = s.pg.execute(
        "SELECT coalesce(max(epoch), 0) FROM sqlnet.run_losses WHERE run_id = %s", (run_id,)
    ).fetchone()  # type: ignore[misc]
    return int(epoch)


def save_table_params(s: Session, run_id: int, stage: str, tables: TableMap) -> None:
    """Keep the parameters the tables hold now as the run's `stage`, copied inside the server (a 784-128-10
    network's ~100k values need not travel to the client and back: sent one by one, they took 5 s), as doubles."""
    head = sql.SQL(
        "INSERT INTO sqlnet.run_params (run_id, stage, quantity, layer, input_node, node, value) SELECT {r}, {s}, "
    ).format(r=sql.Literal(run_id), s=sql.Literal(stage))
    for k, w in enumerate(tables.weights, start=1):
        s.pg.execute(head + sql.SQL("'weight', {k}, {i}::int, {j}::int, {v}::float8 FROM {t}").format(
            k=sql.Literal(k), i=w.col("in"), j=w.col("out"), v=w.col("value"), t=w.ident
        ))  # fmt: skip
        if tables.bias == "edge":
            s.pg.execute(head + sql.SQL("'bias', {k}, {i}::int, {j}::int, {b}::float8 FROM {t}").format(
                k=sql.Literal(k), i=w.col("in"), j=w.col("out"), b=w.col("bias"), t=w.ident
            ))  # fmt: skip
        elif tables.bias == "node":
            b = tables.biases[k - 1]
            s.pg.execute(head + sql.SQL("'bias', {k}, NULL, {j}::int, {v}::float8 FROM {t}").format(
                k=sql.Literal(k), j=b.col("node"), v=b.col("value"), t=b.ident
            ))  # fmt: skip


def load_params(s: Session, run_id: int, stage: str, net: Network) -> Params:
    params = Params(
        [[[0.0] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[0.0] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    found = 0
    for q, layer, i, j, v in s.pg.execute(
        "SELECT quantity, layer, input_node, node, value FROM sqlnet.run_params WHERE run_id = %s AND stage = %s",
        (run_id, stage),
    ):
        found += 1
        if q == "weight":
            params.weights[layer - 1][i - 1][j - 1] = v
        else:
            params.biases[layer - 1][(i or 1) - 1][j - 1] = v
    if not found:
        raise InputError(
            f"run {run_id} has no {stage} weights recorded (it did not finish): choose another stage or run"
        )
    return params


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    schema_name: str | None
    network: Network
    options: dict[str, Any]
    epochs: int
    learning_rate: float
    final_loss: float | None
    error: str | None = None
    checkpoint: str | None = None  # epoch:weights:state of the last checkpoint

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status,
            "schema": self.schema_name,
            "network": network_json(self.network),
            "options": self.options,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "final_loss": self.final_loss,
            "error": self.error,
        }


def _run_info(row: dict[str, Any]) -> RunInfo:
    return RunInfo(
        row["run_id"],
        row["started_at"],
        row["finished_at"],
        row["status"],
        row["schema_name"],
        network_from_json(row["network"]),
        row["options"],
        row["epochs"],
        row["learning_rate"],
        row["final_loss"],
        row.get("error"),
        row.get("checkpoint"),
    )


def has_schema(s: Session, table: str = "runs") -> bool:
    """Whether sqlnet's table exists (schema sqlnet, a table of that name)."""
    row = s.pg.execute(
        "SELECT 1 FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (SCHEMA, table),
    ).fetchone()
    return row is not None


def _runs_query(s: Session, where: str) -> sql.Composed:
    """SELECT of the columns of sqlnet.runs that exist: a table an older sqlnet made may lack the newer
    ones until a training (by the table's owner) adds them."""
    have = table_columns(s).get("runs", set())
    return sql.SQL("SELECT {} FROM sqlnet.runs " + where).format(
        sql.SQL(", ").join(sql.Identifier(c) for c in runs.column_names if c in have)
    )


def _truthful(s: Session, found: list[RunInfo]) -> list[RunInfo]:
    """A run recorded as running whose network no session is training (its client or server died) is
    shown as interrupted, saying where its tables are; the next training of that network records it so."""
    running = [r for r in found if r.status == "running" and r.schema_name]
    live = held_networks(s.pg, sorted({r.schema_name for r in running if r.schema_name}))
    stale = {r.run_id for r in running if r.schema_name not in live}
    return [
        dataclasses.replace(r, status="interrupted", error=r.error or interrupted_note(r)) if r.run_id in stale else r
        for r in found
    ]


def interrupted_note(run: RunInfo) -> str:
    epoch = int(run.checkpoint.split(":")[0]) if run.checkpoint else 0
    if epoch:
        return (
            f"its training ended without a word (the client or the server died); the tables hold the checkpoint "
            f"after epoch {epoch}: `sqlnet train --resume {run.run_id}` continues it"
        )
    return "its training ended without a word (the client or the server died) before its first checkpoint"


def mark_interrupted(s: Session, schema: str, keep: int | None = None) -> None:
    """The runs of this network still recorded as running are not (this session holds its lock): say so,
    in one statement (a network's many old runs are not read)."""
    if not has_schema(s):
        return
    stale = s.pg.cursor(row_factory=dict_row).execute(
        _runs_query(s, "WHERE status = 'running' AND schema_name = %s AND run_id IS DISTINCT FROM %s"), (schema, keep)
    )
    for r in [_run_info(row) for row in stale]:
        set_status(s, r.run_id, "interrupted", r.error or interrupted_note(r))


def list_runs(s: Session, truthful: bool = True) -> list[RunInfo]:
    if not has_schema(s):
        return []
    found = [_run_info(r) for r in s.pg.cursor(row_factory=dict_row).execute(_runs_query(s, "ORDER BY run_id"))]
    return _truthful(s, found) if truthful else found


def get_run(s: Session, run_id: int) -> RunInfo:
    query = _runs_query(s, "WHERE run_id = %s")
    rows = s.pg.cursor(row_factory=dict_row).execute(query, (run_id,)).fetchall() if has_schema(s) else []
    if not rows:
        raise InputError(f"run {run_id} not found: `sqlnet runs` lists the runs")
    return _truthful(s, [_run_info(rows[0])])[0]


def run_epochs(s: Session, run_id: int) -> list[tuple[int, float, float | None, float | None]]:
    """Each epoch's (epoch, loss, validation loss, validation accuracy); None where not measured."""
    cols = table_columns(s).get("run_losses", set())  # an older table may lack the validation columns
    val = "val_loss, val_accuracy" if {"val_loss", "val_accuracy"} <= cols else "NULL::float8, NULL::float8"
    return [
        (e, v, vl, va)
        for e, v, vl, va in s.pg.execute(
            f"SELECT epoch, loss, {val} FROM sqlnet.run_losses WHERE run_id = %s ORDER BY epoch", (run_id,)
        )
    ]


def run_loss_curve(s: Session, run_id: int) -> list[tuple[int, float]]:
    return [
        (e, v)
        for e, v in s.pg.execute(
            "SELECT epoch, loss FROM sqlnet.run_losses WHERE run_id = %s ORDER BY epoch", (run_id,)
        )
    ]
