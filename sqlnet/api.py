"""The Python API: what the CLI calls, and what a program calls instead of the CLI.

Every function takes the database as its first argument: a URL, a ``Database``, or None for
$SQLNET_DATABASE_URL, $DATABASE_URL or the embedded server, in that order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from sqlnet import loading as loader
from sqlnet import predict as predict_sql
from sqlnet import reference, store
from sqlnet.db import DB_ERRORS, Database, Session, connection_lost, error_text
from sqlnet.errors import CheckFailed, DatabaseError, Diverged, InputError, SqlnetError
from sqlnet.guard import (
    Deadline,
    TrainingTimeout,
    lock_network,
    lock_network_for_session,
    name_run,
    unlock_network,
)
from sqlnet.initialize import initial_params
from sqlnet.layouts import LAYOUTS, wide
from sqlnet.network import Network, Params
from sqlnet.optimizers import Optimizer
from sqlnet.phases import Phase, plan
from sqlnet.privileges import check_privileges, grant_script, training_needs
from sqlnet.reference import Arithmetic
from sqlnet.statement import SETTINGS, Training, script, update_blocks
from sqlnet.statement import statements as statements_of
from sqlnet.tables import (
    NUMBER_TYPES,
    Table,
    TableMap,
    check_and_size,
    check_distributions,
    check_names,
    check_sample_rows,
    check_targets,
    check_values,
    check_wide_samples,
    count_samples,
    create_data_tables,
    create_parameter_tables,
    discover,
    integer_parameter_columns,
    largest_values,
    not_a_number,
    read_data,
    read_params,
    require_schema,
    where_table,
    write_params,
)

# updates per statement: the long layout keeps every phase of every update in the recursion's
# tuplestore, the wide layout one row per update, so it affords longer statements (fewer plans)
DEFAULT_UPDATES_PER_STATEMENT = {"long": 100, "wide": 500}
DEFAULT_TOLERANCE = 1e-9
EXAMPLES = {"post": "02_example_post.sql"}
TABLES_FILE = "01_tables.sql"
POST_TABLES = ("inputs", "weights1", "weights2", "outputs")
DEMO_SCHEMA = "sqlnet_demo"

DatabaseLike = Database | str | None


def connect(database: DatabaseLike = None) -> Database:
    return database if isinstance(database, Database) else Database(database)


@dataclass(frozen=True)
class TrainOptions:
    """The hyperparameters of a training; every value is checked before anything runs."""

    epochs: int = 1
    learning_rate: float = 0.1
    hidden_activation: str = "relu"
    output_activation: str = "linear"
    loss: str = "half-se"
    bias: str | None = None  # None: node if biases{k} tables exist, else edge if weights have bias columns
    batch_size: int = 0  # 0: full batch; N: mini-batches of N consecutive samples; 1: per-sample SGD
    shuffle: int | None = None  # seed of a deterministic per-epoch sample order
    optimizer: str = "gd"
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0
    numeric: str = "float"  # "exact": NUMERIC rounded at `scale` decimals in every phase
    scale: int = 12
    updates_per_statement: int | None = None  # None: the layout's default
    validation_fraction: float = 0.0  # held out of training, evaluated after every epoch
    seed: int = 0  # which samples are held out: the first by md5('seed:sampleId')
    layout: str = "auto"  # auto: wide when the network fits and nothing needs long; else long

    def __post_init__(self) -> None:
        def whole(name: str, value: object, least: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"{name} must be a whole number of at least {least}, got {value!r}")

        whole("epochs", self.epochs, 1)
        whole("the batch size", self.batch_size, 0)
        if self.updates_per_statement is not None:
            whole("updates per statement", self.updates_per_statement, 1)
        whole("the scale", self.scale, 1)
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not (math.isfinite(self.learning_rate) and self.learning_rate > 0)
        ):
            raise InputError(f"the learning rate must be a finite number above 0, got {self.learning_rate!r}")
        if self.shuffle is not None and (isinstance(self.shuffle, bool) or not isinstance(self.shuffle, int)):
            raise InputError(f"the shuffle seed must be a whole number, got {self.shuffle!r}")
        if self.layout not in ("auto", *LAYOUTS):
            raise InputError(f"unknown layout {self.layout!r}: choose auto, {', '.join(LAYOUTS)}")
        if (
            isinstance(self.validation_fraction, bool)
            or not isinstance(self.validation_fraction, (int, float))
            or not (0 <= self.validation_fraction < 1)
        ):
            raise InputError(
                f"--validation-fraction must be at least 0 and below 1, got {self.validation_fraction!r}"
            )
        if self.numeric not in ("float", "exact"):
            raise InputError(f"--numeric must be float or exact, got {self.numeric!r}")
        opt = self.make_optimizer()  # checks the optimizer's own settings
        if self.numeric == "exact":
            if {self.hidden_activation, self.output_activation} - {"relu", "linear"} or self.loss not in (
                "half-se",
                "se",
            ):
                raise InputError(
                    "--numeric exact supports relu and linear activations with the half-se or se loss"
                )
            if opt.name != "gd" or opt.l2:
                raise InputError("--numeric exact supports plain gradient descent without --l2")

    def make_optimizer(self) -> Optimizer:
        return Optimizer(
            self.optimizer, self.momentum, self.nesterov, self.beta1, self.beta2, self.epsilon, self.l2
        )

    @property
    def scale_or_none(self) -> int | None:
        return self.scale if self.numeric == "exact" else None

    @property
    def num(self) -> str:
        return "numeric" if self.numeric == "exact" else "float8"

    def as_json(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "learning_rate": float(self.learning_rate),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "loss": self.loss,
            "bias": self.bias,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "epsilon": self.epsilon,
            "l2": self.l2,
            "numeric": self.numeric,
            "scale": self.scale,
            "updates_per_statement": self.updates_per_statement,
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
            "layout": self.layout,
        }


@dataclass(frozen=True)
class Loaded:
    """A network found in the tables and checked, ready to compile."""

    tables: TableMap
    net: Network
    samples: int
    options: TrainOptions
    largest: dict[str, float] = field(default_factory=dict)  # table label -> largest |value| it holds

    @property
    def batches(self) -> int:
        return math.ceil(self.samples / self.options.batch_size) if self.options.batch_size else 1

    def layout(self, trace: bool) -> str:
        """auto picks wide (fused, fast) unless the trace, exact decimals or the network's width need long."""
        o = self.options
        needs_long = [
            why
            for why, needed in (
                ("--trace keeps every phase as rows of its own", trace),
                ("--numeric exact", o.numeric == "exact"),
                (
                    f"the network needs {wide.sample_columns(self.net)} columns per sample (at most "
                    f"{wide.MAX_SAMPLE_COLUMNS})",
                    not wide.fits(self.net),
                ),
            )
            if needed
        ]
        if o.layout == "wide" and needs_long:
            raise InputError(f"the wide layout cannot run this: {needs_long[0]}; use --layout long or auto")
        layout = ("long" if needs_long else "wide") if o.layout == "auto" else o.layout
        if o.validation_fraction and layout == "long":
            why = needs_long[0] if needs_long else "--layout long"
            raise InputError(
                f"--validation-fraction is evaluated by the wide layout only, and {why} needs the long one"
            )
        return layout

    def trainings(
        self,
        trace_run: int | None = None,
        progress_run: int | None = None,
        first_epoch: int = 1,
        last_epoch: int | None = None,
    ) -> list[Training]:
        """The statements for epochs first_epoch..last_epoch (default: all of them)."""
        o = self.options
        layout = self.layout(trace_run is not None)
        return [
            Training(
                self.net,
                self.tables,
                float(o.learning_rate),
                first,
                last,
                o.batch_size,
                o.shuffle,
                o.make_optimizer(),
                o.scale_or_none,
                layout,
                trace_run,
                progress_run,
                (float(o.validation_fraction), int(o.seed)) if o.validation_fraction else None,
            )
            for first, last in update_blocks(
                last_epoch or o.epochs,
                self.batches,
                o.updates_per_statement or DEFAULT_UPDATES_PER_STATEMENT[layout],
                first_epoch,
            )
        ]


