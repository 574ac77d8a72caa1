"""The operations on Apache Spark (`--engine spark`): init, train, sql, check and runs.

The network is the same as in PostgreSQL (tables, columns, phases, functions, optimizers); the
statements are the wide layout's, through the SPARK dialect, one per update (see
``sqlnet.compile.spark`` for why a client loop and not a recursive CTE). Nothing is written until the
training has ended well: the weights go back as a new version of each table, switched atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlnet.compile import spark as spark_sql
from sqlnet.compile.dialect import SPARK
from sqlnet.compile.training import Training
from sqlnet.db import spark as store
from sqlnet.db.networks import Definition, optimizer_key
from sqlnet.errors import CheckFailed, Diverged, InputError
from sqlnet.model import reference
from sqlnet.model.initialize import initial_params
from sqlnet.model.network import Dataset, Network, Params, Sample
from sqlnet.ops.common import TrainOptions
from sqlnet.ops.defaults import DEFAULT_TOLERANCE
from sqlnet.ops.train import Progress, TrainResult
from sqlnet.ops.verify import CheckReport, _pairs_difference, compare

POST_PARAMS = Params(
    [[[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]],
    [[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]],
)
RUNS_SCHEMA = (
    "run_id int, started_at timestamp, finished_at timestamp, status string, network string, options string, "
    "epochs int, learning_rate double, final_loss double"
)
LOSSES_SCHEMA = "run_id int, epoch int, loss double"


@dataclass(frozen=True)
class SparkTarget:
    """Where the network lives on Spark and how to reach it."""

    parquet: str
    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)

    def open(self) -> tuple[Any, store.ParquetTables]:
        tables = store.ParquetTables(self.parquet)
        log = tables.root / store.VERSIONS / "spark.log"
        return store.session(self.master, self.conf, log if tables.root.parent.exists() else None), tables


def _target(parquet: str | None, master: str | None, conf: dict[str, str] | None) -> SparkTarget:
    if not parquet:
        raise InputError("--engine spark needs --parquet DIR: the folder that holds the network's tables")
    return SparkTarget(parquet, master or "local[*]", dict(conf or {}))


# --- init ----------------------------------------------------------------------------------------


def init(
    parquet: str | None = None,
    *,
    example: str | None = None,
    layers: tuple[int, ...] | None = None,
    seed: int | None = None,
    init: str = "he",
    bias: str = "node",
    replace: bool = False,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> list[str]:
    """The post's tables (`example="post"`) or a new network of `layers`, as Parquet folders."""
    if bool(example) == bool(layers):
        raise InputError("choose one of --example post or --layers")
    if example and example != "post":
        raise InputError(f"unknown example {example!r}: the Spark engine knows post")
    spark, tables = _target(parquet, master, conf).open()
    if example:
        net, params = Network((3, 2, 3), bias="edge"), POST_PARAMS
    else:
        assert layers is not None
        net = Network(tuple(layers), bias=bias)
        params = initial_params(net, init, seed)
    names = [f"weights{k}" for k in range(1, net.depth + 1)]
    names += [f"biases{k}" for k in range(1, net.depth + 1)] if net.bias == "node" else []
    if example:
        names = ["inputs", "outputs", *names]
    present = [n for n in names if tables.exists(n)]
    if present and not replace:
        raise InputError(
            f"{', '.join(present)} already exist in {tables.root}: add --replace to overwrite them (the old "
            f"version is kept in {store.VERSIONS})"
        )
    if example:
        tables.write(spark, "inputs", [(1, 1.0), (2, 3.0), (3, 5.0)], "inputNode int, inputValue double")
        tables.write(spark, "outputs", [(1, 290.0), (2, 399.0), (3, 505.0)], "outputNode int, outputValue double")
    for k in range(1, net.depth + 1):
        rows, schema, bias_rows, bias_schema = store.parameter_rows(net, params, k)
        tables.write(spark, f"weights{k}", rows, schema)
        if net.bias == "node":
            tables.write(spark, f"biases{k}", bias_rows, bias_schema)
    for k in range(net.depth + 1, 65):  # deeper layers of a network replaced by a shallower one
        if tables.exists(f"weights{k}"):
            raise InputError(f"weights{k} is left over from a deeper network in {tables.root}: remove it")
    tables.save_definition(asdict(Definition(str(tables.root), sizes=net.sizes, bias=net.bias)))
    return names


# --- loading a network -------------------------------------------------------------------------


