"""`train` on Apache Spark: in one go (nothing is written until the training has ended well), or with
checkpoints every K epochs, resumable.

A checkpoint is kept beside the tables (``.sqlnet/checkpoints.json``, or the catalog database's
``sqlnet_checkpoints``): the run's options, the epoch, the losses so far and the state row's arrays (the
parameters and the optimizer's state, each double exactly). It is written first, marked as being
written, then the weights tables and the optimizer state, then marked done: a crash in between leaves a
checkpoint whose tables `--resume` rewrites from it; a checkpoint marked done must still be what the
tables hold, or `--resume` refuses (they were changed since). A finished run's checkpoint is dropped, and
the run is appended to the runs table; until then `runs` shows it as running (its trainer holds the
lock) or interrupted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlnet.db import spark as store
from sqlnet.db.guard import TrainingTimeout
from sqlnet.db.networks import Definition, optimizer_key
from sqlnet.db.spark_lock import training_lock
from sqlnet.db.spark_plan import Deadline
from sqlnet.db.store import network_json
from sqlnet.errors import Diverged, InputError, SqlnetError
from sqlnet.ops.common import TrainOptions
from sqlnet.ops.progress import Progress
from sqlnet.ops.spark_loop import (
    Ran,
    SparkNetwork,
    SparkTarget,
    _target,
    kept_state,
    load,
    params_of,
    run_updates,
    state_arrays,
    state_of,
)
from sqlnet.ops.train import TrainingInterrupted, TrainResult

RUNS_SCHEMA = (
    "run_id int, started_at timestamp, finished_at timestamp, status string, network string, options string, "
    "epochs int, learning_rate double, final_loss double"
)
LOSSES_SCHEMA = "run_id int, epoch int, loss double"
VALIDATION_SCHEMA = "run_id int, epoch int, loss double, accuracy double"  # the held-out samples' per epoch


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def train(
    parquet: str | None = None,
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
    on_update: Callable[[Progress], None] | None = None,
    redefine: bool = False,
    reset_optimizer: bool = False,
    timeout: float | None = None,
    checkpoint_every: int | None = None,
    resume: int | None = None,
    trace: bool = False,
    **options: Any,
) -> TrainResult:
    """Train the network in DIR's Parquet tables on Spark and write the weights back (and the optimizer's
    state beside them, which the next training continues from). ``timeout`` (seconds, the whole call)
    cancels Spark's jobs at the deadline. Without checkpoints nothing is written unless the training ends
    well; ``checkpoint_every=K`` writes the weights every K epochs, and ``resume=RUN`` continues such a run
    from its last checkpoint with its own options, ending where the uninterrupted run would have. ``trace``
    keeps every value of every phase of every update, one Parquet table per phase (DIR/sqlnet_trace/)."""
    started = time.perf_counter()
    deadline = Deadline(timeout)
    target = _target(parquet, master, conf, database)
    folder = Path(parquet).expanduser().resolve() if parquet else None
    if folder is not None and not folder.is_dir():
        load(target, TrainOptions(**options), redefine)  # says what is missing, and makes nothing (not even the lock)
    where = str(folder) if folder is not None else f"Spark database {database!r}"
    # one trainer per network, taken before the tables are read: the weights, the run id and every write
    # are the lock holder's alone
    with training_lock(folder or Path("."), None if folder is not None else database, where):
        if resume is not None:
            run = Run.resumed(target, resume)
        else:
            run = Run.new(target, options, checkpoint_every, redefine, trace)
        return run.train(on_update, deadline, reset_optimizer, started)


class Run:
    """One training of a Spark network, under its lock: fresh, or resumed from its last checkpoint."""

    def __init__(
        self, sn: SparkNetwork, run_id: int, every: int | None, checkpoint: dict[str, Any] | None, trace: bool = False
    ) -> None:
        self.sn, self.run_id, self.every, self.checkpoint, self.trace = sn, run_id, every, checkpoint, trace
        self.traced = 0  # the traced rows written so far (at checkpoints)
        self.begun = _now() if checkpoint is None else datetime.fromisoformat(checkpoint["started_at"])
        self.saved = 0 if checkpoint is None else int(checkpoint["epoch"])  # the last checkpoint's epoch
        self.deadline = Deadline(None)

    @classmethod
    def new(cls, target: SparkTarget, options: dict[str, Any], every: int | None, redefine: bool, trace: bool) -> Run:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise InputError(f"--checkpoint-every must be a whole number of epochs >= 1, got {every!r}")
        sn = load(target, TrainOptions(**options), redefine)
        return cls(sn, _next_run_id(sn), every, None, trace)

    @classmethod
    def resumed(cls, target: SparkTarget, run_id: int) -> Run:
        spark, tables = target.open()
        doc = tables.checkpoints().get(run_id)
        if doc is None:
            finished = tables.exists("runs") and any(
                r["run_id"] == run_id for r in tables.read(spark, "runs").select("run_id").collect()
            )
            raise InputError(
                f"run {run_id} finished: there is nothing to resume" if finished
                else f"run {run_id} has no checkpoint in {tables.where}: only a --checkpoint-every run that did "
                f"not finish can resume (`sqlnet runs --engine spark` lists them)"
            )  # fmt: skip
        known = {f.name for f in fields(TrainOptions)}
        sn = load(target, TrainOptions(**{k: v for k, v in doc["options"].items() if k in known}))
        net = sn.net
        if list(net.sizes) != list(doc["network"]["sizes"]) or net.bias != doc["network"]["bias"]:
            raise InputError(f"run {run_id} trained a {'-'.join(map(str, doc['network']['sizes']))} network; "
                             f"the tables now hold a {net.describe()}")  # fmt: skip
        held = params_of(sn.training, doc["row"])
        if doc.get("writing"):  # the trainer stopped while writing this checkpoint: its tables, whole
            store.write_parameters(sn.spark, sn.tables, net, held)
            sn.tables.save_state(state_of(sn.training, doc["row"]))
        elif held != sn.params:
            raise InputError(
                f"the tables no longer hold run {run_id}'s checkpoint after epoch {doc['epoch']} (they were changed "
                f"since): it cannot resume; start a new training"
            )
        sn.params = held
        return cls(sn, run_id, int(doc["checkpoint_every"]), doc, bool(doc["options"].get("trace")))

    # --- the training ------------------------------------------------------------------------------

    def train(
        self, on_update: Callable[[Progress], None] | None, deadline: Deadline, reset_optimizer: bool, started: float
    ) -> TrainResult:
        sn = self.sn
        if self.checkpoint is None:
            kept, note = kept_state(sn.tables, sn.training, reset_optimizer)
        else:  # the optimizer's state the checkpoint holds
            row = self.checkpoint["row"]
            kept, note = {"t": row.get("t", 0.0), "arrays": {n: row[n] for n in state_arrays(sn.training)}}, None
        t0 = time.perf_counter()
        self.deadline = deadline.start(sn.spark)
        try:
            ran = run_updates(sn, sn.options.epochs, on_update, self.run_id, kept, deadline, self.saved + 1,
                              self._checkpoint if self.every else None, self.trace)  # fmt: skip
            deadline.stop()
            deadline.check()  # past it now: nothing of the last epochs has been written yet
        except BaseException as exc:
            deadline.stop()
            raise self._failure(exc, deadline) from exc
        sql_seconds = time.perf_counter() - t0
        losses, validation = self._so_far(ran)
        params = params_of(sn.training, ran.row)
        self._finish(ran.row, losses, validation)
        self._write_trace(ran)
        return TrainResult(
            run_id=self.run_id, network=sn.net, options=sn.options, initial=sn.params, params=params,
            losses=losses, seconds=time.perf_counter() - started, statements=ran.statements,
            sql_seconds=sql_seconds, validation=validation, layout="wide (Spark, one statement per update)",
            notes=[n for n in (note, _reparsed(ran.reparsed)) if n],
        )  # fmt: skip

    def _so_far(self, ran: Ran) -> tuple[list[float], list[tuple[float | None, float | None]]]:
        """Every epoch's loss and validation of the run: a resumed run's checkpoint's, then this call's."""
        before = self.checkpoint or {"losses": [], "validation": []}
        return before["losses"] + ran.losses, [(loss, accuracy) for loss, accuracy in before["validation"]] + ran.validation

    def _checkpoint(self, epoch: int, ran: Ran) -> None:
        """Every `every` epochs (not the last: the run's end writes that): the checkpoint, then the tables."""
        sn = self.sn
        if epoch % self.every or epoch == sn.options.epochs:  # type: ignore[operator]
            return
        losses, validation = self._so_far(ran)
        self._write_trace(ran)
        doc = {
            "run_id": self.run_id, "started_at": self.begun.isoformat(), "network": network_json(sn.net),
            "options": {**asdict(sn.options), "trace": self.trace}, "checkpoint_every": self.every, "epoch": epoch, "losses": losses,
            "validation": validation, "row": {n: v for n, v in ran.row.items() if isinstance(v, list) or n == "t"},
            "writing": True,
        }  # fmt: skip
        self.deadline.stop()  # a checkpoint is written whole: the deadline is checked after it
        sn.tables.save_checkpoint(self.run_id, doc)
        store.write_parameters(sn.spark, sn.tables, sn.net, params_of(sn.training, ran.row))
        sn.tables.save_state(state_of(sn.training, ran.row))
        self._save_definition()
        sn.tables.save_checkpoint(self.run_id, {**doc, "writing": False})
        self.saved = epoch
        self.deadline.start(sn.spark)

    def _finish(self, row: dict[str, Any], losses: list[float], validation: list[tuple[float | None, float | None]]) -> None:
        sn, tables, run_id = self.sn, self.sn.tables, self.run_id
        store.write_parameters(sn.spark, tables, sn.net, params_of(sn.training, row))
        recorded = {**asdict(sn.options), **({"checkpoint_every": self.every} if self.every else {}),
                    **({"trace": True} if self.trace else {})}  # fmt: skip
        tables.append(
            sn.spark, "runs",
            [(run_id, self.begun, _now(), "finished", json.dumps(network_json(sn.net)), json.dumps(recorded),
              sn.options.epochs, float(sn.options.learning_rate), losses[-1])],
            RUNS_SCHEMA,
        )  # fmt: skip
        tables.append(sn.spark, "run_losses", [(run_id, e, v) for e, v in enumerate(losses, start=1)], LOSSES_SCHEMA)
        if validation:
            rows = [(run_id, e, loss, accuracy) for e, (loss, accuracy) in enumerate(validation, start=1)]
            tables.append(sn.spark, "run_validation", rows, VALIDATION_SCHEMA)
        self._save_definition()
        tables.save_state(state_of(sn.training, row))
        if self.every:
            tables.save_checkpoint(run_id, None)

    def _write_trace(self, ran: Ran) -> None:
        """The traced rows not written yet: at a checkpoint, and at the end."""
        if self.trace and len(ran.traced) > self.traced:
            store.write_trace(self.sn.spark, self.sn.tables, self.sn.training.phases, self.run_id, ran.traced[self.traced :])
            self.traced = len(ran.traced)

    def _save_definition(self) -> None:
        sn, tables, net, tr = self.sn, self.sn.tables, self.sn.net, self.sn.training
        definition = asdict(sn.definition) if sn.definition else asdict(Definition(tables.where))
        definition.update(sizes=list(net.sizes), bias=net.bias, hidden_activation=net.hidden_activation,
                          output_activation=net.output_activation, loss=net.loss, last_run=self.run_id)  # fmt: skip
        definition["optimizer"] = optimizer_key(tr.optimizer) if tr.optimizer.state else definition.get("optimizer")
        # the split, kept so that the next training holds out the same samples unless told otherwise
        definition.update(validation_fraction=sn.options.validation_fraction or None,
                          validation_seed=sn.options.seed if sn.options.validation_fraction else None)  # fmt: skip
        tables.save_definition(definition)

    def _failure(self, exc: BaseException, deadline: Deadline) -> BaseException:
        """What stopped the training, saying what the tables hold: the last checkpoint, or what they held."""
        if self.saved:
            where = f"the tables hold the checkpoint after epoch {self.saved} of run {self.run_id}"
            where += (" (a diverging run would diverge again)" if isinstance(exc, Diverged)
                      else f"; `sqlnet train --engine spark --resume {self.run_id}` continues it")  # fmt: skip
        else:
            where = "nothing was written, so every table is as it was before"
        if isinstance(exc, KeyboardInterrupt):
            return TrainingInterrupted(f"the training was cancelled; {where}")
        if isinstance(exc, TrainingTimeout) or deadline.passed:
            return TrainingTimeout(f"the training ran longer than --timeout {deadline.seconds:g} s and was cancelled; {where}")
        if isinstance(exc, Diverged):
            return Diverged(f"{str(exc).split('; nothing was written')[0]}; {where}", exc.losses)
        if isinstance(exc, SqlnetError) and self.saved:
            return type(exc)(f"{exc}; {where}")
        return exc


def _reparsed(runs: int) -> str | None:
    if not runs:
        return None
    return (
        f"Spark parsed the statement anew for {runs} run(s): its plan could not be run "
        "again (see sqlnet.db.spark_plan), so those were slower; the results are the same"
    )


def _next_run_id(sn: SparkNetwork) -> int:
    """The largest run id recorded (finished, or checkpointed and not finished) + 1: under the lock, the
    holder's alone."""
    ids = list(sn.tables.checkpoints())
    if sn.tables.exists("runs"):
        ids.append(int(sn.tables.read(sn.spark, "runs").agg({"run_id": "max"}).collect()[0][0] or 0))
    return max(ids, default=0) + 1


__all__ = ["train"]
