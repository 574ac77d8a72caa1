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
from dataclasses import dataclass

from psycopg import sql

from sqlnet.compile.dialect import POSTGRES, Dialect
from sqlnet.compile.tables import MAX_NAME_BYTES, Table
from sqlnet.compile.wide import matrix_sql
from sqlnet.errors import InputError
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
    K = net.depth
    values = sql.SQL(", ").join(
        sql.SQL("({j}, {a})").format(j=sql.Literal(j), a=_c(f"a{K}_{j}")) for j in range(1, net.sizes[-1] + 1)
    )
    return sql.SQL(
        "SELECT y.sample, o.node, o.value FROM ({stage}) AS y CROSS JOIN LATERAL (VALUES {values}) AS o (node, value)"
    ).format(stage=forward_stage(net, samples, weight, bias, params_join), values=values)


def forward_stage(
    net: Network, samples: sql.Composable, weight: Ref, bias: BiasRef, params_join: sql.Composable
) -> sql.Composable:
    """SELECT sample, aK_1, aK_2, ...: the output layer of every sample of `samples`, one row per sample."""
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
    return stage


def long_samples(table: sql.Composable, sample: sql.Composable, node: str, value: str, n: int) -> sql.Composable:
    """A long table (sample, node, value) pivoted to one row per sample: sample, x1..xn (`sample`: its
    column, or 1 for a table of one sample)."""
    return sql.SQL("SELECT {s}::bigint AS sample, {xs} FROM {t} GROUP BY 1").format(
        s=sample,
        xs=sql.SQL(", ").join(
            sql.SQL("max({v}::float8) FILTER (WHERE {n} = {i}) AS {x}").format(
                v=sql.Identifier(value), n=sql.Identifier(node), i=sql.Literal(i), x=_c(f"x{i}")
            )
            for i in range(1, n + 1)
        ),
        t=table,
    )