def load_network(s: Session, schema: str | None, options: TrainOptions, trace: bool | None = False) -> Loaded:
    """Discover the tables, check every row, and describe the network they hold.

    Unless trace is None (only reading), first check that the role may train them (with trace:
    keep its phases), so that a missing grant is named before anything runs."""
    tables = discover(s.sa, schema, options.bias)
    if trace is not None:
        check_privileges(s.pg, tables, trace)
    integer = integer_parameter_columns(tables)
    if integer:
        table, role = integer[0]
        raise InputError(
            f"{table.label(role)} is an integer column: trained weights are fractional and would be rounded. "
            f"Change its type first: ALTER TABLE {table.label()} ALTER COLUMN {table.columns[role]} TYPE "
            f"double precision"
        )
    sizes = check_and_size(s.pg, tables)
    net = Network(sizes, options.hidden_activation, options.output_activation, options.loss, tables.bias)
    if net.loss == "cross-entropy":
        check_targets(s.pg, tables, 0.0, 1.0, "cross-entropy")
        if net.output_activation == "softmax":
            check_distributions(s.pg, tables)
    samples = count_samples(s.pg, tables)
    if options.validation_fraction:
        if not tables.has_samples:
            raise InputError(
                "--validation-fraction needs many samples: add a sampleId column to inputs and outputs"
            )
        held = int(
            (Decimal(str(options.validation_fraction)) * samples).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        )
        if held < 1 or held >= samples:
            raise InputError(
                f"--validation-fraction {options.validation_fraction} holds out {held} of {samples} samples: "
                f"it must leave at least one for validation and one for training"
            )
        samples -= held  # the batches are cut from the training samples
    if options.batch_size > samples:
        raise InputError(
            f"the batch size {options.batch_size} is larger than the data ({samples} samples in "
            f"{tables.inputs.label()}): use at most {samples}, or 0 for full batch"
        )
    return Loaded(tables, net, samples, options, largest_values(s.pg, tables))


