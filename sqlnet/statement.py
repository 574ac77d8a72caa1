"""Assembling the phases into the one statement that trains: WITH RECURSIVE, write-back, result.

The statement is self-contained and runs as printed in psql: it reads the user's tables, runs
every phase of every epoch as one step of the recursive CTE, writes the trained weights and
biases back into the tables (data-modifying CTEs, which see the tables as they were when the
statement began) and returns the mean loss of each epoch followed by the trained parameters.
A long training runs the statement several times, each for the next block of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from sqlnet.layouts import DEFAULT_LAYOUT, LAYOUTS
from sqlnet.network import Network
from sqlnet.phases import BIAS, WEIGHT, Phase, plan
from sqlnet.tables import Table, TableMap

TRACE_SCHEMA = "sqlnet_trace"


@dataclass(frozen=True)
class Training:
    """Everything one statement needs: the network, where it lives, and which epochs to run."""

    net: Network
    tables: TableMap
    learning_rate: float
    first_epoch: int = 1
    last_epoch: int = 1
    layout: str = DEFAULT_LAYOUT
    trace_run: int | None = None  # with a run id, every phase's values go to the trace schema

    @property
    def phases(self) -> list[Phase]:
        return plan(self.net)


def epoch_blocks(epochs: int, per_statement: int) -> list[tuple[int, int]]:
    """Split epochs 1..N into blocks (first, last) of at most `per_statement` epochs.

    PostgreSQL keeps every iteration of a recursive CTE until the statement ends, so a block
    bounds the memory and temp files one statement uses, whatever the number of epochs.
    """
    return [(first, min(first + per_statement - 1, epochs)) for first in range(1, epochs + 1, per_statement)]


def _data_ctes(tr: Training) -> sql.Composable:
    t = tr.tables

    def sample(table: Table) -> sql.Composable:
        return (
            sql.SQL("{c}::bigint").format(c=table.col("sample"))
            if table.has("sample")
            else sql.SQL("1::bigint")
        )

    return sql.SQL(
        "-- layer 0: the input value of each sample and input node\n"
        "x AS (\n"
        "  SELECT {xs} AS sample, {xn}::int AS node, {xv}::float8 AS value\n"
        "  FROM {inputs}\n"
        "),\n"
        "-- the target value of each sample and output node\n"
        "target AS (\n"
        "  SELECT {ts} AS sample, {tn}::int AS node, {tv}::float8 AS value\n"
        "  FROM {outputs}\n"
        "),\n"
        "-- the number of samples: every gradient is the mean over them\n"
        "batch AS (\n"
        "  SELECT count(DISTINCT sample) AS n FROM x\n"
        ")"
    ).format(
        xs=sample(t.inputs),
        xn=t.inputs.col("node"),
        xv=t.inputs.col("value"),
        inputs=t.inputs.ident,
        ts=sample(t.outputs),
        tn=t.outputs.col("node"),
        tv=t.outputs.col("value"),
        outputs=t.outputs.ident,
    )


def _recursive_cte(tr: Training) -> sql.Composable:
    layout = LAYOUTS[tr.layout]
    steps = tr.phases[1:]
    ctes = [layout.step_prelude(tr)]
    for phase in steps:
        ctes.append(
            sql.SQL("    -- phase {n} · {name}: {comment}\n    {cte} AS (\n{body}\n    )").format(
                n=sql.SQL(str(phase.number)),
                name=sql.SQL(phase.name),
                comment=sql.SQL(phase.comment),
                cte=sql.Identifier(phase.table),
                body=layout.phase(tr, phase),
            )
        )
    union = sql.SQL("\n    UNION ALL ").join(
        sql.SQL("SELECT * FROM {c}").format(c=sql.Identifier(p.table)) for p in steps
    )
    return sql.SQL(
        "-- the training: each step of the recursion is one phase; `epoch` and `phase` say which\n"
        "train ({columns}) AS (\n"
        "  -- phase 0 · start: {start_comment}\n"
        "{start}\n"
        "  UNION ALL\n"
        "  (\n"
        "    WITH\n"
        "{ctes}\n"
        "    -- only the phase that follows the previous step produces rows\n"
        "    {union}\n"
        "  )\n"
        ")"
    ).format(
        columns=layout.columns,
        start_comment=sql.SQL(tr.phases[0].comment),
        start=layout.start(tr),
        ctes=sql.SQL(",\n").join(ctes),
        union=union,
    )


def _write_back(tr: Training) -> list[sql.Composable]:
    """One UPDATE per parameter table, from the rows of the last update."""
    ctes: list[sql.Composable] = []
    for k, w in enumerate(tr.tables.weights, start=1):
        if tr.tables.bias == "edge":
            ctes.append(
                sql.SQL(
                    "write_weights{k} AS (\n"
                    "  UPDATE {t} AS t SET {v} = w.value, {b} = b.value\n"
                    "  FROM trained AS w JOIN trained AS b ON b.quantity = {bq} AND b.layer = w.layer "
                    "AND b.i = w.i AND b.j = w.j\n"
                    "  WHERE w.quantity = {wq} AND w.layer = {k} AND t.{ic} = w.i AND t.{jc} = w.j\n"
                    "  RETURNING 1\n"
                    ")"
                ).format(
                    k=sql.SQL(str(k)),
                    t=w.ident,
                    v=w.col("value"),
                    b=w.col("bias"),
                    bq=sql.Literal(BIAS),
                    wq=sql.Literal(WEIGHT),
                    ic=w.col("in"),
                    jc=w.col("out"),
                )
            )
        else:
            ctes.append(
                sql.SQL(
                    "write_weights{k} AS (\n"
                    "  UPDATE {t} AS t SET {v} = w.value\n"
                    "  FROM trained AS w\n"
                    "  WHERE w.quantity = {wq} AND w.layer = {kl} AND t.{ic} = w.i AND t.{jc} = w.j\n"
                    "  RETURNING 1\n"
                    ")"
                ).format(
                    k=sql.SQL(str(k)),
                    kl=sql.Literal(k),
                    t=w.ident,
                    v=w.col("value"),
                    wq=sql.Literal(WEIGHT),
                    ic=w.col("in"),
                    jc=w.col("out"),
                )
            )
    for k, b in enumerate(tr.tables.biases, start=1):
        ctes.append(
            sql.SQL(
                "write_biases{k} AS (\n"
                "  UPDATE {t} AS t SET {v} = b.value\n"
                "  FROM trained AS b\n"
                "  WHERE b.quantity = {bq} AND b.layer = {kl} AND t.{n} = b.j\n"
                "  RETURNING 1\n"
                ")"
            ).format(
                k=sql.SQL(str(k)),
                kl=sql.Literal(k),
                t=b.ident,
                v=b.col("value"),
                bq=sql.Literal(BIAS),
                n=b.col("node"),
            )
        )
    return ctes


def _trace(tr: Training) -> list[sql.Composable]:
    layout = LAYOUTS[tr.layout]
    return [
        sql.SQL(
            "trace_{n} AS (\n"
            "  INSERT INTO {table} (run_id, epoch, sample, layer, quantity, input_node, node, value)\n"
            "  SELECT {run}, t.* FROM (\n    {rows}\n  ) AS t\n"
            "  RETURNING 1\n"
            ")"
        ).format(
            n=sql.SQL(str(phase.number)),
            table=sql.Identifier(TRACE_SCHEMA, phase.table),
            run=sql.Literal(tr.trace_run),
            rows=layout.trace(tr, phase),
        )
        for phase in tr.phases
    ]


def header(tr: Training) -> str:
    steps = ", ".join(f"{p.number} {p.name}" for p in tr.phases[1:])
    return (
        f"-- sqlnet: train a {tr.net.describe()}\n"
        f"-- epochs {tr.first_epoch}..{tr.last_epoch}, learning rate {tr.learning_rate}, full batch "
        f"(gradients are means over all samples), layout {tr.layout}\n"
        f"-- the phases of each epoch: {steps}\n"
        f"-- It writes the trained weights back and returns the mean loss of each epoch (before its update),\n"
        f"-- then the trained weights and biases.\n"
    )


def training_statement(tr: Training) -> sql.Composed:
    """The statement that trains epochs first_epoch..last_epoch and writes the result back."""
    layout = LAYOUTS[tr.layout]
    ctes: list[sql.Composable] = [_data_ctes(tr), _recursive_cte(tr)]
    ctes.append(
        sql.SQL(
            "-- the trained weights and biases: the rows of the last epoch's update\ntrained AS (\n{rows}\n)"
        ).format(rows=layout.trained(tr))
    )
    ctes.append(sql.SQL("-- write them back into the tables\n{first}").format(first=_write_back(tr)[0]))
    ctes.extend(_write_back(tr)[1:])
    if tr.trace_run is not None:
        trace = _trace(tr)
        ctes.append(
            sql.SQL("-- keep every phase's values in the trace schema\n{first}").format(first=trace[0])
        )
        ctes.extend(trace[1:])
    result = sql.SQL(
        "-- the result: the mean loss of each epoch, then the trained weights and biases\n"
        "SELECT * FROM (\n"
        "  SELECT 'loss' AS quantity, epoch, NULL::int AS layer, NULL::int AS i, NULL::int AS j, loss AS value\n"
        "  FROM ({losses}) AS l\n"
        "  UNION ALL\n"
        "  SELECT quantity, {end}, layer, i, j, value FROM trained\n"
        ") AS result\n"
        "ORDER BY quantity <> 'loss', layer, quantity DESC, epoch, i, j;\n"
    ).format(losses=layout.losses(tr), end=sql.Literal(tr.last_epoch))
    return sql.Composed(
        [sql.SQL(header(tr)), sql.SQL("WITH RECURSIVE\n"), sql.SQL(",\n").join(ctes), sql.SQL("\n"), result]
    )
