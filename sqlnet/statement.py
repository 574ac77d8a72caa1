"""Assembling the phases into the statements that train: WITH RECURSIVE, write-back, result.

A training statement is self-contained and runs as printed in psql: it reads the user's tables,
runs every phase of every update as one step of the recursive CTE, writes the trained weights
and biases (and the optimizer's state) back (data-modifying CTEs, which see the tables as they
were when the statement began) and returns the loss of each epoch and the trained parameters.

A long training runs several statements, each for the next block of updates, in one
transaction. Mini-batches first copy the samples into indexed temporary tables (the
"preparation"), so that each update reads its batch through an index instead of scanning
every sample: nothing per update grows with the number of samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from psycopg import sql

from sqlnet.layouts import DEFAULT_LAYOUT, LAYOUTS
from sqlnet.network import Network
from sqlnet.optimizers import Optimizer
from sqlnet.phases import BIAS, STEP, WEIGHT, Phase, plan
from sqlnet.tables import Table, TableMap

TRACE_SCHEMA = "sqlnet_trace"
BATCH_TABLE = sql.Identifier("pg_temp", "sqlnet_batches")
X_TABLE = sql.Identifier("pg_temp", "sqlnet_x")
TARGET_TABLE = sql.Identifier("pg_temp", "sqlnet_target")


@dataclass(frozen=True)
class Training:
    """Everything one statement needs: the network, where it lives, and which updates to run."""

    net: Network
    tables: TableMap
    learning_rate: float
    first: tuple[int, int] = (1, 1)  # (epoch, batch) of the statement's first update
    last: tuple[int, int] = (1, 1)  # (epoch, batch) of its last update
    batch_size: int = 0  # 0: full batch, one update per epoch
    shuffle: int | None = None  # seed of the per-epoch sample order; None: ascending sample id
    optimizer: Optimizer = field(default_factory=Optimizer)
    scale: int | None = None  # exact NUMERIC rounded at this scale; None: float8
    layout: str = DEFAULT_LAYOUT
    trace_run: int | None = None  # with a run id, every phase's values go to the trace schema
    progress_run: int | None = None  # with a run id, every update reports itself (RAISE NOTICE)
    validation: tuple[float, int] | None = None  # (fraction, seed): samples held out of training

    def progress(
        self, epoch: sql.Composable, batch: sql.Composable, loss: sql.Composable, samples: sql.Composable
    ) -> sql.Composable:
        """A condition that is always true and, when asked for, tells the client an update is done.

        sqlnet.progress() raises a NOTICE, which psycopg hands to sqlnet while the statement runs.
        """
        if self.progress_run is None:
            return sql.SQL("")
        return sql.SQL(" AND sqlnet.progress({run}, {e}, {b}, {loss}, {n})").format(
            run=sql.Literal(self.progress_run), e=epoch, b=batch, loss=loss, n=samples
        )

    @property
    def phases(self) -> list[Phase]:
        return plan(self.net, counts_steps=self.optimizer.name == "adam")

    @property
    def mini_batch(self) -> bool:
        return self.batch_size > 0

    @property
    def num(self) -> str:
        return "float8" if self.scale is None else "numeric"

    @property
    def rate(self) -> object:
        from decimal import Decimal

        return self.learning_rate if self.scale is None else Decimal(str(self.learning_rate))

    @property
    def state_key(self) -> str:
        """Which network the optimizer state belongs to: the schema of its tables."""
        return self.tables.resolved_schema

    @property
    def batches_sql(self) -> sql.Composable:
        return sql.SQL("(SELECT n FROM batches)") if self.mini_batch else sql.SQL("1")

    def batch_rows(self, kind: str, when: str) -> sql.Composable:
        """SELECT sample, node, value of the inputs ("x") or targets of the batch of update `when`.

        Mini-batches read them through an index (a batch column, or the sample ids of a shuffled
        batch as an array): no join, so nothing per update scans all the samples.
        """
        if not self.mini_batch:
            return sql.SQL("SELECT sample, node, value FROM {}").format(
                sql.SQL("x" if kind == "x" else "target")
            )
        table = X_TABLE if kind == "x" else TARGET_TABLE
        if self.shuffle is None:
            return sql.SQL(
                "SELECT sample, node, value FROM {t} WHERE batch = (SELECT batch FROM {w})"
            ).format(t=table, w=sql.SQL(when))
        return sql.SQL(
            "SELECT sample, node, value FROM {t}\n"
            "      WHERE sample = ANY (ARRAY(SELECT sample FROM {b} "
            "WHERE epoch = (SELECT epoch FROM {w}) AND batch = (SELECT batch FROM {w})))"
        ).format(t=table, b=BATCH_TABLE, w=sql.SQL(when))


def update_blocks(
    epochs: int, batches: int, per_statement: int, first_epoch: int = 1
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Split the updates of epochs first_epoch..epochs (of `batches` batches each) into blocks of at
    most `per_statement` updates.

    PostgreSQL keeps every iteration of a recursive CTE until the statement ends, so a block
    bounds the memory and temp files one statement uses, whatever the number of epochs.
    """
    total = epochs * batches

    def at(u: int) -> tuple[int, int]:  # update number u (1-based) as (epoch, batch)
        return ((u - 1) // batches + 1, (u - 1) % batches + 1)

    start = (first_epoch - 1) * batches + 1
    return [(at(u), at(min(u + per_statement - 1, total))) for u in range(start, total + 1, per_statement)]


def _sample(table: Table) -> sql.Composable:
    return (
        sql.SQL("{c}::bigint").format(c=table.col("sample")) if table.has("sample") else sql.SQL("1::bigint")
    )


def held_out(tr: Training) -> sql.Composable:
    """The validation samples: the first round(fraction * n) by md5('seed:sampleId') (byte order)."""
    assert tr.validation is not None
    fraction, seed = tr.validation
    inputs = tr.tables.inputs
    return sql.SQL(
        "SELECT s FROM (SELECT DISTINCT {s} AS s FROM {t}) AS v ORDER BY md5({seed} || ':' || s) COLLATE \"C\", s "
        "LIMIT (SELECT round({f} * count(DISTINCT {s}))::bigint FROM {t})"
    ).format(
        s=_sample(inputs), t=inputs.ident, seed=sql.Literal(str(seed)), f=sql.Literal(Decimal(str(fraction)))
    )


def _data_select(tr: Training, table: Table, validation: bool = False) -> sql.Composable:
    """A table's (sample, node, value) rows: the training samples, or (validation) the held-out ones."""
    rows = sql.SQL("SELECT {s} AS sample, {n}::int AS node, {v}::{num} AS value FROM {t}").format(
        s=_sample(table), n=table.col("node"), v=table.col("value"), num=sql.SQL(tr.num), t=table.ident
    )
    if tr.validation is None:
        return rows
    return sql.SQL("{rows} WHERE {s} {op} IN ({held})").format(
        rows=rows, s=_sample(table), op=sql.SQL("" if validation else "NOT"), held=held_out(tr)
    )


def long_preparation(tr: Training) -> list[sql.Composable]:
    """For mini-batches: the samples and targets in indexed temp tables, with the batch of each."""
    if not tr.mini_batch:
        return []
    t = tr.tables
    drop = sql.SQL("DROP TABLE IF EXISTS {x}, {t}, {b}").format(x=X_TABLE, t=TARGET_TABLE, b=BATCH_TABLE)
    if tr.shuffle is None:
        # consecutive samples in ascending sampleId order: the batch is a column of the data
        batch = sql.SQL("(dense_rank() OVER (ORDER BY sample) - 1) / {n} + 1").format(
            n=sql.Literal(tr.batch_size)
        )
        return [
            drop,
            sql.SQL(
                "-- the samples and their targets, each with its batch: {n} consecutive samples by sampleId\n"
                "CREATE TEMP TABLE sqlnet_x AS SELECT {batch} AS batch, * FROM ({x}) AS x"
            ).format(n=sql.Literal(tr.batch_size), batch=batch, x=_data_select(tr, t.inputs)),
            sql.SQL("CREATE TEMP TABLE sqlnet_target AS SELECT {batch} AS batch, * FROM ({x}) AS t").format(
                batch=batch, x=_data_select(tr, t.outputs)
            ),
            sql.SQL("CREATE INDEX ON {} (batch)").format(X_TABLE),
            sql.SQL("CREATE INDEX ON {} (batch)").format(TARGET_TABLE),
            sql.SQL("ANALYZE {x}, {t}").format(x=X_TABLE, t=TARGET_TABLE),
        ]
    return [
        drop,
        sql.SQL(
            "-- the samples and their targets, indexed by sample\nCREATE TEMP TABLE sqlnet_x AS {}"
        ).format(_data_select(tr, t.inputs)),
        sql.SQL("CREATE TEMP TABLE sqlnet_target AS {}").format(_data_select(tr, t.outputs)),
        sql.SQL("CREATE INDEX ON {} (sample)").format(X_TABLE),
        sql.SQL("CREATE INDEX ON {} (sample)").format(TARGET_TABLE),
        *shuffled_batches(tr, sql.SQL("SELECT DISTINCT sample FROM {}").format(X_TABLE)),
        sql.SQL("ANALYZE {x}, {t}, {b}").format(x=X_TABLE, t=TARGET_TABLE, b=BATCH_TABLE),
    ]


def shuffled_batches(tr: Training, samples: sql.Composable) -> list[sql.Composable]:
    """The batch of every sample in each epoch of the block: the samples ordered by
    md5('seed:epoch:sampleId') (byte order, whatever the collation), then cut into batches."""
    return [
        sql.SQL(
            "-- the batches of epochs {e1}..{e2}: each epoch orders the samples by md5('seed:epoch:sampleId')\n"
            "CREATE TEMP TABLE sqlnet_batches AS\n"
            "SELECT e.epoch, (row_number() OVER (PARTITION BY e.epoch ORDER BY md5({seed} || ':' || e.epoch || ':' "
            '|| s.sample) COLLATE "C", s.sample) - 1) / {n} + 1 AS batch, s.sample\n'
            "FROM generate_series({e1}, {e2}) AS e (epoch) CROSS JOIN ({samples}) AS s"
        ).format(
            e1=sql.Literal(tr.first[0]),
            e2=sql.Literal(tr.last[0]),
            seed=sql.Literal(str(tr.shuffle)),
            n=sql.Literal(tr.batch_size),
            samples=samples,
        ),
        sql.SQL("CREATE INDEX ON {b} (epoch, batch)").format(b=BATCH_TABLE),
    ]


def long_data_ctes(tr: Training) -> sql.Composable:
    if tr.mini_batch:
        return sql.SQL(
            "-- the number of batches per epoch (the samples and batches are in the temp tables above)\n"
            "batches AS (\n"
            "  SELECT max(batch) AS n FROM {b}\n"
            ")"
        ).format(b=X_TABLE if tr.shuffle is None else BATCH_TABLE)
    t = tr.tables
    return sql.SQL(
        "-- layer 0: the input value of each sample and input node\n"
        "x AS (\n  {x}\n),\n"
        "-- the target value of each sample and output node\n"
        "target AS (\n  {t}\n)"
    ).format(x=_data_select(tr, t.inputs), t=_data_select(tr, t.outputs))


def long_recursive_cte(tr: Training) -> sql.Composable:
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
        "-- the training: each step of the recursion is one phase; `epoch`, `batch` and `phase` say which\n"
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
        columns=layout.columns(tr),
        start_comment=sql.SQL(tr.phases[0].comment),
        start=layout.start(tr),
        ctes=sql.SQL(",\n").join(ctes),
        union=union,
    )