def _params_from_rows(
    net: Network, rows: list[tuple[Any, ...]]
) -> tuple[Params, dict[int, tuple[float, int]]]:
    """Split a training statement's result into the trained parameters and epoch -> (loss sum, samples)."""
    params = Params(
        [[[math.nan] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[math.nan] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    losses = {}
    for quantity, epoch, layer, i, j, value, samples in rows:
        if quantity == "loss":
            losses[epoch] = (float(value), int(samples))
        elif quantity.startswith("val_"):
            continue  # read by _validation_from_rows
        elif quantity == "weight":
            params.weights[layer - 1][i - 1][j - 1] = value
        else:
            params.biases[layer - 1][(i or 1) - 1][j - 1] = value
    return params, losses


def _validation_from_rows(rows: list[tuple[Any, ...]], into: dict[int, list[float | None]]) -> None:
    """epoch -> [validation loss, validation accuracy (None unless classifying)]."""
    for quantity, epoch, _, _, _, value, _ in rows:
        if quantity in ("val_loss", "val_accuracy"):
            into.setdefault(epoch, [None, None])[quantity == "val_accuracy"] = (
                None if value is None else float(value)
            )


def _run_statements(
    s: Session,
    trainings: list[Training],
    on_block: Callable[[int, float], None] | None,
    deadline: Deadline | None = None,
    validation: dict[int, list[float | None]] | None = None,
    largest: dict[str, float] | None = None,
) -> tuple[Params, list[float], float]:
    """Run every block; returns the trained parameters, the loss per epoch and the seconds in SQL."""
    params: Params | None = None
    in_sql = 0.0
    sums: dict[int, list[float]] = {}
    for setting in SETTINGS:
        s.pg.execute(setting)
    (limit,) = s.pg.execute("SELECT current_setting('statement_timeout')").fetchone()  # type: ignore[misc]
    for tr in trainings:
        try:
            started = time.perf_counter()
            for statement in statements_of(tr):
                if deadline:
                    deadline.arm(s.pg)
                cur = s.pg.execute(statement)
            rows = cur.fetchall()
            in_sql += time.perf_counter() - started
        except psycopg.errors.QueryCanceled as exc:
            if deadline and deadline.end is not None:
                raise deadline.expired() from exc
            if limit not in ("0", "0ms"):  # the role's or the database's own limit, not --timeout
                raise DatabaseError(
                    f"the server cancelled a training statement after statement_timeout = {limit} (a setting "
                    f"of this role or database): lower --updates-per-statement "
                    f"so that each statement ends sooner, or raise the limit (SET statement_timeout)"
                ) from exc
            raise
        except OUT_OF_RANGE as exc:
            raise Diverged(divergence_message(tr, exc.diag.message_primary or str(exc), largest)) from exc
        params, block = _params_from_rows(tr.net, rows)
        if not all(math.isfinite(total) for total, _ in block.values()):
            raise Diverged(divergence_message(tr, "the loss is not a finite number", largest))
        if validation is not None:
            _validation_from_rows(rows, validation)
        for epoch, (total, n) in block.items():
            acc = sums.setdefault(epoch, [0.0, 0])
            acc[0] += total
            acc[1] += n
        if on_block:
            epoch = tr.last[0]
            on_block(epoch, sums[epoch][0] / sums[epoch][1])
    assert params is not None
    return params, [total / n for _, (total, n) in sorted(sums.items())], in_sql


# what PostgreSQL raises when float8 (or numeric) arithmetic leaves its range: the training diverged
OUT_OF_RANGE = (
    psycopg.errors.NumericValueOutOfRange,  # overflow, and underflow (PostgreSQL will not round to 0)
    psycopg.errors.FloatingPointException,
    psycopg.errors.DivisionByZero,
    psycopg.errors.InvalidArgumentForLogarithm,
    psycopg.errors.InvalidArgumentForPowerFunction,
)


def divergence_message(tr: Training, what: str, largest: dict[str, float] | None) -> str:
    """What went out of range, between which epochs, and what to change."""
    advice = [f"a smaller learning rate (this run: {tr.learning_rate:g}; try {tr.learning_rate / 10:g})"]
    big = {k: v for k, v in (largest or {}).items() if v > LARGE_VALUE}
    for label, value in big.items():
        advice.append(
            f"scaling {label} (it holds values up to {value:.3g}; `sqlnet load --standardize` does)"
        )
    if tr.optimizer.name == "gd":
        advice.append("--optimizer adam, whose steps do not grow with the gradient")
    when = (
        f"in epoch {tr.first[0]}"
        if tr.first[0] == tr.last[0]
        else f"between epoch {tr.first[0]} and {tr.last[0]}"
    )
    return f"the training diverged {when} ({what}). Try " + ", or ".join(advice)


# a last epoch's loss this many times the first's: the training diverges (warned, not refused)
DIVERGING = 10.0

# values beyond this in the data or the weights are worth a word when a training diverges
LARGE_VALUE = 1e3


@dataclass
class TrainResult:
    run_id: int | None
    network: Network
    options: TrainOptions
    initial: Params
    params: Params
    losses: list[float] = field(default_factory=list)  # mean loss of each epoch over its samples
    seconds: float = 0.0  # the whole call: checks, bookkeeping and training
    statements: int = 0
    sql_seconds: float = 0.0  # running the training statements
    layout: str = ""
    validation: list[tuple[float | None, float | None]] = field(
        default_factory=list
    )  # per epoch: loss, accuracy

    def divergence_warning(self) -> str | None:
        """A run whose loss grew tenfold without leaving float8's range is diverging all the same."""
        losses = self.losses
        if len(losses) < 2 or not losses[-1] > DIVERGING * max(losses[0], 1e-300):
            return None
        return (
            f"the loss grew from {losses[0]:.4g} in epoch 1 to {losses[-1]:.4g} in epoch {len(losses)}: the "
            f"training is diverging; try a smaller learning rate than {self.options.learning_rate:g}"
        )

    def as_json(self) -> dict[str, Any]:
        def layers(p: Params) -> list[dict[str, Any]]:
            return [
                {"layer": k + 1, "weights": p.weights[k], "biases": p.biases[k]}
                for k in range(self.network.depth)
            ]

        return {
            "run_id": self.run_id,
            "network": store.network_json(self.network),
            "options": self.options.as_json(),
            "losses": self.losses,
            "final_loss": self.losses[-1] if self.losses else None,
            "seconds": round(self.seconds, 3),
            "sql_seconds": round(self.sql_seconds, 3),
            "statements": self.statements,
            "layout": self.layout,
            "validation_losses": [v[0] for v in self.validation],
            "validation_accuracy": [v[1] for v in self.validation],
            "warning": self.divergence_warning(),
            "params": layers(_floats(self.params)),
        }


def _floats(p: Params) -> Params:
    return Params(
        [[[float(v) for v in row] for row in m] for m in p.weights],
        [[[float(v) for v in row] for row in m] for m in p.biases],
    )


def train(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    trace: bool = False,
    reset_optimizer: bool = False,
    wait: bool = False,
    timeout: float | None = None,
    on_block: Callable[[int, float], None] | None = None,
    on_update: Callable[[Progress], None] | None = None,
    checkpoint_every: int | None = None,
    resume: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train the network in the tables and write the trained weights back, all in one transaction.

    Options are those of ``TrainOptions`` (epochs, learning_rate, batch_size, optimizer, ...). The run
    is recorded in schema `sqlnet`; with ``trace=True`` every phase of every update is kept in
    `sqlnet_trace`. On any error, or Ctrl-C, the transaction rolls back and every table is as it was.
    One training per network at a time: a second fails at once naming the first (``NetworkBusy``),
    or with ``wait=True`` queues behind it. ``timeout`` (seconds) cancels the training on the server
    past that time (``TrainingTimeout``), rolling everything back. ``on_update`` is called after
    every update while the SQL runs (the statement raises a NOTICE per update).

    ``checkpoint_every=K`` commits the weights, the optimizer state and the losses every K epochs
    instead (a cancel or a crash loses at most K epochs); ``resume=RUN`` continues such a run from
    its last checkpoint with its own options, ending where the uninterrupted run would have.
    """
    deadline = Deadline(timeout)
    db = connect(database)
    if checkpoint_every is not None or resume is not None:
        return _train_with_checkpoints(
            db,
            schema,
            trace,
            reset_optimizer,
            wait,
            deadline,
            on_block,
            on_update,
            checkpoint_every,
            resume,
            options,
        )
    opts = TrainOptions(**options)
    started = time.perf_counter()
    with db.transaction() as s:
        lock_network(s.pg, schema or _current_schema(s), wait)
        loaded = load_network(s, schema, opts, trace)
        tables, net = loaded.tables, loaded.net
        initial = read_params(s.pg, tables, net, opts.num)
        store.ensure_schema(s)
        if reset_optimizer:
            store.reset_optimizer_state(s, tables.resolved_schema)
        run_id = store.start_run(s, schema, net, {**opts.as_json(), "trace": trace})
        name_run(s.pg, tables.resolved_schema, run_id)
        store.save_params(s, run_id, "initial", net, _floats(initial))
        trainings = loaded.trainings(run_id if trace else None, run_id if on_update else None)
        if on_update:
            s.pg.add_notice_handler(_progress_handler(on_update, run_id, loaded))
        if trace:
            store.ensure_trace_tables(s, trainings[0].phases)
        validation: dict[int, list[float | None]] = {}
        try:
            params, losses, in_sql = _run_statements(
                s, trainings, on_block, deadline, validation, loaded.largest
            )
        except Diverged as exc:
            raise Diverged(f"{exc}; the transaction rolled back, so every table is as it was before") from exc
        store.save_params(s, run_id, "final", net, _floats(params))
        store.finish_run(s, run_id, losses, 1, validation)
    return TrainResult(
        run_id,
        net,
        opts,
        initial,
        params,
        losses,
        time.perf_counter() - started,
        len(trainings),
        in_sql,
        trainings[0].layout,
        [tuple(validation[e]) for e in sorted(validation)],  # type: ignore[misc]
    )


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a checkpointed training: the message says which checkpoint the tables hold."""


def _train_with_checkpoints(
    db: Database,
    schema: str | None,
    trace: bool,
    reset_optimizer: bool,
    wait: bool,
    deadline: Deadline,
    on_block: Callable[[int, float], None] | None,
    on_update: Callable[[Progress], None] | None,
    checkpoint_every: int | None,
    resume: int | None,
    options: dict[str, Any],
) -> TrainResult:
    """A training in several transactions, one per checkpoint, under a session-level lock."""
    started = time.perf_counter()
    with db.connection() as s:
        if resume is not None:
            run = store.get_run(s, resume)  # the run says where and how
            if run.status == "finished":
                raise InputError(f"run {resume} finished: there is nothing to resume")
            if not run.options.get("checkpoint_every"):
                raise InputError(f"run {resume} had no checkpoints: only a --checkpoint-every run can resume")
            schema = run.schema_name
            known = {f.name for f in dataclasses.fields(TrainOptions)}
            options = {k: v for k, v in run.options.items() if k in known}
            checkpoint_every, trace = int(run.options["checkpoint_every"]), bool(run.options.get("trace"))
        if (
            not isinstance(checkpoint_every, int)
            or isinstance(checkpoint_every, bool)
            or checkpoint_every < 1
        ):
            raise InputError(
                f"--checkpoint-every must be a whole number of epochs >= 1, got {checkpoint_every!r}"
            )
        opts = TrainOptions(**options)
        key = schema or _current_schema(s)
        s.rollback()
        lock_network_for_session(s.pg, key, wait)
        run_id: int | None = None
        last_checkpoint = committing = 0
        try:
            loaded = load_network(s, schema, opts, trace)
            tables, net = loaded.tables, loaded.net
            store.ensure_schema(s)
            if resume is not None:
                if net.sizes != run.network.sizes or net.bias != run.network.bias:
                    raise InputError(
                        f"run {resume} trained a {run.network.describe()}; the tables now hold a {net.describe()}"
                    )
                run_id = resume
                initial = store.load_params(s, run_id, "initial", net)
                last_checkpoint = store.last_epoch(s, run_id)
                store.set_status(s, run_id, "running")
            else:
                if reset_optimizer:
                    store.reset_optimizer_state(s, tables.resolved_schema)
                initial = read_params(s.pg, tables, net, opts.num)
                run_id = store.start_run(
                    s, schema, net, {**opts.as_json(), "trace": trace, "checkpoint_every": checkpoint_every}
                )
                store.save_params(s, run_id, "initial", net, _floats(initial))
            if trace:
                store.ensure_trace_tables(s, loaded.trainings(run_id)[0].phases)
            s.commit()  # the run is on record before the first update
            name_run(s.pg, tables.resolved_schema, run_id)
            if on_update:
                s.pg.add_notice_handler(_progress_handler(on_update, run_id, loaded))
            statements, in_sql, params = 0, 0.0, initial
            for first in range(last_checkpoint + 1, opts.epochs + 1, checkpoint_every):
                last = min(first + checkpoint_every - 1, opts.epochs)
                trainings = loaded.trainings(
                    run_id if trace else None, run_id if on_update else None, first, last
                )
                validation: dict[int, list[float | None]] = {}
                params, losses, seconds = _run_statements(
                    s, trainings, on_block, deadline, validation, loaded.largest
                )
                store.record_losses(s, run_id, losses, first, validation)
                committing = last
                s.commit()  # the checkpoint: weights, optimizer state and losses up to epoch `last`
                committing = 0
                last_checkpoint, statements, in_sql = last, statements + len(trainings), in_sql + seconds
            store.save_params(s, run_id, "final", net, _floats(params))
            store.finish_run(s, run_id, [])
            curve = [loss for _, loss in store.run_loss_curve(s, run_id)]
            s.commit()
        except BaseException as exc:
            with contextlib.suppress(*DB_ERRORS):  # the connection may be gone (a server restart)
                s.rollback()
            status = "cancelled" if isinstance(exc, (KeyboardInterrupt, TrainingTimeout)) else "failed"
            if run_id is not None and last_checkpoint:
                where = f"the tables hold the checkpoint after epoch {last_checkpoint} of run {run_id}"
                if isinstance(exc, Diverged):  # resuming would diverge again
                    where += f" (`sqlnet restore {run_id}` puts back the weights from before the run)"
                else:
                    where += f"; `sqlnet train --resume {run_id}` continues it"
            else:
                where = "no checkpoint was made, so every table is as it was before"
            if run_id is not None and not connection_lost(exc):
                with contextlib.suppress(*DB_ERRORS):
                    store.set_status(s, run_id, status, error_text(exc))
                    s.commit()
            if isinstance(exc, KeyboardInterrupt):
                raise TrainingInterrupted(f"the training was cancelled; {where}") from exc
            if isinstance(exc, TrainingTimeout):
                raise TrainingTimeout(
                    f"the training ran longer than --timeout {deadline.seconds:g} s and was "
                    f"cancelled; {where}"
                ) from exc
            if run_id is not None and isinstance(exc, SqlnetError):
                raise type(exc)(f"{exc}; {where}") from exc
            if connection_lost(exc):
                if committing:  # whether the server saved the checkpoint it was committing is unknown
                    where = where.replace(
                        f"after epoch {last_checkpoint}",
                        f"after epoch {last_checkpoint} or, if the server saved the one it was committing, "
                        f"after epoch {committing}",
                    )
                raise DatabaseError(
                    f"the connection to the server was lost ({error_text(exc)}); {where}"
                ) from exc
            raise
        finally:
            with contextlib.suppress(*DB_ERRORS):
                s.rollback()
                unlock_network(s.pg, key)
    return TrainResult(
        run_id,
        net,
        opts,
        initial,
        params,
        curve,
        time.perf_counter() - started,
        statements,
        in_sql,
        loaded.layout(trace),
    )


@dataclass(frozen=True)
class Progress:
    """One update done, as the training statement reports it while it runs."""

    run_id: int
    epoch: int
    batch: int
    done: int  # updates done so far in this run
    total: int  # updates the run will make
    loss: float | None  # the mean loss of the update's batch (None in the long layout)


def _progress_handler(
    on_update: Callable[[Progress], None], run_id: int, loaded: Loaded
) -> Callable[[Any], None]:
    total = loaded.options.epochs * loaded.batches

    def handle(diag: Any) -> None:
        words = (diag.message_primary or "").split()
        if len(words) != 7 or words[:2] != ["sqlnet", "progress"] or words[2] != str(run_id):
            return
        if "<NULL>" in words[3:5]:
            return  # the recursion's last, empty step: PostgreSQL may still evaluate the call once
        epoch, batch = int(words[3]), int(words[4])
        loss = None if words[5] == "<NULL>" else float(words[5])
        on_update(Progress(run_id, epoch, batch, (epoch - 1) * loaded.batches + batch, total, loss))

    return handle


def _current_schema(s: Session) -> str:
    (schema,) = s.pg.execute("SELECT current_schema()").fetchone()  # type: ignore[misc]
    return str(schema)


def training_sql(database: DatabaseLike = None, *, schema: str | None = None, **options: Any) -> str:
    """The statements `train` runs for these options, as a script that runs as is in psql."""
    opts = TrainOptions(**options)
    with connect(database).transaction(commit=False) as s:
        return script(load_network(s, schema, opts, None).trainings())


# --- the check against the reference ------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """The largest difference between SQL and reference for one table column (or the losses)."""

    table: str
    max_abs: float
    max_rel: float  # relative to max(1, |reference|)
    values: int
    digit_mismatches: int = 0  # exact mode: values whose decimal digits differ at all


def compare(net: Network, tables: TableMap | None, got: Params, want: Params) -> list[Difference]:
    result = []
    for k in range(1, net.depth + 1):
        wname = tables.weights[k - 1].label("value") if tables else f"weights{k}.value"
        result.append(_difference(wname, got.weights[k - 1], want.weights[k - 1]))
        if net.bias == "edge":
            bname = tables.weights[k - 1].label("bias") if tables else f"weights{k}.bias"
        else:
            bname = tables.biases[k - 1].label("value") if tables and tables.biases else f"biases{k}.value"
        if net.bias != "none":
            result.append(_difference(bname, got.biases[k - 1], want.biases[k - 1]))
    return result


def _difference(name: str, got: list[list[Any]], want: list[list[Any]]) -> Difference:
    pairs = [(g, w) for grow, wrow in zip(got, want) for g, w in zip(grow, wrow)]
    difference = _pairs_difference(name, [(float(g), float(w)) for g, w in pairs])
    # exact mode: the digits must be the same, not merely close
    mismatches = sum(1 for g, w in pairs if isinstance(w, Decimal) and g != w)
    return Difference(difference.table, difference.max_abs, difference.max_rel, difference.values, mismatches)


def _pairs_difference(name: str, pairs: list[tuple[float, float]]) -> Difference:
    def rel(g: float, w: float) -> float:
        return math.inf if math.isnan(g) or math.isnan(w) else abs(g - w) / max(1.0, abs(w))

    return Difference(
        name,
        max(
            (abs(g - w) if not (math.isnan(g) or math.isnan(w)) else math.inf for g, w in pairs), default=0.0
        ),
        max((rel(g, w) for g, w in pairs), default=0.0),
        len(pairs),
    )


@dataclass
class CheckReport:
    network: Network
    options: TrainOptions
    differences: list[Difference]
    tolerance: float
    sql_losses: list[float]
    reference_losses: list[float]

    @property
    def ok(self) -> bool:
        return all(d.max_rel <= self.tolerance and not d.digit_mismatches for d in self.differences)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "network": store.network_json(self.network),
            "options": self.options.as_json(),
            "differences": [d.__dict__ for d in self.differences],
            "final_loss": {"sql": self.sql_losses[-1], "reference": self.reference_losses[-1]},
        }


def check(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    raise_on_failure: bool = False,
    **options: Any,
) -> CheckReport:
    """Train with the SQL and with the reference from the same tables, then roll back: nothing changes."""
    opts = TrainOptions(**options)
    with connect(database).transaction(commit=False) as s:
        loaded = load_network(s, schema, opts)
        tables, net = loaded.tables, loaded.net
        initial = read_params(s.pg, tables, net, opts.num)
        data = read_data(s.pg, tables, net, opts.num)
        store.ensure_schema(s)  # momentum and Adam read their state from it; all of this rolls back
        state = store.load_optimizer_state(s, tables.resolved_schema, net)
        got, sql_losses, _ = _run_statements(s, loaded.trainings(), None, largest=loaded.largest)
    want = reference.train(
        net,
        initial,
        data,
        float(opts.learning_rate),
        opts.epochs,
        batch_size=opts.batch_size,
        shuffle=opts.shuffle,
        optimizer=opts.make_optimizer(),
        state=state,
        arith=Arithmetic(opts.scale_or_none),
    )
    differences = [
        *compare(net, tables, got, want.params),
        _pairs_difference("loss per epoch", list(zip(sql_losses, want.losses))),
    ]
    report = CheckReport(net, opts, differences, tolerance, sql_losses, want.losses)
    if raise_on_failure and not report.ok:
        worst = max(report.differences, key=lambda d: d.max_rel)
        raise CheckFailed(
            f"SQL and reference differ by {worst.max_rel:.3g} in {worst.table} (tolerance {tolerance})"
        )
    return report


@dataclass(frozen=True)
class GradientDifference:
    table: str
    checked: int  # parameters compared
    worst_relative: float  # |sql - fd| / max(|sql|, |fd|, 1e-8)
    worst_absolute: float


@dataclass
class GradcheckReport:
    network: Network
    differences: list[GradientDifference]
    tolerance: float
    epsilon: float

    @property
    def ok(self) -> bool:
        return all(d.worst_relative <= self.tolerance for d in self.differences)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "epsilon": self.epsilon,
            "network": store.network_json(self.network),
            "differences": [d.__dict__ for d in self.differences],
        }


def gradcheck(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    epsilon: float = 1e-6,
    tolerance: float = 1e-4,
    max_params: int = 500,
    seed: int = 0,
    **options: Any,
) -> GradcheckReport:
    """The gradient the SQL backward phases compute, against central finite differences of the reference.

    The SQL runs one full-batch gradient-descent update at learning rate 1 inside a transaction
    that rolls back, so its gradient is exactly (weights before) - (weights after). Each
    parameter's finite difference is (L(p + eps) - L(p - eps)) / 2 eps of the reference's mean
    loss. Networks with more than `max_params` parameters are checked on a seeded sample of them.
    ReLU has no derivative at 0: a node input of exactly 0 (say, behind a dead layer with zero
    biases) shows up as a disagreement although both sides are right about their own definitions.
    """
    fixed = {
        "epochs": 1,
        "learning_rate": 1.0,
        "batch_size": 0,
        "optimizer": "gd",
        "l2": 0.0,
        "numeric": "float",
    }
    opts = TrainOptions(**{**options, **fixed})
    with connect(database).transaction(commit=False) as s:
        loaded = load_network(s, schema, opts)
        tables, net = loaded.tables, loaded.net
        initial = read_params(s.pg, tables, net)
        data = read_data(s.pg, tables, net)
        after, _, _ = _run_statements(s, loaded.trainings(), None)

    names = {("weights", k): tables.weights[k].label("value") for k in range(net.depth)}
    for k in range(net.depth):
        names[("biases", k)] = (
            tables.weights[k].label("bias")
            if net.bias == "edge"
            else tables.biases[k].label("value")
            if tables.biases
            else ""
        )
    where = [
        (kind, k, r, j)
        for kind in ("weights", "biases")
        for k, m in enumerate(getattr(initial, kind))
        for r, row in enumerate(m)
        for j in range(len(row))
    ]
    if len(where) > max_params:
        where = sorted(random.Random(seed).sample(where, max_params))
    worst: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for kind, k, r, j in where:
        sql_gradient = getattr(initial, kind)[k][r][j] - getattr(after, kind)[k][r][j]
        losses = []
        for sign in (1, -1):
            p = initial.copy()
            getattr(p, kind)[k][r][j] += sign * epsilon
            losses.append(reference.mean_loss(net, p, data))
        numeric = (losses[0] - losses[1]) / (2 * epsilon)
        gap = abs(sql_gradient - numeric)
        relative = gap / max(abs(sql_gradient), abs(numeric), 1e-8)
        name = names[(kind, k)]
        w = worst.setdefault(name, [0.0, 0.0])
        w[0], w[1] = max(w[0], relative), max(w[1], gap)
        counts[name] = counts.get(name, 0) + 1
    differences = [GradientDifference(name, counts[name], w[0], w[1]) for name, w in sorted(worst.items())]
    return GradcheckReport(net, differences, tolerance, epsilon)


# --- tables, runs, restore, trace ---------------------------------------------------------------


def _sql_file(name: str) -> str:
    return resources.files("sqlnet").joinpath("sql", name).read_text()


def init(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    example: str | None = None,
    layers: Sequence[int] | None = None,
    init: str = "he",
    seed: int | None = None,
    bias: str = "edge",
    replace: bool = False,
) -> list[str]:
    """Create the network's tables; returns their names.

    Without `layers`: the post's tables, empty or with an example's values (`example="post"`).
    With `layers` (e.g. [4, 8, 8, 3]): weights1..K (and biases1..K for node biases) with random
    values (`init` he, xavier or uniform; `seed` makes them repeatable), plus empty inputs and
    outputs with a sampleId column where those tables do not exist yet.
    """
    check_names(schema=schema)
    if example is not None and example not in EXAMPLES:
        raise InputError(f"unknown example {example!r}: choose one of {', '.join(EXAMPLES)}")
    if example and layers:
        raise InputError("choose either --example or --layers")
    net = params = None
    if layers is not None:
        net = Network(tuple(layers), bias=bias)  # checks the sizes and the bias layout
        params = initial_params(net, init, seed)
    with connect(database).transaction() as s:
        if schema:
            s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            s.pg.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        current = _current_schema(s)
        present = {
            name
            for (name,) in s.pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (current,)
            )
        }
        if net is None:
            ours = [t for t in POST_TABLES if t in present]
        else:
            # every weights/biases table: a deeper network left behind would extend the new one
            ours = sorted(t for t in present if re.fullmatch(r"(weights|biases)[0-9]+", t))
        if ours and not replace:
            raise InputError(
                f"{', '.join(ours)} already exist in schema {current!r}: use --replace to drop and recreate them "
                f"(`sqlnet runs` keeps every trained weight), or --schema for another schema"
            )
        for t in ours:
            s.pg.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(current, t)))
        if net is None:
            # the files are sqlnet's own, shipped in the package; docker-compose runs the same files
            s.pg.execute(_sql_file(TABLES_FILE).encode())
            if example:
                s.pg.execute(_sql_file(EXAMPLES[example]).encode())
            return list(POST_TABLES)
        assert params is not None
        created = []
        if not {"inputs", "outputs"} & present:
            create_data_tables(s.pg, None, current, "double precision", samples=True)
            created += ["inputs", "outputs"]
        create_parameter_tables(s.pg, net, params, current, "double precision")
        created += [
            f"{kind}{k}"
            for k in range(1, net.depth + 1)
            for kind in ("weights", "biases")
            if kind == "weights" or net.bias == "node"
        ]
    return created


