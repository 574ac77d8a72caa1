"""The wide layout's updates on Apache Spark SQL: one plain statement per update over cached samples.

Spark runs recursive CTEs, but forbids PostgreSQL's shape of one (the recursive reference may not
be aggregated), re-plans every iteration, and has no data-modifying CTEs, so a recursion would
still end in the client (measured in ``../shared/notes/spark.md`` and the benchmark). Here a client
loop runs one statement per update instead: the state row of the update before is a one-row view
(``sqlnet_prev``), the samples a cached table (``sqlnet_data``), and the statement returns the next
state row.

The phases are the wide layout's own, written through the SPARK dialect (``WideLayout._phase_ctes``);
what is Spark's is here: the cached samples and shuffled batches, and the update, which walks each
parameter array with ``transform`` (Spark's unnest) computing the mean gradient, the new moments
and the new parameter once each, as the PostgreSQL statement does.
"""

from __future__ import annotations

import dataclasses

from psycopg import sql

from sqlnet.compile.dialect import SPARK
from sqlnet.compile.predict import Outputs, predictions
from sqlnet.compile.shared import data_select, shuffled_batch
from sqlnet.compile.tables import Table
from sqlnet.compile.training import Training
from sqlnet.compile.wide import WideLayout, _c, next_cte, pivot_columns
from sqlnet.compile.wide_phases import ParamColumns, _materialized, correct

DATA_VIEW = sql.Identifier("sqlnet_data")
BATCHES_VIEW = sql.Identifier("sqlnet_batches")
PREV_VIEW = sql.Identifier("sqlnet_prev")
LAYOUT = WideLayout()


VALIDATION_VIEW = sql.Identifier("sqlnet_validation")


def cache_data(tr: Training) -> sql.Composable:
    """The training samples, one wide row each (sample, x1.., t1..), cached: every update reads them.
    Consecutive mini-batches also get their batch number (DIV: Spark's / divides as doubles)."""
    pivot = LAYOUT._pivot(tr)  # without the held-out samples (the training's validation says which)
    if tr.mini_batch and tr.shuffle is None:
        pivot = sql.SQL(
            "SELECT (dense_rank() OVER (ORDER BY sample) - 1) DIV {n} + 1 AS batch, d.* FROM ({p}) AS d"
        ).format(n=sql.Literal(tr.batch_size), p=pivot)
    return sql.SQL("-- the samples, one row each, kept in memory\nCACHE TABLE {v} AS {p}").format(v=DATA_VIEW, p=pivot)


def cache_validation(tr: Training) -> sql.Composable:
    return sql.SQL("-- the held-out samples, one row each, kept in memory\nCACHE TABLE {v} AS {p}").format(
        v=VALIDATION_VIEW, p=LAYOUT._pivot(tr, validation=True)
    )


def validation_statement(tr: Training) -> sql.Composable:
    """The held-out samples' mean loss (and, for a softmax output, accuracy) under the parameters of the
    state row (sqlnet_prev): the training's own forward and error phases, so the loss is the one it
    minimises (the largest output, before softmax, is the class)."""
    ctes, last = LAYOUT.scored_ctes(tr)
    net = tr.net
    n = net.sizes[-1]
    z = [sql.SQL("s.{}").format(_c(f"z{net.depth}_{j}")) for j in range(1, n + 1)]
    t = [sql.SQL("s.{}").format(_c(f"t{j}")) for j in range(1, n + 1)]
    return sql.SQL(
        "-- the held-out samples through the network as the state row holds it\n"
        "WITH\n    prev AS (SELECT * FROM {prev}),\n"
        "    batch_rows AS (SELECT * FROM {v}),\n{ctes}\n"
        "SELECT p.epoch, p.batch, v.loss, v.accuracy, v.samples\n"
        "FROM prev AS p CROSS JOIN (\n"
        "  SELECT avg(s.loss) AS loss, avg({correct}) AS accuracy, count(*) AS samples FROM {last} AS s\n) AS v"
    ).format(prev=PREV_VIEW, v=VALIDATION_VIEW, ctes=sql.SQL(",\n").join(ctes), correct=correct(tr, z, t), last=sql.Identifier(last))