def _write_back(tr: Training) -> list[sql.Composable]:
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


def _trace(tr: Training) -> list[sql.Composable]:
    layout = LAYOUTS[tr.layout]
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


def header(tr: Training) -> str:
    steps = ", ".join(f"{p.number} {p.name}" for p in tr.phases[1:])
    batches = (
        "full batch (gradients are means over all samples)"
        if not tr.mini_batch
        else f"batches of {tr.batch_size} samples"
        + (
            " in ascending sampleId order"
            if tr.shuffle is None
            else f" shuffled per epoch (seed {tr.shuffle})"
        )
    )
    numbers = "float8" if tr.scale is None else f"exact NUMERIC rounded to {tr.scale} decimals"
    return (
        f"-- sqlnet: train a {tr.net.describe()}\n"
        f"-- updates from epoch {tr.first[0]} batch {tr.first[1]} to epoch {tr.last[0]} batch {tr.last[1]}, "
        f"learning rate {tr.learning_rate}, {tr.optimizer.describe()}\n"
        f"-- {batches}; {numbers}; layout {tr.layout}\n"
        f"-- the phases of each update: {steps}\n"
        f"-- It writes the trained weights back and returns each epoch's summed loss and sample count\n"
        f"-- (each sample's loss taken before its batch's update), then the trained weights and biases.\n"
    )


