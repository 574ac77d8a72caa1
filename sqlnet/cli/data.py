"""Commands that move data: `load`, `predict`, `export`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

import sqlnet as api
from sqlnet.cli.base import (
    F,
    database_option,
    engine_options,
    err,
    handle_errors,
    main,
    out,
    schema_option,
    spark_only,
)
from sqlnet.model.functions import ACTIVATIONS


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
@engine_options
@click.option("--table", required=True, metavar="T", help="The samples to predict.")
@click.option(
    "--into", required=True, metavar="P", help="The table to create: P(sampleId, outputNode, outputValue)."
)
@prediction_options
@handle_errors
def predict(
    database_url: str | None,
    schema: str | None,
    spark: dict[str, Any] | None,
    **kwargs: Any,
) -> None:
    """Compute the network's outputs in SQL for the samples of a table.

    The weights come from the weights tables, the activations from the network's latest
    finished run (or --hidden-activation/--output-activation).

    \b
    Examples:
      sqlnet predict --table new_inputs --into predictions
      sqlnet predict --table customers --id customer_id --features age,income --into scores
      sqlnet predict --engine spark --parquet ./net --table inputs --into predictions
    """
    spark_only(spark, database_url=database_url, schema=schema, table_schema=kwargs["table_schema"],
               features=kwargs["features"])  # fmt: skip
    if spark is not None:
        from sqlnet.ops import spark as on_spark

        functions = {k: kwargs[k] for k in ("hidden_activation", "output_activation")}
        table, rows = on_spark.predict(**spark, table=kwargs["table"], output=kwargs["into"], **functions)
        where = spark["parquet"] or spark["database"]
        out.print(f"wrote {rows} rows into {table} in {where} (sampleId, outputNode, prediction)")
        return
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