@dataclass
class SparkNetwork:
    spark: Any
    tables: store.ParquetTables
    training: Training
    params: Params
    samples: int
    definition: Definition | None

    @property
    def net(self) -> Network:
        return self.training.net

    @property
    def batches(self) -> int:
        tr = self.training
        return math.ceil(self.samples / tr.batch_size) if tr.mini_batch else 1


def _refuse_unsupported(opts: TrainOptions) -> None:
    for what, unsupported in (
        ("--numeric exact", opts.numeric == "exact"),
        ("--layout long", opts.layout == "long"),
        ("--validation-fraction", opts.validation_fraction > 0),
    ):
        if unsupported:
            raise InputError(f"the Spark engine does not take {what} (PostgreSQL does): leave it out")


def load(target: SparkTarget, opts: TrainOptions, redefine: bool = False) -> SparkNetwork:
    spark, tables = target.open()
    _refuse_unsupported(opts)
    kept = tables.read_definition()
    definition = Definition(**{**kept, "sizes": tuple(kept["sizes"]) if kept.get("sizes") else None}) if kept else None
    opts = opts.resolved(definition, redefine)
    tm = store.discover(tables, spark, opts.bias or (definition.bias if definition else None))
    sizes, params = store.read_network(spark, tm)
    net = Network(sizes, opts.hidden_activation, opts.output_activation, opts.loss, tm.bias)  # type: ignore[arg-type]
    samples = store.check_data(spark, tm, sizes)
    tr = Training(
        net,
        tm,
        opts.learning_rate,
        batch_size=opts.batch_size,
        shuffle=opts.shuffle,
        optimizer=opts.make_optimizer(),
        layout="wide",
        dialect=SPARK,
    )
    for statement in (SPARK.pin, *SPARK.settings):
        spark.sql(statement.as_string(None))
    return SparkNetwork(spark, tables, tr, params, samples, definition)


def _flat(matrix: list[list[float]]) -> list[float]:
    return [v for row in matrix for v in row]


