"""The wide layout's phases of one update: each a SELECT over the one before, one row per sample and a
column per node (``x3``, ``z1_2``, ``a1_2``, ``d1_2``), the parameters read from one-row CTEs of plain
columns (``w1_2_3``), and the gradient's sums over the batch.

``WidePhases`` is what every statement that runs the network shares: the PostgreSQL training
(``sqlnet.compile.wide.WideLayout``, its subclass, which adds the state row, the update and the
recursion), the forward pass of predictions, the validation pass and Spark's updates. The columns'
names are defined and read here only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from sqlnet.compile.training import Training
from sqlnet.model.functions import ACTIVATIONS, LOSSES, SQL_CROSS_ENTROPY
from sqlnet.model.network import Network, Params

PARAMS_PER_CTE = 1000
SUMS_PER_QUERY = 256
MAX_GROUPED_BATCH = 1024


def _index(n_out: int, i: int, j: int) -> int:
    """The flat index of element (i, j) of a matrix with n_out columns."""
    return (i - 1) * n_out + j


def _at(n_out: int, i: int, j: int) -> sql.Composable:
    return sql.Literal(_index(n_out, i, j))


def _c(name: str) -> sql.Composable:
    """A column sqlnet names itself (x3, z1_2, ...): letters and numbers only, never user text."""
    return sql.SQL(name)


def _materialized(tr: Training) -> sql.Composable:
    """How this engine asks for a CTE computed once: every phase reads the one before it several times."""
    return sql.SQL(tr.dialect.materialized)


def correct(tr: Training, z: Sequence[sql.Composable], t: Sequence[sql.Composable]) -> sql.Composable:
    """A classifier's hit, on every engine: 1 where the largest output (before softmax) is at the largest
    target's node, else 0; NULL for a network that does not classify (no softmax output)."""
    d = tr.dialect
    if tr.net.output_activation != "softmax":
        return d.cast(sql.SQL("NULL"), "int")

    def top(xs: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("array_position({}, greatest({}))").format(d.array_of(xs), sql.SQL(", ").join(xs))

    return d.cast(sql.SQL("({} = {})").format(top(z), top(t)), "int")


def _sum(terms: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" + ").join(terms) if terms else sql.SQL("0")


class ParamColumns:
    """Where a step's expressions read the parameters: one-row CTEs of plain columns, one or more
    per layer (reading a column costs ~20 ns a sample, subscripting a float8[] ~80 ns). A CTE holds
    at most PARAMS_PER_CTE columns (a target list may have 1664 entries); a phase joins only the
    CTEs of the layer it reads."""

    def __init__(
        self, layers: dict[int, list[tuple[str, sql.Composable]]], materialized: sql.Composable,
        source: str = "prev", key: str | None = None,
    ) -> None:  # fmt: skip
        """`source`: the one-row state the parameters are read from; or, with `key`, a state row per value of
        that column (the validation's: one per epoch), each phase's rows joined to theirs by it."""
        self.source, self.key = source, key
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
                        "    {name} {mat} (\n      SELECT\n        {key}{cols}\n      FROM {source} AS p\n    )"
                    ).format(
                        k=sql.SQL(str(k)),
                        of=sql.SQL(of),
                        name=_c(name),
                        key=sql.SQL(f"p.{self.key},\n        ") if self.key else sql.SQL(""),
                        source=_c(self.source),
                        mat=self.materialized,
                        cols=sql.SQL(",\n        ").join(sql.SQL("{} AS {}").format(e, _c(c)) for c, e in chunk),
                    )
                )
        return out

    def join(self, k: int) -> sql.Composable:
        if self.key:
            return sql.SQL("").join(
                sql.SQL(" JOIN {n} ON {n}.{k} = s.{k}").format(n=_c(name), k=_c(self.key)) for name, _ in self.parts[k]
            )
        return sql.SQL("").join(sql.SQL(" CROSS JOIN {}").format(_c(name)) for name, _ in self.parts[k])


class ConstantColumns(ParamColumns):
    """The parameters as constants, under the names ParamColumns gives them (an exported view or function,
    which reads no table): each a literal, nothing to join (edge biases summed once here, in node order)."""

    def __init__(self, net: Network, params: Params) -> None:
        super().__init__({}, sql.SQL("AS"))
        self.values: dict[str, float] = {}
        for k in range(1, net.depth + 1):
            for i in range(1, net.sizes[k - 1] + 1):
                for j in range(1, net.sizes[k] + 1):
                    self.values[f"w{k}_{i}_{j}"] = float(params.weights[k - 1][i - 1][j - 1])
            if net.bias != "none":
                for j in range(1, net.sizes[k] + 1):
                    self.values[f"bias{k}_{j}"] = float(sum(row[j - 1] for row in params.biases[k - 1]))

    def ref(self, name: str) -> sql.Composable:
        return sql.Literal(self.values[name])

    def ctes(self) -> list[sql.Composable]:
        return []

    def join(self, k: int) -> sql.Composable:
        return sql.SQL("")


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


class WidePhases:
    """The phases of one update, for a training's network and dialect."""

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

    def forward_ctes(self, tr: Training, pc: ParamColumns | None = None) -> tuple[list[sql.Composable], str]:
        """The forward phases alone over `batch_rows` (sample, x1..): each sample's outputs, a{K}_j,
        in the CTE whose name comes second (predictions). The parameters: the state row's (`prev`), or `pc`
        (``ConstantColumns``: written in as constants)."""
        net = tr.net
        pc = pc or ParamColumns(self._param_columns(tr), _materialized(tr))
        stages = [s for k in range(1, net.depth + 1) for s in (self._input(tr, pc, k), self._activation(tr, k))]
        needed = {"sample"} | {f"a{net.depth}_{j}" for j in range(1, net.sizes[-1] + 1)}
        given = ["sample"] + [f"x{i}" for i in range(1, net.sizes[0] + 1)]
        ctes = pc.ctes() + self._phase_bodies(tr, stages, self._stage_bodies(tr, stages, needed, given))
        return ctes, next(p.table for p in tr.phases if (p.kind, p.layer) == stages[-1].key)

    def scored_ctes(
        self, tr: Training, pc: ParamColumns | None = None, keep: tuple[str, ...] = ()
    ) -> tuple[list[sql.Composable], str]:
        """The forward phases and the error phase over `batch_rows` (sample, x1.., t1.., and the columns
        `keep`): each sample's loss, as the training computes it, with its targets and output inputs (t_j,
        z{K}_j), in the CTE whose name comes second (a validation pass). The parameters: `prev`'s, or `pc`'s."""
        net = tr.net
        pc = pc or ParamColumns(self._param_columns(tr), _materialized(tr))
        stages = [s for k in range(1, net.depth + 1) for s in (self._input(tr, pc, k), self._activation(tr, k))]
        stages.append(self._error(tr))
        n_in, n_out = net.sizes[0], net.sizes[-1]
        needed = {"sample", "loss", *keep} | {f"t{j}" for j in range(1, n_out + 1)}
        needed |= {f"z{net.depth}_{j}" for j in range(1, n_out + 1)}
        given = [*keep, "sample"] + [f"x{i}" for i in range(1, n_in + 1)] + [f"t{j}" for j in range(1, n_out + 1)]
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