def cache_batches(tr: Training, epoch: int) -> sql.Composable:
    """The batch of every sample in a shuffled epoch: ordered by md5('seed:epoch:sampleId') (hex
    digits, so byte order, as PostgreSQL and the reference order them), then cut into batches."""
    return sql.SQL(
        "-- the batches of epoch {e}: the samples ordered by md5('seed:epoch:sampleId')\n"
        "CACHE TABLE {v} AS\n"
        "SELECT {e} AS epoch, {batch} AS batch, sample\nFROM {d}"
    ).format(
        e=sql.Literal(epoch), v=BATCHES_VIEW, d=DATA_VIEW,
        batch=shuffled_batch(tr, sql.Literal(epoch), sql.SQL("sample"), per_epoch=False),
    )  # fmt: skip


def batch_rows(tr: Training) -> sql.Composable:
    """The samples of the update's batch (`next`, from the state row), one row each."""
    if not tr.mini_batch:
        return sql.SQL("SELECT * FROM {}").format(DATA_VIEW)
    if tr.shuffle is None:
        return sql.SQL("SELECT d.* FROM {d} AS d JOIN next AS n ON d.batch = n.batch").format(d=DATA_VIEW)
    return sql.SQL(
        "SELECT d.* FROM {d} AS d JOIN {bs} AS b ON b.sample = d.sample JOIN next AS n ON b.batch = n.batch"
    ).format(d=DATA_VIEW, bs=BATCHES_VIEW)


def state_columns(tr: Training) -> list[str]:
    """The state row's columns, as the PostgreSQL statement's recursion carries them."""
    return LAYOUT._columns(tr)


def _walk(tr: Training, param: str) -> sql.Composable:
    """One parameter array after the step, as an array of structs (w, g, m, v): the element's mean
    gradient (with any L2 term), then its new moments, each computed once."""
    opt = tr.optimizer
    state = list(opt.state)
    g = sql.SQL("element_at(g.{}, i + 1) / g.n").format(_c(f"g{param}"))
    if param.startswith("w") and opt.l2:
        g = sql.SQL("({g} + {l2} * w)").format(g=g, l2=sql.Literal(opt.l2))
    fields = [sql.SQL("'w', w"), sql.SQL("'g', {}").format(g)]
    fields += [sql.SQL("{c}, element_at(p.{a}, i + 1)").format(c=sql.Literal(c), a=_c(f"{c}{param}")) for c in state]
    first = sql.SQL("transform(p.{p}, (w, i) -> named_struct({f}))").format(p=_c(param), f=sql.SQL(", ").join(fields))
    if not state:
        return first
    m_new, v_new = opt.sql_moments(sql.SQL("e.g"), sql.SQL("e.m"), sql.SQL("e.v"))
    moments: list[sql.Composable] = [sql.SQL("'w', e.w"), sql.SQL("'g', e.g")]
    moments += [sql.SQL("{c}, {e}").format(c=sql.Literal(c), e=e) for c, e in (("m", m_new), ("v", v_new)) if c in state]
    return sql.SQL("transform({first}, e -> named_struct({f}))").format(first=first, f=sql.SQL(", ").join(moments))


