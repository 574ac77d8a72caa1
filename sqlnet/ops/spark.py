"""The operations on Apache Spark (`--engine spark`): init, train, sql, check and runs.

The network is the same as in PostgreSQL (tables, columns, phases, functions, optimizers); the
statements are the wide layout's, through the SPARK dialect, one per update (see
``sqlnet.compile.spark`` for why a client loop and not a recursive CTE). Nothing is written until the
training has ended well: the weights go back as a new version of each table, switched atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlnet.compile import spark as spark_sql
from sqlnet.compile.dialect import SPARK
from sqlnet.compile.training import Training
from sqlnet.db import spark as store
from sqlnet.db import spark_loading
from sqlnet.db.networks import Definition
from sqlnet.db.samples import RAW_TABLE, Loaded, csv_rows, prepare
from sqlnet.db.spark_lock import held
from sqlnet.db.store import RunInfo, network_from_json
from sqlnet.errors import CheckFailed, InputError
from sqlnet.model import reference
from sqlnet.model.initialize import initial_params
from sqlnet.model.network import Dataset, Network, Params, Sample
from sqlnet.ops.common import TrainOptions, load_spec
from sqlnet.ops.defaults import DEFAULT_TOLERANCE
from sqlnet.ops.spark_loop import (
    SparkNetwork,
    SparkTarget,
    _target,
    kept_state,
    load,
    params_of,
    reference_state,
    run_updates,
    start_row,
)
from sqlnet.ops.spark_predict import predict
from sqlnet.ops.spark_train import train
from sqlnet.ops.verify import CheckReport, _pairs_difference, compare

__all__ = ["SparkTarget", "TrainOptions", "check", "init", "load", "load_data", "params_of", "predict", "runs", "train", "training_sql"]

POST_PARAMS = Params(
    [[[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]],
    [[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]],
)


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
    database: str | None = None,
) -> list[str]:
    """The post's tables (`example="post"`) or a new network of `layers`, as Parquet folders."""
    if bool(example) == bool(layers):
        raise InputError("choose one of --example post or --layers")
    if example and example != "post":
        raise InputError(f"unknown example {example!r}: the Spark engine knows post")
    spark, tables = _target(parquet, master, conf, database).open()
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
            f"{', '.join(present)} already exist in {tables.where}: add --replace to overwrite them (the old "
            f"version is kept in {store.VERSIONS})"
        )
    if example:
        tables.write(spark, "inputs", [(1, 1.0), (2, 3.0), (3, 5.0)], "inputNode int, inputValue double")
        tables.write(spark, "outputs", [(1, 290.0), (2, 399.0), (3, 505.0)], "outputNode int, outputValue double")
    store.write_parameters(spark, tables, net, params)
    for k in range(net.depth + 1, 65):  # deeper layers of a network replaced by a shallower one
        if tables.exists(f"weights{k}"):
            raise InputError(f"weights{k} is left over from a deeper network in {tables.where}: remove it")
    tables.save_definition(asdict(Definition(tables.where, sizes=net.sizes, bias=net.bias)))
    return names


# --- load ----------------------------------------------------------------------------------------


def load_data(
    parquet: str | None = None,
    *,
    file: str | None = None,
    from_table: str | None = None,
    targets: list[str],
    features: list[str] | None = None,
    classes: bool = False,
    standardize: bool = False,
    id_column: str | None = None,
    raw_table: str = RAW_TABLE,
    validation_fraction: float | None = None,
    seed: int = 0,
    replace: bool = False,
    delimiter: str = ",",
    on_rows: Callable[[int], None] | None = None,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
) -> Loaded:
    """PostgreSQL's `load` on Spark: a CSV file (or a table of the folder or database) becomes the Parquet
    tables inputs, outputs and the raw rows, checked by the same rules (``sqlnet.db.samples``)."""
    spec = load_spec(
        file=file, from_table=from_table, targets=targets, features=features, classes=classes,
        standardize=standardize, id_column=id_column, raw_table=raw_table,
        validation_fraction=validation_fraction, seed=seed, replace=replace,
    )  # fmt: skip
    spark, tables = _target(parquet, master, conf, database).open()
    if file is not None:
        header, rows = csv_rows(Path(file), delimiter)
        source = file
    else:
        assert from_table is not None
        if not from_table or "/" in from_table or from_table.startswith(".") or not tables.exists(from_table):
            raise InputError(f"table {from_table!r} not found in {tables.where}: check --from-table")
        frame = tables.read(spark, from_table)
        header, source = list(frame.columns), f"table {from_table}"

        def rows() -> Iterator[tuple[int, dict[str, Any]]]:
            for n, row in enumerate(frame.toLocalIterator(), start=1):  # streamed a partition at a time
                yield n, row.asDict()

    return spark_loading.write(spark, tables, prepare(header, rows, source, spec, tables.where, on_rows))


# --- check, sql, runs ----------------------------------------------------------------------------


