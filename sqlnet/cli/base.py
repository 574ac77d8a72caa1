"""What every command shares: the consoles, the option groups, error handling (exit codes), tables of
weights, and the `sqlnet` group itself.

Exit codes: 0 success; 1 a clear error (bad tables or options, database refused, check failed);
2 a usage error; 130 interrupted by Ctrl-C (the transaction was rolled back).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import sqlnet as api
from sqlnet.compile.names import LAYOUT_NAMES
from sqlnet.errors import SqlnetError, Unsupported
from sqlnet.model.functions import ACTIVATIONS, LOSSES
from sqlnet.model.network import BIAS_LAYOUTS, Network, Params
from sqlnet.model.optimizers import OPTIMIZERS

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


ENGINES = ("postgresql", "spark")


def _spark_conf(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    conf = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        conf[key.strip()] = setting.strip()
    return conf


# Spark's options, by the name open_engine takes them under (--spark-conf arrives as a dict)
SPARK_OPTIONS = {"parquet": "parquet", "spark_database": "database", "spark_master": "master", "spark_conf": "conf"}


def engine_options(f: F) -> F:
    """Where the network lives: PostgreSQL (the default) or Apache Spark (Parquet tables or a catalog
    database). The command receives `engine`, the engine over that place (sqlnet.engines), in place of the
    options that name it (--database-url and --schema too); one engine's options with the other are refused."""

    @functools.wraps(f)
    def wrapper(*args: Any, engine: str, **kwargs: Any) -> Any:
        from sqlnet.engines import open_engine

        place = {key: kwargs.pop(name) for name, key in SPARK_OPTIONS.items()}
        try:
            opened = open_engine(engine, database_url=kwargs.pop("database_url", None),
                                 schema=kwargs.pop("schema", None), **place)  # fmt: skip
        except Unsupported as exc:
            raise click.UsageError(str(exc)) from None
        return f(*args, engine=opened, **kwargs)

    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="postgresql",
            show_default=True,
            help="spark: the tables are Parquet folders under --parquet DIR, trained with Spark SQL.",
        ),
        click.option("--parquet", metavar="DIR", help="With --engine spark: the folder of the network's tables."),
        click.option(
            "--spark-database",
            metavar="NAME",
            help="With --engine spark: the network's tables are this database's, in Spark's catalog.",
        ),
        click.option(
            "--spark-master", metavar="URL", help="With --engine spark: the Spark master (default: local[*])."
        ),
        click.option(
            "--spark-conf",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_spark_conf,
            help="With --engine spark: a Spark setting (repeatable), e.g. spark.driver.memory=4g.",
        ),
    ]
    command: Any = wrapper
    for option in reversed(options):
        command = option(command)
    return command  # type: ignore[no-any-return]


def schema_option(f: F) -> F:
    return click.option(
        "--schema",
        metavar="NAME",
        envvar="SQLNET_SCHEMA",
        help="Schema of the network's tables (default: $SQLNET_SCHEMA, else the current schema).",
    )(f)


