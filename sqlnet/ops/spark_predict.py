"""Predictions on Spark, by the rules PostgreSQL's predict follows (``sqlnet.ops.predict``): a long table
(sampleId, inputNode, inputValue) or a wide one whose columns are found by the network's feature names; the
standardisation `load` kept applied exactly once (never to the network's own `inputs`, which load
standardised already); the predictions named as `load` named the data (a classifier's label, its probability
and each class's; a regressor's targets by name). The table written is a new version, switched atomically."""

from __future__ import annotations

import dataclasses
from typing import Any

from psycopg import sql

from sqlnet.compile import predict as predict_sql
from sqlnet.compile import spark as spark_sql
from sqlnet.compile.dialect import SPARK
from sqlnet.compile.tables import Table
from sqlnet.db import spark as store
from sqlnet.errors import InputError
from sqlnet.ops.common import TrainOptions
from sqlnet.ops.predict import Prediction
from sqlnet.ops.spark_loop import SparkNetwork, _schema, _target, load, start_row

SOURCE_VIEW = "sqlnet_source"  # the samples' table as a view of sqlnet's own name: no CTE can shadow it
LONG = {"inputnode", "inputvalue"}


def _column(columns: dict[str, tuple[str, str]], name: str, table: str, what: str) -> str:
    found = columns.get(name.lower())
    if found is None:
        raise InputError(f"{table} has no column {name!r} ({what}); it has {', '.join(c for c, _ in columns.values())}")
    return found[0]


def _samples(
    sn: SparkNetwork, table: str, columns: dict[str, tuple[str, str]], features: list[str] | None,
    id_column: str | None, standardized: bool | None, notes: list[str], schema: str | None = None,
) -> tuple[sql.Composable, str, list[tuple[str, str]]]:  # fmt: skip
    """The samples as a SELECT of (sample, x1..xn), standardised as the network needs them; the id
    column's name; the (column, type) pairs that must hold numbers. The SELECT reads the view SOURCE_VIEW,
    or with `schema` (an exported view's, which outlives the session) the table `schema.table` itself."""
    source = Table(schema, table if schema else SOURCE_VIEW, {})
    d = sn.definition
    scaling = d.scaling if d else None
    n = sn.net.sizes[0]
    if features is None and set(columns) >= LONG:
        if table == "inputs":
            if standardized is False and scaling:
                raise InputError("inputs holds the network's own samples, which `sqlnet load --standardize` "
                                 "standardised: they are not raw values (leave out --raw)")  # fmt: skip
            if scaling:
                notes.append("inputs holds the network's own samples, already standardised by load: used as they "
                             "are, not standardised again")  # fmt: skip
            scaling = None
        elif scaling and standardized is None:
            raise InputError(
                f"{table} is in the long layout (sampleId, inputNode, inputValue) like the network's inputs, which "
                f"load standardised: say whether its values are raw (--raw: sqlnet standardises them as load did) or "
                f"already standardised (--standardized)"
            )
        elif standardized:
            scaling = None
        roles = {"node": columns["inputnode"][0], "value": columns["inputvalue"][0]}
        if "sampleid" in columns:
            roles["sample"] = columns["sampleid"][0]
        long = Table(source.schema, source.name, roles)
        numbers = [(c, columns[c.lower()][1]) for c in roles.values()]
        return predict_sql.standardized(spark_sql.long_samples(sn.training, long), scaling), "sampleid", numbers
    names = features if features is not None else (d.features if d else None)
    if not names:
        raise InputError(f"network in {sn.tables.where} keeps no feature names (`sqlnet load` did not fill it): "
                         f"name the {n} feature columns of {table} with --features, in input-node order")  # fmt: skip
    if len(names) != n:
        raise InputError(f"{len(names)} features ({', '.join(names)}), but the network has {n} input nodes: name "
                         f"them with --features")  # fmt: skip
    picked = [_column(columns, f, table, "a feature of the network; --features maps other names") for f in names]
    stored_id = d.id_column if d else None
    if id_column is not None:
        id_name = _column(columns, id_column, table, "--id")
    elif stored_id and stored_id.lower() in columns:
        id_name = columns[stored_id.lower()][0]
    elif "sampleid" in columns:
        id_name = columns["sampleid"][0]
    else:
        raise InputError(f"{table} has no sampleid column to name its rows: name one with --id")
    if standardized:
        scaling = None
    select = predict_sql.wide_samples(source.ident, sql.Identifier(id_name), picked, SPARK)
    return predict_sql.standardized(select, scaling), id_name, [(c, columns[c.lower()][1]) for c in picked]


def _check(spark: Any, table: str, id_name: str, numbers: list[tuple[str, str]], long: bool) -> None:
    """Every value a number and not NULL; a wide table's ids each once."""
    wrong = next(((c, t) for c, t in numbers if t not in store.NUMBER_TYPES), None)
    if wrong:
        raise InputError(f"{table}.{wrong[0]} is {wrong[1]}, not a number: write it as double")
    frame = spark.table(SOURCE_VIEW)
    for column, _ in numbers:
        bad = frame.where(frame[column].isNull()).limit(1).collect()
        if bad:
            raise InputError(f"{table}.{column} is NULL in a row ({bad[0].asDict()}): every value is needed")
    if not long:
        dup = frame.groupBy(id_name).count().where("count > 1 OR `" + id_name.replace("`", "``") + "` IS NULL")
        row = dup.limit(1).collect()
        if row:
            raise InputError(f"{table}.{id_name} = {row[0][0]} in {row[0][1]} rows: each sample's id must be unique "
                             f"(--id names the column)")  # fmt: skip