def training_statement(tr: Training) -> sql.Composed:
    """The statement that runs the updates first..last and writes the result back."""
    layout = LAYOUTS[tr.layout]
    ctes: list[sql.Composable] = [layout.data_ctes(tr), layout.recursive_cte(tr)]
    ctes.append(
        sql.SQL(
            "-- the trained weights and biases: the rows of the last update\ntrained AS (\n{rows}\n)"
        ).format(rows=layout.trained(tr))
    )
    write = _write_back(tr)
    ctes.append(sql.SQL("-- write them back into the tables\n{first}").format(first=write[0]))
    ctes.extend(write[1:])
    if tr.validation is not None:
        ctes.extend(layout.validation_ctes(tr))
    if tr.trace_run is not None:
        trace = _trace(tr)
        ctes.append(
            sql.SQL("-- keep every phase's values in the trace schema\n{first}").format(first=trace[0])
        )
        ctes.extend(trace[1:])
    result = sql.SQL(
        "-- the result: each epoch's loss (summed over its samples) and sample count, then the trained parameters\n"
        "SELECT * FROM (\n"
        "  SELECT 'loss' AS quantity, epoch, NULL::int AS layer, NULL::int AS i, NULL::int AS j, loss AS value, "
        "samples\n"
        "  FROM ({losses}) AS l\n"
        "  UNION ALL\n"
        "{validation}"
        "  SELECT quantity, {end}, layer, i, j, value, NULL FROM trained WHERE quantity IN ({wq}, {bq})\n"
        ") AS result\n"
        "ORDER BY quantity <> 'loss', layer, quantity DESC, epoch, i, j;\n"
    ).format(
        losses=layout.losses(tr),
        end=sql.Literal(tr.last[0]),
        wq=sql.Literal(WEIGHT),
        bq=sql.Literal(BIAS),
        validation=sql.SQL(
            "  SELECT 'val_loss', epoch, NULL, NULL, NULL, loss, samples FROM validation\n  UNION ALL\n"
            "  SELECT 'val_accuracy', epoch, NULL, NULL, NULL, accuracy, samples FROM validation\n  UNION ALL\n"
        )
        if tr.validation is not None
        else sql.SQL(""),
    )
    return sql.Composed(
        [sql.SQL(header(tr)), sql.SQL("WITH RECURSIVE\n"), sql.SQL(",\n").join(ctes), sql.SQL("\n"), result]
    )


