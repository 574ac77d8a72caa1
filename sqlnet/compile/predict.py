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

from dataclasses import dataclass

from psycopg import sql

from sqlnet.compile.dialect import POSTGRES, Dialect
from sqlnet.compile.tables import MAX_NAME_BYTES
from sqlnet.compile.training import Training
from sqlnet.compile.wide import WideLayout
from sqlnet.compile.wide_phases import ConstantColumns
from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params

LAYOUT = WideLayout()


def _c(name: str) -> sql.Composable:
    return sql.SQL(name)  # sqlnet's own column names: letters, digits and underscores


def forward(
    tr: Training, samples: sql.Composable, prev: sql.Composable | None = None, constants: Params | None = None
) -> tuple[sql.Composable, str]:
    """The training's own forward phases (``WidePhases.forward_ctes``) over `samples` (a SELECT of sample,
    x1..xn): the WITH list, and the name of its last CTE (sample, aK_1..). The parameters come from `prev`
    (a one-row SELECT of the state row's arrays: the weights tables, or Spark's state view) or, with
    `constants`, are written in as literals (an export, which reads no table)."""
    pc = ConstantColumns(tr.net, constants) if constants is not None else None
    ctes, last = LAYOUT.forward_ctes(tr, pc)
    head = [] if prev is None else [sql.SQL("    -- the parameters, one row of arrays\n    prev AS ({})").format(prev)]
    head.append(sql.SQL("    -- the samples, one row each\n    batch_rows AS (\n      {}\n    )").format(samples))
    return sql.SQL("WITH\n{}").format(sql.SQL(",\n").join([*head, *ctes])), last


def predictions(
    tr: Training, samples: sql.Composable, outputs: Outputs, prev: sql.Composable | None = None,
    constants: Params | None = None,
) -> sql.Composable:  # fmt: skip
    """Each sample's predictions, named as `outputs` says (``labelled``): the forward phases, then the label."""
    ctes, last = forward(tr, samples, prev, constants)
    stage = sql.SQL("SELECT * FROM {}").format(sql.Identifier(last))
    return sql.SQL("-- each sample's predictions: the forward phases of the trained network\n{}\n{}").format(
        ctes, labelled(tr.net, stage, outputs, tr.dialect)
    )


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


def table_arrays(tr: Training) -> sql.Composable:
    """The weights tables as the state row's arrays (w1, b1, ...), one row: what `prev` holds in training."""
    return sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, _c(name)) for name, e in LAYOUT.param_arrays(tr))
    )


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
    tr: Training,
    params: Params,
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
    net = tr.net
    n = net.sizes[0]
    xs = sql.SQL(", ").join(
        sql.SQL("x[{i}] AS {c}").format(i=sql.Literal(i), c=_c(f"x{i}")) for i in range(1, n + 1)
    )
    samples = standardized(sql.SQL("SELECT 1::bigint AS sample, {xs}").format(xs=xs), scaling)
    ctes, last = forward(tr, samples, constants=params)
    ys = [_c(f"a{net.depth}_{j}") for j in range(1, net.sizes[-1] + 1)]
    hint = f"the {n} raw features in input-node order" + (f": {', '.join(features)}" if features else "")
    single = outputs.targets and len(outputs.nodes) == 1
    core = function_names(function, outputs)[0]  # the one the label function calls, when there are two
    returns, value = (
        (sql.SQL("double precision"), ys[0]) if single else (sql.SQL("double precision[]"), tr.dialect.array_of(ys))
    )
    result = sql.SQL("(\n{ctes}\nSELECT {value} FROM {last})").format(ctes=ctes, value=value, last=sql.Identifier(last))
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
                result=result,
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
