"""The wide layout: one row per sample, one column per node; one recursive step per update.

The recursion carries a single row per update: the parameters as arrays (``w1[i][j]``,
``b1[i][j]`` or ``b1[j]``, and the optimizer's state), plus the loss of the update just made.
Inside each step every phase is its own materialised CTE over the batch's samples, one row per
sample with a column per node (``x1``, ``z1_3``, ``a1_3``, ``d1_3``, ``t1``): PostgreSQL does no
common-subexpression elimination, so each quantity is computed once in its stage and read from
there. The phases are the same as the long layout's, fused into the step; per-sample values are
never carried from one update to the next, so a step's work is the batch, not the history.

Limits: a sample row has a column per node and phase, so networks whose widest rows would pass
~1500 columns (PostgreSQL allows 1600) use the long layout; so do exact NUMERIC and --trace
(which needs every phase as rows of its own).

Why this module is long: a layout is one unit. The state row's columns, every fused phase,
the gradient, each optimizer's update and the validation pass all read and write the same
column names (``a1_2``, ``w1_2_3``, ``gw1``, ...); kept together, the names are defined and used
in one place, in the order the statement runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from sqlnet.compile.shared import data_select, next_block_batches, shuffled_batches
from sqlnet.compile.training import BATCH_TABLE, STATE_TABLE, Training
from sqlnet.model.functions import ACTIVATIONS, LOSSES, SQL_CROSS_ENTROPY
from sqlnet.model.network import Network
from sqlnet.model.phases import BIAS, STEP, WEIGHT

MAX_SAMPLE_COLUMNS = 1500
PARAMS_PER_CTE = 1000
SUMS_PER_QUERY = 256
MAX_GROUPED_BATCH = 1024
WIDE_TABLE = sql.Identifier("pg_temp", "sqlnet_wide")


def sample_columns(net: Network) -> int:
    """How many columns the widest per-sample stage has."""
    return 2 + net.sizes[0] + net.sizes[-1] + 3 * sum(net.sizes[1:]) + 2 * net.sizes[-1] + 3


def matrix_sql(
    table: sql.Composable, i: sql.Composable, j: sql.Composable, value: sql.Composable
) -> sql.Composable:
    """A 2D array [i][j] from a table of (i, j, value) rows (array_agg of arrays is 2D)."""
    return sql.SQL(
        "(SELECT array_agg(r ORDER BY i) FROM (SELECT {i}::int AS i, array_agg({v}::float8 ORDER BY {j}) AS r "
        "FROM {t} GROUP BY 1) AS rows)"
    ).format(i=i, j=j, v=value, t=table)


def flat_sql(table: sql.Composable, i: sql.Composable, j: sql.Composable, value: sql.Composable) -> sql.Composable:
    """A matrix as one flat array in row-major order (element (i, j) at (i - 1) * columns + j): the
    update walks it with unnest, which reads a 2D array in the same order."""
    return sql.SQL("(SELECT array_agg({v}::float8 ORDER BY {i}, {j}) FROM {t})").format(v=value, i=i, j=j, t=table)


def _index(n_out: int, i: int, j: int) -> int:
    """The flat index of element (i, j) of a matrix with n_out columns."""
    return (i - 1) * n_out + j


def _at(n_out: int, i: int, j: int) -> sql.Composable:
    return sql.Literal(_index(n_out, i, j))


def pivot_columns(prefix: str, n: int) -> sql.Composable:
    """Nodes 1..n of (sample, node, value) rows as the columns prefix1..prefixn of a GROUP BY sample."""
    return sql.SQL(", ").join(
        sql.SQL("max(value) FILTER (WHERE node = {i}) AS {c}").format(i=sql.Literal(i), c=_c(f"{prefix}{i}"))
        for i in range(1, n + 1)
    )


def next_cte(batches: sql.Composable) -> sql.Composable:
    """The update after the state row `prev`, with `batches` batches per epoch (both engines' statements)."""
    return sql.SQL(
        "    -- the update to make: the next batch of the epoch, or the first of the next epoch\n"
        "    next AS (\n"
        "      SELECT CASE WHEN batch < {nb} THEN epoch ELSE epoch + 1 END AS epoch,\n"
        "             CASE WHEN batch < {nb} THEN batch + 1 ELSE 1 END AS batch\n"
        "      FROM prev\n"
        "    )"
    ).format(nb=batches)


def fits(net: Network) -> bool:
    return sample_columns(net) <= MAX_SAMPLE_COLUMNS


def _c(name: str) -> sql.Composable:
    """A column sqlnet names itself (x3, z1_2, ...): letters and numbers only, never user text."""
    return sql.SQL(name)


def _materialized(tr: Training) -> sql.Composable:
    """How this engine asks for a CTE computed once: every phase reads the one before it several times."""
    return sql.SQL(tr.dialect.materialized)


def _sum(terms: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" + ").join(terms) if terms else sql.SQL("0")


class ParamColumns:
    """Where a step's expressions read the parameters: one-row CTEs of plain columns, one or more
    per layer (reading a column costs ~20 ns a sample, subscripting a float8[] ~80 ns). A CTE holds
    at most PARAMS_PER_CTE columns (a target list may have 1664 entries); a phase joins only the
    CTEs of the layer it reads."""

    def __init__(self, layers: dict[int, list[tuple[str, sql.Composable]]], materialized: sql.Composable) -> None:
        self.materialized = materialized
        self.parts: dict[int, list[tuple[str, list[tuple[str, sql.Composable]]]]] = {}
        self.where: dict[str, str] = {}
        for k, columns in layers.items():
            chunks = [columns[n : n + PARAMS_PER_CTE] for n in range(0, len(columns), PARAMS_PER_CTE)]
            names = [f"params{k}"] if len(chunks) == 1 else [f"params{k}_{n}" for n in range(1, len(chunks) + 1)]
            self.parts[k] = list(zip(names, chunks))
            for name, chunk in self.parts[k]:
                self.where.update((column, name) for column, _ in chunk)

    def ref(self, name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(_c(self.where[name]), _c(name))

    def ctes(self) -> list[sql.Composable]:
        out: list[sql.Composable] = []
        for k, parts in self.parts.items():
            for n, (name, chunk) in enumerate(parts, start=1):
                of = f" (part {n} of {len(parts)})" if len(parts) > 1 else ""
                out.append(
                    sql.SQL(
                        "    -- layer {k}'s parameters{of} as one row of plain columns (w{k}_2_3: node 2 to node 3)\n"
                        "    {name} {mat} (\n      SELECT\n        {cols}\n      FROM prev AS p\n    )"
                    ).format(
                        k=sql.SQL(str(k)),
                        of=sql.SQL(of),
                        name=_c(name),
                        mat=self.materialized,
                        cols=sql.SQL(",\n        ").join(sql.SQL("{} AS {}").format(e, _c(c)) for c, e in chunk),
                    )
                )
        return out

    def join(self, k: int) -> sql.Composable:
        return sql.SQL("").join(sql.SQL(" CROSS JOIN {}").format(_c(name)) for name, _ in self.parts[k])


@dataclass
class Stage:
    """One phase of an update as a SELECT over the previous one: the columns it adds (each an
    expression over ``s``, the previous phase's row, and its layer's parameters), the columns it
    reads, and the parameter CTEs it joins. Only columns a later phase reads are carried on."""

    key: tuple[str, int | None]
    new: Sequence[tuple[str, sql.Composable]]
    reads: set[str]
    join: sql.Composable = field(default_factory=lambda: sql.SQL(""))
    source: Callable[[sql.Composable], sql.Composable] | None = None  # softmax: subqueries around the source


class WideLayout:
    name = "wide"

    # --- data ----------------------------------------------------------------------------------

    def _pivot(self, tr: Training, validation: bool = False) -> sql.Composable:
        """One row per sample: sample, x1..xn, t1..tm, from the user's long tables (training samples,
        or with `validation` the held-out ones)."""
        net, t = tr.net, tr.tables
        xs, ts = pivot_columns("x", net.sizes[0]), pivot_columns("t", net.sizes[-1])
        return sql.SQL(
            "SELECT * FROM (SELECT sample, {xs} FROM ({x}) AS x GROUP BY sample) AS x\n"
            "  JOIN (SELECT sample, {ts} FROM ({t}) AS t GROUP BY sample) AS t USING (sample)"
        ).format(
            xs=xs, x=data_select(tr, t.inputs, validation), ts=ts, t=data_select(tr, t.outputs, validation)
        )

    settings_why = "the wide layout streams its phases from one to the next: nothing may store them in between"

    def settings(self, tr: Training) -> list[sql.Composable]:
        """The phases stream from one fenced subquery to the next; with materialisation on, the planner
        may still store one it reads inside a join (measured off: 1.07x on tanh-5k, 1.05x on digits)."""
        return [sql.SQL("SET LOCAL enable_material = off")]

    def preparation(self, tr: Training, again: bool = False) -> list[sql.Composable]:
        """Mini-batches: the samples as wide rows in an indexed temp table (and the shuffled batches).

        `again`: a later block of the same transaction, whose samples' table is still there: only a
        shuffled training needs this block's batches (building the samples' table took 0.2-0.5 s)."""
        if not tr.mini_batch:
            return []
        if again:
            return next_block_batches(tr, sql.SQL("SELECT sample FROM {}").format(WIDE_TABLE))
        drop = sql.SQL("DROP TABLE IF EXISTS {w}, {b}").format(w=WIDE_TABLE, b=BATCH_TABLE)
        if tr.shuffle is None:
            return [
                drop,
                sql.SQL(
                    "-- one row per sample with its batch: {n} consecutive samples by sampleId\n"
                    "CREATE TEMP TABLE sqlnet_wide AS\n"
                    "SELECT (dense_rank() OVER (ORDER BY sample) - 1) / {n} + 1 AS batch, * FROM ({pivot}) AS d"
                ).format(n=sql.Literal(tr.batch_size), pivot=self._pivot(tr)),
                sql.SQL("CREATE INDEX ON {} (batch)").format(WIDE_TABLE),
                sql.SQL("ANALYZE {}").format(WIDE_TABLE),
            ]
        return [
            drop,
            sql.SQL(
                "-- one row per sample, indexed by sample\nCREATE TEMP TABLE sqlnet_wide AS {pivot}"
            ).format(pivot=self._pivot(tr)),
            sql.SQL("CREATE INDEX ON {} (sample)").format(WIDE_TABLE),
            *shuffled_batches(tr, sql.SQL("SELECT sample FROM {}").format(WIDE_TABLE)),
            sql.SQL("ANALYZE {w}, {b}").format(w=WIDE_TABLE, b=BATCH_TABLE),
        ]

    def data_ctes(self, tr: Training) -> sql.Composable:
        if tr.mini_batch:
            return sql.SQL(
                "-- the number of batches per epoch (the samples are in the temp tables above)\n"
                "batches AS (\n  SELECT max(batch) AS n FROM {b}\n)"
            ).format(b=WIDE_TABLE if tr.shuffle is None else BATCH_TABLE)
        return sql.SQL(
            "-- the samples, one row each: the input values x1.. and the targets t1..\n"
            "data {mat} (\n  {pivot}\n)"
        ).format(mat=_materialized(tr), pivot=self._pivot(tr))

    def _batch_rows(self, tr: Training) -> sql.Composable:
        if not tr.mini_batch:
            return sql.SQL("SELECT * FROM data")
        if tr.shuffle is None:
            return sql.SQL("SELECT * FROM {w} WHERE batch = (SELECT batch FROM next)").format(w=WIDE_TABLE)
        return sql.SQL(
            "SELECT * FROM {w} WHERE sample = ANY (ARRAY(SELECT sample FROM {b} "
            "WHERE epoch = (SELECT epoch FROM next) AND batch = (SELECT batch FROM next)))"
        ).format(w=WIDE_TABLE, b=BATCH_TABLE)

    # --- the state row -------------------------------------------------------------------------

    def _state_names(self, tr: Training) -> list[str]:
        """The parameter arrays the state row carries, in column order."""
        names = []
        for k in range(1, tr.net.depth + 1):
            names.append(f"w{k}")
            if tr.net.bias != "none":
                names.append(f"b{k}")
        return names

    def _columns(self, tr: Training) -> list[str]:
        params = self._state_names(tr)
        state = [f"{c}{p}" for p in params for c in tr.optimizer.state]
        return [
            "epoch",
            "batch",
            "phase",
            *params,
            *state,
            *(["t"] if tr.optimizer.name == "adam" else []),
            "loss",
            "samples",
        ]

    def _state_start(self, tr: Training, quantity: str, k: int, column: str) -> sql.Composable:
        """The optimizer state of one parameter array, zeros where none is kept."""
        w = tr.tables.weights[k - 1]
        key = sql.Literal(tr.state_key)
        if quantity == WEIGHT or tr.net.bias == "edge":
            return flat_sql(
                sql.SQL(
                    "{t} AS w LEFT JOIN {s} AS s ON s.network = {key} AND s.quantity = {q} AND s.layer = {k} "
                    "AND s.i = w.{i}::int AND s.j = w.{j}::int"
                ).format(
                    t=w.ident,
                    s=STATE_TABLE,
                    key=key,
                    q=sql.Literal(quantity),
                    k=sql.Literal(k),
                    i=w.col("in"),
                    j=w.col("out"),
                ),
                sql.SQL("w.{}").format(w.col("in")),
                sql.SQL("w.{}").format(w.col("out")),
                sql.SQL("coalesce(s.{}, 0)").format(_c(column)),
            )
        b = tr.tables.biases[k - 1]
        return sql.SQL(
            "(SELECT array_agg(coalesce(s.{c}, 0)::float8 ORDER BY b.{n}) FROM {t} AS b LEFT JOIN {s} AS s "
            "ON s.network = {key} AND s.quantity = {q} AND s.layer = {k} AND s.i = 0 AND s.j = b.{n}::int)"
        ).format(
            c=_c(column),
            n=b.col("node"),
            t=b.ident,
            s=STATE_TABLE,
            key=key,
            q=sql.Literal(BIAS),
            k=sql.Literal(k),
        )

    def _start(self, tr: Training) -> sql.Composable:
        values: list[sql.Composable] = [sql.Literal(tr.first[0]), sql.Literal(tr.first[1] - 1), sql.SQL("0")]
        for k, w in enumerate(tr.tables.weights, start=1):
            values.append(flat_sql(w.ident, w.col("in"), w.col("out"), w.col("value")))
            if tr.net.bias == "edge":
                values.append(flat_sql(w.ident, w.col("in"), w.col("out"), w.col("bias")))
            elif tr.net.bias == "node":
                b = tr.tables.biases[k - 1]
                values.append(
                    sql.SQL("(SELECT array_agg({v}::float8 ORDER BY {n}) FROM {t})").format(
                        v=b.col("value"), n=b.col("node"), t=b.ident
                    )
                )
        for p in self._state_names(tr):
            quantity, k = (WEIGHT if p[0] == "w" else BIAS), int(p[1:])
            values += [self._state_start(tr, quantity, k, c) for c in tr.optimizer.state]
        if tr.optimizer.name == "adam":
            values.append(
                sql.SQL("coalesce((SELECT m FROM {s} WHERE network = {key} AND quantity = {q}), 0)").format(
                    s=STATE_TABLE, key=sql.Literal(tr.state_key), q=sql.Literal(STEP)
                )
            )
        values += [sql.SQL("NULL::float8"), sql.SQL("NULL::bigint")]
        return sql.SQL("  SELECT {}").format(sql.SQL(",\n         ").join(values))

    # --- the phases of one update ----------------------------------------------------------------

    def _bias(self, tr: Training, pc: ParamColumns, k: int, j: int) -> sql.Composable:
        if tr.net.bias == "none":
            return sql.SQL("")
        return sql.SQL(" + {}").format(pc.ref(f"bias{k}_{j}"))

    def _param_columns(self, tr: Training) -> dict[int, list[tuple[str, sql.Composable]]]:
        """Per layer: every weight, and each node's bias (edge biases summed once here), as (column,
        array element of the state row)."""
        net = tr.net
        layers: dict[int, list[tuple[str, sql.Composable]]] = {}
        for k in range(1, net.depth + 1):
            cols = layers[k] = []
            for i in range(1, net.sizes[k - 1] + 1):
                for j in range(1, net.sizes[k] + 1):
                    cols.append(
                        (
                            f"w{k}_{i}_{j}",
                            tr.dialect.element_of(sql.SQL("p.{}").format(_c(f"w{k}")), _index(net.sizes[k], i, j)),
                        )
                    )
            for j in range(1, net.sizes[k] + 1):
                if net.bias == "node":
                    bias = tr.dialect.element_of(sql.SQL("p.{}").format(_c(f"b{k}")), j)
                elif net.bias == "edge":
                    bias = _sum(
                        [
                            tr.dialect.element_of(sql.SQL("p.{}").format(_c(f"b{k}")), _index(net.sizes[k], i, j))
                            for i in range(1, net.sizes[k - 1] + 1)
                        ]
                    )
                else:
                    continue
                cols.append((f"bias{k}_{j}", bias))
        return layers

    def _act(self, k: int, i: int) -> str:
        return f"x{i}" if k == 0 else f"a{k}_{i}"

    def _input(self, tr: Training, pc: ParamColumns, k: int) -> Stage:
        net = tr.net
        n_in = net.sizes[k - 1]
        new = [
            (
                f"z{k}_{j}",
                sql.SQL("{s}{b}").format(
                    s=_sum(
                        [
                            sql.SQL("{w} * s.{a}").format(w=pc.ref(f"w{k}_{i}_{j}"), a=_c(self._act(k - 1, i)))
                            for i in range(1, n_in + 1)
                        ]
                    ),
                    b=self._bias(tr, pc, k, j),
                ),
            )
            for j in range(1, net.sizes[k] + 1)
        ]
        return Stage(("input", k), new, {self._act(k - 1, i) for i in range(1, n_in + 1)}, pc.join(k))

    def _activation(self, tr: Training, k: int) -> Stage:
        net = tr.net
        f = ACTIVATIONS[net.activation(k)]
        n = net.sizes[k]
        zs = {f"z{k}_{j}" for j in range(1, n + 1)}
        new: list[tuple[str, sql.Composable]]
        if f.elementwise:
            new = [
                (f"a{k}_{j}", sql.SQL(f.sql_value).format(z=sql.SQL("s.{}").format(_c(f"z{k}_{j}"))))
                for j in range(1, n + 1)
            ]
            return Stage(("activation", k), new, zs)
        # softmax: shift by the row's largest input, then normalise by the row's sum; the shift and the
        # exponentials stay available (the cross-entropy's log-sum-exp reads them)
        zmax = sql.SQL("greatest({})").format(sql.SQL(", ").join(_c(f"z{k}_{j}") for j in range(1, n + 1)))
        exps = sql.SQL(",\n          ").join(
            sql.SQL("{e} AS {name}").format(
                e=sql.SQL(f.sql_value).format(z=_c(f"z{k}_{j}"), zmax=_c("zmax")), name=_c(f"e{k}_{j}")
            )
            for j in range(1, n + 1)
        )
        total = _sum([sql.SQL("s.{}").format(_c(f"e{k}_{j}")) for j in range(1, n + 1)])
        new = [("zmax", sql.SQL("s.zmax"))]
        new += [(f"e{k}_{j}", sql.SQL("s.{}").format(_c(f"e{k}_{j}"))) for j in range(1, n + 1)]
        new += [
            (f"a{k}_{j}", sql.SQL("s.{e} / ({total})").format(e=_c(f"e{k}_{j}"), total=total))
            for j in range(1, n + 1)
        ]

        def source(src: sql.Composable) -> sql.Composable:
            return sql.SQL(
                "(\n        SELECT s.*,\n          {exps}\n"
                "        FROM (SELECT s.*, {zmax} AS zmax FROM {src} AS s) AS s\n      )"
            ).format(exps=exps, zmax=zmax, src=src)

        return Stage(("activation", k), new, zs, source=source)

    def _derivative(self, tr: Training, k: int, j: int) -> tuple[sql.Composable, set[str]]:
        """f'(z) of node j of layer k, from its activation where that is enough (so z is not carried
        past the activation), and the columns it reads."""
        f = ACTIVATIONS[tr.net.activation(k)]
        template = f.sql_derivative_from_a or f.sql_derivative
        z, a = f"z{k}_{j}", f"a{k}_{j}"
        reads = {name for name, slot in ((z, "{z}"), (a, "{a}")) if slot in template}
        expr = sql.SQL("(" + template + ")").format(z=sql.SQL("s.{}").format(_c(z)), a=sql.SQL("s.{}").format(_c(a)))
        return expr, reads

    def _error(self, tr: Training) -> Stage:
        net = tr.net
        K, n = net.depth, net.sizes[-1]
        loss = LOSSES[net.loss]
        y = [sql.SQL("s.{}").format(_c(f"a{K}_{j}")) for j in range(1, n + 1)]
        t = [sql.SQL("s.{}").format(_c(f"t{j}")) for j in range(1, n + 1)]
        z = [sql.SQL("s.{}").format(_c(f"z{K}_{j}")) for j in range(1, n + 1)]
        reads = {f"a{K}_{j}" for j in range(1, n + 1)} | {f"t{j}" for j in range(1, n + 1)}
        if loss.outputs is None:
            loss_sql = _sum([sql.SQL(loss.sql_value).format(y=y[j], t=t[j]) for j in range(n)])
            deltas = []
            for j in range(n):
                derivative, more = self._derivative(tr, K, j + 1)
                reads |= more
                deltas.append(
                    sql.SQL("({g}) * {d}").format(g=sql.SQL(loss.sql_gradient).format(y=y[j], t=t[j]), d=derivative)
                )
        else:
            reads |= {f"z{K}_{j}" for j in range(1, n + 1)}
            if net.output_activation == "softmax":
                lse: sql.Composable = sql.SQL("(s.zmax + ln({}))").format(
                    _sum([sql.SQL("s.{}").format(_c(f"e{K}_{j}")) for j in range(1, n + 1)])
                )
                reads |= {"zmax"} | {f"e{K}_{j}" for j in range(1, n + 1)}
            else:
                lse = sql.SQL("NULL")
            loss_sql = _sum(
                [
                    sql.SQL(SQL_CROSS_ENTROPY[net.output_activation]).format(z=z[j], t=t[j], lse=lse)
                    for j in range(n)
                ]
            )
            deltas = [sql.SQL("{y} - {t}").format(y=y[j], t=t[j]) for j in range(n)]
        new = [("loss", loss_sql)] + [(f"d{K}_{j + 1}", deltas[j]) for j in range(n)]
        return Stage(("error", K), new, reads)

    def _delta(self, tr: Training, pc: ParamColumns, k: int) -> Stage:
        net = tr.net
        reads = {f"d{k + 1}_{j}" for j in range(1, net.sizes[k + 1] + 1)}
        new = []
        for i in range(1, net.sizes[k] + 1):
            derivative, more = self._derivative(tr, k, i)
            reads |= more
            total = _sum(
                [
                    sql.SQL("{w} * s.{d}").format(w=pc.ref(f"w{k + 1}_{i}_{j}"), d=_c(f"d{k + 1}_{j}"))
                    for j in range(1, net.sizes[k + 1] + 1)
                ]
            )
            new.append((f"d{k}_{i}", sql.SQL("({s}) * {d}").format(s=total, d=derivative)))
        return Stage(("delta", k), new, reads, pc.join(k + 1))

    def _gradient_reads(self, tr: Training) -> set[str]:
        net = tr.net
        reads = {"loss"}
        for k in range(1, net.depth + 1):
            reads |= {self._act(k - 1, i) for i in range(1, net.sizes[k - 1] + 1)}
            reads |= {f"d{k}_{j}" for j in range(1, net.sizes[k] + 1)}
        return reads

    def _stages(self, tr: Training, pc: ParamColumns) -> list[Stage]:
        net = tr.net
        stages = []
        for k in range(1, net.depth + 1):
            stages += [self._input(tr, pc, k), self._activation(tr, k)]
        stages.append(self._error(tr))
        stages += [self._delta(tr, pc, k) for k in range(net.depth - 1, 0, -1)]
        return stages

    def _stage_bodies(
        self, tr: Training, stages: list[Stage], needed: set[str] | None = None, given: list[str] | None = None
    ) -> list[sql.Composable]:
        """Each stage's SELECT, carrying only the columns a later stage (or the gradient; or `needed`)
        reads, from the batch rows' columns (the inputs and targets; or `given`)."""
        net = tr.net
        available = given or [f"x{i}" for i in range(1, net.sizes[0] + 1)] + [
            f"t{j}" for j in range(1, net.sizes[-1] + 1)
        ]
        outputs = []
        for stage in stages:
            outputs.append((list(available), [name for name, _ in stage.new]))
            available = [c for c in available if c not in {n for n, _ in stage.new}] + [n for n, _ in stage.new]
        needed = set(needed) if needed is not None else self._gradient_reads(tr)
        keeps: list[tuple[list[str], list[tuple[str, sql.Composable]]]] = []
        for stage, (before, _) in zip(reversed(stages), reversed(outputs)):
            new = [(n, e) for n, e in stage.new if n in needed]
            new_names = {n for n, _ in new}
            keeps.append(([c for c in before if c in needed and c not in new_names], new))
            needed = (needed - new_names) | stage.reads
        keeps.reverse()
        bodies: list[sql.Composable] = []
        source: sql.Composable = sql.SQL("batch_rows")
        for stage, (keep, new) in zip(stages, keeps):
            # the columns carried on, on one line; then each new column on its own
            cols = [sql.SQL(", ").join(sql.SQL("s.{}").format(_c(c)) for c in keep)] if keep else []
            cols += [sql.SQL("{} AS {}").format(e, _c(n)) for n, e in new]
            src = stage.source(source) if stage.source else source
            bodies.append(
                sql.SQL("      SELECT\n        {cols}\n      FROM {src} AS s{join}").format(
                    cols=sql.SQL(",\n        ").join(cols), src=src, join=stage.join
                )
            )
            source = sql.Identifier(next(p.table for p in tr.phases if (p.kind, p.layer) == stage.key))
        return bodies

    def _gradient(self, tr: Training, source: str) -> sql.Composable:
        """Sums over the batch, as flat arrays in the order of the parameters': a[k-1]_i * d[k]_j per
        weight, d[k]_j per node (an edge bias (i, j) has node j's: the sum repeats per i, and the
        planner computes it once).

        PostgreSQL compares every aggregate of a query with every other (to compute equal ones once):
        ~2400 sums took ~100 ms to plan. Past SUMS_PER_QUERY sums, in a mini-batch training, each run
        of that many is its own query over the (then materialised) last phase, and the arrays are
        joined back together (digits, batches of 64: planning 94 -> 47 ms, 1.07x in all). A full batch
        keeps one scan: storing and re-reading its every sample cost more than the planning saved
        (8-256-1, 1000 samples: 0.95x)."""
        net = tr.net
        arrays: list[tuple[str, Sequence[sql.Composable]]] = []
        for k in range(1, net.depth + 1):
            n_in, n_out = net.sizes[k - 1], net.sizes[k]
            weights = [
                sql.SQL("sum({a} * {d})").format(a=_c(self._act(k - 1, i)), d=_c(f"d{k}_{j}"))
                for i in range(1, n_in + 1)
                for j in range(1, n_out + 1)
            ]
            arrays.append((f"gw{k}", weights))
            if net.bias != "none":
                nodes = [sql.SQL("sum({d})").format(d=_c(f"d{k}_{j}")) for j in range(1, n_out + 1)]
                arrays.append((f"gb{k}", nodes * (n_in if net.bias == "edge" else 1)))
        head: list[sql.Composable] = [sql.SQL("count(*) AS n"), sql.SQL("sum(loss) AS loss")]
        small_batches = tr.dialect.group_sums and tr.mini_batch and tr.batch_size <= MAX_GROUPED_BATCH
        if sum(len(terms) for _, terms in arrays) <= SUMS_PER_QUERY or not small_batches:
            cols = head + [sql.SQL("{} AS {}").format(tr.dialect.array_of(terms), _c(name)) for name, terms in arrays]
            return sql.SQL("      SELECT\n        {cols}\n      FROM {src}").format(
                cols=sql.SQL(",\n        ").join(cols), src=_c(source)
            )
        groups: list[sql.Composable] = [
            sql.SQL("(SELECT {} FROM {}) AS g0").format(sql.SQL(", ").join(head), _c(source))
        ]
        outputs: list[sql.Composable] = [sql.SQL("g0.n"), sql.SQL("g0.loss")]
        for name, terms in arrays:
            parts: list[sql.Composable] = []
            for start in range(0, len(terms), SUMS_PER_QUERY):
                alias = _c(f"g{len(groups)}")
                groups.append(
                    sql.SQL("(SELECT {} AS part FROM {}) AS {}").format(
                        tr.dialect.array_of(terms[start : start + SUMS_PER_QUERY]), _c(source), alias
                    )
                )
                parts.append(sql.SQL("{}.part").format(alias))
            outputs.append(sql.SQL("{} AS {}").format(tr.dialect.concat_of(parts), _c(name)))
        return sql.SQL("      SELECT\n        {cols}\n      FROM {groups}").format(
            cols=sql.SQL(",\n        ").join(outputs), groups=sql.SQL("\n      CROSS JOIN ").join(groups)
        )

    def _update_array(self, tr: Training, param: str) -> sql.Composable:
        """One parameter array after the step, with its optimizer state: a walk over its elements
        (unnest, in step with the gradient's and the state's arrays), each value computed once: the
        mean gradient, then the new moments, then the new parameter."""
        opt = tr.optimizer
        weight = param.startswith("w")
        state = list(opt.state)
        arrays = [sql.SQL("p.{}").format(_c(param)), sql.SQL("g.{}").format(_c(f"g{param}"))]
        arrays += [sql.SQL("p.{}").format(_c(f"{c}{param}")) for c in state]
        u = {name: sql.SQL("u.{}").format(_c(name)) for name in ("w", "g", "m", "v", "o")}
        g: sql.Composable = sql.SQL("u.g / g.n")
        if weight and opt.l2:
            g = sql.SQL("({g} + {l2} * u.w)").format(g=g, l2=sql.Literal(opt.l2))
        m_new, v_new = opt.sql_moments(u["g"], u["m"], u["v"])
        corrections = {name: sql.SQL("c.{}").format(_c(name)) for name, _ in opt.sql_corrections(sql.SQL("t"))}
        w_new = opt.sql_weight(u["w"], u["g"], u["m"], u["v"], sql.Literal(tr.rate), corrections)
        if weight:
            w_new = opt.sql_decay(w_new, u["w"], sql.Literal(tr.rate))
        state_cols = sql.SQL("").join(sql.SQL(", u.{}").format(_c(c)) for c in state)
        moments = sql.SQL("").join(
            sql.SQL(", {e} AS {c}").format(e=e, c=_c(c)) for c, e in zip(("m", "v"), (m_new, v_new)) if c in state
        )
        aggregates = [sql.SQL("array_agg({} ORDER BY u.o) AS w").format(w_new)]
        aggregates += [sql.SQL("array_agg(u.{c} ORDER BY u.o) AS {c}").format(c=_c(c)) for c in state]
        return sql.SQL(
            "(\n        SELECT {aggregates}\n"
            "        FROM (SELECT u.o, u.w, u.g{moments}\n"
            "              FROM (SELECT u.o, u.w, {g} AS g{state}\n"
            "                    FROM unnest({arrays}) WITH ORDINALITY AS u(w, g{names}, o) OFFSET 0) AS u\n"
            "              OFFSET 0) AS u\n"
            "      ) AS {alias}"
        ).format(
            aggregates=sql.SQL(", ").join(aggregates),
            moments=moments,
            g=g,
            state=state_cols,
            arrays=sql.SQL(", ").join(arrays),
            names=sql.SQL("").join(sql.SQL(", {}").format(_c(c)) for c in state),
            alias=_c(f"u{param}"),
        )

    def _update(self, tr: Training) -> sql.Composable:
        """The next state row: every parameter array (and its optimizer state) after one step."""
        opt = tr.optimizer
        names = self._state_names(tr)
        values: list[sql.Composable] = [
            sql.SQL("(SELECT epoch FROM next)"),
            sql.SQL("(SELECT batch FROM next)"),
            sql.Literal(tr.phases[-1].number),
        ]
        values += [sql.SQL("{}.w").format(_c(f"u{p}")) for p in names]
        values += [sql.SQL("{}.{}").format(_c(f"u{p}"), _c(c)) for p in names for c in opt.state]
        joins: list[sql.Composable] = [sql.SQL("prev AS p"), sql.SQL("gradient AS g")]
        corrections = opt.sql_corrections(sql.SQL("(p.t + 1)"))
        if corrections:
            values.append(sql.SQL("p.t + 1"))
            joins.append(
                sql.SQL("LATERAL (SELECT {}) AS c").format(
                    sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, _c(n)) for n, e in corrections)
                )
            )
        joins += [sql.SQL("LATERAL {}").format(self._update_array(tr, p)) for p in names]
        values += [sql.SQL("g.loss"), sql.SQL("g.n")]
        progress = tr.progress(
            sql.SQL("(SELECT epoch FROM next)"),
            sql.SQL("(SELECT batch FROM next)"),
            sql.SQL("g.loss / g.n"),
            sql.SQL("g.n"),
        )
        return sql.SQL("      SELECT\n        {}\n      FROM {joins}{where}").format(
            sql.SQL(",\n        ").join(values),
            joins=sql.SQL("\n      CROSS JOIN ").join(joins),
            where=sql.SQL("\n      WHERE true{}").format(progress) if tr.progress_run is not None else sql.SQL(""),
        )

    def forward_ctes(self, tr: Training) -> tuple[list[sql.Composable], str]:
        """The forward phases alone over `batch_rows` (sample, x1..): each sample's outputs, a{K}_j,
        in the CTE whose name comes second (predictions)."""
        net = tr.net
        pc = ParamColumns(self._param_columns(tr), _materialized(tr))
        stages = [s for k in range(1, net.depth + 1) for s in (self._input(tr, pc, k), self._activation(tr, k))]
        needed = {"sample"} | {f"a{net.depth}_{j}" for j in range(1, net.sizes[-1] + 1)}
        given = ["sample"] + [f"x{i}" for i in range(1, net.sizes[0] + 1)]
        ctes = pc.ctes() + self._phase_bodies(tr, stages, self._stage_bodies(tr, stages, needed, given))
        return ctes, next(p.table for p in tr.phases if (p.kind, p.layer) == stages[-1].key)

    def scored_ctes(self, tr: Training) -> tuple[list[sql.Composable], str]:
        """The forward phases and the error phase over `batch_rows` (sample, x1.., t1..): each sample's
        loss, as the training computes it, with its targets and output inputs (t_j, z{K}_j), in the CTE
        whose name comes second (a validation pass)."""
        net = tr.net
        pc = ParamColumns(self._param_columns(tr), _materialized(tr))
        stages = [s for k in range(1, net.depth + 1) for s in (self._input(tr, pc, k), self._activation(tr, k))]
        stages.append(self._error(tr))
        n_in, n_out = net.sizes[0], net.sizes[-1]
        needed = {"sample", "loss"} | {f"t{j}" for j in range(1, n_out + 1)}
        needed |= {f"z{net.depth}_{j}" for j in range(1, n_out + 1)}
        given = ["sample"] + [f"x{i}" for i in range(1, n_in + 1)] + [f"t{j}" for j in range(1, n_out + 1)]
        ctes = pc.ctes() + self._phase_bodies(tr, stages, self._stage_bodies(tr, stages, needed, given))
        return ctes, next(p.table for p in tr.phases if (p.kind, p.layer) == stages[-1].key)

    def _phase_ctes(self, tr: Training) -> list[sql.Composable]:
        """An update's parameter columns, phases and gradient, as CTEs over `prev` and `batch_rows`."""
        by_kind = {(p.kind, p.layer): p for p in tr.phases}
        ctes: list[sql.Composable] = []
        pc = ParamColumns(self._param_columns(tr), _materialized(tr))
        ctes += pc.ctes()
        stages = self._stages(tr, pc)
        ctes += self._phase_bodies(tr, stages, self._stage_bodies(tr, stages))
        source = by_kind[stages[-1].key].table
        ctes.append(
            sql.SQL(
                "    -- the gradient of the loss summed over the batch (the update divides by the batch's size)\n"
                "    gradient {mat} (\n{body}\n    )"
            ).format(mat=_materialized(tr), body=self._gradient(tr, source))
        )
        return ctes

    def _phase_bodies(self, tr: Training, stages: list[Stage], bodies: list[sql.Composable]) -> list[sql.Composable]:
        """Each stage as the CTE of its phase: its name, number and comment."""
        by_kind = {(p.kind, p.layer): p for p in tr.phases}
        ctes: list[sql.Composable] = []
        fence = tr.dialect.fence
        for stage, body in zip(stages, bodies):
            phase = by_kind[stage.key]
            ctes.append(
                sql.SQL(
                    "    -- phase {n} · {name}: {comment}\n    {cte} {mat} (\n{body}{fence}\n    )"
                ).format(
                    mat=sql.SQL("AS") if fence else _materialized(tr),
                    fence=sql.SQL(f"\n      {fence}") if fence else sql.SQL(""),
                    n=sql.SQL(str(phase.number)),
                    name=sql.SQL(phase.name),
                    comment=sql.SQL(phase.comment),
                    cte=sql.Identifier(phase.table),
                    body=body,
                )
            )
        return ctes

    def floor(self, tr: Training, rows: sql.Composable) -> sql.Composable:
        """One update's forward pass, error, deltas and gradient sums over `rows` (the samples, one
        wide row each) as a plain SELECT: no recursion and no update. The benchmark runs it once per
        epoch to measure what the arithmetic alone costs, the floor of interpreted SQL."""
        return sql.SQL(
            "WITH\n    prev ({columns}) AS MATERIALIZED (\n{start}\n    ),\n"
            "    batch_rows AS (\n      {rows}\n    ),\n{ctes}\nSELECT n, loss FROM gradient"
        ).format(
            columns=sql.SQL(", ").join(_c(c) for c in self._columns(tr)),
            start=self._start(tr),
            rows=rows,
            ctes=sql.SQL(",\n").join(self._phase_ctes(tr)),
        )

    def recursive_cte(self, tr: Training) -> sql.Composable:
        phases = tr.phases
        ctes: list[sql.Composable] = [
            sql.SQL(
                "    -- the state after the previous update (one row), while updates remain\n"
                "    prev AS (\n"
                "      SELECT * FROM train WHERE (epoch, batch) < ({e}, {b})\n"
                "    ),\n"
                "{next},\n"
                "    -- the samples of its batch, one row each\n"
                "    batch_rows {mat} (\n"
                "      {rows}\n"
                "    )"
            ).format(
                mat=_materialized(tr),
                e=sql.Literal(tr.last[0]),
                b=sql.Literal(tr.last[1]),
                next=next_cte(tr.batches_sql),
                rows=self._batch_rows(tr),
            )
        ]
        ctes += self._phase_ctes(tr)
        update = phases[-1]
        ctes.append(
            sql.SQL("    -- phase {n} · update: {comment}\n    {cte} AS (\n{body}\n    )").format(
                n=sql.SQL(str(update.number)),
                comment=sql.SQL(update.comment),
                cte=sql.Identifier(update.table),
                body=self._update(tr),
            )
        )
        return sql.SQL(
            "-- the training: each step of the recursion is one update, its phases the CTEs inside it;\n"
            "-- the row it carries holds the parameters as arrays and the loss of the update just made\n"
            "train ({columns}) AS (\n"
            "  -- phase 0 · start: the weights and biases as the tables hold them\n"
            "{start}\n"
            "  UNION ALL\n"
            "  (\n"
            "    WITH\n"
            "{ctes}\n"
            "    SELECT * FROM {last}\n"
            "  )\n"
            ")"
        ).format(
            columns=sql.SQL(", ").join(_c(c) for c in self._columns(tr)),
            start=self._start(tr),
            ctes=sql.SQL(",\n").join(ctes),
            last=sql.Identifier(update.table),
        )

    # --- validation ----------------------------------------------------------------------------

    def validation_ctes(self, tr: Training) -> list[sql.Composable]:
        """The held-out samples through the network as each epoch left it: loss and accuracy per epoch.

        The recursion's rows at the end of every epoch hold that epoch's parameters, so the forward
        pass runs once per (epoch, held-out sample) after the training, not inside it."""
        net = tr.net
        K = net.depth
        n_out = net.sizes[-1]
        ctes: list[sql.Composable] = [
            sql.SQL(
                "-- the held-out samples, one row each\nvalidation_rows {mat} (\n  {rows}\n)"
            ).format(mat=_materialized(tr), rows=self._pivot(tr, validation=True)),
            sql.SQL(
                "-- the parameters at the end of every epoch\n"
                "epoch_ends {mat} (\n  SELECT * FROM train WHERE phase = {p} AND batch = {nb}\n)"
            ).format(mat=_materialized(tr), p=sql.Literal(tr.phases[-1].number), nb=tr.batches_sql),
        ]
        ts = [_c(f"t{j}") for j in range(1, n_out + 1)]
        keep = sql.SQL(", ").join(
            [sql.SQL("s.epoch"), sql.SQL("s.sample"), *(sql.SQL("s.{}").format(t) for t in ts)]
        )
        xs = sql.SQL(", ").join(
            sql.SQL("v.x{i} AS {a}").format(i=sql.SQL(str(i)), a=_c(f"a0_{i}"))
            for i in range(1, net.sizes[0] + 1)
        )
        ctes.append(
            sql.SQL(
                "validation_0 {mat} (\n  SELECT e.epoch, v.sample, {ts}, {xs}\n"
                "  FROM validation_rows AS v CROSS JOIN (SELECT epoch FROM epoch_ends) AS e\n)"
            ).format(mat=_materialized(tr), ts=sql.SQL(", ").join(sql.SQL("v.{}").format(t) for t in ts), xs=xs)
        )
        for k in range(1, K + 1):
            f = ACTIVATIONS[net.activation(k)]
            zs = []
            for j in range(1, net.sizes[k] + 1):
                terms = [
                    sql.SQL("p.{w}[{at}] * s.{a}").format(
                        w=_c(f"w{k}"), at=_at(net.sizes[k], i, j), a=_c(f"a{k - 1}_{i}")
                    )
                    for i in range(1, net.sizes[k - 1] + 1)
                ]
                if net.bias == "node":
                    terms.append(sql.SQL("p.{b}[{j}]").format(b=_c(f"b{k}"), j=sql.Literal(j)))
                elif net.bias == "edge":
                    terms += [
                        sql.SQL("p.{b}[{at}]").format(b=_c(f"b{k}"), at=_at(net.sizes[k], i, j))
                        for i in range(1, net.sizes[k - 1] + 1)
                    ]
                zs.append(_sum(terms))
            if k < K:
                cols = sql.SQL(", ").join(
                    sql.SQL("{f} AS {a}").format(
                        f=sql.SQL(f.sql_value).format(z=sql.SQL("({})").format(z)), a=_c(f"a{k}_{j}")
                    )
                    for j, z in enumerate(zs, start=1)
                )
            else:  # the output layer keeps z too: the loss uses it
                cols = sql.SQL(", ").join(
                    sql.SQL("{z} AS {name}").format(z=z, name=_c(f"z{j}")) for j, z in enumerate(zs, start=1)
                )
            ctes.append(
                sql.SQL(
                    "validation_{k} {mat} (\n  SELECT {keep}, {cols}\n"
                    "  FROM validation_{prev} AS s JOIN epoch_ends AS p ON p.epoch = s.epoch\n)"
                ).format(mat=_materialized(tr), k=sql.SQL(str(k)), keep=keep, cols=cols, prev=sql.SQL(str(k - 1)))
            )
        z = [_c(f"z{j}") for j in range(1, n_out + 1)]
        zmax = sql.SQL("greatest({})").format(sql.SQL(", ").join(z))
        out = ACTIVATIONS[net.output_activation]
        if out.elementwise:
            ys = [sql.SQL(out.sql_value).format(z=zj) for zj in z]
        else:
            exps = [sql.SQL(out.sql_value).format(z=zj, zmax=zmax) for zj in z]
            ys = [sql.SQL("({e}) / ({total})").format(e=e, total=_sum(exps)) for e in exps]
        loss = LOSSES[net.loss]
        if loss.outputs is None:
            loss_sql = _sum(
                [sql.SQL(loss.sql_value).format(y=sql.SQL("({})").format(y), t=t) for y, t in zip(ys, ts)]
            )
        else:
            lse = sql.SQL("({m} + ln({s}))").format(
                m=zmax, s=_sum([sql.SQL("exp(greatest({z} - {m}, -700))").format(z=zj, m=zmax) for zj in z])
            )
            loss_sql = _sum(
                [
                    sql.SQL(SQL_CROSS_ENTROPY[net.output_activation]).format(z=zj, t=t, lse=lse)
                    for zj, t in zip(z, ts)
                ]
            )
        if net.output_activation == "softmax":  # classification: the largest output is the class
            correct: sql.Composable = sql.SQL(
                "(array_position(ARRAY[{z}], {zmax}) = array_position(ARRAY[{t}], greatest({t})))::int"
            ).format(z=sql.SQL(", ").join(z), zmax=zmax, t=sql.SQL(", ").join(ts))
        else:
            correct = sql.SQL("NULL::int")
        ctes.append(
            sql.SQL(
                "-- the mean loss (and, for a softmax output, the accuracy) over the held-out samples, per epoch\n"
                "validation AS (\n  SELECT epoch, avg({loss}) AS loss, avg({correct}) AS accuracy, count(*) AS samples\n"
                "  FROM validation_{K}\n  GROUP BY epoch\n)"
            ).format(loss=loss_sql, correct=correct, K=sql.SQL(str(K)))
        )
        return ctes

    # --- reading the result ----------------------------------------------------------------------

    def trained(self, tr: Training) -> sql.Composable:
        """The last state row's arrays as rows (quantity, layer, i, j, value[, m, v]), like the long layout."""
        net, opt = tr.net, tr.optimizer
        parts = []
        last = sql.SQL("(SELECT * FROM train WHERE (epoch, batch, phase) = ({e}, {b}, {p})) AS s").format(
            e=sql.Literal(tr.last[0]), b=sql.Literal(tr.last[1]), p=sql.Literal(tr.phases[-1].number)
        )
        for k in range(1, net.depth + 1):
            for quantity, name in ((WEIGHT, f"w{k}"), (BIAS, f"b{k}")):
                if quantity == BIAS and net.bias == "none":
                    continue
                node_bias = quantity == BIAS and net.bias == "node"
                # the flat arrays' element (i, j) (see flat_sql)
                index = sql.SQL("[j]") if node_bias else sql.SQL("[(i - 1) * {} + j]").format(sql.Literal(net.sizes[k]))
                state = sql.SQL("").join(
                    sql.SQL(", s.{}{} AS {}").format(_c(f"{c}{name}"), index, _c(c)) for c in opt.state
                )
                rows = (
                    sql.SQL("generate_series(1, {}) AS j").format(sql.Literal(net.sizes[k]))
                    if node_bias
                    else sql.SQL("generate_series(1, {}) AS i, generate_series(1, {}) AS j").format(
                        sql.Literal(net.sizes[k - 1]), sql.Literal(net.sizes[k])
                    )
                )
                parts.append(
                    sql.SQL(
                        "  SELECT {q}::text AS quantity, {k} AS layer, {i} AS i, j, s.{name}{index} AS value{state}\n"
                        "  FROM {last}, {rows}"
                    ).format(
                        q=sql.Literal(quantity),
                        k=sql.Literal(k),
                        i=sql.SQL("NULL::int") if node_bias else sql.SQL("i"),
                        name=_c(name),
                        index=index,
                        state=state,
                        last=last,
                        rows=rows,
                    )
                )
        if opt.name == "adam":
            pad = sql.SQL(", NULL::float8" * len(opt.state))
            parts.append(
                sql.SQL("  SELECT {q}, 0, NULL, NULL, s.t{pad}\n  FROM {last}").format(
                    q=sql.Literal(STEP), pad=pad, last=last
                )
            )
        return sql.SQL("\n  UNION ALL\n").join(parts)

    def losses(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "SELECT epoch, sum(loss) AS loss, sum(samples) AS samples FROM train WHERE phase = {p} GROUP BY epoch"
        ).format(p=sql.Literal(tr.phases[-1].number))

    def trace(self, tr: Training, phase: object) -> sql.Composable:
        raise NotImplementedError("the wide layout does not trace: --trace uses the long layout")
