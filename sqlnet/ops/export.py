"""Predictions as SQL others run: `export` writes a view or SQL functions with the trained weights as constants
(``sqlnet.compile.predict``), which need neither sqlnet nor the weights tables; by the rules `predict` follows
(``sqlnet.ops.predict``): the stored feature names, the standardisation applied once, the outputs named as
`load` named the data."""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile import predict as predict_sql
from sqlnet.db import marks
from sqlnet.db.tables import check_names, read_params, require_schema
from sqlnet.errors import InputError
from sqlnet.ops.common import DatabaseLike, connect
from sqlnet.ops.predict import Prediction, _table_samples, _trained_network


def export(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    view: str | None = None,
    function: str | None = None,
    table: str | None = None,
    table_schema: str | None = None,
    into_schema: str | None = None,
    id_column: str | None = None,
    features: list[str] | None = None,
    standardized: bool | None = None,
    replace: bool = False,
    hidden_activation: str | None = None,
    output_activation: str | None = None,
) -> Prediction:
    """A view over `table` (or a function of a float8[] of raw features) computing the predictions with the
    trained weights written into it as constants: it needs neither sqlnet nor the weights tables. It goes into
    the network's schema (or `into_schema`); `replace` replaces only what sqlnet exported for this network."""
    check_names(schema=schema, view=view, function=function, table=table, table_schema=table_schema,
                into_schema=into_schema, id=id_column, features=features)  # fmt: skip
    if (view is None) == (function is None):
        raise InputError("export needs exactly one of --view NAME (with --table) or --function NAME")
    if view is not None and table is None:
        raise InputError("--view needs --table: the samples the view predicts")
    with connect(database).transaction() as s:
        trained = _trained_network(s, schema, hidden_activation, output_activation)
        net = trained.net
        params = read_params(s.pg, trained.tables, net)
        tr = trained.training()
        if into_schema is not None:
            require_schema(s.pg, into_schema, "--into-schema")
        where = into_schema or trained.home
        data = trained.data
        about = (
            f"{net.describe()} with the weights of {trained.source}; takes the raw "
            + (", ".join(data["features"]) if data.get("features") else f"{net.sizes[0]} inputs")
            + (", standardised as `sqlnet load --standardize` did" if trained.scaling else "")
            + (f"; classes {', '.join(data['classes'])}" if data.get("classes") else "")
        )
        notes: list[str] = []
        if view is not None:
            assert table is not None
            samples = _table_samples(s, trained, table, table_schema, id_column, features, standardized)
            outputs = trained.outputs(samples.id_name)
            marks.make_room(s.pg, where, [view], trained.home, replace, "--view name", ["exported view"])
            name = sql.Identifier(where, view)
            s.pg.execute(
                sql.SQL("CREATE VIEW {name} AS\n{select}").format(
                    name=name, select=predict_sql.predictions(tr, samples.select, outputs, constants=params)
                )
            )
            marks.comment(s.pg, "VIEW", name, marks.mark("exported view", trained.home, about))
            made, columns, notes = f"{where}.{view}", outputs.columns, samples.notes
        else:
            assert function is not None
            outputs = trained.outputs("sample")
            created = predict_sql.exported_functions(
                tr, params, where, function, trained.scaling, outputs, data.get("features")
            )
            names = predict_sql.function_names(function, outputs)
            marks.make_room(
                s.pg, where, names, trained.home, replace, "--function name", ["exported function"], functions=True
            )
            for signature, statement in created:
                s.pg.execute(statement)
                marks.comment(s.pg, "FUNCTION", signature, marks.mark("exported function", trained.home, about))
            made, columns = ", ".join(f"{where}.{n}" for n in reversed(names)), []
        notes += [outputs.note] if outputs.note else []
    return Prediction(net, trained.source, 0, made, columns, notes, trained.home)
