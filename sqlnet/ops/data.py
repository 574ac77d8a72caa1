"""Data in and out: `load` (CSV or table to inputs/outputs), `predict` and `export`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from sqlnet.compile import predict as predict_sql
from sqlnet.db import loading as loader
from sqlnet.db import store, trust
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
    where_table,
)
from sqlnet.errors import InputError
from sqlnet.model.network import Network
from sqlnet.ops.common import DatabaseLike, TrainOptions, connect


@dataclass
class Prediction:
    network: Network
    source: str  # where the activations came from: "run N" or "options"
    rows: int  # rows written (predict) or 0 (export)
    created: str  # the table, view or function made


def _trained_network(
    s: Session, schema: str | None, hidden_activation: str | None, output_activation: str | None
) -> tuple[TableMap, Network, str, dict[str, Any]]:
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
    return tables, net, source, loader.dataset(s, tables.resolved_schema) or {}


def _scaling(data: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    return (data["means"], data["stds"]) if data.get("means") else None


def load(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    file: str | None = None,
    from_table: str | None = None,
    from_schema: str | None = None,
    targets: list[str],
    features: list[str] | None = None,
    classes: bool = False,
    standardize: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> loader.Loaded:
    """Fill inputs/outputs (with sampleId) from a CSV file or a table: one row per example."""
    check_names(schema=schema, from_table=from_table, from_schema=from_schema)
    if (file is None) == (from_table is None):
        raise InputError("load needs exactly one of FILE.csv or --from-table T")
    db = connect(database)
    with db.transaction() as s:
        target_schema = s.schema(schema)
        trust.check_sqlnet_schemas(s.pg, target_schema)
        if file is not None:
            header, rows = loader.csv_rows(Path(file))
            return loader.load(
                s, target_schema, header, rows, file, targets, features, classes, standardize, on_rows
            )
        assert from_table is not None
        require_schema(s.pg, from_schema, "--from-schema")
        source_schema = s.schema(from_schema)
        ident = sql.Identifier(source_schema, from_table)
        found = relations(s.pg, source_schema)
        if from_table not in found:
            raise InputError(f"table {where_table(from_table, from_schema)} not found: check --from-table")
        header = [c[0] for c in found[from_table]]
        # the passes stream the table from a second connection, in one snapshot, while this one copies
        with db.snapshot_reader() as reader:

            def table_rows() -> Iterator[tuple[int, dict[str, Any]]]:
                with reader.cursor(name="sqlnet_load") as cur:  # server-side: rows arrive in batches
                    cur.itersize = 5000
                    cur.execute(sql.SQL("SELECT * FROM {}").format(ident))
                    names = [d.name for d in cur.description or []]
                    for n, r in enumerate(cur, start=1):
                        yield n, dict(zip(names, r))

            return loader.load(
                s,
                target_schema,
                header,
                table_rows,
                f"table {from_table}",
                targets,
                features,
                classes,
                standardize,
                on_rows,
            )


def _samples_sql(
    s: Session,
    net: Network,
    table: str,
    table_schema: str | None,
    id_column: str,
    features: list[str] | None,
    scaling: tuple[list[float], list[float]] | None = None,
) -> sql.Composable:
    """The rows to predict, one per sample: from a long (sampleId, inputNode, inputValue) table or a
    wide one (an id column and one column per feature, in input-node order)."""
    require_schema(s.pg, table_schema, "--table-schema")
    home = s.schema(table_schema)
    ident = sql.Identifier(home, table)
    trust.check_relations(s.pg, [ident])
    found = relations(s.pg, home).get(table)
    if found is None:
        raise InputError(
            f"table {where_table(table, table_schema)} not found: name the table of samples to predict "
            f"with --table"
        )
    columns = {name.lower(): name for name, _, _ in found}
    # the type of each column that is not a number, by lower-case name ('' for numbers)
    types = {name.lower(): "" if oid in NUMBER_TYPES else type_name for name, oid, type_name in found}
    if features is None and {"sampleid", "inputnode", "inputvalue"} <= set(columns):
        long = Table(
            table_schema,
            table,
            {"sample": columns["sampleid"], "node": columns["inputnode"], "value": columns["inputvalue"]},
            home=home,
        )
        for column in long.columns.values():
            if types[column.lower()]:
                raise InputError(not_a_number(s.pg, long, column, types[column.lower()]))
        check_values(s.pg, long)
        n = net.sizes[0]
        (lo, hi) = s.pg.execute(
            sql.SQL("SELECT min({n}), max({n}) FROM {t}").format(n=long.col("node"), t=ident)
        ).fetchone()  # type: ignore[misc]
        if lo is not None and (lo < 1 or hi > n):
            raise InputError(
                f"{long.label('node')} has nodes {lo}..{hi}, but the network has input nodes 1..{n}"
            )
        check_sample_rows(s.pg, long, n, "input")
        return predict_sql.standardized(
            predict_sql.long_samples(
                ident, columns["sampleid"], columns["inputnode"], columns["inputvalue"], net.sizes[0]
            ),
            scaling,
        )
    if features is None:
        raise InputError(
            f"{table} is not in the long layout (sampleId, inputNode, inputValue): name its feature columns "
            f"with --features, in the order of the input nodes"
        )
    if len(features) != net.sizes[0]:
        raise InputError(f"{len(features)} features given, but the network has {net.sizes[0]} input nodes")
    missing = [f for f in [id_column, *features] if f.lower() not in columns]
    if missing:
        raise InputError(f"table {table} has no column {missing[0]!r} (it has {', '.join(columns.values())})")
    wide = Table(
        table_schema,
        table,
        {
            "sample": columns[id_column.lower()],
            **{f"x{i}": columns[f.lower()] for i, f in enumerate(features, 1)},
        },
        home=home,
    )
    check_wide_samples(s.pg, wide, {r: types[c.lower()] for r, c in wide.columns.items()})
    return predict_sql.standardized(
        predict_sql.wide_samples(ident, columns[id_column.lower()], [columns[f.lower()] for f in features]),
        scaling,
    )


def predict(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    table: str,
    into: str,
    table_schema: str | None = None,
    id_column: str = "id",
    features: list[str] | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """Compute the network's outputs in SQL for the samples of `table` and write
    `into(sampleId, outputNode, outputValue)`; the weights come from the weights tables."""
    check_names(
        schema=schema, table=table, into=into, table_schema=table_schema, id=id_column, features=features
    )
    with connect(database).transaction() as s:
        tables, net, source, data = _trained_network(s, schema, hidden_activation, output_activation)
        samples = _samples_sql(s, net, table, table_schema, id_column, features, _scaling(data))
        params, weight, bias = predict_sql.table_params(net, tables.weights, tables.biases)
        forward = predict_sql.forward_sql(net, samples, weight, bias, sql.SQL(" CROSS JOIN params AS p"))
        target = sql.Identifier(s.schema(table_schema), into)
        exists = s.pg.execute("SELECT to_regclass(%s) IS NOT NULL", (target.as_string(s.pg),)).fetchone()[0]  # type: ignore[index]
        if exists and not replace:
            raise InputError(
                f"table {into!r} already exists: use --replace to overwrite it, or another --into"
            )
        if exists:
            s.pg.execute(sql.SQL("DROP TABLE {}").format(target))
        s.pg.execute(
            sql.SQL(
                "CREATE TABLE {target} AS\nWITH params AS (\n  {params}\n)\n"
                "SELECT sample AS sampleid, node AS outputnode, value AS outputvalue FROM ({forward}) AS f"
            ).format(target=target, params=params, forward=forward)
        )
        if data.get("classes"):
            # the class of each sample: the name of its largest output
            s.pg.execute(sql.SQL("ALTER TABLE {} ADD COLUMN predictedclass text").format(target))
            s.pg.execute(
                sql.SQL(
                    "UPDATE {t} AS p SET predictedclass = c.name FROM (SELECT DISTINCT ON (sampleid) sampleid, "
                    "outputnode FROM {t} ORDER BY sampleid, outputvalue DESC, outputnode) AS best "
                    "JOIN unnest(%s::text[]) WITH ORDINALITY AS c (name, node) ON c.node = best.outputnode "
                    "WHERE p.sampleid = best.sampleid"
                ).format(t=target),
                (data["classes"],),
            )
        (rows,) = s.pg.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()  # type: ignore[misc]
    return Prediction(net, source, int(rows), into)


def export(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    view: str | None = None,
    function: str | None = None,
    table: str | None = None,
    table_schema: str | None = None,
    id_column: str = "id",
    features: list[str] | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """A view over `table` (or a function of a float8[] of inputs) computing the predictions with the
    trained weights written into it as constants: it needs neither sqlnet nor the weights tables."""
    check_names(
        schema=schema,
        view=view,
        function=function,
        table=table,
        table_schema=table_schema,
        id=id_column,
        features=features,
    )
    if (view is None) == (function is None):
        raise InputError("export needs exactly one of --view NAME (with --table) or --function NAME")
    with connect(database).transaction() as s:
        tables, net, source, data = _trained_network(s, schema, hidden_activation, output_activation)
        params = read_params(s.pg, tables, net)
        weight, bias = predict_sql.constant_params(net, params)
        create = sql.SQL("CREATE OR REPLACE" if replace else "CREATE")
        home = s.schema(table_schema)
        features_text = ", ".join(data["features"]) if data.get("features") else f"{net.sizes[0]} inputs"
        about = (
            f"sqlnet: the network in schema {tables.resolved_schema} ({net.describe()}) with the weights of "
            f"{source}; takes the raw {features_text}"
            + (", standardised as `sqlnet load --standardize` did" if _scaling(data) else "")
            + (f"; classes {', '.join(data['classes'])}" if data.get("classes") else "")
        )
        if view is not None:
            if table is None:
                raise InputError("--view needs --table: the samples the view predicts")
            samples = _samples_sql(s, net, table, table_schema, id_column, features, _scaling(data))
            forward = predict_sql.forward_sql(net, samples, weight, bias, sql.SQL(""))
            name = sql.Identifier(home, view)
            s.pg.execute(
                sql.SQL("{create} VIEW {name} AS\n{select}").format(
                    create=create, name=name, select=predict_sql.with_classes(forward, data.get("classes"))
                )
            )
            s.pg.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(name, sql.Literal(about)))
            made = view
        else:
            assert function is not None
            name = sql.Identifier(home, function)
            for statement in predict_sql.exported_functions(
                net, weight, bias, home, function, create, _scaling(data), data.get("classes"), data.get("features")
            ):
                s.pg.execute(statement)
            s.pg.execute(
                sql.SQL("COMMENT ON FUNCTION {}(double precision[]) IS {}").format(name, sql.Literal(about))
            )
            made = function
    return Prediction(net, source, 0, made)