@dataclass
class Grants:
    role: str
    statements: list[str]  # the GRANT statements, as they run
    applied: bool
    store_exists: bool  # whether schema sqlnet existed (the grants on it need it)


def grants(
    database: DatabaseLike = None,
    *,
    role: str,
    schema: str | None = None,
    trace: bool = False,
    bias: str | None = None,
    apply: bool = False,
) -> Grants:
    """The GRANT statements that let `role` train the network in `schema` and nothing more: read
    inputs and outputs, read and update the parameter tables, record runs in schema `sqlnet`.
    ``apply=True`` (run as the tables' owner) creates sqlnet's schema and runs them."""
    check_names(schema=schema, role=role)
    with connect(database).transaction(commit=apply) as s:
        if s.pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            raise InputError(f"role {role!r} does not exist: create it first (CREATE ROLE ... LOGIN)")
        tables = discover(s.sa, schema, bias)
        existed = store.has_schema(s)
        if apply:
            store.ensure_schema(s)
            if trace:
                store.ensure_trace_schema(s)
        script = grant_script(training_needs(s.pg, tables, trace, for_script=True), role)
        if apply:
            for statement in script:
                s.pg.execute(statement)
        return Grants(role, [g.as_string(s.pg) for g in script], apply, existed or apply)


def runs(database: DatabaseLike = None) -> list[store.RunInfo]:
    with connect(database).transaction(commit=False) as s:
        return store.list_runs(s)


