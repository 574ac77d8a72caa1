"""The command line: a thin click layer over ``sqlnet.api``.

Exit codes: 0 success; 1 a clear error (bad tables or options, database refused, check failed);
2 a usage error; 130 interrupted by Ctrl-C (the transaction was rolled back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import psycopg
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sqlnet import api
from sqlnet.db import Database, psql_binary, redact
from sqlnet.errors import SqlnetError
from sqlnet.functions import ACTIVATIONS, LOSSES
from sqlnet.initialize import INITS
from sqlnet.layouts import LAYOUTS
from sqlnet.network import BIAS_LAYOUTS, Network, Params
from sqlnet.optimizers import OPTIMIZERS

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TRACE_FIELDS = ("epoch", "batch", "sample", "layer", "quantity", "input_node", "node", "value")
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def database_option(f: F) -> F:
    return click.option(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL. Default: $SQLNET_DATABASE_URL, then $DATABASE_URL, then sqlnet's embedded server.",
    )(f)


def schema_option(f: F) -> F:
    return click.option(
        "--schema", metavar="NAME", help="Schema of the network's tables (default: the current one)."
    )(f)


def network_options(f: F) -> F:
    """The functions of the network: shared by train, sql, check and gradcheck."""
    options = [
        click.option(
            "--hidden-activation",
            type=click.Choice([a for a in ACTIVATIONS if ACTIVATIONS[a].elementwise]),
            default="relu",
            show_default=True,
        ),
        click.option(
            "--output-activation", type=click.Choice(list(ACTIVATIONS)), default="linear", show_default=True
        ),
        click.option("--loss", type=click.Choice(list(LOSSES)), default="half-se", show_default=True),
        click.option(
            "--bias",
            type=click.Choice(list(BIAS_LAYOUTS)),
            help="Where biases live. Default: node if biases{k} tables exist, else edge if the weights tables "
            "have bias columns, else none.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def training_options(f: F) -> F:
    """The hyperparameters shared by train, sql and check."""
    options = [
        click.option("--epochs", type=int, default=1, show_default=True, help="Passes over the samples."),
        click.option(
            "--learning-rate", "--lr", type=float, default=0.1, show_default=True, help="Gradient step size."
        ),
        click.option(
            "--batch-size",
            type=int,
            default=0,
            show_default=True,
            help="Samples per update: 0 = all (full batch), N = mini-batches in sampleId order, 1 = per-sample SGD.",
        ),
        click.option(
            "--shuffle", type=int, metavar="SEED", help="Shuffle the samples each epoch, deterministically."
        ),
        click.option("--optimizer", type=click.Choice(list(OPTIMIZERS)), default="gd", show_default=True),
        click.option(
            "--momentum", type=float, default=0.9, show_default=True, help="For --optimizer momentum."
        ),
        click.option("--nesterov", is_flag=True, help="Nesterov momentum (with --optimizer momentum)."),
        click.option(
            "--beta1", type=float, default=0.9, show_default=True, help="Adam's first-moment decay."
        ),
        click.option(
            "--beta2", type=float, default=0.999, show_default=True, help="Adam's second-moment decay."
        ),
        click.option("--epsilon", type=float, default=1e-8, show_default=True, help="Adam's epsilon."),
        click.option(
            "--l2", type=float, default=0.0, show_default=True, help="L2 weight decay (weights, not biases)."
        ),
        click.option(
            "--numeric",
            type=click.Choice(["float", "exact"]),
            default="float",
            show_default=True,
            help="exact: compute in NUMERIC rounded to --scale decimals at every phase (relu/linear, plain GD).",
        ),
        click.option(
            "--scale", type=int, default=12, show_default=True, help="Decimals kept with --numeric exact."
        ),
        click.option(
            "--validation-fraction",
            type=float,
            default=0.0,
            show_default=True,
            help="Hold out this share of the samples (by md5 of --seed and sampleId) and score it after every epoch.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Which samples --validation-fraction holds out.",
        ),
        click.option(
            "--updates-per-statement",
            type=int,
            help="Updates run by one SQL statement (default: 500 wide, 100 long); longer trainings run several, "
            "in the same transaction.",
        ),
        click.option(
            "--layout",
            type=click.Choice(["auto", *LAYOUTS]),
            default="auto",
            show_default=True,
            help="How the SQL holds the values: wide (one row per sample, fast) or long (one row per value; "
            "needed by --trace, --numeric exact and very wide layers). auto chooses.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return network_options(f)


def handle_errors(f: F) -> F:
    """Turn sqlnet's errors into a message and exit code 1, Ctrl-C into 130."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except SqlnetError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            sys.exit(EXIT_ERROR)
        except psycopg.Error as exc:
            # the database refused something sqlnet did not foresee: say what, roll back (done), exit 1
            detail = exc.diag.message_primary or str(exc)
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):
                detail += " (`sqlnet grants ROLE` prints the grants a training needs; run them as the owner)"
            err.print(
                f"[bold red]database error:[/] {escape(detail)} (SQLSTATE {exc.sqlstate}); the transaction was "
                f"rolled back and no table changed"
            )
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt as exc:
            if str(exc):  # a checkpointed training says where its tables are
                err.print(f"[yellow]interrupted:[/] {escape(str(exc))}")
                sys.exit(EXIT_INTERRUPTED)
            err.print(
                "[yellow]interrupted:[/] the statement was cancelled and the transaction rolled back; "
                "every table is as it was before."
            )
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def _hyper(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The command's options that are TrainOptions."""
    return {f.name: kwargs[f.name] for f in dataclasses.fields(api.TrainOptions)}


def _fmt(v: float) -> str:
    return f"{v:.10g}"


def params_table(net: Network, params: Params, title: str, other: Params | None = None) -> Table:
    """Weights and biases as the post's tables show them; with `other`, a reference column beside."""
    table = Table(title=title, title_justify="left")
    for name in ("layer", "in", "out", "weight", "bias"):
        table.add_column(name, justify="right")
    if other is not None:
        table.add_column("reference weight", justify="right")
        table.add_column("reference bias", justify="right")

    def bias(p: Params, k: int, i: int, j: int) -> str:
        if net.bias == "none":
            return "-"
        return _fmt(p.biases[k - 1][i if net.bias == "edge" else 0][j])

    for k in range(1, net.depth + 1):
        for i in range(net.sizes[k - 1]):
            for j in range(net.sizes[k]):
                row = [
                    str(k),
                    str(i + 1),
                    str(j + 1),
                    _fmt(params.weights[k - 1][i][j]),
                    bias(params, k, i, j),
                ]
                if other is not None:
                    row += [_fmt(other.weights[k - 1][i][j]), bias(other, k, i, j)]
                table.add_row(*row)
    return table


EPILOG_EXAMPLES = """
\b
Examples:
  sqlnet demo                                   the post's network, end to end
  sqlnet init --example post                    create the post's tables
  sqlnet train --epochs 1 --learning-rate 0.1   train them in PostgreSQL
  sqlnet check --epochs 50 --lr 0.0001          compare the SQL with the reference
  sqlnet sql > train.sql                        the statement train runs
  sqlnet psql                                   open the database in psql
"""


@click.group(epilog=EPILOG_EXAMPLES)
@click.version_option(package_name="sqlnet")
def main() -> None:
    """Train neural networks inside PostgreSQL.

    The network lives in ordinary tables (inputs, weights1, weights2, ..., outputs); sqlnet
    compiles its training into one recursive-CTE statement whose steps are the phases of
    backpropagation, runs it in the database, and checks it against a pure-Python reference.
    """
    # psycopg logs a warning of its own when a connection dies inside a pipeline; the error that
    # follows says what happened, once
    logging.getLogger("psycopg").setLevel(logging.ERROR)


@main.command()
@database_option
@schema_option
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
@handle_errors
def train(
    database_url: str | None,
    schema: str | None,
    trace: bool,
    as_json: bool,
    quiet: bool,
    reset_optimizer: bool,
    wait: bool,
    checkpoint_every: int | None,
    resume: int | None,
    timeout: float | None,
    **kwargs: Any,
) -> None:
    """Train the network in the tables and write the trained weights back.

    Everything runs in one transaction: on an error, Ctrl-C (exit 130) or --timeout (exit 1) no
    table changes. The run is recorded (sqlnet runs) with the weights before and after, so
    `sqlnet restore RUN` undoes it. One training per network at a time: a second one fails at once
    naming the first, or waits with --wait.

    \b
    Examples:
      sqlnet train --epochs 1 --learning-rate 0.1
      sqlnet train --schema mynet --epochs 500 --lr 0.001 --trace
      sqlnet train --epochs 100 --json | jq .final_loss
      sqlnet train --epochs 20 --batch-size 32 --shuffle 7 --optimizer adam --lr 0.01
      sqlnet train --epochs 5000 --checkpoint-every 100    (after a crash: sqlnet train --resume RUN)
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
        result = api.train(
            database_url,
            schema=schema,
            trace=trace,
            reset_optimizer=reset_optimizer,
            wait=wait,
            timeout=timeout,
            on_block=on_block,
            on_update=on_update,
            checkpoint_every=checkpoint_every,
            resume=resume,
            **_hyper(kwargs),
        )
    _report(result, as_json, quiet, trace)


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


def _report(result: api.TrainResult, as_json: bool, quiet: bool, trace: bool) -> None:
    warning = result.divergence_warning()
    if warning and not as_json:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
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
    out.print(f"undo with: sqlnet restore {result.run_id}")


@main.command("sql")
@database_option
@schema_option
@training_options
@handle_errors
def sql_command(database_url: str | None, schema: str | None, **kwargs: Any) -> None:
    """Print the SQL that `train` runs with the same options; it runs as is in psql.

    The statement reads the tables, trains, writes the weights back and returns the loss of
    each epoch and the trained weights. It needs the tables to exist (their sizes shape it).

    \b
    Examples:
      sqlnet sql --epochs 3 > train.sql && sqlnet psql -f train.sql
    """
    click.echo(api.training_sql(database_url, schema=schema, **_hyper(kwargs)), nl=False)


@main.command()
@database_option
@schema_option
@training_options
@click.option(
    "--tolerance",
    type=float,
    default=api.DEFAULT_TOLERANCE,
    show_default=True,
    help="Largest relative difference allowed (relative to max(1, |reference|)).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def check(
    database_url: str | None, schema: str | None, tolerance: float, as_json: bool, **kwargs: Any
) -> None:
    """Train with the SQL and with the pure-Python reference and compare; changes nothing.

    Exits 1 when any table differs by more than the tolerance.

    \b
    Examples:
      sqlnet check --epochs 10 --learning-rate 0.001
    """
    report = api.check(database_url, schema=schema, tolerance=tolerance, **_hyper(kwargs))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        table = Table(
            title=f"SQL vs reference: {report.network.describe()}, {report.options.epochs} epoch(s)",
            title_justify="left",
        )
        rows = [
            (d.table, str(d.values), f"{d.max_abs:.3g}", f"{d.max_rel:.3g}", d.max_rel <= tolerance)
            for d in report.differences
        ]
        print_comparison(table, ("values", "largest difference", "relative"), rows, report.ok, tolerance)
    if not report.ok:
        sys.exit(EXIT_ERROR)


def print_comparison(
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple[str, str, str, str, bool]],
    ok: bool,
    tolerance: float,
) -> None:
    """check and gradcheck: one row per table column compared, then the verdict."""
    table.add_column("table", justify="left")
    for name in (*columns, "within tolerance"):
        table.add_column(name, justify="right")
    for name, *values, within in rows:
        table.add_row(escape(name), *values, "yes" if within else "[red]NO[/]")
    out.print(table)
    out.print("agree" if ok else f"[red]DISAGREE[/] beyond tolerance {tolerance}")


def _layers(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(n) for n in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected sizes like 4,8,8,3, got {value!r}") from None


@main.command()
@database_option
@schema_option
@click.option(
    "--example", type=click.Choice(list(api.EXAMPLES)), help="Fill the post's tables with its values."
)
@click.option(
    "--layers", callback=_layers, metavar="N,N,...", help="Random weights for these layer sizes, input first."
)
@click.option(
    "--init",
    "scheme",
    type=click.Choice(list(INITS)),
    default="he",
    show_default=True,
    help="How --layers draws the weights (biases start at 0).",
)
@click.option("--seed", type=int, help="Repeatable random weights.")
@click.option(
    "--bias",
    type=click.Choice(list(BIAS_LAYOUTS)),
    default="edge",
    show_default=True,
    help="With --layers: bias columns per edge, biases{k} tables per node, or none.",
)
@click.option("--replace", is_flag=True, help="Drop and recreate the tables if they exist.")
@handle_errors
def init(
    database_url: str | None,
    schema: str | None,
    example: str | None,
    layers: list[int] | None,
    scheme: str,
    seed: int | None,
    bias: str,
    replace: bool,
) -> None:
    """Create the network's tables: the post's, or random weights for given layer sizes.

    \b
    Examples:
      sqlnet init --example post
      sqlnet init --schema experiment --example post --replace
      sqlnet init --layers 4,8,8,3 --init he --seed 1 --bias node
    """
    tables = api.init(
        database_url,
        schema=schema,
        example=example,
        layers=layers,
        init=scheme,
        seed=seed,
        bias=bias,
        replace=replace,
    )
    where = f" in schema {schema}" if schema else ""
    detail = f" with the {example} example's values" if example else ""
    if layers:
        detail = f": a {'-'.join(map(str, layers))} network, {scheme} initialisation" + (
            f", seed {seed}" if seed is not None else ""
        )
    out.print(f"created {', '.join(tables)}{where}{detail}")


@main.command()
@database_option
@schema_option
@network_options
@click.option("--epsilon", type=float, default=1e-6, show_default=True, help="Finite-difference step.")
@click.option(
    "--tolerance", type=float, default=1e-4, show_default=True, help="Largest relative error allowed."
)
@click.option(
    "--max-params", type=int, default=500, show_default=True, help="Check a seeded sample beyond this."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def gradcheck(
    database_url: str | None,
    schema: str | None,
    epsilon: float,
    tolerance: float,
    max_params: int,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Compare the SQL's gradients with finite differences of the reference's loss; changes nothing.

    The gradient of every parameter comes from the SQL backward phases (one full-batch update
    at learning rate 1, rolled back); the finite differences from the pure-Python reference.
    Exits 1 when the worst relative error exceeds the tolerance.

    \b
    Examples:
      sqlnet gradcheck
      sqlnet gradcheck --hidden-activation tanh --output-activation softmax --loss cross-entropy
    """
    report = api.gradcheck(
        database_url, schema=schema, epsilon=epsilon, tolerance=tolerance, max_params=max_params, **kwargs
    )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        table = Table(
            title=f"SQL gradients vs finite differences: {report.network.describe()}", title_justify="left"
        )
        rows = [
            (
                d.table,
                str(d.checked),
                f"{d.worst_relative:.3g}",
                f"{d.worst_absolute:.3g}",
                d.worst_relative <= tolerance,
            )
            for d in report.differences
        ]
        print_comparison(
            table, ("checked", "worst relative error", "worst absolute error"), rows, report.ok, tolerance
        )
    if not report.ok:
        sys.exit(EXIT_ERROR)


@main.group(invoke_without_command=True)
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
@handle_errors
def runs(ctx: click.Context, database_url: str | None, as_json: bool) -> None:
    """List the recorded training runs; `runs show RUN` shows one with its loss curve.

    \b
    Examples:
      sqlnet runs
      sqlnet runs --json
      sqlnet runs show 3
    """
    ctx.obj = {"database_url": database_url}
    if ctx.invoked_subcommand is not None:
        return
    found = api.runs(database_url)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in found], indent=2))
        return
    if not found:
        out.print("no runs yet: `sqlnet train` records one")
        return
    table = Table()
    for name in ("run", "started", "status", "schema", "network", "epochs", "rate", "final loss", "trace"):
        table.add_column(name)
    for r in found:
        table.add_row(
            str(r.run_id),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.status,
            r.schema_name or "",
            "-".join(map(str, r.network.sizes)),
            str(r.epochs),
            str(r.learning_rate),
            _fmt(r.final_loss) if r.final_loss is not None else "",
            "yes" if r.options.get("trace") else "",
        )
    out.print(table)


