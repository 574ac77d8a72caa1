"""Commands that move data: `load`, `predict`, `export`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from rich.markup import escape

from sqlnet.cli.base import (
    F,
    database_option,
    engine_options,
    err,
    handle_errors,
    main,
    out,
    schema_option,
)
from sqlnet.engines import Engine
from sqlnet.model.functions import ACTIVATIONS


def _features(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return [f.strip() for f in value.split(",")] if value else None


@main.command()
@database_option
@schema_option
@engine_options
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
    help="Feature columns (default: all but the targets and --id).",
)
@click.option("--id", "id_column", metavar="COL", help="A column that names each row: kept beside the samples.")
@click.option(
    "--classes", is_flag=True, help="The target is a label: one-hot outputs, class names remembered."
)
@click.option(
    "--standardize", is_flag=True, help="Scale each feature to mean 0, std 1 (predict does it again)."
)
@click.option(
    "--validation-fraction",
    type=float,
    help="Hold out this share of the samples from every training (by md5 of --seed and sampleId); stored with "
    "the network.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which samples --validation-fraction holds out.")
@click.option(
    "--raw-table",
    default="raw",
    show_default=True,
    metavar="NAME",
    help="Where the rows are kept as read, beside inputs and outputs.",
)
@click.option("--replace", is_flag=True, help="Replace the samples sqlnet loaded into this network before.")
@click.option(
    "--delimiter", default=",", show_default=True, metavar="CHAR", help="What separates a CSV file's fields ('\\t': a tab)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was loaded as one JSON document.")
@handle_errors
def load(engine: Engine, file: str | None, as_json: bool, **kwargs: Any) -> None:
    """Fill inputs and outputs (with sampleId) from a CSV file or a table, one row per example.

    Input node k is the k-th feature. The rows are also kept as read in a table of their own (raw),
    which `sqlnet predict --table raw` reads by the feature names. Samples loaded before are replaced
    with --replace; tables that sqlnet did not make are never replaced.

    \b
    Examples:
      sqlnet load wine.csv --schema wine --target class --classes --standardize --validation-fraction 0.2
      sqlnet load --from-table houses --target price --features rooms,area --id house_id
      sqlnet load prices.csv --delimiter ';' --target price
    """
    kwargs["targets"] = list(kwargs["targets"])
    if kwargs["delimiter"] == "\\t":  # as shells pass it
        kwargs["delimiter"] = "\t"
    if sys.stderr.isatty() and not as_json:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True
        ) as progress:
            task = progress.add_task("loading", total=None)

            def on_rows(n: int) -> None:
                progress.update(task, description=f"loading: {n} rows copied")

            loaded = engine.load(file=file, on_rows=on_rows, **kwargs)
    else:
        loaded = engine.load(file=file, **kwargs)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(loaded), indent=2))
        return
    for line in load_report(loaded, "/" if getattr(engine, "parquet", None) else "."):
        out.print(escape(line))


def load_report(loaded: Any, sep: str = ".") -> list[str]:
    """What load did, in the words a user checks it by (`sep` joins where the tables are and a table's name:
    a schema's ".", a Parquet folder's "/")."""
    lines = []
    if loaded.replaced:
        lines.append(f"replaced the {loaded.replaced} samples that were in {loaded.schema}{sep}inputs/outputs")
    kind = f"{len(loaded.classes)} classes ({', '.join(loaded.classes)})" if loaded.classes else (
        f"target{'s' if len(loaded.targets) > 1 else ''} {', '.join(loaded.targets)}"
    )  # fmt: skip
    lines.append(
        f"loaded {loaded.samples} samples into {loaded.schema}{sep}inputs/outputs: {len(loaded.features)} features, {kind}"
    )
    lines.append(
        f"features ({'standardised' if loaded.standardized else 'as they are'}): {', '.join(loaded.features)}"
    )
    fraction, seed = loaded.validation
    if loaded.held_out:
        lines.append(
            f"validation: {loaded.held_out} of {loaded.samples} samples held out of training (fraction {fraction:g}, "
            f"seed {seed}), kept by every training unless --validation-fraction says otherwise"
        )
    else:
        lines.append("validation: none (every sample is trained on; --validation-fraction holds some out)")
    ids = f", ids from {loaded.id_column}" if loaded.id_column else ""
    lines.append(f"the rows as read: {loaded.schema}{sep}{loaded.raw_table} (sampleid{ids}); predict reads it by name")
    return lines


def prediction_options(f: F) -> F:
    options = [
        click.option(
            "--table-schema", metavar="NAME", help="Schema of --table (default: the network's, --schema)."
        ),
        click.option(
            "--into-schema", metavar="NAME", help="Schema of what is created (default: the network's, --schema)."
        ),
        click.option(
            "--id",
            "id_column",
            metavar="COL",
            help="Id column of a wide --table or --csv (default: the id load kept, else sampleid, else id, else the "
            "row number).",
        ),
        click.option(
            "--features",
            callback=_features,
            metavar="A,B,...",
            help="The feature columns, in input-node order, where they are not named as the network's "
            "(`sqlnet network` lists them).",
        ),
        click.option(
            "--raw/--standardized",
            "raw",
            default=None,
            help="Whether the values are raw (sqlnet standardises them as load did: the default for a wide "
            "table or a CSV) or already standardised (the network's own inputs are).",
        ),
        click.option("--replace", is_flag=True, help="Replace what sqlnet made for this network under that name."),
        click.option(
            "--hidden-activation",
            type=click.Choice([a for a in ACTIVATIONS if ACTIVATIONS[a].elementwise]),
            help="Default: the network's own.",
        ),
        click.option(
            "--output-activation",
            type=click.Choice(list(ACTIVATIONS)),
            help="Default: the network's own.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def prediction_json(p: Any) -> dict[str, Any]:
    return {
        "network": p.schema,
        "created": p.created,
        "rows": p.rows,
        "columns": p.columns,
        "weights_of": p.source,
        "functions": {"hidden_activation": p.network.hidden_activation,
                      "output_activation": p.network.output_activation, "loss": p.network.loss},
        "notes": p.notes,
        "score": getattr(p, "score", None),
    }  # fmt: skip


def _reported(p: Any, as_json: bool, what: str) -> bool:
    """Print what predict or export made: one JSON document (True: nothing more to say), or its notes and a
    line naming it, the network and the weights."""
    if as_json:
        click.echo(json.dumps(prediction_json(p), indent=2))
        return True
    for note in p.notes:
        err.print(f"[cyan]note:[/] {escape(note)}")
    out.print(escape(f"{what}: network {p.schema!r}, {p.network.describe()}, weights of {p.source}"))
    return False


def _standardized(kwargs: dict[str, Any]) -> dict[str, Any]:
    raw = kwargs.pop("raw")
    return {**kwargs, "standardized": None if raw is None else not raw}


@main.command()
@database_option
@schema_option
@engine_options
@click.option("--table", metavar="T", help="The samples to predict: a table (or view).")
@click.option("--csv", metavar="FILE", help="The samples to predict: a CSV file with a header ('-': standard input).")
@click.option(
    "--into", required=True, metavar="P", help="The table to create: one row per sample, its id and its predictions."
)
@prediction_options
@click.option("--json", "as_json", is_flag=True, help="Print what was written as one JSON document.")
@handle_errors
def predict(engine: Engine, as_json: bool, **kwargs: Any) -> None:
    """Compute the network's predictions in SQL for the rows of a table or a CSV file.

    The rows' feature columns are found by the network's own feature names and standardised as
    load did (never twice: the network's own inputs are used as they are). A classifier's
    predictions are its label, the label's probability and each class's; a regressor's, its
    targets by name. The weights come from the weights tables, the functions from the network.

    \b
    Examples:
      sqlnet predict --schema wine --table raw --into predictions
      sqlnet predict --schema wine --csv new_wines.csv --id name --into scored
      cat new.csv | sqlnet predict --schema wine --csv - --into scored --replace
      sqlnet predict --table customers --features age,income --id customer_id --into scores
      sqlnet predict --engine spark --parquet ./net --table inputs --into predictions
    """
    p = engine.predict(**_standardized(kwargs))
    if _reported(p, as_json, f"wrote {p.rows} rows into {p.created} ({', '.join(p.columns)})"):
        return
    if p.score and "accuracy" in p.score:
        out.print(escape(f"accuracy against {p.score['against']}: {p.score['accuracy']:.2%} of {p.score['rows']} rows"))
    elif p.score:
        rmse = ", ".join(f"{t} {v:.6g}" for t, v in p.score["rmse"].items())
        out.print(escape(f"root mean squared error against {p.score['against']} ({p.score['rows']} rows): {rmse}"))


@main.command()
@database_option
@schema_option
@engine_options
@click.option("--view", metavar="NAME", help="Create a view of the predictions for --table.")
@click.option(
    "--function",
    metavar="NAME",
    help="Create SQL functions of a double precision[] of raw features: a classifier's label (and NAME_probabilities), "
    "a regressor's target.",
)
@click.option("--table", metavar="T", help="The samples the view predicts.")
@prediction_options
@click.option("--json", "as_json", is_flag=True, help="Print what was created as one JSON document.")
@handle_errors
def export(engine: Engine, as_json: bool, **kwargs: Any) -> None:
    """Write the trained network into a plain SQL view or function, weights as constants.

    The result needs neither sqlnet nor the weights tables: any client can query it. It goes
    into the network's schema (or --into-schema); --replace replaces only what sqlnet exported.

    \b
    Examples:
      sqlnet export --schema wine --view wine_predictions --table raw
      sqlnet export --schema wine --function wine_class
          then: SELECT wine.wine_class(ARRAY[13.2, 1.8, ...]), wine.wine_class_probabilities(ARRAY[...])
      sqlnet export --engine spark --spark-database shop --view scored --table raw
    """
    p = engine.export(**_standardized(kwargs))
    _reported(p, as_json, f"created {p.created}" + (f" ({', '.join(p.columns)})" if p.columns else ""))
