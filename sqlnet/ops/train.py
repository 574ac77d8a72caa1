"""`train`: one transaction, or checkpoints every K epochs; progress while the SQL runs; the SQL it would run."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlnet.compile.statement import script
from sqlnet.db import store, trust
from sqlnet.db import trace as trace_store
from sqlnet.db.connection import DB_ERRORS, Database, Session, connection_lost, error_text, refused_text
from sqlnet.db.guard import (
    Deadline,
    TrainingTimeout,
    lock_network,
    lock_network_for_session,
    name_run,
    unlock_network,
)
from sqlnet.db.networks import (
    define,
    optimizer_key,
    prepare_state,
    reset_optimizer_state,
    save_run_state,
    state_checksum,
)
from sqlnet.db.tables import read_params
from sqlnet.errors import DatabaseError, Diverged, InputError, SqlnetError
from sqlnet.model.network import Network, Params
from sqlnet.ops.common import (
    DatabaseLike,
    Loaded,
    TrainOptions,
    connect,
    floats,
    load_network,
)
from sqlnet.ops.execute import DIVERGED_GROWTH, Growth, run_statements
from sqlnet.ops.progress import Progress, progress_handler

# a last epoch's loss this many times the first's: the training diverges (warned, not refused)
DIVERGING = 10.0


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
    validation: list[tuple[float | None, float | None]] = field(default_factory=list)  # per epoch: loss, accuracy
    notes: list[str] = field(default_factory=list)  # what changed about the network, besides its weights
    computed: str = ""  # who computed the phases (the native kernels or SQL) and why: --kernels' choice

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
            "notes": self.notes,
            "computed": self.computed,
            "params": layers(floats(self.params)),
        }


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
    redefine: bool = False,
    allow_divergence: bool = False,
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

    The network's functions come from its stored definition (``sqlnet network``); an option that
    contradicts it is refused unless ``redefine=True``, which changes the definition on purpose.

    ``checkpoint_every=K`` commits the weights, the optimizer state and the losses every K epochs
    instead (a cancel or a crash loses at most K epochs); ``resume=RUN`` continues such a run from
    its last checkpoint with its own options, ending where the uninterrupted run would have.

    A training whose loss leaves float8's range, or grows past a million times its first epoch's, raises
    ``Diverged`` and writes nothing back (the run is recorded as diverged); ``allow_divergence=True``
    keeps the weights of a merely growing loss.
    """
    deadline = Deadline(timeout)
    db = connect(database, timeout)
    growth = Growth(None if allow_divergence else DIVERGED_GROWTH)
    request = Request(
        db=db, schema=schema, trace=trace, reset_optimizer=reset_optimizer, wait=wait, deadline=deadline,
        on_block=on_block, on_update=on_update, redefine=redefine, growth=growth,
    )  # fmt: skip
    if checkpoint_every is not None or resume is not None:
        with deadline.bounds():
            return _train_with_checkpoints(request, checkpoint_every, resume, options)
    opts = TrainOptions(**options)
    started = time.perf_counter()
    begun: list[Loaded] = []  # what to record if the training diverges (its transaction rolls back)
    try:
        return _train_once(request, opts, started, begun)
    except Diverged as exc:
        if not begun:
            raise
        run_id = _record_diverged(db, begun[0], {"trace": trace}, exc)
        raise Diverged(
            f"{exc}; the transaction rolled back, so every table is as it was before (recorded as run {run_id}, "
            f"diverged)",
            exc.losses,
        ) from exc


def _record_diverged(db: Database, loaded: Loaded, extra: dict[str, Any], exc: Diverged) -> int:
    """A run whose training diverged and rolled back, on record all the same: its options, its losses
    until it stopped, and why; its weights were not written back."""
    with db.transaction() as s:
        store.ensure_schema(s)
        key = loaded.tables.resolved_schema
        run_id = store.start_run(s, key, loaded.net, {**loaded.options.as_json(), **extra})
        store.record_losses(s, run_id, exc.losses)
        store.set_status(s, run_id, "diverged", f"{exc}; nothing was written back")
        return run_id


