"""What sqlnet recorded: runs, their losses, restoring their weights, and the phases of traced runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlnet.db import pruning, store, trust
from sqlnet.db import trace as trace_store
from sqlnet.db.checks import check_and_size
from sqlnet.db.networks import Definition, define, read_definition, restore_run_state
from sqlnet.db.tables import discover, verify_params, write_params
from sqlnet.errors import InputError
from sqlnet.model.phases import Phase, plan
from sqlnet.ops import frames
from sqlnet.ops.common import (
    DatabaseLike,
    connect,
)


def runs(database: DatabaseLike = None, *, as_frame: bool = False) -> Any:
    """Every run this role may see, oldest first (RunInfo); `as_frame`: a pandas DataFrame, one row per run
    (run_id, started_at, finished_at, status, schema, layers, epochs, learning_rate, final_loss, error)."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        found = store.list_runs(s)
    if not as_frame:
        return found
    columns = ["run_id", "started_at", "finished_at", "status", "schema", "layers", "epochs", "learning_rate",
               "final_loss", "error"]  # fmt: skip
    rows = [
        (r.run_id, r.started_at, r.finished_at, r.status, r.schema_name, "-".join(map(str, r.network.sizes)), r.epochs,
         r.learning_rate, r.final_loss, r.error)
        for r in found
    ]  # fmt: skip
    return frames.to_frame(columns, rows).set_index("run_id")


def run(database: DatabaseLike, run_id: int) -> tuple[store.RunInfo, list[tuple[int, float, float | None, float | None]]]:
    """One run and each of its epochs (as `run_epochs`), read in one transaction."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        return store.get_run(s, run_id), store.run_epochs(s, run_id)


def run_epochs(database: DatabaseLike, run_id: int, *, as_frame: bool = False) -> Any:
    """Each epoch of a run: (epoch, training loss, validation loss, validation accuracy); `as_frame`: a
    pandas DataFrame indexed by epoch (loss, val_loss, val_accuracy)."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        store.get_run(s, run_id)
        epochs = store.run_epochs(s, run_id)
    if not as_frame:
        return epochs
    return frames.to_frame(["epoch", "loss", "val_loss", "val_accuracy"], epochs).set_index("epoch")


def run_losses(database: DatabaseLike, run_id: int, *, as_frame: bool = False) -> Any:
    """A run's loss per epoch: (epoch, loss); `as_frame`: a pandas DataFrame indexed by epoch."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        store.get_run(s, run_id)
        losses = store.run_loss_curve(s, run_id)
    if not as_frame:
        return losses
    return frames.to_frame(["epoch", "loss"], losses).set_index("epoch")


def restore(
    database: DatabaseLike = None, run_id: int | None = None, *, stage: str = "initial"
) -> store.RunInfo:
    """Put a run's initial (or final) weights and biases back into its tables, with the optimizer state
    that went with them and the functions the run trained them with (the network's definition)."""
    if stage not in ("initial", "final"):
        raise InputError(f"stage must be 'initial' or 'final', got {stage!r}")
    if run_id is None:
        raise InputError("which run? `sqlnet runs` lists them")
    with connect(database).transaction() as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        run = store.get_run(s, run_id)
        tables = discover(s, run.schema_name, run.network.bias)
        trust.guard(s.pg, tables)
        sizes = check_and_size(s.pg, tables)
        if sizes != run.network.sizes:
            raise InputError(
                f"run {run_id} trained a {'-'.join(map(str, run.network.sizes))} network but the tables now hold "
                f"{'-'.join(map(str, sizes))}: restore needs the same shape"
            )
        params = store.load_params(s, run_id, stage, run.network)
        write_params(s.pg, tables, params)
        verify_params(s.pg, tables, params)
        store.ensure_schema(s)
        optimizer = restore_run_state(s, run_id, stage, tables.resolved_schema)
        define(s, tables.resolved_schema, run.network, optimizer, run_id)
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
        trust.check_sqlnet_schemas(s.pg, s.home, trace=True)
        traced = [r for r in store.list_runs(s) if r.options.get("trace")]
        if run_id is None:
            if not traced:
                raise InputError("no traced run yet: run `sqlnet train --trace` first")
            run = traced[-1]
        else:
            run = store.get_run(s, run_id)
            if not run.options.get("trace"):
                raise InputError(f"run {run_id} was not traced: train with --trace to keep its phases")
        # phase 0 (start) of epoch e holds the weights epoch e starts from
        return run, [PhaseTrace(p, trace_store.trace_rows(s, p, run.run_id, epoch)) for p in plan(run.network)]


def network(database: DatabaseLike = None, *, schema: str | None = None) -> Definition:
    """What the network in `schema` is beyond its weights: its stored definition."""
    with connect(database).transaction(commit=False) as s:
        home = s.schema(schema)
        trust.check_sqlnet_schemas(s.pg, home)
        definition = read_definition(s, home)
        if definition is None:
            raise InputError(
                f"no network is recorded for schema {home!r}: `sqlnet init` makes one, `sqlnet load` records "
                f"its data and its first training records its functions"
            )
        return definition


def prune_runs(
    database: DatabaseLike = None, *, keep: int | None = None, older_than: datetime | timedelta | None = None,
    schema: str | None = None, dry_run: bool = False,
) -> pruning.Pruned:  # fmt: skip
    """Remove the records (losses, weights before and after, optimizer states, trace rows) of the runs beyond
    the `keep` latest of each network and/or started before `older_than` (a time, or an age); only network
    `schema`'s, if given. A running run, a resumable one (a checkpoint) and the run a network's weights came
    from are kept, each with the reason (``Pruned.kept``). In one transaction; `dry_run` removes nothing."""
    if keep is None and older_than is None:
        raise InputError("say which runs to remove: --keep N (the latest N of each network stay) and/or --older-than")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise InputError(f"--keep must be a whole number >= 0, got {keep!r}")
    with connect(database).transaction(commit=not dry_run) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        before = older_than
        if isinstance(older_than, timedelta):
            (now,) = s.pg.execute("SELECT pg_catalog.now()").fetchone()  # type: ignore[misc]
            before = now - older_than
        assert before is None or isinstance(before, datetime)
        return pruning.prune(s, keep, before, schema, dry_run)


def runs_and_sizes(database: DatabaseLike = None) -> tuple[list[store.RunInfo], dict[str, int]]:
    """`runs` and `record_sizes` in one transaction (one connection: `sqlnet runs` prints both)."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        return store.list_runs(s), pruning.sizes(s)


def record_sizes(database: DatabaseLike = None) -> dict[str, int]:
    """The bytes each of sqlnet's record tables takes (runs, run_params, ...)."""
    with connect(database).transaction(commit=False) as s:
        trust.check_sqlnet_schemas(s.pg, s.home)
        return pruning.sizes(s)
