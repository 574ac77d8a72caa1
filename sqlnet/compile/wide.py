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

The layout is three modules, one class: ``wide_phases`` (the phases of one update, shared by every
statement that runs the network: training, validation, predictions, Spark), this one (the data, the
state row the recursion carries, each optimizer's update and the recursion itself) and
``wide_results`` (what the statement reads of the recursion once it has run). They read and write the
same column names (``a1_2``, ``w1_2_3``, ``gw1``, ...), each defined in one of them.
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.dialect import POSTGRES, Dialect
from sqlnet.compile.shared import data_select, next_block_batches, shuffled_batches
from sqlnet.compile.training import BATCH_TABLE, STATE_TABLE, Training
from sqlnet.compile.wide_phases import WidePhases, _c, _materialized
from sqlnet.compile.wide_results import WideResults
from sqlnet.model.network import Network
from sqlnet.model.phases import BIAS, STEP, WEIGHT

MAX_SAMPLE_COLUMNS = 1500
WIDE_TABLE = sql.Identifier("pg_temp", "sqlnet_wide")


def sample_columns(net: Network) -> int:
    """How many columns the widest per-sample stage has."""
    return 2 + net.sizes[0] + net.sizes[-1] + 3 * sum(net.sizes[1:]) + 2 * net.sizes[-1] + 3


def flat_sql(
    table: sql.Composable, i: sql.Composable, j: sql.Composable, value: sql.Composable, dialect: Dialect = POSTGRES
) -> sql.Composable:
    """A matrix as one flat array in row-major order (element (i, j) at (i - 1) * columns + j): the
    update walks it with unnest, which reads a 2D array in the same order."""
    return dialect.ordered_array(value, [i, j], table)


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


# a join passes at most 32,767 columns: a phase joins its layer's parameter columns (n_in x n_out weights
# and n_out biases, in CTEs of PARAMS_PER_CTE) to the sample's; kept below it with a margin
MAX_JOIN_COLUMNS = 32_000


def too_wide(net: Network) -> str | None:
    """Why the wide layout cannot hold the network (a statement would pass PostgreSQL's limits), or None."""
    if sample_columns(net) > MAX_SAMPLE_COLUMNS:
        return f"the network needs {sample_columns(net)} columns per sample (at most {MAX_SAMPLE_COLUMNS})"
    widest = max(net.sizes[k - 1] * net.sizes[k] + net.sizes[k] for k in range(1, net.depth + 1))
    if widest + sample_columns(net) > MAX_JOIN_COLUMNS:
        return (
            f"a layer of {widest} parameters would join more columns than PostgreSQL allows (32,767 in a join)"
        )
    return None


def fits(net: Network) -> bool:
    return too_wide(net) is None


class WideLayout(WideResults, WidePhases):
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

    def _rows(self, tr: Training) -> sql.Composable:
        """The training samples as the phases read them: here the pivot (the native layout: arrays)."""
        return self._pivot(tr)

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
                ).format(n=sql.Literal(tr.batch_size), pivot=self._rows(tr)),
                sql.SQL("CREATE INDEX ON {} (batch)").format(WIDE_TABLE),
                sql.SQL("ANALYZE {}").format(WIDE_TABLE),
            ]
        return [
            drop,
            sql.SQL(
                "-- one row per sample, indexed by sample\nCREATE TEMP TABLE sqlnet_wide AS {pivot}"
            ).format(pivot=self._rows(tr)),
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
        ).format(mat=_materialized(tr), pivot=self._rows(tr))

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

    def param_arrays(self, tr: Training) -> list[tuple[str, sql.Composable]]:
        """The weights tables as the state row's arrays: w1 (row i, column j at (i - 1) * n_out + j), b1, ..."""
        arrays: list[tuple[str, sql.Composable]] = []
        for k, w in enumerate(tr.tables.weights, start=1):
            arrays.append((f"w{k}", flat_sql(w.ident, w.col("in"), w.col("out"), w.col("value"), tr.dialect)))
            if tr.net.bias == "edge":
                arrays.append((f"b{k}", flat_sql(w.ident, w.col("in"), w.col("out"), w.col("bias"), tr.dialect)))
            elif tr.net.bias == "node":
                b = tr.tables.biases[k - 1]
                arrays.append((f"b{k}", tr.dialect.ordered_array(b.col("value"), [b.col("node")], b.ident)))
        return arrays

    def _start(self, tr: Training) -> sql.Composable:
        values: list[sql.Composable] = [sql.Literal(tr.first[0]), sql.Literal(tr.first[1] - 1), sql.SQL("0")]
        values += [array for _, array in self.param_arrays(tr)]
        for p in self._state_names(tr):
            quantity, k = (WEIGHT if p[0] == "w" else BIAS), int(p[1:])
            values += [self._state_start(tr, quantity, k, c) for c in tr.optimizer.state]
        if tr.optimizer.name == "adam":
            values.append(
                sql.SQL("coalesce((SELECT m FROM {s} WHERE network = {key} AND quantity = {q}), 0)").format(
                    s=STATE_TABLE, key=sql.Literal(tr.state_key), q=sql.Literal(STEP)
                )
            )
        values += [tr.dialect.cast(sql.SQL("NULL"), tr.dialect.float_type), tr.dialect.cast(sql.SQL("NULL"), "bigint")]
        return sql.SQL("  SELECT {}").format(sql.SQL(",\n         ").join(values))

    # --- the phases of one update ----------------------------------------------------------------

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

    def trace(self, tr: Training, phase: object) -> sql.Composable:
        raise NotImplementedError("the wide layout does not trace: --trace uses the long layout")
