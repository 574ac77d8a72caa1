"""The Spark engine's training loop: where the network lives, loading and checking it, and the
client loop that runs one statement per update (see ``sqlnet.compile.spark`` for why)."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlnet.compile import spark as spark_sql
from sqlnet.compile.dialect import SPARK
from sqlnet.compile.training import Training
from sqlnet.db import spark as store
from sqlnet.db.networks import Definition, optimizer_key
from sqlnet.db.spark_plan import Deadline, Repeated, StateRow
from sqlnet.db.spark_plan import settings as plan_settings
from sqlnet.errors import Diverged, InputError
from sqlnet.model import reference
from sqlnet.model.network import Network, Params
from sqlnet.ops.common import TrainOptions, held_out
from sqlnet.ops.engines import refusal
from sqlnet.ops.progress import Progress


@dataclass(frozen=True)
class SparkTarget:
    """Where the network lives on Spark and how to reach it."""

    parquet: str | None
    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)
    database: str | None = None  # tables of this Spark catalog database instead of Parquet folders

    def open(self) -> tuple[Any, store.ParquetTables]:
        # a JVM started here writes its own notices to a log, not to the terminal sqlnet prints to
        log = Path(tempfile.gettempdir()) / f"sqlnet-spark-{os.getuid()}.log"
        spark = store.session(self.master, self.conf, log)
        if self.database is not None:
            return spark, store.CatalogTables(self.database).bind(spark)
        assert self.parquet is not None
        return spark, store.ParquetTables(self.parquet)


def _target(
    parquet: str | None, master: str | None, conf: dict[str, str] | None, database: str | None = None
) -> SparkTarget:
    if bool(parquet) == bool(database):
        raise InputError(
            "--engine spark needs --parquet DIR (a folder of the network's Parquet tables) or --spark-database "
            "NAME (tables of Spark's catalog), one of them"
        )
    return SparkTarget(parquet, master or "local[*]", dict(conf or {}), database)


# --- loading a network -------------------------------------------------------------------------


@dataclass
class SparkNetwork:
    spark: Any
    tables: store.ParquetTables
    training: Training
    params: Params
    samples: int
    definition: Definition | None
    options: TrainOptions  # as given, with the network's functions filled in from its definition

    @property
    def held_out(self) -> int:
        """The samples held out for validation (of `samples`, which counts them all): the training's split."""
        return self.training.validation[1] if self.training.validation else 0

    @property
    def net(self) -> Network:
        return self.training.net

    @property
    def trained_on(self) -> int:
        return self.samples - self.held_out

    @property
    def batches(self) -> int:
        tr = self.training
        return math.ceil(self.trained_on / tr.batch_size) if tr.mini_batch else 1


def _refuse_unsupported(opts: TrainOptions) -> None:
    """What Spark cannot do is refused by the one rule the command line uses too (sqlnet.ops.engines)."""
    message = refusal("spark", {"numeric": opts.numeric, "layout": opts.layout, "kernels": opts.kernels})
    if message:
        raise InputError(message)


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
        net=net,
        tables=tm,
        learning_rate=opts.learning_rate,
        batch_size=opts.batch_size,
        shuffle=opts.shuffle,
        optimizer=opts.make_optimizer(),
        layout="wide",
        dialect=SPARK,
    )
    for statement in SPARK.session:
        spark.sql(SPARK.render(statement))
    held = held_out(opts, samples, tm)  # the same rule as PostgreSQL's
    if held:
        tr = dataclasses.replace(tr, validation=(opts.seed or 0, held))
    return SparkNetwork(spark, tables, tr, params, samples, definition, opts)


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
    for name in spark_sql.LAYOUT._state_names(tr):
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
    fresh = start_row(tr, reference.zeros_like(tr.net))  # the arrays and their lengths
    if state.get("optimizer") != optimizer_key(tr.optimizer):
        return None, f"the network's optimizer state was {state.get('optimizer')}'s: {optimizer_key(tr.optimizer)} starts a fresh one"
    if set(state["arrays"]) != set(state_arrays(tr)) or any(len(v) != len(fresh[n]) for n, v in state["arrays"].items()):
        return None, "the network's optimizer state was for another shape of network: it starts afresh"
    return state, None


def state_arrays(tr: Training) -> list[str]:
    """The state row's optimizer-state arrays (mw1, vw1, mb1, ...), as the layout names them."""
    return [f"{c}{p}" for p in spark_sql.LAYOUT._state_names(tr) for c in tr.optimizer.state]


def reference_state(tr: Training, kept: dict[str, Any] | None) -> reference.OptimizerState:
    """A kept state as the reference holds it (m and v shaped like the parameters)."""
    state = reference.OptimizerState.zeros(tr.net)
    if kept is None:
        return state
    row = start_row(tr, reference.zeros_like(tr.net), kept)
    for c in tr.optimizer.state:  # m and v are flat like the parameters: read them as if they were
        setattr(state, c, params_of(tr, {p: row[f"{c}{p}"] for p in spark_sql.LAYOUT._state_names(tr)}))
    state.t = int(kept["t"])
    return state


