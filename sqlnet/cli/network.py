"""Commands about the network and its history: `init`, `gradcheck`, `runs` (and `runs show`), `grants`,
`restore`, `phases`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

import sqlnet as api
from sqlnet.cli.base import (
    EXIT_ERROR,
    TRACE_FIELDS,
    _fmt,
    database_option,
    engine_options,
    handle_errors,
    human_bytes,
    main,
    network_options,
    out,
    print_comparison,
    schema_option,
)
from sqlnet.cli.plot import text_plot
from sqlnet.engines import Engine, open_engine
from sqlnet.errors import SqlnetError
from sqlnet.model.initialize import INITS
from sqlnet.model.network import BIAS_LAYOUTS
from sqlnet.ops.defaults import EXAMPLES


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
@engine_options
@click.option(
    "--example", type=click.Choice(list(EXAMPLES)), help="Fill the post's tables with its values."
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
    engine: Engine,
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
      sqlnet init --engine spark --parquet ./net --example post    (Parquet folders, for Apache Spark)
    """
    tables = engine.init(example=example, layers=tuple(layers) if layers else None, seed=seed, init=scheme,
                         bias=bias, replace=replace)  # fmt: skip
    detail = f" with the {example} example's values" if example else ""
    if layers:
        detail = f": a {'-'.join(map(str, layers))} network, {scheme} initialisation" + (
            f", seed {seed}" if seed is not None else ""
        )
    out.print(f"created {', '.join(tables)} in {engine.where()}{detail}")


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
            table, ("checked", "worst relative", "worst absolute"), rows, report.ok, tolerance
        )
    if not report.ok:
        sys.exit(EXIT_ERROR)


@main.command("network")
@database_option
@schema_option
@click.option("--json", "as_json", is_flag=True, help="Print the definition as JSON.")
@handle_errors
def network_command(database_url: str | None, schema: str | None, as_json: bool) -> None:
    """Show what the network is beyond its weights: its functions, bias, data and last run.

    Training, check, gradcheck, predict and export all use this definition; `train --redefine`
    changes it on purpose, `init --replace` starts it afresh.

    \b
    Examples:
      sqlnet network
      sqlnet network --schema digits --json
    """
    d = api.network(database_url, schema=schema)
    if as_json:
        click.echo(json.dumps(d.as_json(), indent=2))
        return
    table = Table(title=f"network {d.network}", title_justify="left", show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold")
    rows = [
        ("layers", "-".join(map(str, d.sizes)) if d.sizes else "-"),
        ("hidden activation", d.hidden_activation or "not chosen yet (the first training chooses)"),
        ("output activation", d.output_activation or "not chosen yet"),
        ("loss", d.loss or "not chosen yet"),
        ("bias", d.bias or "-"),
        ("optimizer state", d.optimizer or "none"),
        ("features", ", ".join(d.features) if d.features else "-"),
        ("standardised", "yes (mean and std per feature)" if d.scaling else "no"),
        ("targets", ", ".join(d.targets) if d.targets else "-"),
        ("classes", ", ".join(d.classes) if d.classes else "-"),
        ("samples loaded", f"{d.samples} from {d.source}" if d.samples else "-"),
        ("rows as read", f"{d.network}.{d.raw_table}" + (f" (ids in {d.id_column})" if d.id_column else "")
         if d.raw_table else "-"),
        ("validation split", f"fraction {d.validation_fraction:g}, seed {d.validation_seed or 0} (held out of "
         "every training)" if d.validation_fraction else "none: every sample is trained on"),
        ("last changed by", f"run {d.last_run}" if d.last_run else "-"),
    ]
    for what, value in rows:
        table.add_row(what, escape(str(value)))
    out.print(table)


@main.group(invoke_without_command=True)
@database_option
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (every run, unless --last).")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the N latest runs (the table: 20).")
@click.option("--all", "show_all", is_flag=True, help="Every run in the table, however many.")
@click.pass_context
@handle_errors
def runs(ctx: click.Context, engine: Engine, as_json: bool, last: int | None, show_all: bool) -> None:
    """List the recorded training runs; `runs show RUN` shows one with its loss curve.

    \b
    Examples:
      sqlnet runs
      sqlnet runs --all
      sqlnet runs --json
      sqlnet runs show 3
      sqlnet runs --engine spark --parquet ./net
    """
    ctx.obj = {"engine": engine}
    if ctx.invoked_subcommand is not None:
        return
    found, sizes = (engine.runs(), None) if as_json else engine.runs_and_sizes()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in (found[-last:] if last else found)], indent=2))
        return
    if not found:
        out.print("no runs yet: `sqlnet train` records one")
        return
    # a table of hundreds of rows takes rich longer to draw than sqlnet takes to start: the latest first
    shown = found if show_all else found[-(last or 20) :]
    # 80 columns: names may fold, numbers and words never do (`runs show` and --json have the rest)
    table = Table()
    for name in ("run", "started", "status", "network", "epochs", "rate", "final loss"):
        table.add_column(name, overflow="fold" if name == "network" else "ellipsis", no_wrap=name != "network")
    for r in shown:
        table.add_row(
            str(r.run_id),
            r.started_at.strftime("%m-%d %H:%M"),
            r.status + (" +trace" if r.options.get("trace") else ""),
            f"{r.schema_name or '?'} {'-'.join(map(str, r.network.sizes))}",
            str(r.epochs),
            f"{r.learning_rate:g}",
            f"{r.final_loss:.6g}" if r.final_loss is not None else "",
        )
    out.print(table)
    if len(shown) < len(found):
        out.print(f"(and {len(found) - len(shown)} older runs: --all shows every run)")
    if sizes is not None:  # what the records take: the weights before and after of every run grow
        out.print(
            f"records: {human_bytes(sum(sizes.values()))} (the runs' weights: {human_bytes(sizes.get('run_params', 0))}); "
            "`sqlnet runs prune --keep N` removes old ones"
        )