def read_dataset(sn: SparkNetwork) -> Dataset:
    """The samples the training trains on, in Python, for the reference (without the held-out ones)."""
    pivot = SPARK.render(spark_sql.LAYOUT._pivot(sn.training))
    n_in, n_out = sn.net.sizes[0], sn.net.sizes[-1]
    rows = sn.spark.sql(pivot).collect()  # the training's validation leaves the held-out samples out
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
    database: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    raise_on_failure: bool = False,
    **options: Any,
) -> CheckReport:
    """Train on Spark and with the reference from the same tables; nothing is written."""
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf, database), opts)
    kept, _ = kept_state(sn.tables, sn.training)  # the state train would continue from
    ran = run_updates(sn, opts.epochs, kept=kept)
    row, losses = ran.row, ran.losses
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
    parquet: str | None = None,
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
    **options: Any,
) -> str:
    """What a Spark training runs, as a script for spark-sql: the views, the cached samples, the state
    before the first update, and the first update's statement (each later one is the same statement
    over the state row the one before returned)."""
    opts = TrainOptions(**options)
    sn = load(_target(parquet, master, conf, database), opts)
    tr, tables = sn.training, sn.tables
    names = ["inputs", "outputs", *(t.name for t in tr.tables.parameter_tables())]
    lines = [
        f"-- sqlnet on Apache Spark SQL: {describe(tr)}",
        "-- one statement per update; run with spark-sql, each later update is the last statement again over",
        "-- the state row the one before returned (sqlnet's client loop does that)",
        *(f"{SPARK.render(s)};" for s in SPARK.session),
    ]
    for name in names:
        lines.append(f"CREATE OR REPLACE TEMPORARY VIEW {name} {tables.source(name)};")
    if sn.held_out:
        lines.append(SPARK.render(spark_sql.cache_validation(tr)) + ";")
    lines.append(SPARK.render(spark_sql.cache_data(tr)) + ";")
    if tr.mini_batch and tr.shuffle is not None:
        lines.append(SPARK.render(spark_sql.cache_batches(tr, 1)) + ";")
    lines.append(SPARK.render(spark_sql.prev_view(tr, start_row(tr, sn.params))) + ";")
    lines.append(SPARK.render(spark_sql.update_statement(tr, sn.batches)) + ";")
    if sn.held_out:  # after each epoch's last update, over the state row it returned
        lines.append(SPARK.render(spark_sql.validation_statement(tr)) + ";")
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


def runs(
    parquet: str | None = None,
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
) -> list[RunInfo]:
    """The runs recorded beside the network's tables, oldest first (as PostgreSQL's records say them): the
    finished ones, and a checkpointed run that has not finished as running (its trainer holds the lock) or
    interrupted (`train --resume RUN` continues it)."""
    spark, tables = _target(parquet, master, conf, database).open()
    found = [
        RunInfo(
            run_id=r["run_id"], started_at=r["started_at"], finished_at=r["finished_at"], status=r["status"],
            schema_name=tables.where, network=network_from_json(json.loads(r["network"])),
            options=json.loads(r["options"]), epochs=r["epochs"], learning_rate=r["learning_rate"],
            final_loss=r["final_loss"],
        )
        for r in (tables.read(spark, "runs").orderBy("run_id").collect() if tables.exists("runs") else [])
    ]  # fmt: skip
    busy = held(tables.root, database)
    for run_id, doc in sorted(tables.checkpoints().items()):
        options = {**doc["options"], "checkpoint_every": doc["checkpoint_every"]}
        found.append(RunInfo(
            run_id=run_id, started_at=datetime.fromisoformat(doc["started_at"]), finished_at=None,
            status="running" if busy else "interrupted", schema_name=tables.where,
            network=network_from_json(doc["network"]), options=options, epochs=options["epochs"],
            learning_rate=options["learning_rate"], final_loss=doc["losses"][-1] if doc["losses"] else None,
            error=None if busy else f"stopped after its checkpoint at epoch {doc['epoch']}: `sqlnet train --engine "
            f"spark --resume {run_id}` continues it",
            checkpoint=str(doc["epoch"]),
        ))  # fmt: skip
    return sorted(found, key=lambda r: r.run_id)


def run_detail(
    parquet: str | None = None,
    *,
    run_id: int,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
) -> tuple[RunInfo, list[tuple[int, float, float | None, float | None]]]:
    """One recorded run, as PostgreSQL's `runs show` reads one: the run, and each epoch's (epoch, training
    loss, validation loss, validation accuracy)."""
    spark, tables = _target(parquet, master, conf, database).open()
    found = [r for r in runs(parquet, master=master, conf=conf, database=database) if r.run_id == run_id]
    if not found:
        raise InputError(f"run {run_id} not found in {tables.where}: `sqlnet runs --engine spark` lists the runs")
    info = found[0]

    def of_run(name: str) -> list[Any]:
        frame = tables.read(spark, name)
        return frame.where(frame.run_id == run_id).collect()  # the value as a column expression, not SQL text

    if info.checkpoint is not None:  # not finished: its epochs up to the checkpoint
        doc = tables.checkpoints()[run_id]
        return info, [(e, loss, *(doc["validation"][e - 1] if doc["validation"] else (None, None)))
                      for e, loss in enumerate(doc["losses"], start=1)]  # fmt: skip
    losses = {row["epoch"]: row["loss"] for row in of_run("run_losses")}
    scores: dict[int, tuple[float | None, float | None]] = {}
    if tables.exists("run_validation"):
        scores = {row["epoch"]: (row["loss"], row["accuracy"]) for row in of_run("run_validation")}
    return info, [(e, losses[e], *scores.get(e, (None, None))) for e in sorted(losses)]
