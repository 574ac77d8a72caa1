"""The SQL pieces every layout shares: the data selects, shuffled batches, write-back and trace.

They read a ``Training`` and nothing above the compile package; the layouts import them, never
the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from psycopg import sql

from sqlnet.compile.tables import Table
from sqlnet.compile.training import BATCH_TABLE, TRACE_SCHEMA, Training
from sqlnet.model.phases import BIAS, STEP, WEIGHT, Phase


class Traced(Protocol):
    """What the trace needs of a layout: the values of a phase as rows."""

    def trace(self, tr: Training, phase: Phase) -> sql.Composable: ...


class Layout(Traced, Protocol):
    """What a layout gives the statement (``sqlnet.compile.statement``): its settings and preparation, the
    data and recursive CTEs, and what the result reads of the last update."""

    settings_why: str

    def settings(self, tr: Training) -> Sequence[sql.Composable]: ...

    def preparation(self, tr: Training, again: bool = False) -> Sequence[sql.Composable]: ...

    def data_ctes(self, tr: Training) -> sql.Composable: ...

    def recursive_cte(self, tr: Training) -> sql.Composable: ...

    def trained(self, tr: Training) -> sql.Composable: ...

    def losses(self, tr: Training) -> sql.Composable: ...

    def validation_ctes(self, tr: Training) -> Sequence[sql.Composable]: ...


def sample_id(tr: Training, table: Table) -> sql.Composable:
    return tr.dialect.cast(table.col("sample") if table.has("sample") else sql.Literal(1), "bigint")


def held_out(tr: Training) -> sql.Composed:
    """The validation samples' ids (column `sample`), on every engine: the first `count` (of the training's
    validation) by md5('seed:sampleId'), byte order, ties by id; as the reference holds them out."""
    assert tr.validation is not None
    seed, count = tr.validation
    inputs = tr.tables.inputs
    return sql.SQL(
        "SELECT sample FROM (SELECT DISTINCT {s} AS sample FROM {t}) AS v ORDER BY {key}, sample LIMIT {n}"
    ).format(
        s=sample_id(tr, inputs), t=inputs.ident, key=tr.dialect.hash_order(str(seed), sql.SQL("sample")),
        n=sql.Literal(count),
    )  # fmt: skip


def data_select(tr: Training, table: Table, validation: bool = False) -> sql.Composable:
    """A table's (sample, node, value) rows: the training samples, or (validation) the held-out ones."""
    rows = sql.SQL("SELECT {s} AS sample, {n} AS node, {v} AS value FROM {t}").format(
        s=sample_id(tr, table), n=tr.dialect.cast(table.col("node"), "int"),
        v=tr.dialect.cast(table.col("value"), tr.num), t=table.ident,
    )  # fmt: skip
    if tr.validation is None:
        return rows
    return sql.SQL("{rows} WHERE {s} {op} IN ({held})").format(
        rows=rows, s=sample_id(tr, table), op=sql.SQL("" if validation else "NOT"), held=held_out(tr)
    )


def shuffled_batch(tr: Training, epoch: sql.Composable, sample: sql.Composable, per_epoch: bool) -> sql.Composable:
    """A sample's batch in a shuffled epoch, on every engine: the samples ordered by md5('seed:epoch:sampleId')
    (byte order, ties by id), then cut into batches of the batch size (`per_epoch`: for each epoch of the
    rows, which hold several)."""
    d = tr.dialect
    rank = sql.SQL("(row_number() OVER ({by}ORDER BY {key}, {sample}) - 1)").format(
        by=sql.SQL("PARTITION BY {} ").format(epoch) if per_epoch else sql.SQL(""),
        key=d.hash_order(str(tr.shuffle), epoch, sample),
        sample=sample,
    )
    return sql.SQL("{} + 1").format(d.int_div(rank, sql.Literal(tr.batch_size)))


