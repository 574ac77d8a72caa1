"""sqlnet's own tables: the record of every run (schema `sqlnet`) and the phase trace (`sqlnet_trace`).

A run keeps its hyperparameters, the loss of every epoch and the weights before and after, so a
training can always be undone (`sqlnet restore`). The run tables are SQLAlchemy Core tables; the
trace tables are named after the phases of the network traced, so they are composed with
``psycopg.sql`` like the training statement itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sqlnet.db.connection import Session
from sqlnet.db.policies import POLICY, ensure_policy, may_train, sees_run
from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params

if TYPE_CHECKING:
    pass

SCHEMA = "sqlnet"
metadata = sa.MetaData(schema=SCHEMA)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("schema_name", sa.Text, comment="the schema of the network's tables, as resolved when the run started"),
    sa.Column("network", JSONB, nullable=False, comment="sizes, activations, loss and bias layout"),
    sa.Column("options", JSONB, nullable=False, comment="epochs, learning rate, layout, trace, ..."),
    sa.Column("epochs", sa.Integer, nullable=False),
    sa.Column("learning_rate", sa.Float(53), nullable=False),
    sa.Column("final_loss", sa.Float(53), comment="the mean loss of the last epoch, before its update"),
    sa.Column("error", sa.Text, comment="why a failed or cancelled run stopped"),
    sa.Column("checkpoint", sa.Text, comment="epoch:weights:state checksums of the last checkpoint"),
    comment="one row per sqlnet training run",
)

run_losses = sa.Table(
    "run_losses",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey(runs.c.run_id, ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("loss", sa.Float(53), nullable=False),
    sa.Column("val_loss", sa.Float(53), comment="the mean loss over the held-out samples after the epoch"),
    sa.Column("val_accuracy", sa.Float(53), comment="the share of held-out samples classified right"),
    comment="the mean loss over the samples of each epoch of each run, before the epoch's update",
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey(runs.c.run_id, ondelete="CASCADE"), nullable=False),
    sa.Column("stage", sa.Text, nullable=False, comment="'initial' (before the run) or 'final' (after it)"),
    sa.Column("quantity", sa.Text, nullable=False, comment="'weight' or 'bias'"),
    sa.Column("layer", sa.Integer, nullable=False),
    sa.Column("input_node", sa.Integer, comment="NULL for a node bias"),
    sa.Column("node", sa.Integer, nullable=False),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Index("run_params_run", "run_id", "stage"),
    comment="the weights and biases of every run, before and after",
)


optimizer_state = sa.Table(
    "optimizer_state",
    metadata,
    sa.Column("network", sa.Text, primary_key=True, comment="the schema of the network's tables"),
    sa.Column(
        "quantity", sa.Text, primary_key=True, comment="'weight', 'bias', or 'step' (Adam's update count)"
    ),
    sa.Column("layer", sa.Integer, primary_key=True),
    sa.Column("i", sa.Integer, primary_key=True, comment="input node; 0 for a node bias"),
    sa.Column("j", sa.Integer, primary_key=True),
    sa.Column(
        "m", sa.Float(53), comment="momentum's velocity or Adam's first moment (the count, for 'step')"
    ),
    sa.Column("v", sa.Float(53), comment="Adam's second moment"),
    comment="optimizer state per parameter, carried from one run to the next",
)


networks = sa.Table(
    "networks",
    metadata,
    sa.Column("network", sa.Text, primary_key=True, comment="the schema of the network's tables"),
    sa.Column("sizes", JSONB, comment="nodes per layer, input layer first"),
    sa.Column("hidden_activation", sa.Text, comment="NULL until the first training chooses it"),
    sa.Column("output_activation", sa.Text, comment="NULL until the first training chooses it"),
    sa.Column("loss", sa.Text, comment="NULL until the first training chooses it"),
    sa.Column("bias", sa.Text, comment="edge, node or none"),
    sa.Column("optimizer", sa.Text, comment="the optimizer whose state optimizer_state holds for it"),
    sa.Column("features", JSONB, comment="feature names; input node k is the k-th (sqlnet load)"),
    sa.Column("targets", JSONB, comment="target columns, or the label column with classes"),
    sa.Column("classes", JSONB, comment="class names; output node k is the k-th class"),
    sa.Column("means", JSONB, comment="per feature, when standardised: x' = (x - mean) / std"),
    sa.Column("stds", JSONB, comment="per feature, when standardised"),
    sa.Column("source", sa.Text, comment="the file or table the samples came from"),
    sa.Column("samples", sa.Integer, comment="samples loaded"),
    sa.Column("last_run", sa.Integer, comment="the run that last changed the weights"),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    comment="one row per network: what it is (functions, bias, preprocessing) beyond its weights",
)

run_state = sa.Table(
    "run_state",
    metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey(runs.c.run_id, ondelete="CASCADE"), nullable=False),
    sa.Column("stage", sa.Text, nullable=False, comment="'initial' (before the run) or 'final' (after it)"),
    sa.Column("optimizer", sa.Text, nullable=False),
    sa.Column("quantity", sa.Text, nullable=False),
    sa.Column("layer", sa.Integer, nullable=False),
    sa.Column("i", sa.Integer, nullable=False),
    sa.Column("j", sa.Integer, nullable=False),
    sa.Column("m", sa.Float(53)),
    sa.Column("v", sa.Float(53)),
    sa.Index("run_state_run", "run_id", "stage"),
    comment="the optimizer state each run started and ended with, so restore puts back both",
)


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
        (SCHEMA, POLICY, [t.name for t in metadata.sorted_tables]),
    ).fetchone()  # type: ignore[misc]
    return int(n) == len(metadata.sorted_tables)


def lock_for_ddl(s: Session) -> None:
    """Trainings that start together on a new database would each create schema sqlnet and fail
    on the others' (duplicate key in pg_namespace): whoever creates waits for whoever is creating.
    Only the first trainings take this lock; it is released when their transaction ends."""
    s.pg.execute("SELECT pg_advisory_xact_lock(hashtextextended('sqlnet schema', 0))")


def _complete(s: Session) -> bool:
    """Whether schema sqlnet has every table, column and function this sqlnet uses (one query)."""
    wanted = [(t.name, c.name) for t in metadata.sorted_tables for c in t.columns]
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
}


def ensure_schema(s: Session) -> None:
    """Create what is missing of schema sqlnet. Nothing is created (or needs the privilege to be)
    when everything exists, so a role with only the grants `sqlnet grants` prints can train."""
    if _complete(s) and _policies_complete(s):
        return
    lock_for_ddl(s)
    inspector = sa.inspect(s.sa)  # a fresh look: another training may have made it meanwhile
    if SCHEMA not in inspector.get_schema_names():
        s.sa.execute(sa.schema.CreateSchema(SCHEMA))
    existing = set(inspector.get_table_names(schema=SCHEMA))
    missing = [t for t in metadata.sorted_tables if t.name not in existing]
    if missing:
        metadata.create_all(s.sa, tables=missing)
    for table, columns in ADDED_COLUMNS.items():
        if table in existing:
            have = {c["name"] for c in inspector.get_columns(table, schema=SCHEMA)}
            for column in columns:
                name = column.split()[0]
                if name not in have:
                    s.pg.execute(f"ALTER TABLE sqlnet.{table} ADD COLUMN {column}")
    exists = s.pg.execute("SELECT to_regprocedure(%s)", (f"{SCHEMA}.{PROGRESS_SIGNATURE}",))
    if exists.fetchone()[0] is None:  # type: ignore[index]
        s.pg.execute(PROGRESS_FUNCTION)
    for table in metadata.sorted_tables:
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


def start_run(s: Session, schema: str | None, net: Network, options: dict[str, Any]) -> int:
    run_id = s.sa.execute(
        runs.insert()
        .values(
            status="running",
            schema_name=schema,
            network=network_json(net),
            options=options,
            epochs=options["epochs"],
            learning_rate=options["learning_rate"],
        )
        .returning(runs.c.run_id)
    ).scalar_one()
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
        s.sa.execute(
            run_losses.insert(),
            [
                {
                    "run_id": run_id,
                    "epoch": first_epoch + e,
                    "loss": loss,
                    "val_loss": validation.get(first_epoch + e, [None, None])[0],
                    "val_accuracy": validation.get(first_epoch + e, [None, None])[1],
                }
                for e, loss in enumerate(losses)
            ],
        )


def set_checkpoint(s: Session, run_id: int, checkpoint: str) -> None:
    s.sa.execute(runs.update().where(runs.c.run_id == run_id).values(checkpoint=checkpoint))


def set_status(s: Session, run_id: int, status: str, error: str | None = None) -> None:
    s.sa.execute(runs.update().where(runs.c.run_id == run_id).values(status=status, error=error))


def finish_run(
    s: Session,
    run_id: int,
    losses: list[float],
    first_epoch: int = 1,
    validation: dict[int, list[float | None]] | None = None,
) -> None:
    """Record the losses of epochs first_epoch.. and mark the run finished."""
    record_losses(s, run_id, losses, first_epoch, validation)
    final = s.sa.execute(
        sa.select(run_losses.c.loss)
        .where(run_losses.c.run_id == run_id)
        .order_by(run_losses.c.epoch.desc())
        .limit(1)
    ).scalar_one_or_none()
    s.sa.execute(
        runs.update()
        .where(runs.c.run_id == run_id)
        .values(status="finished", finished_at=sa.func.clock_timestamp(), final_loss=final)
    )


def last_epoch(s: Session, run_id: int) -> int:
    """The last epoch a run committed (its last checkpoint); 0 when none."""
    epoch = s.sa.execute(
        sa.select(sa.func.coalesce(sa.func.max(run_losses.c.epoch), 0)).where(run_losses.c.run_id == run_id)
    ).scalar_one()
    return int(epoch)


def save_params(s: Session, run_id: int, stage: str, net: Network, params: Params) -> None:
    rows = []
    for k in range(1, net.depth + 1):
        for i, row in enumerate(params.weights[k - 1], start=1):
            rows += [
                {
                    "run_id": run_id,
                    "stage": stage,
                    "quantity": "weight",
                    "layer": k,
                    "input_node": i,
                    "node": j,
                    "value": v,
                }
                for j, v in enumerate(row, start=1)
            ]
        for r, row in enumerate(params.biases[k - 1], start=1):
            rows += [
                {
                    "run_id": run_id,
                    "stage": stage,
                    "quantity": "bias",
                    "layer": k,
                    "input_node": r if net.bias == "edge" else None,
                    "node": j,
                    "value": v,
                }
                for j, v in enumerate(row, start=1)
            ]
    if rows:
        s.sa.execute(run_params.insert(), rows)


def load_params(s: Session, run_id: int, stage: str, net: Network) -> Params:
    params = Params(
        [[[0.0] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[0.0] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    found = 0
    for q, layer, i, j, v in s.sa.execute(
        sa.select(
            run_params.c.quantity,
            run_params.c.layer,
            run_params.c.input_node,
            run_params.c.node,
            run_params.c.value,
        ).where(run_params.c.run_id == run_id, run_params.c.stage == stage)
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


def _run_info(row: sa.Row) -> RunInfo:
    return RunInfo(
        row.run_id,
        row.started_at,
        row.finished_at,
        row.status,
        row.schema_name,
        network_from_json(row.network),
        row.options,
        row.epochs,
        row.learning_rate,
        row.final_loss,
        getattr(row, "error", None),
        getattr(row, "checkpoint", None),
    )


def has_schema(s: Session, table: str = "runs") -> bool:
    return sa.inspect(s.sa).has_table(table, schema=SCHEMA)


def _runs_columns(s: Session) -> list[sa.Column]:
    """The columns of sqlnet.runs that exist: a table an older sqlnet made may lack the newer ones
    until a training (by the table's owner) adds them."""
    have = {c["name"] for c in sa.inspect(s.sa).get_columns("runs", schema=SCHEMA)}
    return [c for c in runs.columns if c.name in have]


def list_runs(s: Session) -> list[RunInfo]:
    if not has_schema(s):
        return []
    return [_run_info(r) for r in s.sa.execute(sa.select(*_runs_columns(s)).order_by(runs.c.run_id))]


def get_run(s: Session, run_id: int) -> RunInfo:
    row = (
        s.sa.execute(sa.select(*_runs_columns(s)).where(runs.c.run_id == run_id)).first()
        if has_schema(s)
        else None
    )
    if row is None:
        raise InputError(f"run {run_id} not found: `sqlnet runs` lists the runs")
    return _run_info(row)


def run_epochs(s: Session, run_id: int) -> list[tuple[int, float, float | None, float | None]]:
    """Each epoch's (epoch, loss, validation loss, validation accuracy); None where not measured."""
    cols = {c["name"] for c in sa.inspect(s.sa).get_columns("run_losses", schema=SCHEMA)}  # an older table may lack them
    t = run_losses.c
    val = [t.val_loss, t.val_accuracy] if {"val_loss", "val_accuracy"} <= cols else [sa.null(), sa.null()]
    return [
        (e, v, vl, va)
        for e, v, vl, va in s.sa.execute(sa.select(t.epoch, t.loss, *val).where(t.run_id == run_id).order_by(t.epoch))
    ]


def run_loss_curve(s: Session, run_id: int) -> list[tuple[int, float]]:
    return [
        (e, v)
        for e, v in s.sa.execute(
            sa.select(run_losses.c.epoch, run_losses.c.loss)
            .where(run_losses.c.run_id == run_id)
            .order_by(run_losses.c.epoch)
        )
    ]


# --- the trace schema ---------------------------------------------------------------------------