def run_losses(database: DatabaseLike, run_id: int) -> list[tuple[int, float]]:
    with connect(database).transaction(commit=False) as s:
        store.get_run(s, run_id)
        return store.run_loss_curve(s, run_id)


def restore(
    database: DatabaseLike = None, run_id: int | None = None, *, stage: str = "initial"
) -> store.RunInfo:
    """Put a run's initial (or final) weights and biases back into its tables."""
    if stage not in ("initial", "final"):
        raise InputError(f"stage must be 'initial' or 'final', got {stage!r}")
    if run_id is None:
        raise InputError("which run? `sqlnet runs` lists them")
    with connect(database).transaction() as s:
        run = store.get_run(s, run_id)
        tables = discover(s.sa, run.schema_name, run.network.bias)
        sizes = check_and_size(s.pg, tables)
        if sizes != run.network.sizes:
            raise InputError(
                f"run {run_id} trained a {'-'.join(map(str, run.network.sizes))} network but the tables now hold "
                f"{'-'.join(map(str, sizes))}: restore needs the same shape"
            )
        write_params(s.pg, tables, store.load_params(s, run_id, stage, run.network))
    return run


@dataclass
class PhaseTrace:
    phase: Phase
    rows: list[tuple[Any, ...]]  # (epoch, sample, layer, quantity, input_node, node, value)