def shuffled_batches(tr: Training, samples: sql.Composable) -> list[sql.Composable]:
    """The batch of every sample in each epoch of the block: the samples ordered by
    md5('seed:epoch:sampleId') (byte order, whatever the collation), then cut into batches."""
    return [
        sql.SQL(
            "-- the batches of epochs {e1}..{e2}: each epoch orders the samples by md5('seed:epoch:sampleId')\n"
            "CREATE TEMP TABLE sqlnet_batches AS\n"
            "SELECT e.epoch, {batch} AS batch, s.sample\n"
            "FROM {epochs} CROSS JOIN ({samples}) AS s"
        ).format(
            e1=sql.Literal(tr.first[0]),
            e2=sql.Literal(tr.last[0]),
            batch=shuffled_batch(tr, sql.SQL("e.epoch"), sql.SQL("s.sample"), per_epoch=True),
            epochs=tr.dialect.series(sql.Literal(tr.first[0]), sql.Literal(tr.last[0]), "e", "epoch"),
            samples=samples,
        ),
        sql.SQL("CREATE INDEX ON {b} (epoch, batch)").format(b=BATCH_TABLE),
    ]


def next_block_batches(tr: Training, samples: sql.Composable) -> list[sql.Composable]:
    """A later block of the same transaction: the samples' tables stay, a shuffled training makes
    this block's batches (an unshuffled one needs nothing: its batch is a column of the samples)."""
    if tr.shuffle is None:
        return []
    return [
        sql.SQL("DROP TABLE IF EXISTS {}").format(BATCH_TABLE),
        *shuffled_batches(tr, samples),
        sql.SQL("ANALYZE {}").format(BATCH_TABLE),
    ]


def write_back(tr: Training) -> list[sql.Composable]:
    """One UPDATE per parameter table, from the rows of the last update; the optimizer's state."""
    ctes: list[sql.Composable] = []
    for k, w in enumerate(tr.tables.weights, start=1):
        bias = tr.tables.bias == "edge"
        ctes.append(
            sql.SQL(
                "write_weights{k} AS (\n"
                "  UPDATE {t} AS t SET {v} = w.value{set_bias}\n"
                "  FROM trained AS w{join_bias}\n"
                "  WHERE w.quantity = {wq} AND w.layer = {kl} AND t.{ic} = w.i AND t.{jc} = w.j\n"
                "  RETURNING 1\n"
                ")"
            ).format(
                k=sql.SQL(str(k)),
                kl=sql.Literal(k),
                t=w.ident,
                v=w.col("value"),
                set_bias=sql.SQL(", {b} = b.value").format(b=w.col("bias")) if bias else sql.SQL(""),
                join_bias=sql.SQL(
                    " JOIN trained AS b ON b.quantity = {bq} AND b.layer = w.layer AND b.i = w.i AND b.j = w.j"
                ).format(bq=sql.Literal(BIAS))
                if bias
                else sql.SQL(""),
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
    state = tr.optimizer.state
    if state:
        v = sql.SQL("v") if "v" in state else sql.SQL("NULL")
        ctes.append(
            sql.SQL(
                "-- the optimizer's state, so that the next run continues it\n"
                "write_optimizer_state AS (\n"
                "  INSERT INTO sqlnet.optimizer_state (network, quantity, layer, i, j, m, v)\n"
                "  SELECT {key}, quantity, layer, coalesce(i, 0), coalesce(j, 0), {m}, {v} FROM trained\n"
                "  ON CONFLICT (network, quantity, layer, i, j) DO UPDATE SET m = excluded.m, v = excluded.v\n"
                "  RETURNING 1\n"
                ")"
            ).format(
                key=sql.Literal(tr.state_key),
                # Adam's update count rides in m of its 'step' row
                m=sql.SQL("CASE WHEN quantity = {sq} THEN value ELSE m END").format(sq=sql.Literal(STEP))
                if tr.optimizer.name == "adam"
                else sql.SQL("m"),
                v=v,
            )
        )
    return ctes


def trace(tr: Training, layout: Traced) -> list[sql.Composable]:
    return [
        sql.SQL(
            "trace_{n} AS (\n"
            "  INSERT INTO {table} (run_id, epoch, batch, sample, layer, quantity, input_node, node, value)\n"
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
