"""Predictions out: `predict` (a table or a CSV file to a table of labelled predictions) and `export` (a view
or SQL function with the trained weights as constants).

Both go by the network's own record (`sqlnet network`): a wide table's columns are found by the stored
feature names, the stored standardisation is applied exactly once (never to the network's own `inputs`,
which `load` standardised already), and the predictions are named as `load` named the data: a classifier's
label, its probability and each class's; a regressor's targets by name, in their own units.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from psycopg import sql

from sqlnet.compile import predict as predict_sql
from sqlnet.compile.predict import Outputs
from sqlnet.compile.training import Training
from sqlnet.db import loading as loader
from sqlnet.db import marks, store, trust
from sqlnet.db.checks import check_and_size, check_sample_rows, check_values, check_wide_samples, not_a_number
from sqlnet.db.connection import Session
from sqlnet.db.networks import Definition, read_definition
from sqlnet.db.tables import (
    NUMBER_TYPES,
    Table,
    TableMap,
    check_names,
    discover,
    read_params,
    relations,
    require_schema,
)
from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params
from sqlnet.ops import frames
from sqlnet.ops.common import DatabaseLike, TrainOptions, connect

LONG_COLUMNS = {"inputnode", "inputvalue"}  # and sampleid, unless the table holds one sample (the post's)


@dataclass
class Prediction:
    network: Network
    source: str  # where the weights and functions came from: "run N" or "no training yet: ..."
    rows: int  # rows written (predict) or 0 (export)
    created: str  # the table, view or function(s) made, with its schema
    columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what sqlnet decided for the user, said aloud
    schema: str = ""  # the network's
    # against the targets the source table holds (by the stored target names): a classifier's accuracy, a
    # regressor's root mean squared error per target; with the rows compared and where the truth came from
    score: dict[str, Any] | None = None


@dataclass(frozen=True)
class Trained:
    """The network a prediction uses: its tables, functions, record and where the weights came from."""

    home: str
    tables: TableMap
    net: Network
    source: str
    data: dict[str, Any]  # what `load` kept: features, classes, targets, means/stds, id_column, raw_table

    @property
    def scaling(self) -> tuple[list[float], list[float]] | None:
        return (self.data["means"], self.data["stds"]) if self.data.get("means") else None

    def training(self) -> Training:
        """The network as a training of none of its samples: what the forward phases need."""
        return Training(net=self.net, tables=self.tables, learning_rate=0.0)

    def outputs(self, id_name: str) -> Outputs:
        return predict_sql.outputs_of(self.net, id_name, self.data.get("classes"), self.data.get("targets"))


def _trained_network(
    s: Session, schema: str | None, hidden_activation: str | None, output_activation: str | None
) -> Trained:
    """The network in the tables with the functions of its stored definition (an option that contradicts
    it is refused), where they came from, and what `load` did to its data (standardisation, classes)."""
    home = s.schema(schema)
    trust.check_sqlnet_schemas(s.pg, home)
    definition = read_definition(s, home)
    tables = discover(s, schema, definition.bias if definition else None)
    trust.guard(s.pg, tables, write=False)
    sizes = check_and_size(s.pg, tables)
    if definition is None or definition.hidden_activation is None:
        # no training recorded the network's functions here (or an older sqlnet trained it): its runs say
        latest = next(
            (
                r
                for r in reversed(store.list_runs(s))
                if r.status == "finished"
                and (r.schema_name or home) == tables.resolved_schema
                and r.network.sizes == sizes
            ),
            None,
        )
        if latest is not None:
            n = latest.network
            definition = Definition(home, sizes, n.hidden_activation, n.output_activation, n.loss, n.bias, last_run=latest.run_id)
    opts = TrainOptions(hidden_activation=hidden_activation, output_activation=output_activation).resolved(definition)
    assert opts.hidden_activation and opts.output_activation and opts.loss
    net = Network(sizes, opts.hidden_activation, opts.output_activation, opts.loss, tables.bias)
    source = f"run {definition.last_run}" if definition and definition.last_run else "no training yet: default functions"
    return Trained(tables.resolved_schema, tables, net, source, loader.dataset(s, tables.resolved_schema) or {})


@dataclass
class Samples:
    """The rows to predict as SELECT sample, x1..xn (standardised as the network needs them)."""

    select: sql.Composable
    id_name: str  # what the id column of the predictions is called
    label: str  # how messages name where they came from
    notes: list[str]
    # the source table and its numeric (or, for a label, any) columns by name: where a prediction's truth is
    truth: tuple[sql.Identifier, dict[str, str]] | None = None


def _column(columns: dict[str, str], name: str) -> str | None:
    """A table's column by name: exactly, else the one that differs only in case."""
    if name in columns.values():
        return name
    folded = [c for c in columns.values() if c.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _feature_names(trained: Trained, features: list[str] | None, where: str) -> list[str]:
    """The columns that hold the input nodes' values, in input-node order."""
    n = trained.net.sizes[0]
    if features is not None:
        if len(features) != n:
            raise InputError(
                f"{len(features)} features given with --features, but network {trained.home!r} has {n} input nodes"
                + (f" ({', '.join(trained.data['features'])})" if trained.data.get("features") else "")
            )
        return features
    stored = trained.data.get("features")
    if not stored:
        raise InputError(
            f"network {trained.home!r} keeps no feature names (`sqlnet load` did not fill it): name the {n} feature "
            f"columns of {where} with --features, in input-node order"
        )
    if len(stored) != n:
        raise InputError(
            f"network {trained.home!r} keeps {len(stored)} feature names but has {n} input nodes: name the columns "
            f"with --features"
        )
    return list(stored)


def _table_samples(
    s: Session,
    trained: Trained,
    table: str,
    table_schema: str | None,
    id_column: str | None,
    features: list[str] | None,
    standardized: bool | None,
) -> Samples:
    """The samples of a table: long (sampleId, inputNode, inputValue, as `inputs`) or wide (a column per
    feature, found by the network's feature names)."""
    if table_schema is not None:
        require_schema(s.pg, table_schema, "--table-schema")
    home = table_schema or trained.home  # the network's schema unless told otherwise
    ident = sql.Identifier(home, table)
    found = relations(s.pg, home).get(table)
    label = f"{home}.{table}"
    if found is None:
        raise InputError(
            f"table {label} not found: name the samples to predict with --table (looked in schema {home!r}, "
            f"{'--table-schema' if table_schema else 'the network'}'s; --table-schema names another)"
        )
    trust.check_relations(s.pg, [ident])
    columns = {name.lower(): name for name, _, _ in found}
    # the type of each column that is not a number, by lower-case name ('' for numbers)
    types = {name.lower(): "" if oid in NUMBER_TYPES else type_name for name, oid, type_name in found}
    notes: list[str] = []
    scaling = trained.scaling
    if features is None and set(columns) >= LONG_COLUMNS:
        own = s.pg.execute(
            "SELECT %s::regclass = %s::regclass", (ident.as_string(s.pg), trained.tables.inputs.ident.as_string(s.pg))
        ).fetchone()[0]  # type: ignore[index]
        if own:
            if standardized is False and scaling:
                raise InputError(
                    f"{label} holds the network's own samples, which `sqlnet load --standardize` standardised: "
                    f"they are not raw values (leave out --raw)"
                )
            if scaling:
                notes.append(
                    f"{label} holds the network's own samples, already standardised by load: used as they are, "
                    f"not standardised again"
                )
            scaling = None
        elif scaling and standardized is None:
            raise InputError(
                f"{label} is in the long layout (sampleId, inputNode, inputValue) like the network's inputs, which "
                f"load standardised: say whether its values are raw (--raw: sqlnet standardises them as load did) or "
                f"already standardised (--standardized)"
            )
        elif standardized:
            scaling = None
        sample = {"sample": columns["sampleid"]} if "sampleid" in columns else {}
        long = Table(home, table, {**sample, "node": columns["inputnode"], "value": columns["inputvalue"]})
        for column in long.columns.values():
            if types[column.lower()]:
                raise InputError(not_a_number(s.pg, long, column, types[column.lower()]))
        check_values(s.pg, long)
        n = trained.net.sizes[0]
        (lo, hi) = s.pg.execute(
            sql.SQL("SELECT min({n}), max({n}) FROM {t}").format(n=long.col("node"), t=ident)
        ).fetchone()  # type: ignore[misc]
        if lo is not None and (lo < 1 or hi > n):
            raise InputError(
                f"{long.label('node')} has nodes {lo}..{hi}, but network {trained.home!r} has input nodes 1..{n}"
            )
        check_sample_rows(s.pg, long, n, "input")
        select = predict_sql.long_samples(
            ident, long.col("sample") if sample else sql.SQL("1"), columns["inputnode"], columns["inputvalue"], n
        )
        return Samples(predict_sql.standardized(select, scaling), columns.get("sampleid", "sampleid"), label, notes)
    wanted = _feature_names(trained, features, label)
    real = {name: name for name, _, _ in found}
    picked = []
    for f in wanted:
        match = _column(real, f)
        if match is None:
            how = "--features names it" if features else "a feature of the network; --features maps other names"
            raise InputError(f"table {label} has no column {f!r} ({how}); it has {', '.join(real)}")
        picked.append(match)
    id_name = _id_column(trained, real, id_column, label)
    roles = {**({"sample": id_name} if id_name else {}), **{f"x{i}": c for i, c in enumerate(picked, 1)}}
    wide = Table(home, table, roles)
    check_wide_samples(s.pg, wide, {r: types[c.lower()] for r, c in wide.columns.items()})
    if standardized:
        scaling = None
    if id_name is None:
        notes.append(f"{label} has no id column (--id names one): its rows are numbered in column row_number")
    id_sql = sql.Identifier(id_name) if id_name else sql.SQL("row_number() OVER ()")
    return Samples(
        predict_sql.standardized(predict_sql.wide_samples(ident, id_sql, picked), scaling),
        id_name or "row_number",
        label,
        notes,
        (ident, {n: types[n.lower()] for n in real}) if id_name else None,
    )


def _id_column(trained: Trained, columns: dict[str, str], id_column: str | None, label: str) -> str | None:
    """The id of a wide table's rows: --id, else the id `load` kept, else sampleid, else id; None: no id."""
    if id_column is not None:
        found = _column(columns, id_column)
        if found is None:
            raise InputError(f"table {label} has no column {id_column!r} (--id); it has {', '.join(columns)}")
        return found
    for candidate in (trained.data.get("id_column"), "sampleid", "id"):
        if candidate and _column(columns, candidate):
            return _column(columns, candidate)
    return None


def _csv_samples(
    s: Session, trained: Trained, csv: str | Path | IO[str], id_column: str | None, features: list[str] | None,
    standardized: bool | None,
) -> Samples:  # fmt: skip
    """A CSV file's rows (or standard input's, for '-'), streamed with COPY into a temporary table."""
    name = str(csv) if isinstance(csv, (str, Path)) and csv != "-" else getattr(csv, "name", None) or "standard input"
    wanted = _feature_names(trained, features, name)
    handle: Any = sys.stdin if csv == "-" else csv
    copied = loader.copy_samples(s, handle, name, wanted, id_column, trained.data.get("id_column"))
    notes = [f"{name} has no id column (--id names one): its rows are named by line in column line"] if (
        copied.id_name == "line" and id_column is None
    ) else []  # fmt: skip
    scaling = None if standardized else trained.scaling
    return Samples(
        predict_sql.standardized(
            predict_sql.wide_samples(copied.ident, sql.Identifier(copied.id_name), copied.features), scaling
        ),
        copied.id_name,
        name,
        notes,
    )


def predict(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    table: str | None = None,
    csv: str | Path | IO[str] | None = None,
    frame: Any = None,
    into: str | None = None,
    table_schema: str | None = None,
    into_schema: str | None = None,
    id_column: str | None = None,
    features: list[str] | None = None,
    standardized: bool | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """Compute the network's predictions in SQL for the rows of `table` (or of a CSV file, `csv`; '-' is
    standard input) and write them into a new table `into`, one row per sample: its id, then for a
    classifier the label and probabilities, for a regressor each target by name, else output_1...

    Tables are looked up in the network's schema (`schema`) unless `table_schema`/`into_schema` say
    otherwise. A wide table's feature columns are the network's stored feature names (`features` maps
    others, in input-node order); the stored standardisation is applied once, never to the network's own
    `inputs` (`standardized=True` says a table is standardised already, False that it is raw). `replace`
    replaces only a table sqlnet made for this network.

    With `frame` (a pandas DataFrame) instead of `table` or `csv`, nothing is written: the predictions come
    back as a DataFrame (the id or, without one, the frame's own index; the label and probabilities, or the
    targets), computed in SQL from the frame's rows streamed with COPY into a temporary table."""
    check_names(schema=schema, table=table, into=into, table_schema=table_schema, into_schema=into_schema,
                id=id_column, features=features)  # fmt: skip
    if frame is not None:
        if table is not None or csv is not None or into is not None:
            raise InputError("predict takes a DataFrame (frame=) instead of table=, csv= and into=, not with them")
        columns, rows = predict_rows(
            database, schema=schema, handle=frames.frame_csv(frame), id_column=id_column, features=features,
            standardized=standardized, hidden_activation=hidden_activation, output_activation=output_activation,
        )  # fmt: skip
        if id_column is None and columns[0] == "line":  # rows in the frame's order: its index names them
            return frames.to_frame(columns[1:], [r[1:] for r in rows], frame.index)
        return frames.to_frame(columns, rows)
    if into is None:
        raise InputError("predict needs --into NAME: the table of predictions it makes")
    if (table is None) == (csv is None):
        raise InputError("predict needs exactly one of --table T or --csv FILE")
    with connect(database).transaction() as s:
        trained = _trained_network(s, schema, hidden_activation, output_activation)
        samples = (
            _table_samples(s, trained, table, table_schema, id_column, features, standardized)
            if table is not None
            else _csv_samples(s, trained, csv, id_column, features, standardized)  # type: ignore[arg-type]
        )
        outputs = trained.outputs(samples.id_name)
        tr = trained.training()
        if into_schema is not None:
            require_schema(s.pg, into_schema, "--into-schema")
        where = into_schema or trained.home
        marks.make_room(s.pg, where, [into], trained.home, replace, "--into", ["predictions"])
        target = sql.Identifier(where, into)
        s.pg.execute(
            sql.SQL("CREATE TABLE {target} AS\n{select}").format(
                target=target,
                select=predict_sql.predictions(tr, samples.select, outputs, prev=predict_sql.table_arrays(tr)),
            )
        )
        marks.comment(
            s.pg, "TABLE", target,
            marks.mark("predictions", trained.home, f"{trained.net.describe()}; weights of {trained.source}; "
                       f"samples from {samples.label}"),
        )  # fmt: skip
        (rows,) = s.pg.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()  # type: ignore[misc]
        score = _score(s, trained, samples, outputs, target)
    notes = samples.notes + ([outputs.note] if outputs.note else [])
    return Prediction(
        trained.net, trained.source, int(rows), f"{where}.{into}", outputs.columns, notes, trained.home, score
    )


def _score(s: Session, trained: Trained, samples: Samples, outputs: Outputs, target: sql.Identifier) -> dict[str, Any] | None:
    """How the predictions compare with the targets the source table holds under the stored target names
    (the raw table `load` kept does): a classifier's share of labels right, a regressor's RMSE per target."""
    targets = trained.data.get("targets") or []
    if samples.truth is None or not targets or outputs.id_name not in samples.truth[1]:
        return None
    source, kinds = samples.truth
    found = {t: _column({c: c for c in kinds}, t) for t in targets}
    if any(c is None for c in found.values()):
        return None
    join = sql.SQL("FROM {p} AS p JOIN {s} AS s ON s.{i} = p.{i}").format(
        p=target, s=source, i=sql.Identifier(outputs.id_name)
    )
    where = f"{samples.label}.{', '.join(str(c) for c in found.values())}"
    if outputs.classes:
        (truth,) = found.values()
        n, right = s.pg.execute(
            sql.SQL("SELECT count(*), avg((p.label = s.{t}::text)::int) {join}").format(
                t=sql.Identifier(str(truth)), join=join
            )
        ).fetchone()  # type: ignore[misc]
        return {"against": where, "rows": int(n), "accuracy": float(right)} if n else None
    if not outputs.targets or any(kinds[str(c)] for c in found.values()):
        return None  # a target column that is not a number here: nothing to compare
    errors = sql.SQL(", ").join(
        sql.SQL("sqrt(avg((p.{o} - s.{t}::float8) ^ 2))").format(o=sql.Identifier(t), t=sql.Identifier(str(c)))
        for t, c in found.items()
    )
    n, *rmse = s.pg.execute(sql.SQL("SELECT count(*), {e} {join}").format(e=errors, join=join)).fetchone()  # type: ignore[misc]
    return {"against": where, "rows": int(n), "rmse": dict(zip(targets, map(float, rmse)))} if n else None


def predict_rows(
    database: DatabaseLike = None, *, schema: str | None = None, handle: IO[str], id_column: str | None = None,
    features: list[str] | None = None, standardized: bool | None = None, hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:  # fmt: skip
    """The predictions for the rows of a CSV text (a DataFrame's, an estimator's X), computed in SQL and
    returned in the order of their id (the line, without an id column): the columns' names and the rows.
    Nothing is written: the temporary table goes with the transaction, which is rolled back."""
    check_names(schema=schema, id=id_column, features=features)
    with connect(database).transaction(commit=False) as s:
        trained = _trained_network(s, schema, hidden_activation, output_activation)
        samples = _csv_samples(s, trained, handle, id_column, features, standardized)
        outputs = trained.outputs(samples.id_name)
        tr = trained.training()
        cur = s.pg.execute(
            sql.SQL("SELECT * FROM (\n{q}\n) AS p ORDER BY 1").format(
                q=predict_sql.predictions(tr, samples.select, outputs, prev=predict_sql.table_arrays(tr))
            )
        )
        return [d.name for d in cur.description or []], cur.fetchall()


def trained_constants(database: DatabaseLike = None, *, schema: str | None = None) -> tuple[Trained, Params]:
    """The trained network of a schema and its weights, read once: what a prediction written into SQL needs."""
    check_names(schema=schema)
    with connect(database).transaction(commit=False) as s:
        trained = _trained_network(s, schema, None, None)
        return trained, read_params(s.pg, trained.tables, trained.net)


def trained_tables(database: DatabaseLike = None, schema: str | None = None) -> tuple[str, dict[str, Any]]:
    """The schema of a network and its tables' names: inputs, outputs, weights and biases (lists), raw."""
    check_names(schema=schema)
    with connect(database).transaction(commit=False) as s:
        trained = _trained_network(s, schema, None, None)
        t = trained.tables
        raw = trained.data.get("raw_table")
        return trained.home, {
            "inputs": t.inputs.name, "outputs": t.outputs.name, "weights": [w.name for w in t.weights],
            "biases": [b.name for b in t.biases], "raw": raw if raw in relations(s.pg, trained.home) else None,
        }  # fmt: skip