@runs.command("show")
@click.argument("run", type=int)
@database_option
@engine_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.png",
    help="Also draw the loss curve into a PNG (needs matplotlib: pip install 'sqlnet[plot]').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run and its epochs as JSON.")
@click.pass_context
@handle_errors
def runs_show(ctx: click.Context, run: int, engine: Engine, plot: str | None, as_json: bool) -> None:
    """Show a run: its network, its options and its loss per epoch (and validation) as a plot.

    \b
    Examples:
      sqlnet runs show 3
      sqlnet runs show 3 --plot loss.png
      sqlnet runs show 3 --json | jq '.epochs[-1]'
      sqlnet runs show 1 --engine spark --parquet ./net
    """
    given = (ctx.obj or {}).get("engine")
    if given is not None and engine == open_engine():  # the place given to `runs`, unless given here
        engine = given
    info, epochs = engine.run(run)
    if as_json:
        fields = ("epoch", "loss", "val_loss", "val_accuracy")
        click.echo(json.dumps({**info.as_json(), "epochs": [dict(zip(fields, e)) for e in epochs]}, indent=2))
        return
    out.print(
        f"run {info.run_id} ({info.status}): {info.network.describe()}, "
        + (f"schema {info.schema_name or '(search path)'}" if engine.name == "postgresql" else f"in {info.schema_name}")
    )
    out.print(
        f"started {info.started_at:%Y-%m-%d %H:%M:%S}"
        + (f", finished {info.finished_at:%H:%M:%S}" if info.finished_at else "")
    )
    if info.error:
        out.print(f"stopped by: {escape(info.error)}")
    for key, value in sorted(info.options.items()):
        out.print(f"  {key}: {value}")
    curve = [(e, loss) for e, loss, _, _ in epochs]
    out.print(f"loss per epoch (mean over each epoch's samples), {len(curve)} epochs:")
    for line in text_plot(curve):
        out.print(escape(line))
    validation = [(e, vl) for e, _, vl, _ in epochs if vl is not None]
    if validation:
        out.print(f"validation loss per epoch (the held-out samples after each epoch), {len(validation)} epochs:")
        for line in text_plot(validation):
            out.print(escape(line))
        last = epochs[-1]
        out.print(
            f"after epoch {last[0]}: validation loss {_fmt(last[2]) if last[2] is not None else '-'}"
            + (f", accuracy {last[3]:.2%}" if last[3] is not None else "")
        )
    if plot:
        draw_loss(curve, plot, f"run {info.run_id}: {info.network.describe()}", validation)
        out.print(f"wrote {plot}")


def draw_loss(
    curve: list[tuple[int, float]], path: str, title: str, validation: list[tuple[int, float]] | None = None
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SqlnetError("--plot needs matplotlib: pip install 'sqlnet[plot]' (or matplotlib)") from exc
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot([e for e, _ in curve], [v for _, v in curve], color="#1f77b4", label="training")
    if validation:
        ax.plot([e for e, _ in validation], [v for _, v in validation], color="#d62728", label="validation")
        ax.legend()
    values = [v for _, v in curve] + [v for _, v in validation or []]
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
    out.print(
        f"run {info.run_id} ({escape(info.network.describe())}, schema {escape(str(info.schema_name))}), "
        + (f"epoch {epoch}" if epoch else "every epoch")
    )
    for t in traces:
        table = Table(title=escape(f"sqlnet_trace.{t.phase.table} — {t.phase.comment}"), title_justify="left")
        for name in TRACE_FIELDS:
            table.add_column(name, justify="right", overflow="fold")
        for r in t.rows:
            table.add_row(*("" if v is None else _fmt(v) if isinstance(v, float) else str(v) for v in r))
        out.print(table)