def phases(
    database: DatabaseLike = None, run_id: int | None = None, epoch: int | None = None
) -> tuple[store.RunInfo, list[PhaseTrace]]:
    """The values every phase computed in a traced run (default: the latest traced run)."""
    with connect(database).transaction(commit=False) as s:
        traced = [r for r in store.list_runs(s) if r.options.get("trace")]
        if run_id is None:
            if not traced:
                raise InputError("no traced run yet: run `sqlnet train --trace` first")
            run = traced[-1]
        else:
            run = store.get_run(s, run_id)
            if not run.options.get("trace"):
                raise InputError(f"run {run_id} was not traced: train with --trace to keep its phases")
        # phase 0 (start) of epoch e holds the weights epoch e starts from: its rows carry epoch e - 1
        return run, [
            PhaseTrace(
                p, store.trace_rows(s, p, run.run_id, None if epoch is None else epoch - (p.number == 0))
            )
            for p in plan(run.network)
        ]


@dataclass
class DemoResult:
    url: str
    schema: str
    train: TrainResult
    reference_forward: reference.Forward
    reference_loss: float
    reference_params: Params
    differences: list[Difference]
    trace: list[PhaseTrace]


def demo(database: DatabaseLike = None, *, schema: str = DEMO_SCHEMA) -> DemoResult:
    """The post's network, end to end: create its tables, train one traced step, compare with the reference."""
    db = connect(database)
    init(db, schema=schema, example="post", replace=True)
    result = train(db, schema=schema, trace=True, epochs=1, learning_rate=0.1)
    with db.transaction(commit=False) as s:
        loaded = load_network(s, schema, TrainOptions(), None)
        tables, net = loaded.tables, loaded.net
        data = read_data(s.pg, tables, net)
    ref = reference.train(net, result.initial, data, 0.1, 1)
    forward = reference.forward(net, result.initial, data.samples[0].x)
    _, trace = phases(db, result.run_id, epoch=1)
    return DemoResult(
        db.url,
        schema,
        result,
        forward,
        ref.losses[0],
        ref.params,
        compare(net, tables, result.params, ref.params),
        trace,
    )