def _refuse_names(sn: SparkNetwork, table: str, made: str, option: str) -> None:
    """The samples' table must be there; the name of what is made (`option`: --into, --view) must not be one
    of the network's own tables or the samples'."""
    where = sn.tables.where
    store.refuse_own_name(made, option, where, also=(table,))
    if not table or "/" in table or table.startswith(".") or not sn.tables.exists(table):
        raise InputError(f"table {table!r} not found in {where}: name the samples with --table")


def _refuse_into(sn: SparkNetwork, table: str, into: str, replace: bool) -> None:
    _refuse_names(sn, table, into, "--into")
    if sn.tables.exists(into) and not replace:
        raise InputError(
            f"{into} already exists in {sn.tables.where}: add --replace to write a new version of it (the old one "
            f"is kept in {store.VERSIONS}), or name another table with --into"
        )


def _prepared(
    sn: SparkNetwork, table: str, features: list[str] | None, id_column: str | None, standardized: bool | None,
    schema: str | None = None,
) -> tuple[sql.Composable, predict_sql.Outputs, list[str]]:  # fmt: skip
    """The samples of `table` as the network needs them (checked), how the predictions are named, and what
    sqlnet decided, said aloud."""
    source = sn.tables.read(sn.spark, table)
    source.createOrReplaceTempView(SOURCE_VIEW)
    columns = {f.name.lower(): (f.name, f.dataType.typeName()) for f in source.schema.fields}
    notes: list[str] = []
    samples, id_name, numbers = _samples(sn, table, columns, features, id_column, standardized, notes, schema)
    _check(sn.spark, table, id_name, numbers, long=id_name == "sampleid" and set(columns) >= LONG and features is None)
    d = sn.definition
    outputs = predict_sql.outputs_of(sn.net, id_name, d.classes if d else None, d.targets if d else None)
    if outputs.note:
        notes.append(outputs.note)
    return samples, outputs, notes


def _source(sn: SparkNetwork) -> str:
    last = sn.definition.last_run if sn.definition else None
    return f"run {last}" if last else "no training yet: the weights as the tables hold them"


def predict(
    parquet: str | None = None,
    *,
    table: str = "inputs",
    into: str = "predictions",
    replace: bool = False,
    features: list[str] | None = None,
    id_column: str | None = None,
    standardized: bool | None = None,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    database: str | None = None,
    **options: Any,
) -> Prediction:
    """Run the network forward over the samples of `table` and write each sample's predictions to the table
    `into`, a new version switched atomically. A table `into` that exists is refused unless `replace` (its
    old version is kept in the folder's .sqlnet, as every replaced one)."""
    sn = load(_target(parquet, master, conf, database), TrainOptions(**options))
    spark, tables = sn.spark, sn.tables
    tr = dataclasses.replace(sn.training, validation=None)  # every sample is predicted, held out or not
    _refuse_into(sn, table, into, replace)
    samples, outputs, notes = _prepared(sn, table, features, id_column, standardized)
    spark.createDataFrame([tuple(start_row(tr, sn.params)[c] for c in spark_sql.state_columns(tr))], _schema(tr)) \
        .createOrReplaceTempView(SPARK.render(spark_sql.PREV_VIEW))  # fmt: skip
    frame = spark.sql(SPARK.render(spark_sql.predict_statement(tr, samples, outputs)))
    tables.write_frame(into, frame.coalesce(1))
    count = tables.read(spark, into).count()
    return Prediction(network=sn.net, source=_source(sn), rows=int(count), created=into, columns=outputs.columns,
                      notes=notes, schema=tables.where)  # fmt: skip


MADE_BY = "sqlnet.exported"  # a view property: the views sqlnet exported, the only ones --replace replaces


def export_view(
    *,
    database: str | None,
    parquet: str | None = None,
    view: str,
    table: str,
    replace: bool = False,
    features: list[str] | None = None,
    id_column: str | None = None,
    standardized: bool | None = None,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    **options: Any,
) -> Prediction:
    """A view in the catalog database beside the network's tables: the predictions for `table` with the
    trained weights written in as constants (it needs neither sqlnet nor the weights tables, and outlives the
    session as the catalog does). Parquet folders have no catalog to keep a view in: refused, saying so."""
    if database is None:
        raise InputError(
            "export --view on Spark needs the network in a catalog database (--spark-database NAME): a folder of "
            "Parquet tables has no catalog to keep a view in"
        )
    sn = load(_target(parquet, master, conf, database), TrainOptions(**options))
    tables = sn.tables
    assert isinstance(tables, store.CatalogTables)
    tr = dataclasses.replace(sn.training, validation=None)
    _refuse_names(sn, table, view, "--view")
    if tables.exists(view):
        made = sn.spark.sql(f"SHOW TBLPROPERTIES {tables.qualified(view)}").collect()
        ours = any(r["key"] == MADE_BY for r in made)
        if not replace or not ours:
            raise InputError(
                f"{view} already exists in {tables.where}"
                + (": add --replace to replace the view sqlnet exported" if ours
                   else ": sqlnet did not export it, so it is never replaced; name another with --view")
            )  # fmt: skip
    samples, outputs, notes = _prepared(sn, table, features, id_column, standardized, schema=tables.database)
    statement = predict_sql.predictions(tr, samples, outputs, constants=sn.params)
    sn.spark.sql(
        f"CREATE OR REPLACE VIEW {tables.qualified(view)} TBLPROPERTIES ('{MADE_BY}' = 'true') AS\n"
        + SPARK.render(statement)
    )
    return Prediction(network=sn.net, source=_source(sn), rows=0, created=tables.qualified(view),
                      columns=outputs.columns, notes=notes, schema=tables.where)  # fmt: skip