def state_of(tr: Training, row: dict[str, Any]) -> dict[str, Any] | None:
    """The optimizer state a training ended with, to keep beside the tables."""
    if not tr.optimizer.state:
        return None
    arrays = {n: list(row[n]) for n in state_arrays(tr)}
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


@dataclass
class Ran:
    """What the client loop ran: the last state row, each epoch's mean loss, the statements run, the held-out
    samples' (loss, accuracy) after each epoch, and how many runs parsed their statement anew."""

    row: dict[str, Any]
    losses: list[float]
    statements: int
    validation: list[tuple[float | None, float | None]]
    reparsed: int
    # with a trace: every value of every phase, (phase, epoch, batch, sample, layer, quantity, input_node,
    # node, value), in the order computed
    traced: list[tuple[Any, ...]] = field(default_factory=list)


def run_updates(
    sn: SparkNetwork,
    epochs: int,
    on_update: Callable[[Progress], None] | None = None,
    run_id: int = 0,
    kept: dict[str, Any] | None = None,
    deadline: Deadline | None = None,
    first_epoch: int = 1,
    on_epoch: Callable[[int, Ran], None] | None = None,
    trace: bool = False,
) -> Ran:
    """The client loop: one statement per update, each reading the state row the one before returned
    (and with held-out samples, one scoring statement after each epoch). Epochs `first_epoch`..`epochs`
    (a resumed run starts past its checkpoint, from the parameters and `kept` state it holds);
    `on_epoch(epoch, ran)` is called after each epoch with what ran so far (a checkpoint). With `trace`, each
    update's phases are also run as rows (``spark_sql.trace_statement``) before the update itself, and the
    parameters each epoch starts from (phase 0) and each update ends with (the last phase) are kept too."""
    spark, tr = sn.spark, sn.training
    text = SPARK.render(spark_sql.Updates(tr, sn.batches).statement())
    row = start_row(tr, sn.params, kept)
    row["epoch"] = first_epoch  # batch 0: the next update is the epoch's first
    losses: list[float] = []
    validation: list[tuple[float | None, float | None]] = []
    runners: list[Repeated] = []  # every kept statement, for how many of their runs were parsed anew
    done, total = 0, (epochs - first_epoch + 1) * sn.batches
    shuffled = tr.mini_batch and tr.shuffle is not None
    state = StateRow(spark, _schema(tr), spark_sql.state_columns(tr))
    traced: list[tuple[Any, ...]] = []
    trace_text = SPARK.render(spark_sql.trace_statement(tr, sn.batches)) if trace else None
    last_phase = tr.phases[-1].number
    try:
        cache = ["sqlnet_data", "sqlnet_validation", "sqlnet_batches"]
        with plan_settings(spark), store.cached(spark, cache):
            scored = None
            if sn.held_out:
                spark.sql(SPARK.render(spark_sql.cache_validation(tr)))
            spark.sql(SPARK.render(spark_sql.cache_data(tr)))
            state.register(row)
            if sn.held_out:
                scored = Repeated(spark, state, SPARK.render(spark_sql.validation_statement(tr)))
                runners.append(scored)
            for epoch in range(first_epoch, epochs + 1):
                if shuffled or epoch == first_epoch:
                    if shuffled:  # this epoch's batches: a new cached table, so a new plan (once per epoch)
                        store.drop(spark, "sqlnet_batches")
                        spark.sql(SPARK.render(spark_sql.cache_batches(tr, epoch)))
                    repeated = Repeated(spark, state, text)
                    runners.append(repeated)
                total_loss, total_samples = 0.0, 0
                if trace_text is not None:  # the weights the epoch begins with, as phase 0 of batch 0 (the
                    # step count only where the training begins, as PostgreSQL's trace keeps it)
                    traced += [(0, epoch, 0, None, *p) for p in spark_sql.parameter_rows(tr, row)
                               if p[1] != "step" or epoch == first_epoch]  # fmt: skip
                for batch in range(1, sn.batches + 1):
                    if deadline is not None:
                        deadline.check()
                    if trace_text is not None:
                        state.write(row)
                        traced += [tuple(r) for r in spark.sql(trace_text).collect()]
                    row = repeated.run(row, (epoch, batch))
                    if trace_text is not None:
                        traced += [(last_phase, epoch, batch, None, *p) for p in spark_sql.parameter_rows(tr, row)]
                    done += 1
                    _check_finite(row, epoch, tr)
                    total_loss += row["loss"]
                    total_samples += row["samples"]
                    if on_update is not None:
                        on_update(Progress(run_id, epoch, batch, done, total, row["loss"] / row["samples"]))
                losses.append(total_loss / total_samples)
                if scored is not None:  # the held-out samples under this epoch's last parameters
                    score = scored.run(row, (row["epoch"], row["batch"]))
                    validation.append((score["loss"], score["accuracy"]))
                if on_epoch is not None:
                    on_epoch(epoch, Ran(row, losses, done, validation, sum(r.reparsed for r in runners), traced))
    finally:
        state.close()
    return Ran(row, losses, done, validation, sum(r.reparsed for r in runners), traced)


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