def start_row(tr: Training, params: Params, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state row before the first update: the parameters as flat arrays, and the optimizer state
    kept from the last training (`kept`, when it is this optimizer's and fits) or a fresh one."""
    net = tr.net
    row: dict[str, Any] = {"epoch": 1, "batch": 0, "phase": 0}
    for k in range(1, net.depth + 1):
        row[f"w{k}"] = _flat(params.weights[k - 1])
        if net.bias != "none":
            row[f"b{k}"] = _flat(params.biases[k - 1])
    for name in [n for n in list(row) if n[0] in "wb" and n[1:].isdigit()]:
        for c in tr.optimizer.state:
            row[f"{c}{name}"] = [0.0] * len(row[name])
    if tr.optimizer.name == "adam":
        row["t"] = 0.0
    if kept is not None:
        for name, values in kept["arrays"].items():
            row[name] = values
        if "t" in row:
            row["t"] = float(kept["t"])
    row["loss"], row["samples"] = None, None
    return row


def kept_state(tables: store.ParquetTables, tr: Training, reset: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """The optimizer state to continue from, and a note when one was dropped (another optimizer's, or
    one of another shape of network), as PostgreSQL's `train` does."""
    state = None if reset else tables.read_state()
    if state is None or not tr.optimizer.state:
        return None, None
    fresh = start_row(tr, _zero_params(tr.net))  # the arrays and their lengths
    if state.get("optimizer") != optimizer_key(tr.optimizer):
        return None, f"the network's optimizer state was {state.get('optimizer')}'s: {optimizer_key(tr.optimizer)} starts a fresh one"
    if set(state["arrays"]) != {n for n in fresh if n[0] in "mv" and n[1:2] in ("w", "b")} or any(
        len(v) != len(fresh[n]) for n, v in state["arrays"].items()
    ):
        return None, "the network's optimizer state was for another shape of network: it starts afresh"
    return state, None


def _zero_params(net: Network) -> Params:
    return reference.zeros_like(net)


def reference_state(tr: Training, kept: dict[str, Any] | None) -> reference.OptimizerState:
    """A kept state as the reference holds it (m and v shaped like the parameters)."""
    state = reference.OptimizerState.zeros(tr.net)
    if kept is None:
        return state
    row = start_row(tr, _zero_params(tr.net), kept)
    for c in ("m", "v"):
        if c in tr.optimizer.state:
            values = params_of(tr, {**row, **{f"{p}": row[f"{c}{p}"] for p in spark_sql.LAYOUT._state_names(tr)}})
            setattr(state, c, values)
    state.t = int(kept["t"])
    return state


def state_of(tr: Training, row: dict[str, Any]) -> dict[str, Any] | None:
    """The optimizer state a training ended with, to keep beside the tables."""
    if not tr.optimizer.state:
        return None
    arrays = {n: list(row[n]) for n in spark_sql.state_columns(tr) if n[0] in "mv" and n[1:2] in ("w", "b")}
    return {"optimizer": optimizer_key(tr.optimizer), "t": row.get("t", 0.0), "arrays": arrays}


def _schema(tr: Training) -> str:
    types = {"epoch": "int", "batch": "int", "phase": "int", "t": "double", "loss": "double", "samples": "bigint"}
    return ", ".join(f"{c} {types.get(c, 'array<double>')}" for c in spark_sql.state_columns(tr))


def params_of(tr: Training, row: dict[str, Any]) -> Params:
    net = tr.net
    weights, biases = [], []
    for k in range(1, net.depth + 1):
        n_in, n_out = net.sizes[k - 1], net.sizes[k]
        w = row[f"w{k}"]
        weights.append([list(w[i * n_out : (i + 1) * n_out]) for i in range(n_in)])
        if net.bias == "edge":
            b = row[f"b{k}"]
            biases.append([list(b[i * n_out : (i + 1) * n_out]) for i in range(n_in)])
        elif net.bias == "node":
            biases.append([list(row[f"b{k}"])])
        else:
            biases.append([])
    return Params(weights, biases)


def run_updates(
    sn: SparkNetwork,
    epochs: int,
    on_update: Callable[[Progress], None] | None = None,
    run_id: int = 0,
    kept: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[float], int]:
    """The client loop: one statement per update, each reading the state row the one before returned.
    Returns the last state row, each epoch's mean loss, and the number of statements run."""
    spark, tr = sn.spark, sn.training
    schema = _schema(tr)
    row = start_row(tr, sn.params, kept)
    losses: list[float] = []
    done, total = 0, epochs * sn.batches
    cache = ["sqlnet_data", "sqlnet_batches"]
    with store.cached(spark, cache):
        spark.sql(spark_sql.cache_data(tr).as_string(None))
        for epoch in range(1, epochs + 1):
            if tr.mini_batch and tr.shuffle is not None:
                store.drop(spark, "sqlnet_batches")
                spark.sql(spark_sql.cache_batches(tr, epoch).as_string(None))
            total_loss, total_samples = 0.0, 0
            for batch in range(1, sn.batches + 1):
                spark.createDataFrame([tuple(row[c] for c in spark_sql.state_columns(tr))], schema).createOrReplaceTempView(
                    spark_sql.PREV_VIEW.as_string(None)
                )
                statement = spark_sql.update_statement(tr, epoch, batch).as_string(None)
                row = spark.sql(statement).collect()[0].asDict()
                done += 1
                _check_finite(row, epoch, tr)
                total_loss += row["loss"]
                total_samples += row["samples"]
                if on_update is not None:
                    on_update(Progress(run_id, epoch, batch, done, total, row["loss"] / row["samples"]))
            losses.append(total_loss / total_samples)
    return row, losses, done


def _check_finite(row: dict[str, Any], epoch: int, tr: Training) -> None:
    """Spark does not raise on a float overflow as PostgreSQL does: a value that left the doubles
    ends the training here, before anything is written."""
    values = [row["loss"]] + [v for name in spark_sql.state_columns(tr) if isinstance(row[name], list) for v in row[name]]
    if any(v is None or not math.isfinite(v) for v in values):
        raise Diverged(
            f"the training diverged in epoch {epoch} (a value is no longer a finite number). Try a smaller "
            f"learning rate (this run: {tr.learning_rate}), scaling the inputs, or --optimizer adam; nothing was "
            f"written, so every table is as it was before"
        )


# --- train ---------------------------------------------------------------------------------------


def train(
    parquet: str | None = None,
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    on_update: Callable[[Progress], None] | None = None,
    redefine: bool = False,
    reset_optimizer: bool = False,
    **options: Any,
) -> TrainResult:
    """Train the network in DIR's Parquet tables on Spark and write the weights back (and the
    optimizer's state beside them, which the next training continues from)."""
    started = time.perf_counter()
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf), opts, redefine)
    spark, tables, tr = sn.spark, sn.tables, sn.training
    run_id = _next_run_id(spark, tables)
    begun = datetime.now(timezone.utc).replace(tzinfo=None)
    kept, note = kept_state(tables, tr, reset_optimizer)
    t0 = time.perf_counter()
    row, losses, statements = run_updates(sn, opts.epochs, on_update, run_id, kept)
    sql_seconds = time.perf_counter() - t0
    params = params_of(tr, row)
    for k in range(1, sn.net.depth + 1):
        rows, schema, bias_rows, bias_schema = store.parameter_rows(sn.net, params, k)
        tables.write(spark, f"weights{k}", rows, schema)
        if sn.net.bias == "node":
            tables.write(spark, f"biases{k}", bias_rows, bias_schema)
    net = sn.net
    resolved = TrainOptions(**{**asdict(opts), **{f: getattr(net, f) for f in ("hidden_activation", "output_activation", "loss")}})
    tables.append(
        spark,
        "runs",
        [
            (
                run_id, begun, datetime.now(timezone.utc).replace(tzinfo=None), "finished",
                json.dumps({"sizes": list(net.sizes), "hidden_activation": net.hidden_activation,
                            "output_activation": net.output_activation, "loss": net.loss, "bias": net.bias}),
                json.dumps(asdict(resolved)), opts.epochs, float(opts.learning_rate), losses[-1],
            )
        ],
        RUNS_SCHEMA,
    )  # fmt: skip
    tables.append(spark, "run_losses", [(run_id, e, v) for e, v in enumerate(losses, start=1)], LOSSES_SCHEMA)
    definition = asdict(sn.definition) if sn.definition else asdict(Definition(str(tables.root)))
    definition.update(sizes=list(net.sizes), bias=net.bias, hidden_activation=net.hidden_activation,
                      output_activation=net.output_activation, loss=net.loss, last_run=run_id)  # fmt: skip
    definition["optimizer"] = optimizer_key(tr.optimizer) if tr.optimizer.state else definition.get("optimizer")
    tables.save_definition(definition)
    tables.save_state(state_of(tr, row))
    return TrainResult(
        run_id, net, resolved, sn.params, params, losses, time.perf_counter() - started, statements, sql_seconds,
        "wide (Spark, one statement per update)", notes=[note] if note else [],
    )  # fmt: skip


def _next_run_id(spark: Any, tables: store.ParquetTables) -> int:
    if not tables.exists("runs"):
        return 1
    return int(spark.read.parquet(str(tables.path("runs"))).agg({"run_id": "max"}).collect()[0][0] or 0) + 1


# --- check, sql, runs ----------------------------------------------------------------------------


def read_dataset(sn: SparkNetwork) -> Dataset:
    """The samples in Python, for the reference."""
    tm, spark = sn.training.tables, sn.spark
    pivot = spark_sql.LAYOUT._pivot(sn.training).as_string(None)
    n_in, n_out = sn.net.sizes[0], sn.net.sizes[-1]
    rows = spark.sql(pivot).collect()
    del tm
    return Dataset(
        [
            Sample(int(r["sample"]), tuple(float(r[f"x{i}"]) for i in range(1, n_in + 1)),
                   tuple(float(r[f"t{j}"]) for j in range(1, n_out + 1)))
            for r in rows
        ]
    )  # fmt: skip


def check(
    parquet: str | None = None,
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    raise_on_failure: bool = False,
    **options: Any,
) -> CheckReport:
    """Train on Spark and with the reference from the same tables; nothing is written."""
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf), opts)
    kept, _ = kept_state(sn.tables, sn.training)  # the state train would continue from
    row, losses, _ = run_updates(sn, opts.epochs, kept=kept)
    got = params_of(sn.training, row)
    want = reference.train(
        sn.net, sn.params, read_dataset(sn), float(opts.learning_rate), opts.epochs,
        batch_size=opts.batch_size, shuffle=opts.shuffle, optimizer=sn.training.optimizer,
        state=reference_state(sn.training, kept),
    )  # fmt: skip
    differences = [*compare(sn.net, sn.training.tables, got, want.params), _pairs_difference(
        "loss per epoch", list(zip(losses, want.losses)))]  # fmt: skip
    report = CheckReport(sn.net, opts, differences, tolerance, losses, want.losses)
    if raise_on_failure and not report.ok:
        worst = max(report.differences, key=lambda d: d.max_rel)
        raise CheckFailed(f"Spark and reference differ by {worst.max_rel:.3g} in {worst.table} (tolerance {tolerance})")
    return report