def wide_samples(
    table: sql.Composable, id_value: sql.Composable, features: list[str], dialect: Dialect = POSTGRES
) -> sql.Composable:
    """A wide table: its id (a column, or an expression such as row_number() OVER ()) and the feature
    columns, in the order of the input nodes."""
    return sql.SQL("SELECT {id} AS sample, {xs} FROM {t}").format(
        id=id_value,
        xs=sql.SQL(", ").join(
            sql.SQL("{f} AS {x}").format(f=dialect.cast(sql.Identifier(f), dialect.float_type), x=_c(f"x{i}"))
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


@dataclass(frozen=True)
class Outputs:
    """What a prediction's columns are called: the samples' id, then for a classifier the label (a class
    name) and, with a softmax output, the probability of that label; then one column per output node (each
    class's probability or output, each target by its name, or output_1..)."""

    id_name: str
    nodes: tuple[str, ...]
    classes: tuple[str, ...] | None = None
    probabilities: bool = False
    targets: bool = False  # the nodes are the targets `load` named (a regressor)
    note: str | None = None  # how the columns were named, when not as asked

    @property
    def columns(self) -> list[str]:
        label = ["label", *(["probability"] if self.probabilities else [])] if self.classes else []
        return [self.id_name, *label, *self.nodes]


def outputs_of(
    net: Network, id_name: str, classes: list[str] | None, targets: list[str] | None
) -> Outputs:
    """How the predictions of `net` are named, from what `load` kept: class names (one output node per
    class), target names (one per node), else output_1..output_n."""
    n = net.sizes[-1]
    note = None
    if classes and len(classes) == n:
        softmax = net.output_activation == "softmax"
        prefix = "p_" if softmax else "output_"
        nodes = tuple(f"{prefix}{c}" for c in classes)
        if any(len(c.encode()) > MAX_NAME_BYTES for c in nodes) or len({c for c in nodes}) < n:
            nodes = tuple(f"{prefix}{k}" for k in range(1, n + 1))
            note = f"some class names are too long for column names: {prefix}k is the k-th class of {classes}"
        out = Outputs(id_name, nodes, classes=tuple(classes), probabilities=softmax, note=note)
    elif targets and len(targets) == n and not classes:
        out = Outputs(id_name, tuple(targets), targets=True)
    else:
        out = Outputs(id_name, tuple(f"output_{k}" for k in range(1, n + 1)))
    taken = [c for c in out.columns if out.columns.count(c) > 1]
    if taken:
        raise InputError(
            f"the predictions would have two columns named {taken[0]!r} (the id column and an output): name the "
            f"id column differently (--id)"
        )
    return out


def labelled(net: Network, stage: sql.Composable, outputs: Outputs, dialect: Dialect = POSTGRES) -> sql.Composable:
    """One row per sample from the forward pass's last stage (sample, aK_1..): its id, the label and its
    probability (a classifier: the class of the largest output, the lowest node on a tie), then each node."""
    K = net.depth
    a = [_c(f"a{K}_{j}") for j in range(1, net.sizes[-1] + 1)]
    cols: list[sql.Composable] = [sql.SQL("y.sample AS {}").format(sql.Identifier(outputs.id_name))]
    if outputs.classes:
        top = sql.SQL("greatest({})").format(sql.SQL(", ").join(a))
        position = sql.SQL("array_position({a}, {top})").format(a=dialect.array_of(a), top=top)
        cols.append(sql.SQL("{} AS label").format(dialect.pick(dialect.text_array(list(outputs.classes)), position)))
        if outputs.probabilities:
            cols.append(sql.SQL("{} AS probability").format(top))
    cols += [sql.SQL("{} AS {}").format(v, sql.Identifier(name)) for v, name in zip(a, outputs.nodes)]
    return sql.SQL("SELECT {cols}\nFROM ({stage}) AS y").format(cols=sql.SQL(", ").join(cols), stage=stage)


def exported_functions(
    net: Network,
    weight: Ref,
    bias: BiasRef,
    schema: str,
    function: str,
    scaling: tuple[list[float], list[float]] | None,
    outputs: Outputs,
    features: list[str] | None,
) -> list[tuple[sql.Composed, sql.Composed]]:
    """The exported function(s) of one sample of raw features (a float8[] in input-node order,
    standardised as at load; an array of the wrong length or with NULLs is refused): for a classifier
    `name(x) -> text`, the label, and `name_probabilities(x) -> float8[]` (or `name_outputs` without a
    softmax), each class's in class order; for one target `name(x) -> float8`; else `name(x) -> float8[]`.
    Returns (the function's name with its argument types, the CREATE statement), the one the others call first.

    Each pins its search path: a function body is parsed when it is called, under the caller's path."""
    n = net.sizes[0]
    xs = sql.SQL(", ").join(
        sql.SQL("x[{i}] AS {c}").format(i=sql.Literal(i), c=_c(f"x{i}")) for i in range(1, n + 1)
    )
    samples = standardized(sql.SQL("SELECT 1::bigint AS sample, {xs}").format(xs=xs), scaling)
    forward = forward_sql(net, samples, weight, bias, sql.SQL(""))
    hint = f"the {n} raw features in input-node order" + (f": {', '.join(features)}" if features else "")
    single = outputs.targets and len(outputs.nodes) == 1
    core = function_names(function, outputs)[0]  # the one the label function calls, when there are two
    returns, result = (
        (sql.SQL("double precision"), sql.SQL("(SELECT value FROM ({forward}) AS f)"))
        if single
        else (sql.SQL("double precision[]"), sql.SQL("(SELECT array_agg(value ORDER BY node) FROM ({forward}) AS f)"))
    )
    name = sql.Identifier(schema, core)
    made = [
        (
            sql.SQL("{}(double precision[])").format(name),
            sql.SQL(
                "CREATE FUNCTION {name}(x double precision[]) RETURNS {returns}\n"
                "LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $sqlnet$\n"
                "BEGIN\n"
                "  IF x IS NULL OR array_ndims(x) IS DISTINCT FROM 1 OR array_lower(x, 1) <> 1\n"
                "     OR array_length(x, 1) <> {n} OR array_position(x, NULL) IS NOT NULL THEN\n"
                "    RAISE EXCEPTION 'sqlnet: % takes % numbers, none of them NULL; got %', {label}, {n}, x\n"
                "      USING HINT = {hint};\n"
                "  END IF;\n"
                "  RETURN {result};\n"
                "END\n$sqlnet$"
            ).format(
                name=name,
                returns=returns,
                n=sql.Literal(n),
                label=sql.Literal(f"{schema}.{core}"),
                hint=sql.Literal(hint),
                result=result.format(forward=forward),
            ),
        )
    ]
    if outputs.classes:
        label = sql.Identifier(schema, function)
        made.append(
            (
                sql.SQL("{}(double precision[])").format(label),
                sql.SQL(
                    "CREATE FUNCTION {label}(x double precision[]) RETURNS text\n"
                    "LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $sqlnet$\n"
                    "SELECT ({classes}::text[])[(SELECT o.i FROM unnest({name}(x)) WITH ORDINALITY AS o (v, i) "
                    "ORDER BY o.v DESC, o.i LIMIT 1)]\n$sqlnet$"
                ).format(label=label, classes=sql.Literal(list(outputs.classes)), name=name),
            )
        )
    return made


def function_names(function: str, outputs: Outputs) -> list[str]:
    """The names `exported_functions` creates for `function`."""
    if not outputs.classes:
        return [function]
    return [f"{function}_probabilities" if outputs.probabilities else f"{function}_outputs", function]