def network_options(f: F) -> F:
    """The functions of the network: shared by train, sql, check and gradcheck."""
    options = [
        click.option(
            "--hidden-activation",
            type=click.Choice([a for a in ACTIVATIONS if ACTIVATIONS[a].elementwise]),
            help="Default: the network's own (`sqlnet network`), else relu.",
        ),
        click.option(
            "--output-activation",
            type=click.Choice(list(ACTIVATIONS)),
            help="Default: the network's own, else linear.",
        ),
        click.option(
            "--loss", type=click.Choice(list(LOSSES)), help="Default: the network's own, else half-se."
        ),
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
            "--l2",
            type=float,
            default=0.0,
            show_default=True,
            help="L2 penalty l2/2 * w^2 added to the loss (weights, not biases): joins the gradient, so Adam "
            "scales it too.",
        ),
        click.option(
            "--weight-decay",
            type=float,
            default=0.0,
            show_default=True,
            help="Decoupled weight decay w -= lr * D * w after each step (weights only); with --optimizer adam "
            "this is AdamW.",
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
            help="Hold out this share of the samples (by md5 of --seed and sampleId) and score it after every "
            "epoch. Default: the network's own split (stored by load or the training that chose it), else none; "
            "0 trains on every sample.",
        ),
        click.option(
            "--seed",
            type=int,
            help="Which samples --validation-fraction holds out (default: the network's, else 0).",
        ),
        click.option(
            "--updates-per-statement",
            type=int,
            help="Updates run by one SQL statement (default: 500 wide, 100 long); longer trainings run several, "
            "in the same transaction.",
        ),
        click.option(
            "--layout",
            type=click.Choice(["auto", *LAYOUT_NAMES]),
            default="auto",
            show_default=True,
            help="How the SQL holds the values: wide (one row per sample, fast) or long (one row per value; "
            "needed by --trace, --numeric exact and very wide layers). auto chooses.",
        ),
        click.option(
            "--kernels",
            type=click.Choice(["auto", "native", "sql"]),
            default="auto",
            show_default=True,
            help="Who computes each phase: native (sqlnet's C kernels, `sqlnet kernels install`), sql, or auto "
            "(native where the database has them and they cover the training). The choice is printed.",
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
        except Unsupported as exc:  # an option the engine cannot honour: a usage error (exit 2)
            raise click.UsageError(str(exc)) from None
        except SqlnetError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            sys.exit(EXIT_ERROR)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            if str(exc):  # a checkpointed training says where its tables are
                err.print(f"[yellow]interrupted:[/] {escape(str(exc))}")
                sys.exit(EXIT_INTERRUPTED)
            err.print(
                "[yellow]interrupted:[/] the statement was cancelled and the transaction rolled back; "
                "every table is as it was before."
            )
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            database_error(exc)  # the database's own errors: a message and exit 1
            if isinstance(exc, OSError):  # a file that cannot be read, a full disk
                err.print(f"[bold red]error:[/] {escape(str(exc))}; the transaction was rolled back and no table changed")
                sys.exit(EXIT_ERROR)
            # what nothing above foresaw: a message and exit 1, never a traceback
            err.print(
                f"[bold red]error:[/] sqlnet failed unexpectedly ({type(exc).__name__}: {escape(str(exc))}); "
                f"the transaction was rolled back and no table changed. Please report this"
            )
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def database_error(exc: Exception) -> None:
    """What the database refused that sqlnet did not foresee: say what, roll back (done), exit 1.

    psycopg is looked up only here, where one of its errors already loaded it: the command line does
    not import it to start."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        from sqlnet.db.connection import refused_text

        detail = refused_text(exc)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            detail += " (`sqlnet grants ROLE` prints the grants a training needs; run them as the owner)"
        err.print(f"[bold red]database error:[/] {escape(detail)}; the transaction was rolled back and no table changed")
        sys.exit(EXIT_ERROR)


def _hyper(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The command's options that are TrainOptions."""
    return {f.name: kwargs[f.name] for f in dataclasses.fields(api.TrainOptions)}


def _fmt(v: float) -> str:
    return f"{v:.10g}"


def params_table(net: Network, params: Params, title: str, other: Params | None = None) -> Table:
    """Weights and biases as the post's tables show them; with `other`, a reference column beside."""
    table = Table(title=title, title_justify="left")
    for name in ("layer", "in", "out", "weight", "bias"):
        table.add_column(name, justify="right", overflow="fold")
    if other is not None:
        table.add_column("reference weight", justify="right", overflow="fold")
        table.add_column("reference bias", justify="right", overflow="fold")

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


def print_comparison(
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple[str, str, str, str, bool]],
    ok: bool,
    tolerance: float,
) -> None:
    """check and gradcheck: one row per table column compared, then the verdict."""
    # 80 columns: the table.column names may fold (never be cut), the numbers never do
    table.add_column("table.column", justify="left", overflow="fold")
    for name in (*columns, "ok"):
        table.add_column(name, justify="right", no_wrap=True)
    for name, *values, within in rows:
        table.add_row(escape(name), *values, "yes" if within else "[red]NO[/]")
    out.print(table)
    out.print("agree" if ok else f"[red]DISAGREE[/] beyond tolerance {tolerance}")


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


def human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # not reached