class Updates:
    """The statement of a training's updates: the same text for every update, which finds its epoch and
    batch from the state row before it (`next`), so that Spark can analyse and optimise it once per
    training and run the plan again over each new state row (``sqlnet.ops.spark_loop``)."""

    def __init__(self, tr: Training, batches: int) -> None:
        self.tr = tr
        self.batches = batches
        opt = tr.optimizer
        names = LAYOUT._state_names(tr)
        corrections = opt.sql_corrections(sql.SQL("(p.t + 1)"))
        steps: list[sql.Composable] = [sql.SQL("{} AS {}").format(_walk(tr, p), _c(f"e{p}")) for p in names]
        steps += [sql.SQL("{} AS {}").format(e, _c(n)) for n, e in corrections]
        steps += [sql.SQL("g.loss"), sql.SQL("g.n")] + ([sql.SQL("p.t")] if opt.name == "adam" else [])
        w_new = opt.sql_weight(
            sql.SQL("e.w"), sql.SQL("e.g"), sql.SQL("e.m"), sql.SQL("e.v"), sql.Literal(tr.rate),
            {n: sql.SQL("s.{}").format(_c(n)) for n, _ in corrections},
        )  # fmt: skip
        values: list[sql.Composable] = []
        for p in names:
            new = opt.sql_decay(w_new, sql.SQL("e.w"), sql.Literal(tr.rate)) if p.startswith("w") else w_new
            values.append(sql.SQL("transform(s.{e}, e -> {w}) AS {p}").format(e=_c(f"e{p}"), w=new, p=_c(p)))
        for p in names:
            values += [
                sql.SQL("transform(s.{e}, e -> e.{c}) AS {n}").format(e=_c(f"e{p}"), c=_c(c), n=_c(f"{c}{p}"))
                for c in opt.state
            ]
        if opt.name == "adam":
            values.append(sql.SQL("s.t + 1 AS t"))
        values += [sql.SQL("s.loss AS loss"), sql.SQL("s.n AS samples")]
        phases = [
            *LAYOUT._phase_ctes(tr),
            sql.SQL(
                "    -- each parameter's mean gradient and new moments, computed once\n"
                "    steps AS (\n      SELECT\n        {}\n      FROM prev AS p CROSS JOIN gradient AS g\n    )"
            ).format(sql.SQL(",\n        ").join(steps)),
        ]
        # as text, once: each update only puts its batch and labels around it
        self.phases = sql.SQL(SPARK.render(sql.SQL(",\n").join(phases)))
        self.values = sql.SQL(SPARK.render(sql.SQL(",\n  ").join(values)))

    def statement(self) -> sql.Composable:
        """One update as a plain statement: the state row after it, from the row before (sqlnet_prev)."""
        tr = self.tr
        return sql.SQL(
            "-- one update: the phases over the batch after the state row's, then the step ({comment})\n"
            "WITH\n"
            "    -- the state after the update before (one row)\n    prev AS (SELECT * FROM {prev}),\n"
            "{next},\n"
            "    -- the samples of its batch, one row each\n    batch_rows AS (\n      {rows}\n    ),\n"
            "{phases}\nSELECT\n  n.epoch,\n  n.batch,\n  {phase} AS phase,\n  {values}\n"
            "FROM steps AS s CROSS JOIN next AS n"
        ).format(
            comment=sql.SQL(tr.phases[-1].comment),
            prev=PREV_VIEW,
            next=next_cte(sql.Literal(self.batches)),
            rows=batch_rows(tr),
            phases=self.phases,
            phase=sql.Literal(tr.phases[-1].number),
            values=self.values,
        )


def update_statement(tr: Training, batches: int) -> sql.Composable:
    """The statement of every update of a training with `batches` batches per epoch."""
    return Updates(tr, batches).statement()


def spark_literal(value: object) -> sql.Composable:
    """A value as Spark SQL reads it: doubles with D (a bare 0.5 is a DECIMAL), arrays as array(...)."""
    if isinstance(value, list):
        return sql.SQL("array({})").format(sql.SQL(", ").join(spark_literal(v) for v in value))
    if isinstance(value, float):
        return sql.SQL(repr(value) + "D") if value == value and abs(value) != float("inf") else sql.SQL(
            "CAST({} AS DOUBLE)"
        ).format(sql.Literal(str(value)))
    if value is None:
        return sql.SQL("NULL")
    return sql.Literal(value)


def prev_view(tr: Training, row: dict[str, object]) -> sql.Composable:
    """The state row as a view of literals (for a script that runs as printed in spark-sql)."""
    return sql.SQL(
        "-- the state before the first update: the parameters as the tables hold them\n"
        "CREATE OR REPLACE TEMPORARY VIEW {v} AS {row}"
    ).format(v=PREV_VIEW, row=constant_row(tr, row))


def constant_row(tr: Training, row: dict[str, object]) -> sql.Composable:
    """The state row as a SELECT of literals: the trained weights as constants."""
    cols = sql.SQL(",\n  ").join(
        sql.SQL("{} AS {}").format(
            spark_literal(row[c]) if row[c] is not None else sql.SQL("CAST(NULL AS {})").format(
                sql.SQL("BIGINT" if c == "samples" else "DOUBLE")
            ),
            _c(c),
        )
        for c in state_columns(tr)
    )
    return sql.SQL("SELECT\n  {}").format(cols)


def long_samples(tr: Training, samples: Table) -> sql.Composable:
    """A long table's samples (sample, node, value) as one row each: sample, x1..xn."""
    return sql.SQL("SELECT sample, {xs} FROM ({rows}) AS x GROUP BY sample").format(
        xs=pivot_columns("x", tr.net.sizes[0]), rows=data_select(dataclasses.replace(tr, validation=None), samples)
    )


def predict_statement(tr: Training, samples: sql.Composable, outputs: Outputs) -> sql.Composable:
    """Each sample's predictions from the network as the state row holds it (sqlnet_prev): the statement
    PostgreSQL's predict runs (``sqlnet.compile.predict.predictions``), through the SPARK dialect."""
    return predictions(tr, samples, outputs, prev=sql.SQL("SELECT * FROM {}").format(PREV_VIEW))


# --- the trace: every value each phase computed, one row per value ----------------------------------

