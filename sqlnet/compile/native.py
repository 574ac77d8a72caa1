"""The native layout: the wide layout's statement (one recursive CTE, a row of parameter arrays per
update, the same update and write-back) whose phases call sqlnet's C kernels (``sqlnet_kernels``,
``sqlnet/native/``) instead of spelling out every node's arithmetic.

The samples are rows of arrays (sample, x float8[], t float8[]), read from the long tables with no
pivot, so no statement grows with the layer widths. Each update cuts its batch into chunks of up to
CHUNK samples, each chunk one row holding its samples as matrices; each phase is one CTE that adds one
column to the chunk's row by one kernel call (the input of layer k, its activation, the error and output
deltas, each hidden layer's deltas); the gradient CTE sums the chunks' gradients with the ``vsum``
aggregate into the wide layout's arrays (gw1, gb1, ...), and the wide layout's update takes over.
Every formula is the SQL layouts' (sqlnet/model/functions.py), computed in the same order, so the
kernels and the SQL agree to rounding (the order of the gradient's sums differs by chunk).
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.shared import data_select
from sqlnet.compile.training import Training
from sqlnet.compile.wide import WideLayout
from sqlnet.compile.wide_phases import _c

KERNELS = "sqlnet_kernels"  # the extension's schema: every call is qualified with it
CHUNK = 1000  # samples per kernel call: big enough that the per-row cost vanishes, small enough for cache


def _k(function: str) -> sql.Composable:
    return sql.Identifier(KERNELS, function)


class NativeLayout(WideLayout):
    name = "native"

    def _rows(self, tr: Training) -> sql.Composable:
        """One row per training sample, straight from the long tables: sample, x (its inputs in node
        order), t (its targets)."""
        t = tr.tables
        return sql.SQL(
            "SELECT * FROM (SELECT sample, array_agg(value ORDER BY node) AS x FROM ({x}) AS x GROUP BY sample) AS x\n"
            "  JOIN (SELECT sample, array_agg(value ORDER BY node) AS t FROM ({t}) AS t GROUP BY sample) AS t "
            "USING (sample)"
        ).format(x=data_select(tr, t.inputs), t=data_select(tr, t.outputs))

    def _bias_array(self, tr: Training, k: int) -> sql.Composable:
        if tr.net.bias == "none":
            return sql.SQL("'{{}}'::float8[]")
        return sql.SQL("p.{}").format(_c(f"b{k}"))

    def _phase_ctes(self, tr: Training) -> list[sql.Composable]:
        net = tr.net
        K = net.depth
        by_kind = {(p.kind, p.layer): p for p in tr.phases}
        ctes: list[sql.Composable] = [
            sql.SQL(
                "    -- the batch in chunks of up to {n} samples, each one row of matrices (a sample per row,\n"
                "    -- in sample order): a0, the inputs; t, the targets; n, how many samples\n"
                "    chunks AS (\n"
                "      SELECT array_agg(x ORDER BY sample) AS a0, array_agg(t ORDER BY sample) AS t, count(*) AS n\n"
                "      FROM (SELECT b.*, (row_number() OVER (ORDER BY b.sample) - 1) / {n} AS chunk FROM batch_rows AS b) AS b\n"
                "      GROUP BY chunk\n"
                "      OFFSET 0\n"
                "    )"
            ).format(n=sql.Literal(CHUNK))
        ]
        steps: list[tuple[tuple[str, int], str, sql.Composable]] = []
        for k in range(1, K + 1):
            steps.append((("input", k), f"z{k}", sql.SQL("{f}(s.{a}, p.{w}, {b}, {n})").format(
                f=_k("dense"), a=_c(f"a{k - 1}"), w=_c(f"w{k}"), b=self._bias_array(tr, k), n=sql.Literal(net.sizes[k])
            )))  # fmt: skip
            steps.append((("activation", k), f"a{k}", sql.SQL("{f}(s.{z}, {name})").format(
                f=_k("activate"), z=_c(f"z{k}"), name=sql.Literal(net.activation(k))
            )))  # fmt: skip
        error = [sql.SQL("s.{}").format(_c(f"a{K}")), sql.SQL("s.{}").format(_c(f"z{K}")), sql.SQL("s.t"),
                 sql.Literal(net.loss), sql.Literal(net.output_activation)]  # fmt: skip
        for k in range(K - 1, 0, -1):
            steps.append((("delta", k), f"d{k}", sql.SQL("{f}(s.{d}, p.{w}, s.{a}, {name})").format(
                f=_k("backward"), d=_c(f"d{k + 1}"), w=_c(f"w{k + 1}"), a=_c(f"a{k}"), name=sql.Literal(net.activation(k))
            )))  # fmt: skip
        source = "chunks"
        for key, column, call in steps[: 2 * K]:
            ctes.append(self._phase(tr, by_kind[key], source, sql.SQL("{} AS {}").format(call, _c(column))))
            source = by_kind[key].table
        ctes.append(self._phase(tr, by_kind[("error", K)], source, sql.SQL(
            "{loss}({args}) AS loss, {delta}({args}) AS {d}"
        ).format(loss=_k("loss"), delta=_k("output_delta"), args=sql.SQL(", ").join(error), d=_c(f"d{K}"))))  # fmt: skip
        source = by_kind[("error", K)].table
        for key, column, call in steps[2 * K :]:
            ctes.append(self._phase(tr, by_kind[key], source, sql.SQL("{} AS {}").format(call, _c(column))))
            source = by_kind[key].table
        sums: list[sql.Composable] = [sql.SQL("sum(s.n)::bigint AS n"), sql.SQL("sum(s.loss) AS loss")]
        for k in range(1, K + 1):
            sums.append(sql.SQL("{v}({outer}(s.{a}, s.{d})) AS {g}").format(
                v=_k("vsum"), outer=_k("outer_product"), a=_c(f"a{k - 1}"), d=_c(f"d{k}"), g=_c(f"gw{k}")
            ))  # fmt: skip
            if net.bias != "none":
                times = net.sizes[k - 1] if net.bias == "edge" else 1
                sums.append(sql.SQL("{v}({colsum}(s.{d}, {times})) AS {g}").format(
                    v=_k("vsum"), colsum=_k("colsum"), d=_c(f"d{k}"), times=sql.Literal(times), g=_c(f"gb{k}")
                ))  # fmt: skip
        ctes.append(
            sql.SQL(
                "    -- the gradient of the loss summed over the batch: each chunk's a'd (and column sums of d),\n"
                "    -- summed element by element (the update divides by the batch's size)\n"
                "    gradient AS MATERIALIZED (\n      SELECT\n        {sums}\n      FROM {src} AS s\n    )"
            ).format(sums=sql.SQL(",\n        ").join(sums), src=sql.Identifier(source))
        )
        return ctes

    def _phase(self, tr: Training, phase: object, source: str, column: sql.Composable) -> sql.Composable:
        """One phase: the chunks' rows so far, with one column more, computed once per chunk (the fence
        keeps the planner from copying the call into a later phase's expressions)."""
        from sqlnet.model.phases import Phase

        assert isinstance(phase, Phase)
        return sql.SQL(
            "    -- phase {n} · {name}: {comment}\n"
            "    {cte} AS (\n      SELECT s.*, {column}\n      FROM {src} AS s CROSS JOIN prev AS p\n      OFFSET 0\n    )"
        ).format(
            n=sql.SQL(str(phase.number)), name=sql.SQL(phase.name), comment=sql.SQL(phase.comment),
            cte=sql.Identifier(phase.table), column=column, src=sql.Identifier(source),
        )  # fmt: skip