@dataclass(frozen=True)
class Request:
    """What a training was asked to do besides its hyperparameters: where, how, and whom to tell."""

    db: Database
    schema: str | None
    trace: bool
    reset_optimizer: bool
    wait: bool
    deadline: Deadline
    on_block: Callable[[int, float], None] | None
    on_update: Callable[[Progress], None] | None
    redefine: bool
    growth: Growth


def _train_once(request: Request, opts: TrainOptions, started: float, begun: list[Loaded]) -> TrainResult:
    """A training in one transaction: everything or nothing."""
    db, schema, trace, wait, deadline = request.db, request.schema, request.trace, request.wait, request.deadline
    reset_optimizer, redefine, growth = request.reset_optimizer, request.redefine, request.growth
    on_block, on_update = request.on_block, request.on_update
    with deadline.bounds(), db.transaction() as s:
        deadline.arm(s.pg)  # waiting for locks and checking the tables count too
        lock_network(s.pg, s.schema(schema), wait)
        loaded = load_network(s, schema, opts, trace, redefine)
        tables, net, opts = loaded.tables, loaded.net, loaded.options
        run_id, initial, notes = _begin_run(s, loaded, reset_optimizer, {"trace": trace})
        begun.append(loaded)
        name_run(s.pg, tables.resolved_schema, run_id)
        trainings = loaded.trainings(run_id if trace else None, run_id if on_update else None)
        if on_update:
            s.pg.add_notice_handler(progress_handler(on_update, run_id, loaded))
        if trace:
            trace_store.ensure_trace_tables(s, loaded.phases)
        validation: dict[int, list[float | None]] = {}
        params, losses, in_sql, count = run_statements(
            s, trainings, on_block, deadline, validation, loaded.largest, growth
        )
        _end_run(s, loaded, run_id, params)
        store.finish_run(s, run_id, losses, 1, validation)
    return TrainResult(
        run_id=run_id,
        network=net,
        options=opts,
        initial=initial,
        params=params,
        losses=losses,
        seconds=time.perf_counter() - started,
        statements=count,
        sql_seconds=in_sql,
        layout=loaded.layout(trace),
        validation=[(validation[e][0], validation[e][1]) for e in sorted(validation)],
        notes=notes,
        computed=loaded.choice(trace)[1],
    )


def _begin_run(
    s: Session, loaded: Loaded, reset_optimizer: bool, extra: dict[str, Any]
) -> tuple[int, Params, list[str]]:
    """Put the run on record with the weights and optimizer state it starts from, and the network's
    definition (what it is trained as, by which run); returns the run, its initial weights and notes."""
    tables, net, opts = loaded.tables, loaded.net, loaded.options
    key = tables.resolved_schema
    initial = read_params(s.pg, tables, net, opts.num)
    store.ensure_schema(s)
    store.mark_interrupted(s, key)  # this session holds the network's lock: no other run of it is running
    notes = []
    if reset_optimizer:
        reset_optimizer_state(s, key)
    optimizer = opts.make_optimizer()
    note = prepare_state(s, key, net, optimizer, loaded.definition)
    if note:
        notes.append(note)
    changed = [
        f"{name.replace('_', ' ')} {getattr(loaded.definition, name)} -> {getattr(opts, name)}"
        for name in ("hidden_activation", "output_activation", "loss")
        if loaded.definition and getattr(loaded.definition, name) not in (None, getattr(opts, name))
    ]
    if changed:
        notes.append(f"network {key!r} redefined: {', '.join(changed)}")
    split = opts.split_note(loaded.definition)
    if split:
        notes.append(split)
    # which arithmetic runs the phases, and why: said, and kept with the run
    layout, why = loaded.choice(bool(extra.get("trace")))
    extra = {**extra, "computed_by": "native kernels" if layout == "native" else "SQL", "computed_why": why}
    run_id = store.start_run(s, key, net, {**opts.as_json(), **extra})
    store.save_table_params(s, run_id, "initial", tables)
    save_run_state(s, run_id, "initial", key, optimizer_key(optimizer))
    define(s, key, net, optimizer_key(optimizer), run_id, (float(opts.validation_fraction or 0), int(opts.seed or 0)))
    return run_id, initial, notes


