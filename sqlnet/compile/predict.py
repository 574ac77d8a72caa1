"""Predictions in SQL: the forward pass over a table of samples, with the trained weights read from
the weights tables (`predict`) or written into the SQL as constants (`export`: a view or a function
that works for any client, without sqlnet and without the weights tables).

The forward pass is the phases 1..2K of training, one nested SELECT per layer, one row per sample
and a column per node (a0_1.., a1_1.., ...), with each activation's SQL from sqlnet.model.functions.
Every layer ends in OFFSET 0: without that fence PostgreSQL pulls the subqueries up and substitutes
each layer's expressions into the next, a tree that grows with the product of the widths (a
64-32-10 network's plan exhausted the machine's memory before it did).
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import sql

from sqlnet.compile.tables import Table
from sqlnet.compile.wide import matrix_sql
from sqlnet.model.functions import ACTIVATIONS
from sqlnet.model.network import Network, Params

Ref = Callable[[int, int, int], sql.Composable]  # (layer, i, j) -> the weight's SQL
BiasRef = Callable[[int, int], sql.Composable]  # (layer, j) -> the node's bias SQL (or 0)


def _c(name: str) -> sql.Composable:
    return sql.SQL(name)  # sqlnet's own column names: letters, digits and underscores


def forward_sql(
    net: Network, samples: sql.Composable, weight: Ref, bias: BiasRef, params_join: sql.Composable
) -> sql.Composable:
    """SELECT sample, node, value: the output of every sample of `samples` (sample, x1, x2, ...)."""
    stage = sql.SQL("SELECT sample, {cols} FROM ({src}) AS x").format(
        cols=sql.SQL(", ").join(
            sql.SQL("{x} AS {a}").format(x=_c(f"x{i}"), a=_c(f"a0_{i}")) for i in range(1, net.sizes[0] + 1)
        ),
        src=samples,
    )
    for k in range(1, net.depth + 1):
        f = ACTIVATIONS[net.activation(k)]
        z = {
            j: sql.SQL("{s}{b}").format(
                s=sql.SQL(" + ").join(
                    sql.SQL("{w} * s.{a}").format(w=weight(k, i, j), a=_c(f"a{k - 1}_{i}"))
                    for i in range(1, net.sizes[k - 1] + 1)
                ),
                b=bias(k, j),
            )
            for j in range(1, net.sizes[k] + 1)
        }
        if f.elementwise:
            cols = sql.SQL(", ").join(
                sql.SQL("{f} AS {a}").format(
                    f=sql.SQL(f.sql_value).format(z=sql.SQL("({})").format(z[j])), a=_c(f"a{k}_{j}")
                )
                for j in z
            )
            stage = sql.SQL("SELECT s.sample, {cols} FROM ({prev}) AS s{join} OFFSET 0").format(
                cols=cols, prev=stage, join=params_join
            )
        else:  # softmax: the inputs first, then shift by the largest and normalise
            zs = sql.SQL(", ").join(sql.SQL("{e} AS {name}").format(e=z[j], name=_c(f"z{j}")) for j in z)
            top = sql.SQL("greatest({})").format(sql.SQL(", ").join(_c(f"z{j}") for j in z))
            exps = sql.SQL(", ").join(
                sql.SQL("{e} AS {name}").format(
                    e=sql.SQL(f.sql_value).format(z=_c(f"z{j}"), zmax=top), name=_c(f"e{j}")
                )
                for j in z
            )
            total = sql.SQL(" + ").join(_c(f"e{j}") for j in z)
            cols = sql.SQL(", ").join(
                sql.SQL("{e} / ({t}) AS {a}").format(e=_c(f"e{j}"), t=total, a=_c(f"a{k}_{j}")) for j in z
            )
            stage = sql.SQL(
                "SELECT sample, {cols} FROM (SELECT sample, {exps} FROM "
                "(SELECT s.sample, {zs} FROM ({prev}) AS s{join} OFFSET 0) AS z OFFSET 0) AS e OFFSET 0"
            ).format(cols=cols, exps=exps, zs=zs, prev=stage, join=params_join)
    K = net.depth
    values = sql.SQL(", ").join(
        sql.SQL("({j}, {a})").format(j=sql.Literal(j), a=_c(f"a{K}_{j}")) for j in range(1, net.sizes[-1] + 1)
    )
    return sql.SQL(
        "SELECT y.sample, o.node, o.value FROM ({stage}) AS y CROSS JOIN LATERAL (VALUES {values}) AS o (node, value)"
    ).format(stage=stage, values=values)


def long_samples(table: sql.Composable, sample: str, node: str, value: str, n: int) -> sql.Composable:
    """A long table (sample, node, value) pivoted to one row per sample: sample, x1..xn."""
    return sql.SQL("SELECT {s}::bigint AS sample, {xs} FROM {t} GROUP BY {s}").format(
        s=sql.Identifier(sample),
        xs=sql.SQL(", ").join(
            sql.SQL("max({v}::float8) FILTER (WHERE {n} = {i}) AS {x}").format(
                v=sql.Identifier(value), n=sql.Identifier(node), i=sql.Literal(i), x=_c(f"x{i}")
            )
            for i in range(1, n + 1)
        ),
        t=table,
    )


def wide_samples(table: sql.Composable, id_column: str, features: list[str]) -> sql.Composable:
    """A wide table: its id column and the feature columns, in the order of the input nodes."""
    return sql.SQL("SELECT {id} AS sample, {xs} FROM {t}").format(
        id=sql.Identifier(id_column),
        xs=sql.SQL(", ").join(
            sql.SQL("{f}::float8 AS {x}").format(f=sql.Identifier(f), x=_c(f"x{i}"))
            for i, f in enumerate(features, start=1)
        ),
        t=table,
    )


def standardized(samples: sql.Composable, scaling: tuple[list[float], list[float]] | None) -> sql.Composable:
    """Raw values standardised as at load: (x - mean) / std per feature."""
    if scaling is None:
        return samples
    means, stds = scaling
    return sql.SQL("SELECT sample, {xs} FROM ({src}) AS raw").format(
        xs=sql.SQL(", ").join(
            sql.SQL("({x} - {m}) / {s} AS {x}").format(
                x=_c(f"x{k}"), m=sql.Literal(float(m)), s=sql.Literal(float(sd))
            )
            for k, (m, sd) in enumerate(zip(means, stds), start=1)
        ),
        src=samples,
    )


def table_params(
    net: Network, weights: tuple[Table, ...], biases: tuple[Table, ...]
) -> tuple[sql.Composable, Ref, BiasRef]:
    """Weights read from the weights tables at query time: a one-row CTE of arrays."""
    cols = []
    for k, w in enumerate(weights, start=1):
        cols.append(
            sql.SQL("{m} AS {name}").format(
                m=matrix_sql(w.ident, w.col("in"), w.col("out"), w.col("value")), name=_c(f"w{k}")
            )
        )
        if net.bias == "edge":
            cols.append(
                sql.SQL(
                    "(SELECT array_agg(b ORDER BY j) FROM (SELECT {j}::int AS j, sum({b}::float8) AS b FROM {t} GROUP BY 1) "
                    "AS nodes) AS {name}"
                ).format(j=w.col("out"), b=w.col("bias"), t=w.ident, name=_c(f"b{k}"))
            )
        elif net.bias == "node":
            b = biases[k - 1]
            cols.append(
                sql.SQL("(SELECT array_agg({v}::float8 ORDER BY {n}) FROM {t}) AS {name}").format(
                    v=b.col("value"), n=b.col("node"), t=b.ident, name=_c(f"b{k}")
                )
            )
    params = sql.SQL("SELECT {}").format(sql.SQL(", ").join(cols))

    def weight(k: int, i: int, j: int) -> sql.Composable:
        return sql.SQL("p.{w}[{i}][{j}]").format(w=_c(f"w{k}"), i=sql.Literal(i), j=sql.Literal(j))

    def bias(k: int, j: int) -> sql.Composable:
        if net.bias == "none":
            return sql.SQL("")
        return sql.SQL(" + p.{b}[{j}]").format(b=_c(f"b{k}"), j=sql.Literal(j))

    return params, weight, bias


def constant_params(net: Network, params: Params) -> tuple[Ref, BiasRef]:
    """Weights written into the SQL as literals, for a view or function that needs no tables."""

    def weight(k: int, i: int, j: int) -> sql.Composable:
        return sql.Literal(float(params.weights[k - 1][i - 1][j - 1]))

    def bias(k: int, j: int) -> sql.Composable:
        if net.bias == "none":
            return sql.SQL("")
        return sql.SQL(" + {}").format(sql.Literal(float(sum(row[j - 1] for row in params.biases[k - 1]))))

    return weight, bias


def with_classes(forward: sql.Composable, classes: list[str] | None) -> sql.Composable:
    """The forward pass's rows as (sampleid, outputnode, outputvalue), and with class names the class of
    each sample: the name of its largest output (the lowest node on a tie), as `predict` writes it."""
    rows = sql.SQL("SELECT sample AS sampleid, node AS outputnode, value AS outputvalue")
    if not classes:
        return sql.SQL("{rows} FROM ({forward}) AS f").format(rows=rows, forward=forward)
    return sql.SQL(
        "{rows},\n  ({classes}::text[])[first_value(node) OVER (PARTITION BY sample ORDER BY value DESC, node)] "
        "AS predictedclass\nFROM ({forward}) AS f"
    ).format(rows=rows, classes=sql.Literal(classes), forward=forward)


def exported_functions(
    net: Network,
    weight: Ref,
    bias: BiasRef,
    schema: str,
    function: str,
    create: sql.Composable,
    scaling: tuple[list[float], list[float]] | None,
    classes: list[str] | None,
    features: list[str] | None,
) -> list[sql.Composable]:
    """`name(x float8[]) -> float8[]`: the outputs for one sample of raw features, standardised as at
    load, refusing an array of the wrong length or with NULLs; with classes also `name_class(x) -> text`.

    Both pin their search path: a function body is parsed when it is called, under the caller's path."""
    n = net.sizes[0]
    name = sql.Identifier(schema, function)
    xs = sql.SQL(", ").join(
        sql.SQL("x[{i}] AS {c}").format(i=sql.Literal(i), c=_c(f"x{i}")) for i in range(1, n + 1)
    )
    samples = standardized(sql.SQL("SELECT 1::bigint AS sample, {xs}").format(xs=xs), scaling)
    forward = forward_sql(net, samples, weight, bias, sql.SQL(""))
    hint = f"the {n} raw features in input-node order" + (f": {', '.join(features)}" if features else "")
    statements: list[sql.Composable] = [
        sql.SQL(
            "{create} FUNCTION {name}(x double precision[]) RETURNS double precision[]\n"
            "LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $sqlnet$\n"
            "BEGIN\n"
            "  IF x IS NULL OR array_ndims(x) IS DISTINCT FROM 1 OR array_lower(x, 1) <> 1\n"
            "     OR array_length(x, 1) <> {n} OR array_position(x, NULL) IS NOT NULL THEN\n"
            "    RAISE EXCEPTION 'sqlnet: % takes % numbers, none of them NULL; got %', {label}, {n}, x\n"
            "      USING HINT = {hint};\n"
            "  END IF;\n"
            "  RETURN (SELECT array_agg(value ORDER BY node) FROM ({forward}) AS f);\n"
            "END\n$sqlnet$"
        ).format(
            create=create,
            name=name,
            n=sql.Literal(n),
            label=sql.Literal(f"{schema}.{function}"),
            hint=sql.Literal(hint),
            forward=forward,
        )
    ]
    if classes:
        statements.append(
            sql.SQL(
                "{create} FUNCTION {class_name}(x double precision[]) RETURNS text\n"
                "LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $sqlnet$\n"
                "SELECT ({classes}::text[])[(SELECT o.i FROM unnest({name}(x)) WITH ORDINALITY AS o (v, i) "
                "ORDER BY o.v DESC, o.i LIMIT 1)]\n$sqlnet$"
            ).format(
                create=create,
                class_name=sql.Identifier(schema, f"{function}_class"),
                classes=sql.Literal(classes),
                name=name,
            )
        )
    return statements