TRACE_COLUMNS = "run_id int, epoch int, batch int, sample bigint, layer int, quantity string, input_node int, node int, value double"


def _traced(name: str) -> tuple[str, int | None, int | None] | None:
    """What a phase's column holds, as the trace names it: (quantity, layer, node); None for a helper column
    (a softmax's exponentials)."""
    kind, _, rest = name.partition("_") if name != "loss" else ("loss", "", "")
    if name == "loss":
        return ("loss", None, None)
    if kind.startswith("x"):
        return ("activation", 0, int(kind[1:]))  # the batch's input values, as layer 0's activations
    quantity = {"z": "input", "a": "activation", "d": "delta"}.get(kind[:1])
    if quantity is None or not rest:
        return None
    return (quantity, int(kind[1:]), int(rest))


def trace_statement(tr: Training, batches: int) -> sql.Composable:
    """The values of every phase of one update (before the step), as rows (phase, epoch, batch, sample, layer,
    quantity, input_node, node, value): the update's own phases, each keeping every column it makes, and each
    phase's columns turned into rows with stack()."""
    net = tr.net
    xs = [f"x{i}" for i in range(1, net.sizes[0] + 1)]
    given = ["sample", *xs, *(f"t{j}" for j in range(1, net.sizes[-1] + 1))]
    pc = ParamColumns(LAYOUT._param_columns(tr), _materialized(tr))
    stages = LAYOUT._stages(tr, pc)
    made = {n for stage in stages for n, _ in stage.new}
    bodies = LAYOUT._stage_bodies(tr, stages, {"sample", *xs} | made, given)
    by_kind = {(p.kind, p.layer): p for p in tr.phases}
    selects = []
    for stage in stages:
        phase = by_kind[stage.key]
        names = [n for n, _ in stage.new] + (xs if stage.key == ("input", 1) else [])
        rows = [(n, t) for n in names if (t := _traced(n)) is not None]
        items = sql.SQL(", ").join(
            sql.SQL("{}, {}, CAST(NULL AS INT), {}, s.{}").format(
                sql.SQL("CAST(NULL AS INT)") if layer is None else sql.Literal(layer), sql.Literal(q),
                sql.SQL("CAST(NULL AS INT)") if node is None else sql.Literal(node), _c(n),
            )
            for n, (q, layer, node) in rows
        )
        selects.append(
            sql.SQL(
                "SELECT {p} AS phase, n.epoch, n.batch, s.sample, stack({k}, {items}) AS (layer, quantity, input_node, "
                "node, value)\nFROM {t} AS s CROSS JOIN next AS n"
            ).format(p=sql.Literal(phase.number), k=sql.Literal(len(rows)), items=items, t=sql.Identifier(phase.table))
        )
    return sql.SQL(
        "-- one update's phases, every value each computed, as rows\n"
        "WITH\n    prev AS (SELECT * FROM {prev}),\n{next},\n"
        "    batch_rows AS (\n      {rows}\n    ),\n{ctes}\n{selects}"
    ).format(
        prev=PREV_VIEW, next=next_cte(sql.Literal(batches)), rows=batch_rows(tr),
        ctes=sql.SQL(",\n").join([*pc.ctes(), *LAYOUT._phase_bodies(tr, stages, bodies)]),
        selects=sql.SQL("\nUNION ALL\n").join(selects),
    )  # fmt: skip


def parameter_rows(tr: Training, row: dict[str, object]) -> list[tuple[int, str, int | None, int | None, float]]:
    """The state row's weights and biases (and Adam's count of updates, as layer 0's step) as the trace's rows
    (layer, quantity, input_node, node, value)."""
    net = tr.net
    out: list[tuple[int, str, int | None, int | None, float]] = []
    for k in range(1, net.depth + 1):
        n_out = net.sizes[k]
        w = row[f"w{k}"]
        assert isinstance(w, list)
        out += [(k, "weight", i // n_out + 1, i % n_out + 1, float(v)) for i, v in enumerate(w)]
        if net.bias == "node":
            b = row[f"b{k}"]
            assert isinstance(b, list)
            out += [(k, "bias", None, j + 1, float(v)) for j, v in enumerate(b)]
        elif net.bias == "edge":
            b = row[f"b{k}"]
            assert isinstance(b, list)
            out += [(k, "bias", i // n_out + 1, i % n_out + 1, float(v)) for i, v in enumerate(b)]
    if tr.optimizer.name == "adam":
        t = row["t"]
        assert isinstance(t, (int, float))
        out.append((0, "step", None, None, float(t)))
    return out