def text_plot(points: list[tuple[int, float]], width: int = 60, height: int = 12) -> list[str]:
    """The loss per epoch as a terminal plot; a log scale when it spans more than 100x."""
    if not points:
        return ["(no losses recorded)"]
    values = [v for _, v in points]
    log = min(values) > 0 and max(values) / min(values) > 100
    ys = [math.log10(v) for v in values] if log else values
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    columns = min(width, len(points))
    grid = [[" "] * columns for _ in range(height)]
    for c in range(columns):
        # each column shows the epochs that fall into it by their mean
        chunk = ys[c * len(ys) // columns : max((c + 1) * len(ys) // columns, c * len(ys) // columns + 1)]
        y = sum(chunk) / len(chunk)
        grid[height - 1 - round((y - lo) / span * (height - 1))][c] = "*"
    label = (lambda y: f"{10**y:.4g}") if log else (lambda y: f"{y:.4g}")
    lines = []
    for r, row in enumerate(grid):
        y = hi - r * span / (height - 1)
        lines.append(f"{label(y):>11} |{''.join(row)}")
    lines.append(" " * 12 + "+" + "-" * columns)
    lines.append(" " * 13 + f"epoch {points[0][0]}" + " " * max(1, columns - 16) + f"epoch {points[-1][0]}")
    if log:
        lines.append(" " * 13 + "(log scale)")
    return lines


@runs.command("show")
@click.argument("run", type=int)
@database_option
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.png",
    help="Also draw the loss curve into a PNG (needs matplotlib: pip install 'sqlnet[plot]').",
)
@click.pass_context
@handle_errors
def runs_show(ctx: click.Context, run: int, database_url: str | None, plot: str | None) -> None:
    """Show a run: its network, its options and its loss per epoch as a plot.

    \b
    Examples:
      sqlnet runs show 3
      sqlnet runs show 3 --plot loss.png
    """
    url = database_url or (ctx.obj or {}).get("database_url")
    info = next((r for r in api.runs(url) if r.run_id == run), None)
    if info is None:
        raise SqlnetError(f"run {run} not found: `sqlnet runs` lists the runs")
    out.print(
        f"run {info.run_id} ({info.status}): {info.network.describe()}, schema {info.schema_name or '(search path)'}"
    )
    out.print(
        f"started {info.started_at:%Y-%m-%d %H:%M:%S}"
        + (f", finished {info.finished_at:%H:%M:%S}" if info.finished_at else "")
    )
    if info.error:
        out.print(f"stopped by: {escape(info.error)}")
    for key, value in sorted(info.options.items()):
        out.print(f"  {key}: {value}")
    curve = api.run_losses(url, run)
    out.print(f"loss per epoch (mean over each epoch's samples), {len(curve)} epochs:")
    for line in text_plot(curve):
        out.print(escape(line))
    if plot:
        draw_loss(curve, plot, f"run {info.run_id}: {info.network.describe()}")
        out.print(f"wrote {plot}")