__all__ = [
    "CheckFailed",
    "CheckReport",
    "DatabaseError",
    "DemoResult",
    "InputError",
    "TrainOptions",
    "TrainResult",
    "check",
    "connect",
    "demo",
    "init",
    "phases",
    "restore",
    "run_losses",
    "runs",
    "train",
    "training_sql",
]


# --- predictions and export ---------------------------------------------------------------------


@dataclass
class Prediction:
    network: Network
    source: str  # where the activations came from: "run N" or "options"
    rows: int  # rows written (predict) or 0 (export)
    created: str  # the table, view or function made


def _trained_network(
    s: Session,
    schema: str | None,
    hidden_activation: str | None,
    output_activation: str | None,
    loss: str | None,
) -> tuple[TableMap, Network, str]:
    """The network in the tables, with the functions of its latest finished run (or the ones given)."""
    tables = discover(s.sa, schema)
    sizes = check_and_size(s.pg, tables)
    latest = next(
        (
            r
            for r in reversed(store.list_runs(s))
            if r.status == "finished" and r.schema_name == schema and r.network.sizes == sizes
        ),
        None,
    )
    base = latest.network if latest else Network(sizes, bias=tables.bias)
    net = Network(
        sizes,
        hidden_activation or base.hidden_activation,
        output_activation or base.output_activation,
        loss or base.loss,
        tables.bias,
    )
    return (
        tables,
        net,
        f"run {latest.run_id}" if latest and not (hidden_activation or output_activation) else "options",
    )