def _end_run(s: Session, loaded: Loaded, run_id: int, params: Params) -> None:
    key = loaded.tables.resolved_schema
    store.save_table_params(s, run_id, "final", loaded.tables)  # written back and verified: the tables hold them
    save_run_state(s, run_id, "final", key, optimizer_key(loaded.options.make_optimizer()))


def checkpoint_digest(s: Session, loaded: Loaded) -> str:
    """What the tables and the optimizer state hold now, as a short checksum of each: 'weights:state'."""
    params = floats(read_params(s.pg, loaded.tables, loaded.net, loaded.options.num))
    weights = hashlib.sha256(repr((params.weights, params.biases)).encode()).hexdigest()[:16]
    return f"{weights}:{state_checksum(s, loaded.tables.resolved_schema)}"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a checkpointed training: the message says which checkpoint the tables hold."""


def _train_with_checkpoints(
    request: Request, checkpoint_every: int | None, resume: int | None, options: dict[str, Any]
) -> TrainResult:
    """A training in several transactions, one per checkpoint, under a session-level lock."""
    db, schema, trace, wait, deadline = request.db, request.schema, request.trace, request.wait, request.deadline
    reset_optimizer, redefine, growth = request.reset_optimizer, request.redefine, request.growth
    on_block, on_update = request.on_block, request.on_update
    started = time.perf_counter()
    with db.connection() as s:
        if resume is not None:
            trust.check_sqlnet_schemas(s.pg, s.home)
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
        key = s.schema(schema)
        s.rollback()
        deadline.arm(s.pg)  # waiting for another training's lock counts too
        lock_network_for_session(s.pg, key, wait)
        run_id: int | None = None
        notes: list[str] = []
        last_checkpoint = committing = 0
        try:
            loaded = load_network(s, schema, opts, trace, redefine)
            tables, net, opts = loaded.tables, loaded.net, loaded.options
            store.ensure_schema(s)
            if resume is not None:
                if net.sizes != run.network.sizes or net.bias != run.network.bias:
                    raise InputError(
                        f"run {resume} trained a {run.network.describe()}; the tables now hold a {net.describe()}"
                    )
                run_id = resume
                initial = store.load_params(s, run_id, "initial", net)
                last_checkpoint = store.last_epoch(s, run_id)
                _check_checkpoint(s, loaded, run, last_checkpoint)
                store.mark_interrupted(s, tables.resolved_schema, keep=run_id)
                store.set_status(s, run_id, "running", None)
                first_losses = store.run_loss_curve(s, run_id)[:1]
                if growth is not None and first_losses:
                    growth.first = first_losses[0][1]
            else:
                run_id, initial, notes = _begin_run(
                    s, loaded, reset_optimizer, {"trace": trace, "checkpoint_every": checkpoint_every}
                )
            if trace:
                trace_store.ensure_trace_tables(s, loaded.phases)
            name_run(s.pg, tables.resolved_schema, run_id)
            s.commit()  # the run is on record before the first update
            if on_update:
                s.pg.add_notice_handler(progress_handler(on_update, run_id, loaded))
            statements, in_sql, params = 0, 0.0, initial
            for first in range(last_checkpoint + 1, opts.epochs + 1, checkpoint_every):
                last = min(first + checkpoint_every - 1, opts.epochs)
                with deadline.bounds():
                    deadline.arm(s.pg)
                    # each checkpoint is a transaction of its own: look again
                    trust.check_sqlnet_schemas(s.pg, tables.resolved_schema, trace)
                    trust.guard(s.pg, tables)
                trainings = loaded.trainings(
                    run_id if trace else None, run_id if on_update else None, first, last
                )
                validation: dict[int, list[float | None]] = {}
                params, losses, seconds, count = run_statements(
                    s, trainings, on_block, deadline, validation, loaded.largest, growth
                )
                store.record_losses(s, run_id, losses, first, validation)
                store.set_checkpoint(s, run_id, f"{last}:{checkpoint_digest(s, loaded)}")
                committing = last
                s.commit()  # the checkpoint: weights, optimizer state and losses up to epoch `last`
                committing = 0
                last_checkpoint, statements, in_sql = last, statements + count, in_sql + seconds
            _end_run(s, loaded, run_id, params)
            store.finish_run(s, run_id, [])
            epochs = store.run_epochs(s, run_id)
            s.commit()
        except BaseException as exc:
            with contextlib.suppress(*DB_ERRORS):  # the connection may be gone (a server restart)
                s.rollback()
            status = (
                "cancelled"
                if isinstance(exc, (KeyboardInterrupt, TrainingTimeout))
                else "diverged" if isinstance(exc, Diverged) else "failed"
            )
            if run_id is not None and last_checkpoint:
                where = f"the tables hold the checkpoint after epoch {last_checkpoint} of run {run_id}"
                if isinstance(exc, Diverged):  # resuming would diverge again
                    where += f" (`sqlnet restore {run_id}` puts back the weights from before the run)"
                else:
                    where += f"; `sqlnet train --resume {run_id}` continues it"
            else:
                where = "no checkpoint was made, so every table is as it was before"
            failure: BaseException | None = None
            if isinstance(exc, KeyboardInterrupt):
                failure = TrainingInterrupted(f"the training was cancelled; {where}")
            elif isinstance(exc, TrainingTimeout):
                failure = TrainingTimeout(
                    f"the training ran longer than --timeout {deadline.seconds:g} s and was cancelled; {where}"
                )
            elif run_id is not None and isinstance(exc, SqlnetError):
                failure = type(exc)(f"{exc}; {where}")
            elif run_id is not None and isinstance(exc, DB_ERRORS) and not connection_lost(exc):
                # not "no table changed": the checkpoints before it stay committed
                failure = DatabaseError(f"the database refused: {refused_text(exc)}; {where}")
            if run_id is not None and not connection_lost(exc):
                # the run's record says what the tables hold, as the message does
                recorded = str(failure) if failure is not None else f"{error_text(exc)}; {where}"
                with contextlib.suppress(*DB_ERRORS):
                    store.set_status(s, run_id, status, recorded)
                    s.commit()
            if failure is not None:
                raise failure from exc
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
        run_id=run_id,
        network=net,
        options=opts,
        initial=initial,
        params=params,
        losses=[loss for _, loss, _, _ in epochs],
        seconds=time.perf_counter() - started,
        statements=statements,
        sql_seconds=in_sql,
        layout=loaded.layout(trace),
        # every checkpoint's epochs, as recorded (a resumed run's first ones included)
        validation=[(vl, va) for _, _, vl, va in epochs if vl is not None],
        notes=notes,
        computed=loaded.choice(trace)[1],
    )


def _check_checkpoint(s: Session, loaded: Loaded, run: store.RunInfo, epoch: int) -> None:
    """Resume only from the checkpoint the run made: the tables and the optimizer state must still hold it."""
    recorded = run.checkpoint
    if not recorded or not recorded.startswith(f"{epoch}:"):
        return  # a run from before checkpoints were summed: nothing to compare with
    weights, state = recorded.split(":")[1:]
    now_weights, now_state = checkpoint_digest(s, loaded).split(":")
    what = [
        name
        for name, same in (
            (f"the weights in {', '.join(t.label() for t in loaded.tables.parameter_tables())}", weights == now_weights),
            ("the optimizer state", state == now_state),
        )
        if not same
    ]
    if what:
        raise InputError(
            f"run {run.run_id}'s checkpoint after epoch {epoch} is no longer what the tables hold: "
            f"{' and '.join(what)} changed since (a restore, another training, an edit?). Resuming would "
            f"continue from other numbers: start a new training instead"
        )


def training_sql(database: DatabaseLike = None, *, schema: str | None = None, **options: Any) -> str:
    """The statements `train` runs for these options, as a script that runs as is in psql."""
    opts = TrainOptions(**options)
    with connect(database).transaction(commit=False) as s:
        return script(list(load_network(s, schema, opts, None).trainings()))