def training_sql(
    parquet: str | None = None, *, master: str | None = None, conf: dict[str, str] | None = None, **options: Any
) -> str:
    """What a Spark training runs, as a script for spark-sql: the views, the cached samples, the state
    before the first update, and the first update's statement (each later one is the same statement
    over the state row the one before returned)."""
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf), opts)
    tr, tables = sn.training, sn.tables
    names = ["inputs", "outputs", *(t.name for t in tr.tables.parameter_tables())]
    lines = [
        f"-- sqlnet on Apache Spark SQL: {describe(tr)}",
        "-- one statement per update; run with spark-sql, each later update is the last statement again over",
        "-- the state row the one before returned (sqlnet's client loop does that)",
        *(f"{s.as_string(None)};" for s in (SPARK.pin, *SPARK.settings)),
    ]
    for name in names:
        path = str(tables.path(name))
        if "'" in path or "\\" in path:
            raise InputError(f"the path {path!r} cannot be written into a printed script: move the tables")
        lines.append(f"CREATE OR REPLACE TEMPORARY VIEW {name} USING parquet OPTIONS (path '{path}');")
    lines.append(spark_sql.cache_data(tr).as_string(None) + ";")
    if tr.mini_batch and tr.shuffle is not None:
        lines.append(spark_sql.cache_batches(tr, 1).as_string(None) + ";")
    lines.append(spark_sql.prev_view(tr, start_row(tr, sn.params)).as_string(None) + ";")
    lines.append(spark_sql.update_statement(tr, 1, 1).as_string(None) + ";")
    return "\n".join(lines) + "\n"