# PostgreSQL cannot estimate how many rows a recursive CTE's steps hold, guesses "few", and then
# joins per-sample rows with nested loops: quadratic in the samples (measured: 300 samples,
# 8-16-1, 10 epochs took 50.6 s with nested loops and 1.3 s without). Hash joins are right here.
# work_mem: each update's materialised stages hold a batch; the default 4 MB spills to temp files
# from ~5000 samples on (measured: 10k samples, 8-16-1, 5 epochs wrote 27 MB of temp files).
# jit: the recursive plan's cost passes jit_above_cost, and compiling its hundreds of expressions
# takes seconds per statement that then runs in milliseconds (measured on PostgreSQL 15 with LLVM,
# the Debian default: the post's network, 3000 updates, 20.0 s with JIT, 0.16 s without).
SETTINGS = (
    sql.SQL("SET LOCAL enable_nestloop = off"),
    sql.SQL("SET LOCAL work_mem = '64MB'"),
    sql.SQL("SET LOCAL jit = off"),
)


def statements(tr: Training) -> list[sql.Composed]:
    """Everything one block runs, in order: the preparation (mini-batches), then the training."""
    prepare = LAYOUTS[tr.layout].preparation(tr)
    return [sql.Composed([p, sql.SQL(";\n")]) for p in prepare] + [training_statement(tr)]


def script(trainings: list[Training]) -> str:
    """Everything `train` runs for a training, as one psql script: the settings, then each block."""
    blocks = ["".join(st.as_string(None) for st in statements(tr)) for tr in trainings]
    head = "-- sqlnet runs these statements in one transaction"
    if len(blocks) > 1:
        head += "; each block's training statement runs the next\n-- updates on the weights the previous one wrote"
    parts = [
        head + ".\nBEGIN;\n"
        "-- hash joins: the planner cannot size a recursive CTE's steps and would loop over every pair\n"
        + "".join(f"{setting.as_string(None)};\n" for setting in SETTINGS)
    ]
    for n, block in enumerate(blocks, start=1):
        parts.append((f"-- block {n} of {len(blocks)}\n" if len(blocks) > 1 else "") + block)
    parts.append("COMMIT;\n")
    return "\n".join(parts)
