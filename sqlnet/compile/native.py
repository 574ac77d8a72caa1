"""The native layout: the wide layout's statement (one recursive CTE, a row of parameter arrays per
update, the same update and write-back) whose phases call sqlnet's C kernels (``sqlnet_kernels``,
``sqlnet/native/``) instead of spelling out every node's arithmetic.

The samples are rows of arrays (sample, x float8[], t float8[]), read from the long tables with no
pivot, so no statement grows with the layer widths, and cut into chunks of up to CHUNK samples, each
chunk one row holding its samples as matrices (once, where the batches never change; per update for
shuffled batches); each phase is one CTE that adds one
column to the chunk's row by one kernel call (the input of layer k, its activation, the error and output
deltas, each hidden layer's deltas); the gradient CTE sums the chunks' gradients with the ``vsum``
aggregate into the wide layout's arrays (gw1, gb1, ...), and the wide layout's update takes over.
Every formula is the SQL layouts' (sqlnet/model/functions.py), computed in the same order, so the
kernels and the SQL agree to rounding (the order of the gradient's sums differs by chunk).
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.shared import data_select, shuffled_batches
from sqlnet.compile.training import BATCH_TABLE, Training
from sqlnet.compile.wide import WIDE_TABLE, WideLayout
from sqlnet.compile.wide_phases import _c, _materialized

KERNELS = "sqlnet_kernels"  # the extension's schema: every call is qualified with it
CHUNK = 1000  # samples per kernel call: big enough that the per-row cost vanishes, small enough for cache


def _k(function: str) -> sql.Composable:
    return sql.Identifier(KERNELS, function)


def _array_table(comment: sql.Composable, columns: str, arrays: tuple[str, ...], rows: sql.Composable) -> list[sql.Composable]:
    """The temp table sqlnet_wide of `columns` (sqlnet's own text), its `arrays` stored uncompressed, filled
    with `rows`."""
    return [
        sql.SQL("-- {comment}\nCREATE TEMP TABLE sqlnet_wide ({columns})").format(comment=comment, columns=sql.SQL(columns)),
        sql.SQL("-- its arrays stored uncompressed: compressed, every update would decompress them again\nALTER TABLE {w} {alter}").format(
            w=WIDE_TABLE, alter=sql.SQL(", ").join(sql.SQL("ALTER {} SET STORAGE EXTERNAL").format(sql.Identifier(a)) for a in arrays)
        ),
        sql.SQL("INSERT INTO {w}\n{rows}").format(w=WIDE_TABLE, rows=rows),
    ]  # fmt: skip


class NativeLayout(WideLayout):
    name = "native"

    def _rows(self, tr: Training) -> sql.Composable:
        """One row per training sample, straight from the long tables: sample, x (its inputs in node
        order), t (its targets); the ``place`` aggregate puts each value at its node by hashing the rows
        by sample (array_agg(value ORDER BY node) would sort every row of the inputs)."""
        t = tr.tables
        net = tr.net
        return sql.SQL(
            "SELECT * FROM (SELECT sample, {place}(node, value, {n_in}) AS x FROM ({x}) AS x GROUP BY sample) AS x\n"
            "  JOIN (SELECT sample, {place}(node, value, {n_out}) AS t FROM ({t}) AS t GROUP BY sample) AS t "
            "USING (sample)"
        ).format(
            place=_k("place"), n_in=sql.Literal(net.sizes[0]), n_out=sql.Literal(net.sizes[-1]),
            x=data_select(tr, t.inputs), t=data_select(tr, t.outputs),
        )  # fmt: skip

    def _chunked(self, rows: sql.Composable, by_batch: bool = False) -> sql.Composable:
        """Rows of samples (sample, x, t[, batch]) as chunks of up to CHUNK samples (of one batch, `by_batch`),
        each one row of matrices in sample order: a0, the inputs; t, the targets; n, how many."""
        return sql.SQL(
            "SELECT {batch}array_agg(x ORDER BY sample) AS a0, array_agg(t ORDER BY sample) AS t, count(*) AS n\n"
            "  FROM (SELECT r.*, (row_number() OVER ({part}ORDER BY r.sample) - 1) / {n} AS chunk FROM ({rows}) AS r) AS r\n"
            "  GROUP BY {group}chunk"
        ).format(
            batch=sql.SQL("batch, " if by_batch else ""), part=sql.SQL("PARTITION BY r.batch " if by_batch else ""),
            group=sql.SQL("batch, " if by_batch else ""), n=sql.Literal(CHUNK), rows=rows,
        )  # fmt: skip

    def preparation(self, tr: Training, again: bool = False) -> list[sql.Composable]:
        """Mini-batches in sampleId order: each batch's chunks, made once (the batches never change);
        shuffled ones: the samples, one row of arrays each, and each epoch's batches, as the wide layout
        keeps them. Either temp table keeps its arrays as they are (STORAGE EXTERNAL): a chunk or a wide
        sample is past TOAST's 2 kB, and pglz would compress it once and decompress it at every update
        (digits: ~20 of its 70 ms)."""
        if not tr.mini_batch:
            return []
        if tr.shuffle is not None:
            if again:
                return super().preparation(tr, again)
            return [
                sql.SQL("DROP TABLE IF EXISTS {w}, {b}").format(w=WIDE_TABLE, b=BATCH_TABLE),
                *_array_table(sql.SQL("one row per sample, indexed by sample"), "sample bigint, x float8[], t float8[]",
                              ("x", "t"), self._rows(tr)),
                sql.SQL("CREATE INDEX ON {} (sample)").format(WIDE_TABLE),
                *shuffled_batches(tr, sql.SQL("SELECT sample FROM {}").format(WIDE_TABLE)),
                # the key column alone: statistics of the arrays (which ANALYZE reads whole) steer no plan
                sql.SQL("ANALYZE {w} (sample), {b}").format(w=WIDE_TABLE, b=BATCH_TABLE),
            ]  # fmt: skip
        if again:
            return []
        batched = sql.SQL("SELECT (dense_rank() OVER (ORDER BY sample) - 1) / {n} + 1 AS batch, * FROM ({rows}) AS d").format(
            n=sql.Literal(tr.batch_size), rows=self._rows(tr)
        )  # fmt: skip
        comment = sql.SQL("each batch of {n} consecutive samples by sampleId as chunks of matrices").format(
            n=sql.Literal(tr.batch_size)
        )
        return [
            sql.SQL("DROP TABLE IF EXISTS {}").format(WIDE_TABLE),
            *_array_table(comment, "batch bigint, a0 float8[], t float8[], n bigint", ("a0", "t"),
                          self._chunked(batched, by_batch=True)),
            sql.SQL("CREATE INDEX ON {} (batch)").format(WIDE_TABLE),
            sql.SQL("ANALYZE {} (batch)").format(WIDE_TABLE),  # not the arrays: ~3 of digits' ~50 ms
        ]  # fmt: skip

    def data_ctes(self, tr: Training) -> sql.Composable:
        if tr.mini_batch:
            return super().data_ctes(tr)
        return sql.SQL(
            "-- the samples as chunks of matrices, made once: every update reads the same\ndata {mat} (\n  {chunks}\n)"
        ).format(mat=_materialized(tr), chunks=self._chunked(self._rows(tr)))

    def _batch_rows(self, tr: Training) -> sql.Composable:
        """The chunks of the update's batch."""
        if not tr.mini_batch:
            return sql.SQL("SELECT * FROM data")
        if tr.shuffle is None:
            return sql.SQL("SELECT a0, t, n FROM {w} WHERE batch = (SELECT batch FROM next)").format(w=WIDE_TABLE)
        return self._chunked(super()._batch_rows(tr))

    def _bias_array(self, tr: Training, k: int) -> sql.Composable:
        if tr.net.bias == "none":
            return sql.SQL("'{}'::float8[]")  # not formatted: the braces are the empty array's
        return sql.SQL("p.{}").format(_c(f"b{k}"))

    def _phase_ctes(self, tr: Training) -> list[sql.Composable]:
        net = tr.net
        K = net.depth
        by_kind = {(p.kind, p.layer): p for p in tr.phases}
        ctes: list[sql.Composable] = []
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
        source = "batch_rows"
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

    def _update(self, tr: Training) -> sql.Composable:
        """The next state row: each parameter array (and its optimizer state) after one step, computed by
        the step kernel element by element as the wide layout's SQL walk computes it."""
        opt = tr.optimizer
        names = self._state_names(tr)
        empty = sql.SQL("'{}'::float8[]")  # not formatted: the braces are the empty array's
        t = sql.SQL("p.t + 1") if opt.name == "adam" else sql.SQL("0")

        def step(param: str, output: str) -> sql.Composable:
            weight = param.startswith("w")
            state = [sql.SQL("p.{}").format(_c(f"{c}{param}")) if c in opt.state else empty for c in ("m", "v")]
            args = [
                sql.SQL("p.{}").format(_c(param)), sql.SQL("g.{}").format(_c(f"g{param}")), sql.SQL("g.n"), *state,
                t, sql.Literal(tr.rate), sql.Literal(opt.name), sql.Literal(opt.momentum), sql.Literal(opt.nesterov),
                sql.Literal(opt.beta1), sql.Literal(opt.beta2), sql.Literal(opt.epsilon),
                sql.Literal(opt.l2 if weight else 0.0), sql.Literal(opt.weight_decay if weight else 0.0),
                sql.Literal(output),
            ]  # fmt: skip
            return sql.SQL("{}({})").format(_k("step"), sql.SQL(", ").join(args))

        values: list[sql.Composable] = [
            sql.SQL("(SELECT epoch FROM next)"),
            sql.SQL("(SELECT batch FROM next)"),
            sql.Literal(tr.phases[-1].number),
        ]
        values += [step(p, "w") for p in names]
        values += [step(p, c) for p in names for c in opt.state]
        if opt.name == "adam":
            values.append(sql.SQL("p.t + 1"))
        values += [sql.SQL("g.loss"), sql.SQL("g.n")]
        progress = tr.progress(
            sql.SQL("(SELECT epoch FROM next)"), sql.SQL("(SELECT batch FROM next)"), sql.SQL("g.loss / g.n"),
            sql.SQL("g.n"),
        )  # fmt: skip
        return sql.SQL("      SELECT\n        {}\n      FROM prev AS p CROSS JOIN gradient AS g{where}").format(
            sql.SQL(",\n        ").join(values),
            where=sql.SQL("\n      WHERE true{}").format(progress) if tr.progress_run is not None else sql.SQL(""),
        )

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