def load(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    file: str | None = None,
    from_table: str | None = None,
    from_schema: str | None = None,
    targets: list[str],
    features: list[str] | None = None,
    classes: bool = False,
    standardize: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> loader.Loaded:
    """Fill inputs/outputs (with sampleId) from a CSV file or a table: one row per example."""
    check_names(schema=schema, from_table=from_table, from_schema=from_schema)
    if (file is None) == (from_table is None):
        raise InputError("load needs exactly one of FILE.csv or --from-table T")
    db = connect(database)
    with db.transaction() as s:
        target_schema = schema or _current_schema(s)
        if file is not None:
            header, rows = loader.csv_rows(Path(file))
            return loader.load(
                s, target_schema, header, rows, file, targets, features, classes, standardize, on_rows
            )
        assert from_table is not None
        ident = sql.Identifier(from_schema, from_table) if from_schema else sql.Identifier(from_table)
        inspector = sa.inspect(s.sa)
        require_schema(inspector, from_schema, "--from-schema")
        if from_table not in inspector.get_table_names(schema=from_schema) + inspector.get_view_names(
            schema=from_schema
        ):
            raise InputError(f"table {where_table(from_table, from_schema)} not found: check --from-table")
        header = [c["name"] for c in inspector.get_columns(from_table, schema=from_schema)]
        # the passes stream the table from a second connection, in one snapshot, while this one copies
        with db.snapshot_reader() as reader:

            def table_rows() -> Iterator[tuple[int, dict[str, Any]]]:
                with reader.cursor(name="sqlnet_load") as cur:  # server-side: rows arrive in batches
                    cur.itersize = 5000
                    cur.execute(sql.SQL("SELECT * FROM {}").format(ident))
                    names = [d.name for d in cur.description or []]
                    for n, r in enumerate(cur, start=1):
                        yield n, dict(zip(names, r))

            return loader.load(
                s,
                target_schema,
                header,
                table_rows,
                f"table {from_table}",
                targets,
                features,
                classes,
                standardize,
                on_rows,
            )


def _samples_sql(
    s: Session,
    net: Network,
    table: str,
    table_schema: str | None,
    id_column: str,
    features: list[str] | None,
    scaling: tuple[list[float], list[float]] | None = None,
) -> sql.Composable:
    """The rows to predict, one per sample: from a long (sampleId, inputNode, inputValue) table or a
    wide one (an id column and one column per feature, in input-node order)."""
    ident = sql.Identifier(table_schema, table) if table_schema else sql.Identifier(table)
    inspector = sa.inspect(s.sa)
    require_schema(inspector, table_schema, "--table-schema")
    if not inspector.has_table(table, schema=table_schema) and table not in inspector.get_view_names(
        schema=table_schema
    ):
        raise InputError(
            f"table {where_table(table, table_schema)} not found: name the table of samples to predict "
            f"with --table"
        )
    found = inspector.get_columns(table, schema=table_schema)
    columns = {c["name"].lower(): c["name"] for c in found}
    # the type of each column that is not a number, by lower-case name ('' for numbers)
    types = {
        c["name"].lower(): "" if isinstance(c["type"], NUMBER_TYPES) else str(c["type"]).lower()
        for c in found
    }
    if features is None and {"sampleid", "inputnode", "inputvalue"} <= set(columns):
        long = Table(
            table_schema,
            table,
            {"sample": columns["sampleid"], "node": columns["inputnode"], "value": columns["inputvalue"]},
        )
        for column in long.columns.values():
            if types[column.lower()]:
                raise InputError(not_a_number(s.pg, long, column, types[column.lower()]))
        check_values(s.pg, long)
        n = net.sizes[0]
        (lo, hi) = s.pg.execute(
            sql.SQL("SELECT min({n}), max({n}) FROM {t}").format(n=long.col("node"), t=ident)
        ).fetchone()  # type: ignore[misc]
        if lo is not None and (lo < 1 or hi > n):
            raise InputError(
                f"{long.label('node')} has nodes {lo}..{hi}, but the network has input nodes 1..{n}"
            )
        check_sample_rows(s.pg, long, n, "input")
        return predict_sql.standardized(
            predict_sql.long_samples(
                ident, columns["sampleid"], columns["inputnode"], columns["inputvalue"], net.sizes[0]
            ),
            scaling,
        )
    if features is None:
        raise InputError(
            f"{table} is not in the long layout (sampleId, inputNode, inputValue): name its feature columns "
            f"with --features, in the order of the input nodes"
        )
    if len(features) != net.sizes[0]:
        raise InputError(f"{len(features)} features given, but the network has {net.sizes[0]} input nodes")
    missing = [f for f in [id_column, *features] if f.lower() not in columns]
    if missing:
        raise InputError(f"table {table} has no column {missing[0]!r} (it has {', '.join(columns.values())})")
    wide = Table(
        table_schema,
        table,
        {
            "sample": columns[id_column.lower()],
            **{f"x{i}": columns[f.lower()] for i, f in enumerate(features, 1)},
        },
    )
    check_wide_samples(s.pg, wide, {r: types[c.lower()] for r, c in wide.columns.items()})
    return predict_sql.standardized(
        predict_sql.wide_samples(ident, columns[id_column.lower()], [columns[f.lower()] for f in features]),
        scaling,
    )


def predict(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    table: str,
    into: str,
    table_schema: str | None = None,
    id_column: str = "id",
    features: list[str] | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """Compute the network's outputs in SQL for the samples of `table` and write
    `into(sampleId, outputNode, outputValue)`; the weights come from the weights tables."""
    check_names(
        schema=schema, table=table, into=into, table_schema=table_schema, id=id_column, features=features
    )
    with connect(database).transaction() as s:
        tables, net, source = _trained_network(s, schema, hidden_activation, output_activation, None)
        data = loader.dataset(s, tables.resolved_schema) or {}
        scaling = (data["means"], data["stds"]) if data.get("means") else None
        samples = _samples_sql(s, net, table, table_schema, id_column, features, scaling)
        params, weight, bias = predict_sql.table_params(net, tables.weights, tables.biases)
        forward = predict_sql.forward_sql(net, samples, weight, bias, sql.SQL(" CROSS JOIN params AS p"))
        target = sql.Identifier(table_schema, into) if table_schema else sql.Identifier(into)
        exists = s.pg.execute("SELECT to_regclass(%s) IS NOT NULL", (target.as_string(s.pg),)).fetchone()[0]  # type: ignore[index]
        if exists and not replace:
            raise InputError(
                f"table {into!r} already exists: use --replace to overwrite it, or another --into"
            )
        if exists:
            s.pg.execute(sql.SQL("DROP TABLE {}").format(target))
        s.pg.execute(
            sql.SQL(
                "CREATE TABLE {target} AS\nWITH params AS (\n  {params}\n)\n"
                "SELECT sample AS sampleid, node AS outputnode, value AS outputvalue FROM ({forward}) AS f"
            ).format(target=target, params=params, forward=forward)
        )
        if data.get("classes"):
            # the class of each sample: the name of its largest output
            s.pg.execute(sql.SQL("ALTER TABLE {} ADD COLUMN predictedclass text").format(target))
            s.pg.execute(
                sql.SQL(
                    "UPDATE {t} AS p SET predictedclass = c.name FROM (SELECT DISTINCT ON (sampleid) sampleid, "
                    "outputnode FROM {t} ORDER BY sampleid, outputvalue DESC) AS best "
                    "JOIN unnest(%s::text[]) WITH ORDINALITY AS c (name, node) ON c.node = best.outputnode "
                    "WHERE p.sampleid = best.sampleid"
                ).format(t=target),
                (data["classes"],),
            )
        (rows,) = s.pg.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()  # type: ignore[misc]
    return Prediction(net, source, int(rows), into)


def export(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    view: str | None = None,
    function: str | None = None,
    table: str | None = None,
    table_schema: str | None = None,
    id_column: str = "id",
    features: list[str] | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """A view over `table` (or a function of a float8[] of inputs) computing the predictions with the
    trained weights written into it as constants: it needs neither sqlnet nor the weights tables."""
    check_names(
        schema=schema,
        view=view,
        function=function,
        table=table,
        table_schema=table_schema,
        id=id_column,
        features=features,
    )
    if (view is None) == (function is None):
        raise InputError("export needs exactly one of --view NAME (with --table) or --function NAME")
    with connect(database).transaction() as s:
        tables, net, source = _trained_network(s, schema, hidden_activation, output_activation, None)
        params = read_params(s.pg, tables, net)
        weight, bias = predict_sql.constant_params(net, params)
        create = sql.SQL("CREATE OR REPLACE" if replace else "CREATE")
        if view is not None:
            if table is None:
                raise InputError("--view needs --table: the samples the view predicts")
            samples = _samples_sql(s, net, table, table_schema, id_column, features)
            forward = predict_sql.forward_sql(net, samples, weight, bias, sql.SQL(""))
            name = sql.Identifier(table_schema, view) if table_schema else sql.Identifier(view)
            s.pg.execute(
                sql.SQL(
                    "{create} VIEW {name} AS\n"
                    "SELECT sample AS sampleid, node AS outputnode, value AS outputvalue FROM ({forward}) AS f"
                ).format(create=create, name=name, forward=forward)
            )
            made = view
        else:
            assert function is not None
            xs = sql.SQL(", ").join(
                sql.SQL("x[{i}] AS {c}").format(i=sql.Literal(i), c=sql.SQL(f"x{i}"))
                for i in range(1, net.sizes[0] + 1)
            )
            samples = sql.SQL("SELECT 1::bigint AS sample, {xs}").format(xs=xs)
            forward = predict_sql.forward_sql(net, samples, weight, bias, sql.SQL(""))
            name = sql.Identifier(table_schema, function) if table_schema else sql.Identifier(function)
            s.pg.execute(
                sql.SQL(
                    "{create} FUNCTION {name}(x double precision[]) RETURNS double precision[]\n"
                    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $sqlnet$\n"
                    "SELECT array_agg(value ORDER BY node) FROM ({forward}) AS f\n$sqlnet$"
                ).format(create=create, name=name, forward=forward)
            )
            made = function
    return Prediction(net, source, 0, made)