def draw_loss(curve: list[tuple[int, float]], path: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SqlnetError("--plot needs matplotlib: pip install 'sqlnet[plot]' (or matplotlib)") from exc
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot([e for e, _ in curve], [v for _, v in curve], color="#1f77b4")
    values = [v for _, v in curve]
    if values and min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss over the epoch's samples")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@main.command()
@database_option
@schema_option
@click.argument("role")
@click.option("--trace", is_flag=True, help="Also let the role keep phase traces (schema sqlnet_trace).")
@click.option("--apply", is_flag=True, help="Create sqlnet's schema and run the grants (as the owner).")
@handle_errors
def grants(database_url: str | None, schema: str | None, role: str, trace: bool, apply: bool) -> None:
    """Print (or --apply) the grants that let ROLE train the network and do nothing more.

    The role reads inputs and outputs, reads and updates the weights (and biases) tables, and
    records its runs in schema sqlnet; mini-batches use temporary tables. Run this as the owner
    of the tables. init, load, predict and export create tables: they need CREATE on the schema.

    \b
    Examples:
      sqlnet grants trainer                     print the GRANT statements
      sqlnet grants trainer --apply             create schema sqlnet and grant them
      sqlnet grants trainer --schema digits --trace --apply
    """
    g = api.grants(database_url, role=role, schema=schema, trace=trace, apply=apply)
    click.echo(f"-- let role {role} train the network and do nothing more; run as the owner of the tables")
    if not g.store_exists:
        click.echo(
            "-- schema sqlnet does not exist yet: `sqlnet grants ROLE --apply` creates it first, or run"
            "\n-- these after the owner's first training"
        )
    for statement in g.statements:
        click.echo(statement + ";")
    if apply:
        click.echo(f"-- applied: role {role} may now train the network")


@main.command()
@database_option
@click.argument("run", type=int)
@click.option("--final", "stage", flag_value="final", help="Restore the weights the run ended with.")
@click.option(
    "--initial",
    "stage",
    flag_value="initial",
    default=True,
    help="Restore the weights it started from (default).",
)
@handle_errors
def restore(database_url: str | None, run: int, stage: str) -> None:
    """Put a run's initial (or final) weights and biases back into its tables.

    \b
    Examples:
      sqlnet restore 3            undo run 3
      sqlnet restore 3 --final    redo it
    """
    info = api.restore(database_url, run, stage=stage)
    where = f" in schema {info.schema_name}" if info.schema_name else ""
    out.print(f"restored the {stage} weights of run {run}{where}")


@main.command()
@database_option
@click.option("--run", type=int, help="The run (default: the latest traced run).")
@click.option("--epoch", type=int, default=1, show_default=True, help="The epoch to show (0 = all).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@handle_errors
def phases(database_url: str | None, run: int | None, epoch: int, as_json: bool) -> None:
    """Print what every phase computed in a traced run (train --trace).

    Each phase is a table in schema sqlnet_trace: `\\dt sqlnet_trace.*` in psql lists them.

    \b
    Examples:
      sqlnet train --trace && sqlnet phases
      sqlnet phases --run 4 --epoch 2
    """
    info, traces = api.phases(database_url, run, epoch or None)
    if as_json:
        phases_json = [
            {
                "phase": t.phase.number,
                "name": t.phase.name,
                "table": f"sqlnet_trace.{t.phase.table}",
                "comment": t.phase.comment,
                "rows": [dict(zip(TRACE_FIELDS, r)) for r in t.rows],
            }
            for t in traces
        ]
        click.echo(json.dumps({"run_id": info.run_id, "phases": phases_json}, indent=2, default=float))
        return
    for t in traces:
        table = Table(title=escape(f"sqlnet_trace.{t.phase.table} — {t.phase.comment}"), title_justify="left")
        for name in TRACE_FIELDS:
            table.add_column(name, justify="right")
        for r in t.rows:
            table.add_row(*("" if v is None else _fmt(v) if isinstance(v, float) else str(v) for v in r))
        out.print(table)


def _features(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return [f.strip() for f in value.split(",")] if value else None


@main.command()
@database_option
@schema_option
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--from-table", metavar="T", help="Load from a table or view instead of a CSV file.")
@click.option("--from-schema", metavar="NAME", help="Schema of --from-table.")
@click.option(
    "--target", "targets", multiple=True, required=True, metavar="COL", help="A target column (repeatable)."
)
@click.option(
    "--features",
    callback=_features,
    metavar="A,B,...",
    help="Feature columns (default: all but the targets).",
)
@click.option(
    "--classes", is_flag=True, help="The target is a label: one-hot outputs, class names remembered."
)
@click.option(
    "--standardize", is_flag=True, help="Scale each feature to mean 0, std 1 (predict does it again)."
)
@handle_errors
def load(database_url: str | None, schema: str | None, file: str | None, **kwargs: Any) -> None:
    """Fill inputs and outputs (with sampleId) from a CSV file or a table, one row per example.

    Input node k is the k-th feature. What was there before is replaced (and said so).

    \b
    Examples:
      sqlnet load digits.csv --target label --classes --standardize --schema digits
      sqlnet load --from-table houses --target price --features rooms,area
    """
    kwargs["targets"] = list(kwargs["targets"])
    if sys.stderr.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True
        ) as progress:
            task = progress.add_task("loading", total=None)

            def on_rows(n: int) -> None:
                progress.update(task, description=f"loading: {n} rows copied")

            loaded = api.load(database_url, schema=schema, file=file, on_rows=on_rows, **kwargs)
    else:
        loaded = api.load(database_url, schema=schema, file=file, **kwargs)
    if loaded.replaced:
        out.print(f"replaced the {loaded.replaced} samples that were in {loaded.schema}.inputs/outputs")
    classes = f", {len(loaded.classes)} classes" if loaded.classes else ""
    out.print(
        f"loaded {loaded.samples} samples into {loaded.schema}.inputs/outputs: {len(loaded.features)} features"
        f"{classes}, targets {', '.join(loaded.targets)}"
    )


def prediction_options(f: F) -> F:
    options = [
        click.option("--table-schema", metavar="NAME", help="Schema of --table (and of what is created)."),
        click.option(
            "--id", "id_column", default="id", show_default=True, help="Id column of a wide --table."
        ),
        click.option(
            "--features",
            callback=_features,
            metavar="A,B,...",
            help="Feature columns of a wide --table, in input-node order (default: a long table with "
            "sampleId, inputNode, inputValue).",
        ),
        click.option("--replace", is_flag=True, help="Replace what exists under that name."),
        click.option(
            "--hidden-activation",
            type=click.Choice([a for a in ACTIVATIONS if ACTIVATIONS[a].elementwise]),
            help="Default: the network's latest finished run.",
        ),
        click.option(
            "--output-activation",
            type=click.Choice(list(ACTIVATIONS)),
            help="Default: the network's latest finished run.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@database_option
@schema_option
@click.option("--table", required=True, metavar="T", help="The samples to predict.")
@click.option(
    "--into", required=True, metavar="P", help="The table to create: P(sampleId, outputNode, outputValue)."
)
@prediction_options
@handle_errors
def predict(database_url: str | None, schema: str | None, **kwargs: Any) -> None:
    """Compute the network's outputs in SQL for the samples of a table.

    The weights come from the weights tables, the activations from the network's latest
    finished run (or --hidden-activation/--output-activation).

    \b
    Examples:
      sqlnet predict --table new_inputs --into predictions
      sqlnet predict --table customers --id customer_id --features age,income --into scores
    """
    p = api.predict(database_url, schema=schema, **kwargs)
    out.print(f"wrote {p.rows} rows into {p.created} ({p.network.describe()}; functions from {p.source})")


@main.command()
@database_option
@schema_option
@click.option("--view", metavar="NAME", help="Create a view of the predictions for --table.")
@click.option("--function", metavar="NAME", help="Create a SQL function: double precision[] in, outputs out.")
@click.option("--table", metavar="T", help="The samples the view predicts.")
@prediction_options
@handle_errors
def export(database_url: str | None, schema: str | None, **kwargs: Any) -> None:
    """Write the trained network into a plain SQL view or function, weights as constants.

    The result needs neither sqlnet nor the weights tables: any client can query it.

    \b
    Examples:
      sqlnet export --view predictions --table new_inputs
      sqlnet export --function net_predict      then: SELECT net_predict(ARRAY[0.1, 0.7])
    """
    p = api.export(database_url, schema=schema, **kwargs)
    out.print(f"created {p.created} ({p.network.describe()}; functions from {p.source})")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@database_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def psql(database_url: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql (the one shipped with the embedded server) on the database sqlnet uses.

    Arguments after the command go to psql.

    \b
    Examples:
      sqlnet psql
      sqlnet psql -c '\\dt sqlnet_trace.*'
      sqlnet psql -c 'SELECT * FROM sqlnet_trace.phase1_hidden_input'
    """
    db = Database(database_url)
    binary = str(psql_binary())
    sys.stdout.flush()
    os.execv(binary, [binary, db.url, *psql_args])


@main.command()
@database_option
@handle_errors
def demo(database_url: str | None) -> None:
    """Train the blog post's 3-2-3 network one step in PostgreSQL and compare with the reference.

    Creates the post's tables in schema sqlnet_demo (replacing them), trains one traced epoch
    at learning rate 0.1, and prints the forward values, the loss and the updated weights beside
    the pure-Python reference's.

    \b
    Examples:
      sqlnet demo
    """
    d = api.demo(database_url)
    net = d.train.network
    out.print(f"[bold]sqlnet demo[/] — the blog post's network in PostgreSQL ({redact(d.url)})")
    out.print(f"tables inputs, weights1, weights2, outputs in schema {d.schema}; {net.describe()}")
    by_name = {t.phase.name: t for t in d.trace}
    fwd = Table(title="forward pass (epoch 1)", title_justify="left")
    for name in ("phase", "node", "SQL", "reference"):
        fwd.add_column(name, justify="right" if name != "phase" else "left")
    for phase_name, k, quantity in (
        ("hidden_input", 1, "input"),
        ("hidden_activation", 1, "activation"),
        ("output_input", 2, "input"),
        ("output", 2, "activation"),
    ):
        ref = d.reference_forward.z[k] if quantity == "input" else d.reference_forward.a[k]
        for row in by_name[phase_name].rows:
            fields = dict(zip(TRACE_FIELDS, row))
            if fields["quantity"] == quantity and fields["layer"] == k:
                node = fields["node"]
                fwd.add_row(phase_name, str(node), _fmt(fields["value"]), _fmt(ref[node - 1]))
    out.print(fwd)
    out.print(f"loss (phase error): SQL {_fmt(d.train.losses[0])}, reference {_fmt(d.reference_loss)}")
    out.print(
        params_table(
            net, d.train.params, "weights and biases after one step (learning rate 0.1)", d.reference_params
        )
    )
    worst = max(x.max_rel for x in d.differences)
    out.print(
        f"largest difference SQL vs reference: {worst:.3g} "
        + ("(agree)" if worst <= 1e-9 else "[red](DISAGREE)[/]")
    )
    out.print(
        f"\nrun {d.train.run_id} is recorded: `sqlnet runs`. Every phase is a table in schema sqlnet_trace:\n"
        f"  sqlnet phases                      print them all\n"
        f"  sqlnet psql                        then \\dt sqlnet_trace.*\n"
        f"  sqlnet psql -c 'SELECT * FROM sqlnet_trace.phase6_hidden_delta WHERE run_id = {d.train.run_id}'\n"
        f"  sqlnet sql --schema {d.schema}      the training statement itself"
    )
    if worst > 1e-9:
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
