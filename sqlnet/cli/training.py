"""Commands that train or compare: `train` (with live progress), `sql`, `check`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

import sqlnet as api
from sqlnet.cli.base import (
    EXIT_ERROR,
    _fmt,
    _hyper,
    database_option,
    engine_options,
    err,
    handle_errors,
    main,
    out,
    params_table,
    print_comparison,
    schema_option,
    training_options,
)
from sqlnet.engines import ENGINE_NAMES, RESTORE, Engine, lacks
from sqlnet.ops.defaults import DEFAULT_TOLERANCE


@main.command()
@database_option
@schema_option
@engine_options
@training_options
@click.option("--trace", is_flag=True, help="Keep every phase of every epoch in schema sqlnet_trace.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document: run id, losses, trained weights."
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--reset-optimizer", is_flag=True, help="Start momentum/Adam from zero instead of the kept state."
)
@click.option(
    "--wait", is_flag=True, help="If another training holds this network, wait for it instead of failing."
)
@click.option(
    "--checkpoint-every",
    type=int,
    metavar="K",
    help="Commit the weights, optimizer state and losses every K epochs: a cancel or crash loses at most K.",
)
@click.option(
    "--resume",
    type=int,
    metavar="RUN",
    help="Continue a checkpointed run from its last checkpoint, with its own options.",
)
@click.option(
    "--timeout", type=float, metavar="SECONDS", help="Cancel (and roll back) a training that runs longer."
)
@click.option(
    "--redefine",
    is_flag=True,
    help="Change the network's stored functions (activations, loss, bias) to the ones given.",
)
@click.option(
    "--allow-divergence",
    is_flag=True,
    help="Keep the weights of a training whose loss grew past a million times its first epoch's "
    "(by default that is an error and nothing is written back).",
)
@handle_errors
def train(
    engine: Engine,
    trace: bool,
    as_json: bool,
    quiet: bool,
    reset_optimizer: bool,
    wait: bool,
    checkpoint_every: int | None,
    resume: int | None,
    timeout: float | None,
    redefine: bool,
    allow_divergence: bool,
    **kwargs: Any,
) -> None:
    """Train the network in the tables and write the trained weights back.

    The network's functions (activations, loss, bias) are stored with it by its first training
    (`sqlnet network` shows them); later commands use them, and an option that contradicts them is
    refused unless --redefine.

    Everything runs in one transaction: on an error, Ctrl-C (exit 130) or --timeout (exit 1) no
    table changes. A training that diverges (a loss out of range, or past a million times the
    first epoch's) is an error too: nothing is written back, the run is recorded as diverged.
    The run is recorded (sqlnet runs) with the weights before and after, so
    `sqlnet restore RUN` undoes it. One training per network at a time: a second one fails at once
    naming the first, or waits with --wait.

    \b
    Examples:
      sqlnet train --epochs 1 --learning-rate 0.1
      sqlnet train --schema mynet --epochs 500 --lr 0.001 --trace
      sqlnet train --epochs 100 --json | jq .final_loss
      sqlnet train --epochs 20 --batch-size 32 --shuffle 7 --optimizer adam --lr 0.01
      sqlnet train --epochs 5000 --checkpoint-every 100    (after a crash: sqlnet train --resume RUN)
      sqlnet train --engine spark --parquet ./net --epochs 30    (Parquet tables, Apache Spark SQL)
    """
    show = not (as_json or quiet)
    bar = show and sys.stderr.isatty()
    printed: list[int] = []

    def on_block(epoch: int, loss: float) -> None:
        # without a terminal: one line per statement of a training that needs several
        if show and not bar and (printed or epoch < kwargs["epochs"]):
            err.print(f"epoch {epoch}/{kwargs['epochs']}  loss {_fmt(loss)}")
            printed.append(epoch)

    with live_progress(bar) as on_update:
        result = engine.train(
            trace=trace,
            reset_optimizer=reset_optimizer,
            wait=wait,
            timeout=timeout,
            on_block=on_block,
            on_update=on_update,
            checkpoint_every=checkpoint_every,
            resume=resume,
            redefine=redefine,
            allow_divergence=allow_divergence,
            **_hyper(kwargs),
        )
    _report(result, as_json, quiet, trace, undo=not lacks(engine.name, RESTORE))


@contextlib.contextmanager
def live_progress(enabled: bool) -> Iterator[Callable[[api.Progress], None] | None]:
    """A progress bar on stderr, moved by every update while the SQL runs."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("training", total=None, loss="")

        def on_update(p: api.Progress) -> None:
            loss = "" if p.loss is None else f"loss {p.loss:.6g}"
            progress.update(task, total=p.total, completed=p.done, description=f"epoch {p.epoch}", loss=loss)

        yield on_update


def _report(result: api.TrainResult, as_json: bool, quiet: bool, trace: bool, undo: bool = True) -> None:
    warning = result.divergence_warning()
    if warning and not as_json:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    for note in result.notes if not (as_json or quiet) else []:
        err.print(f"[cyan]note:[/] {escape(note)}")
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    if quiet:
        return
    net = result.network
    out.print(f"run {result.run_id}: trained a {net.describe()}")
    losses = result.losses
    trend = (
        f"loss {_fmt(losses[0])} before the update"
        if len(losses) == 1
        else f"loss {_fmt(losses[0])} in epoch 1 -> {_fmt(losses[-1])} in epoch {len(losses)} "
        f"(each sample's loss before its batch's update)"
    )
    o = result.options
    batches = "full batch" if not o.batch_size else f"batches of {o.batch_size}"
    out.print(
        f"{o.epochs} epoch(s), {batches}, {o.make_optimizer().describe()} at learning rate {o.learning_rate}, "
        f"in {result.statements} statement(s), {result.seconds:.2f} s; {trend}"
    )
    if result.computed:  # --kernels' choice, and why
        out.print(escape(f"computed by: {result.computed}"))
    if result.validation:
        loss, accuracy = result.validation[-1]
        out.print(
            f"validation after epoch {len(result.validation)}: loss {_fmt(loss) if loss is not None else '-'}"
            + (f", accuracy {accuracy:.2%}" if accuracy is not None else "")
        )
    if sum(len(w) * len(w[0]) for w in result.params.weights) <= 60:
        out.print(params_table(net, result.params, "trained weights and biases (written back)"))
    if trace:
        out.print(
            f"phases kept in schema sqlnet_trace (run_id = {result.run_id}): `sqlnet phases` shows them"
        )
    if undo:
        out.print(f"undo with: sqlnet restore {result.run_id}")


@main.command("sql")
@database_option
@schema_option
@engine_options
@training_options
@handle_errors
def sql_command(engine: Engine, **kwargs: Any) -> None:
    """Print the SQL that `train` runs with the same options; it runs as is in psql.

    The statement reads the tables, trains, writes the weights back and returns the loss of
    each epoch and the trained weights. It needs the tables to exist (their sizes shape it).

    \b
    Examples:
      sqlnet sql --epochs 3 > train.sql && sqlnet psql -f train.sql
      sqlnet sql --engine spark --parquet ./net > update.sql && spark-sql -f update.sql
    """
    click.echo(engine.training_sql(**_hyper(kwargs)), nl=False)


@main.command()
@database_option
@schema_option
@engine_options
@training_options
@click.option(
    "--tolerance",
    type=float,
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="Largest relative difference allowed (relative to max(1, |reference|)).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def check(engine: Engine, tolerance: float, as_json: bool, **kwargs: Any) -> None:
    """Train with the SQL and with the pure-Python reference and compare; changes nothing.

    Exits 1 when any table differs by more than the tolerance.

    \b
    Examples:
      sqlnet check --epochs 10 --learning-rate 0.001
      sqlnet check --engine spark --parquet ./net --epochs 3
    """
    report = engine.check(tolerance=tolerance, **_hyper(kwargs))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        table = Table(
            title=f"{'SQL' if engine.name == 'postgresql' else ENGINE_NAMES[engine.name] + ' SQL'} vs reference: {report.network.describe()}, "
            f"{report.options.epochs} epoch(s)",
            title_justify="left",
        )
        rows = [
            (d.table, str(d.values), f"{d.max_abs:.3g}", f"{d.max_rel:.3g}", d.max_rel <= tolerance)
            for d in report.differences
        ]
        print_comparison(table, ("values", "max |diff|", "relative"), rows, report.ok, tolerance)
        if report.computed:  # --kernels' choice, and why
            out.print(escape(f"computed by: {report.computed}"))
    if not report.ok:
        sys.exit(EXIT_ERROR)