def describe(tr: Training) -> str:
    net = tr.net
    return (
        f"a {'-'.join(map(str, net.sizes))} network, {net.hidden_activation} hidden layers, "
        f"{net.output_activation} output, loss {net.loss}, bias per {net.bias}; {tr.optimizer.describe()} at "
        f"learning rate {tr.learning_rate}, "
        + (f"batches of {tr.batch_size}" + (f" shuffled (seed {tr.shuffle})" if tr.shuffle is not None else "")
           if tr.mini_batch else "full batch")
    )  # fmt: skip


def runs(parquet: str | None = None, *, master: str | None = None, conf: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The runs recorded beside the network's tables, oldest first."""
    spark, tables = _target(parquet, master, conf).open()
    if not tables.exists("runs"):
        return []
    rows = spark.read.parquet(str(tables.path("runs"))).orderBy("run_id").collect()
    out = []
    for r in rows:
        d = r.asDict()
        d["network"], d["options"] = json.loads(d["network"]), json.loads(d["options"])
        out.append(d)
    return out


def predict(
    parquet: str | None = None,
    *,
    table: str = "inputs",
    output: str = "predictions",
    master: str | None = None,
    conf: dict[str, str] | None = None,
    **options: Any,
) -> tuple[str, int]:
    """Run the network forward over the samples of `table` (a long table: sampleId, inputNode,
    inputValue) and write each sample's outputs to the table `output` (sampleId, outputNode,
    prediction), a new version switched atomically; returns its path and its number of rows."""
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf), opts)
    spark, tr, tables = sn.spark, sn.training, sn.tables
    for given in (table, output):
        if not given or "/" in given or given.startswith((".", "sqlnet_")):
            raise InputError(f"{given!r} is not a table name sqlnet can use in {tables.root}: a plain folder name")
    if output in ("inputs", "outputs", "runs", "run_losses") or output.startswith(("weights", "biases")):
        raise InputError(f"--into {output} would overwrite one of the network's own tables: name another")
    samples = store.map_table(
        tables, spark, table, {"sample": "sampleid", "node": "inputnode", "value": "inputvalue"}, ("sample",)
    )
    spark.createDataFrame([tuple(start_row(tr, sn.params)[c] for c in spark_sql.state_columns(tr))], _schema(tr)) \
        .createOrReplaceTempView(spark_sql.PREV_VIEW.as_string(None))  # fmt: skip
    frame = spark.sql(spark_sql.predict_statement(tr, samples).as_string(None))
    tables.write_frame(output, frame.coalesce(1))
    count = spark.read.parquet(str(tables.path(output))).count()
    return output, int(count)


def folder(parquet: str) -> Path:
    return store.ParquetTables(parquet).root
