"""The long (relational) layout: one row per value, matrix products as JOIN + GROUP BY.

Every row of the recursive CTE is ``(epoch, batch, phase, quantity, layer, sample, i, j, value)``,
plus the optimizer's state columns ``m`` (and ``v``) where it keeps state:

- a weight or bias: quantity 'weight' or 'bias', the layer, the edge (i, j) and no sample
  (a node bias has no i); with momentum or Adam, its state in m and v;
- a node's value: quantity 'input' (z), 'activation' (a) or 'delta' (dL/dz), its layer, the sample
  and the node j;
- a sample's loss: quantity 'loss', the sample; Adam's update count: quantity 'step', layer 0.

Rows never span layers or nodes, so no layer width can reach PostgreSQL's 1600-column limit, and
the size of a step is the sum (never the product) of the layer sizes times the batch's samples.

Why this module is long: a layout is one unit. Every phase's SQL for this row format sits
here side by side, in the order of ``sqlnet.model.phases``, so a reader checks one phase's
fragment against its neighbours and its maths without leaving the file; split by phase, the
row format each fragment relies on would be described in one file and used in five.
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.shared import data_select, next_block_batches, shuffled_batches
from sqlnet.compile.training import BATCH_TABLE, STATE_TABLE, TARGET_TABLE, X_TABLE, Training
from sqlnet.model.functions import ACTIVATIONS, LOSSES, SQL_CROSS_ENTROPY
from sqlnet.model.phases import ACTIVATION, BIAS, DELTA, INPUT, LOSS, STEP, WEIGHT, Phase, Quantity

Q = sql.Literal  # quantity names and layer numbers are sqlnet's own constants, inlined for readability


class LongLayout:
    name = "long"

    # --- the statement's skeleton: one recursive step per phase -------------------------------

    settings_why = ""

    def settings(self, tr: Training) -> list[sql.Composable]:
        return []

    def preparation(self, tr: Training, again: bool = False) -> list[sql.Composable]:
        """For mini-batches: the samples and targets in indexed temp tables, with the batch of each
        (`again`: a later block of the same transaction keeps them and makes only its own batches)."""
        if not tr.mini_batch:
            return []
        if again:
            return next_block_batches(tr, sql.SQL("SELECT DISTINCT sample FROM {}").format(X_TABLE))
        t = tr.tables
        drop = sql.SQL("DROP TABLE IF EXISTS {x}, {t}, {b}").format(x=X_TABLE, t=TARGET_TABLE, b=BATCH_TABLE)
        if tr.shuffle is None:
            # consecutive samples in ascending sampleId order: the batch is a column of the data
            batch = sql.SQL("(dense_rank() OVER (ORDER BY sample) - 1) / {n} + 1").format(
                n=sql.Literal(tr.batch_size)
            )
            return [
                drop,
                sql.SQL(
                    "-- the samples and their targets, each with its batch: {n} consecutive samples by sampleId\n"
                    "CREATE TEMP TABLE sqlnet_x AS SELECT {batch} AS batch, * FROM ({x}) AS x"
                ).format(n=sql.Literal(tr.batch_size), batch=batch, x=data_select(tr, t.inputs)),
                sql.SQL("CREATE TEMP TABLE sqlnet_target AS SELECT {batch} AS batch, * FROM ({x}) AS t").format(
                    batch=batch, x=data_select(tr, t.outputs)
                ),
                sql.SQL("CREATE INDEX ON {} (batch)").format(X_TABLE),
                sql.SQL("CREATE INDEX ON {} (batch)").format(TARGET_TABLE),
                sql.SQL("ANALYZE {x}, {t}").format(x=X_TABLE, t=TARGET_TABLE),
            ]
        return [
            drop,
            sql.SQL(
                "-- the samples and their targets, indexed by sample\nCREATE TEMP TABLE sqlnet_x AS {}"
            ).format(data_select(tr, t.inputs)),
            sql.SQL("CREATE TEMP TABLE sqlnet_target AS {}").format(data_select(tr, t.outputs)),
            sql.SQL("CREATE INDEX ON {} (sample)").format(X_TABLE),
            sql.SQL("CREATE INDEX ON {} (sample)").format(TARGET_TABLE),
            *shuffled_batches(tr, sql.SQL("SELECT DISTINCT sample FROM {}").format(X_TABLE)),
            sql.SQL("ANALYZE {x}, {t}, {b}").format(x=X_TABLE, t=TARGET_TABLE, b=BATCH_TABLE),
        ]

    def data_ctes(self, tr: Training) -> sql.Composable:
        if tr.mini_batch:
            return sql.SQL(
                "-- the number of batches per epoch (the samples and batches are in the temp tables above)\n"
                "batches AS (\n"
                "  SELECT max(batch) AS n FROM {b}\n"
                ")"
            ).format(b=X_TABLE if tr.shuffle is None else BATCH_TABLE)
        t = tr.tables
        return sql.SQL(
            "-- layer 0: the input value of each sample and input node\n"
            "x AS (\n  {x}\n),\n"
            "-- the target value of each sample and output node\n"
            "target AS (\n  {t}\n)"
        ).format(x=data_select(tr, t.inputs), t=data_select(tr, t.outputs))

    def recursive_cte(self, tr: Training) -> sql.Composable:
        steps = tr.phases[1:]
        ctes = [self.step_prelude(tr)]
        for phase in steps:
            ctes.append(
                sql.SQL("    -- phase {n} · {name}: {comment}\n    {cte} AS (\n{body}\n    )").format(
                    n=sql.SQL(str(phase.number)),
                    name=sql.SQL(phase.name),
                    comment=sql.SQL(phase.comment),
                    cte=sql.Identifier(phase.table),
                    body=self.phase(tr, phase),
                )
            )
        union = sql.SQL("\n    UNION ALL ").join(
            sql.SQL("SELECT * FROM {c}").format(c=sql.Identifier(p.table)) for p in steps
        )
        return sql.SQL(
            "-- the training: each step of the recursion is one phase; `epoch`, `batch` and `phase` say which\n"
            "train ({columns}) AS (\n"
            "  -- phase 0 · start: {start_comment}\n"
            "{start}\n"
            "  UNION ALL\n"
            "  (\n"
            "    WITH\n"
            "{ctes}\n"
            "    -- only the phase that follows the previous step produces rows\n"
            "    {union}\n"
            "  )\n"
            ")"
        ).format(
            columns=self.columns(tr),
            start_comment=sql.SQL(tr.phases[0].comment),
            start=self.start(tr),
            ctes=sql.SQL(",\n").join(ctes),
            union=union,
        )

    def columns(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "epoch, batch, phase, quantity, layer, sample, i, j, value"
            + "".join(f", {c}" for c in tr.optimizer.state)
        )

    # --- small helpers -------------------------------------------------------------------------

    def _pad(self, tr: Training) -> sql.Composable:
        """NULL for the state columns of rows that are not parameters (typed: UNION would guess text)."""
        return sql.SQL(f", NULL::{tr.num}" * len(tr.optimizer.state))

    def _round(self, tr: Training, expr: sql.Composable) -> sql.Composable:
        """Exact mode rounds every phase's result at the fixed scale, as the reference does."""
        if tr.scale is None:
            return expr
        return sql.SQL("round({e}, {s})").format(e=expr, s=sql.Literal(tr.scale))

    def _mean(self, tr: Training, total: sql.Composable) -> sql.Composable:
        """total / (samples in the batch); exact mode truncates at the scale: div() is exact."""
        if tr.scale is None:
            return sql.SQL("{t} / (SELECT n FROM batch_size)").format(t=total)
        return sql.SQL("div({t} * 1e{s}, (SELECT n FROM batch_size)) * 1e-{s}").format(
            t=total, s=sql.SQL(str(tr.scale))
        )

    def _gate(self, tr: Training, phase: Phase) -> sql.Composable:
        """The condition under which this phase runs: the previous step was the phase before it.

        It reads only `step`, so PostgreSQL evaluates it once per step (a one-time filter) and
        skips the other phases' fragments entirely.
        """
        if phase.number == 1:
            return sql.SQL(
                "(SELECT phase FROM step) IN (0, {last}) "
                "AND ((SELECT epoch FROM step), (SELECT batch FROM step)) < ({e}, {b})"
            ).format(
                last=sql.Literal(tr.phases[-1].number), e=sql.Literal(tr.last[0]), b=sql.Literal(tr.last[1])
            )
        return sql.SQL("(SELECT phase FROM step) = {p}").format(p=sql.Literal(phase.number - 1))

    def _head(self, phase: Phase) -> sql.Composable:
        """The epoch, batch and phase every row of this step gets (phase 1 starts the next update)."""
        source = "next" if phase.number == 1 else "step"
        return sql.SQL("(SELECT epoch FROM {s}), (SELECT batch FROM {s}), {p}").format(
            s=sql.SQL(source), p=sql.Literal(phase.number)
        )

    def _in(self, quantities: tuple[Quantity, ...]) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("({q}, {k})").format(q=Q(q.kind), k=Q(q.layer)) for q in quantities)

    # --- phase 0 ---------------------------------------------------------------------------------

    def _state_join(
        self, tr: Training, quantity: str, k: int, i: sql.Composable, j: sql.Composable
    ) -> sql.Composable:
        if not tr.optimizer.state:
            return sql.SQL("")
        return sql.SQL(
            "\n  LEFT JOIN {state} AS s ON s.network = {key} AND s.quantity = {q} AND s.layer = {k} "
            "AND s.i = {i} AND s.j = {j}"
        ).format(state=STATE_TABLE, key=sql.Literal(tr.state_key), q=Q(quantity), k=Q(k), i=i, j=j)

    def _state_values(self, tr: Training) -> sql.Composable:
        return sql.SQL("").join(
            sql.SQL(", coalesce(s.{c}, 0)::{num}").format(c=sql.SQL(c), num=sql.SQL(tr.num))
            for c in tr.optimizer.state
        )

    def start(self, tr: Training) -> sql.Composable:
        parts: list[sql.Composable] = []
        head = sql.SQL("{e}, {b}, 0").format(e=sql.Literal(tr.first[0]), b=sql.Literal(tr.first[1] - 1))
        num = sql.SQL(tr.num)
        for k, w in enumerate(tr.tables.weights, start=1):
            i, j = sql.SQL("w.{}::int").format(w.col("in")), sql.SQL("w.{}::int").format(w.col("out"))
            parts.append(
                sql.SQL(
                    "  SELECT {head}, {q}::text, {k}, NULL::bigint, {i}, {j}, w.{v}::{num}{state}\n  FROM {t} AS w{join}"
                ).format(
                    head=head,
                    q=Q(WEIGHT),
                    k=Q(k),
                    i=i,
                    j=j,
                    v=w.col("value"),
                    num=num,
                    state=self._state_values(tr),
                    t=w.ident,
                    join=self._state_join(tr, WEIGHT, k, i, j),
                )
            )
            if tr.tables.bias == "edge":
                parts.append(
                    sql.SQL(
                        "  SELECT {head}, {q}, {k}, NULL, {i}, {j}, w.{b}::{num}{state}\n  FROM {t} AS w{join}"
                    ).format(
                        head=head,
                        q=Q(BIAS),
                        k=Q(k),
                        i=i,
                        j=j,
                        b=w.col("bias"),
                        num=num,
                        state=self._state_values(tr),
                        t=w.ident,
                        join=self._state_join(tr, BIAS, k, i, j),
                    )
                )
            elif tr.tables.bias == "node":
                b = tr.tables.biases[k - 1]
                jb = sql.SQL("w.{}::int").format(b.col("node"))
                parts.append(
                    sql.SQL(
                        "  SELECT {head}, {q}, {k}, NULL, NULL, {j}, w.{v}::{num}{state}\n  FROM {t} AS w{join}"
                    ).format(
                        head=head,
                        q=Q(BIAS),
                        k=Q(k),
                        j=jb,
                        v=b.col("value"),
                        num=num,
                        state=self._state_values(tr),
                        t=b.ident,
                        join=self._state_join(tr, BIAS, k, sql.SQL("0"), jb),
                    )
                )
        if tr.optimizer.name == "adam":
            parts.append(
                sql.SQL(
                    "  -- Adam's update count so far (it continues across runs)\n"
                    "  SELECT {head}, {q}, 0, NULL, NULL, NULL, coalesce((SELECT m FROM {state} "
                    "WHERE network = {key} AND quantity = {q}), 0){pad}"
                ).format(
                    head=head, q=Q(STEP), state=STATE_TABLE, key=sql.Literal(tr.state_key), pad=self._pad(tr)
                )
            )
        return sql.SQL("\n  UNION ALL\n").join(parts)

    # --- the recursive term --------------------------------------------------------------------

    def step_prelude(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "    -- the rows of the previous step: every row of a step has the same epoch, batch and phase\n"
            "    prev AS (SELECT * FROM train),\n"
            "    step AS (SELECT epoch, batch, phase FROM prev LIMIT 1),\n"
            "    -- the update after this one: the next batch of the epoch, or the first of the next epoch\n"
            "    next AS (\n"
            "      SELECT CASE WHEN batch < {nb} THEN epoch ELSE epoch + 1 END AS epoch,\n"
            "             CASE WHEN batch < {nb} THEN batch + 1 ELSE 1 END AS batch\n"
            "      FROM step\n"
            "    ),\n"
            "    -- the number of samples in this update's batch: gradients are means over them\n"
            "    batch_size AS (\n"
            "      SELECT count(DISTINCT sample) AS n FROM prev WHERE quantity = {dq} AND layer = {K}\n"
            "    ),\n"
            "    -- the input values of the next update's batch (read by phase 1 only)\n"
            "    batch_inputs AS (\n"
            "      {inputs}\n"
            "    ),\n"
            "    -- the target values of this update's batch (read by the error phase only)\n"
            "    batch_targets AS (\n"
            "      {targets}\n"
            "    )"
        ).format(
            nb=tr.batches_sql,
            dq=Q(DELTA),
            K=Q(tr.net.depth),
            inputs=tr.batch_rows("x", "next"),
            targets=tr.batch_rows("target", "step"),
        )

    def _carry(self, tr: Training, phase: Phase) -> sql.Composable:
        if not phase.carry:
            return sql.SQL("")
        state = "".join(f", {c}" for c in tr.optimizer.state)
        return sql.SQL(
            "\n      UNION ALL\n"
            "      -- carried forward for later phases: {names}\n"
            "      SELECT {head}, quantity, layer, sample, i, j, value{state}\n"
            "      FROM prev\n"
            "      WHERE {gate} AND (quantity, layer) IN ({keep})"
        ).format(
            names=sql.SQL(", ".join(str(q) for q in phase.carry)),
            head=self._head(phase),
            state=sql.SQL(state),
            gate=self._gate(tr, phase),
            keep=self._in(phase.carry),
        )

    def phase(self, tr: Training, phase: Phase) -> sql.Composable:
        body = {
            "input": self._input,
            "activation": self._activation,
            "error": self._error,
            "delta": self._delta,
            "update": self._update,
        }[phase.kind](tr, phase)
        return sql.Composed([body, self._carry(tr, phase)])

    def _input(self, tr: Training, phase: Phase) -> sql.Composable:
        k = phase.layer
        assert k is not None
        z = self._layer_input(tr, phase, k)
        if k > 1:
            return z
        return sql.SQL(
            "{z}\n"
            "      UNION ALL\n"
            "      -- the batch's input values, kept as layer 0's activations for the update\n"
            "      SELECT {head}, {aq}, 0, sample, NULL::int, node, value{pad}\n"
            "      FROM batch_inputs\n"
            "      WHERE {gate}"
        ).format(z=z, head=self._head(phase), aq=Q(ACTIVATION), pad=self._pad(tr), gate=self._gate(tr, phase))

    def _layer_input(self, tr: Training, phase: Phase, k: int) -> sql.Composable:
        if k > 1:
            source: sql.Composable = sql.SQL("prev AS a ON a.quantity = {q} AND a.layer = {k} AND a.j = w.i").format(
                q=Q(ACTIVATION), k=Q(k - 1)
            )
        else:
            source = sql.SQL("batch_inputs AS a ON a.node = w.i")
        weighted = sql.SQL(
            "        SELECT a.sample, w.j, sum(w.value * a.value) AS value\n"
            "        FROM prev AS w JOIN {source}\n"
            "        WHERE w.quantity = {w} AND w.layer = {k}\n"
            "        GROUP BY a.sample, w.j"
        ).format(source=source, w=Q(WEIGHT), k=Q(k))
        if tr.net.bias == "none":
            return sql.SQL(
                "      SELECT {head}, {q}, {k}, s.sample, NULL::int, s.j, {z}{pad}\n"
                "      FROM (\n{weighted}\n      ) AS s\n"
                "      WHERE {gate}"
            ).format(
                head=self._head(phase),
                q=Q(INPUT),
                k=Q(k),
                z=self._round(tr, sql.SQL("s.value")),
                pad=self._pad(tr),
                weighted=weighted,
                gate=self._gate(tr, phase),
            )
        return sql.SQL(
            "      SELECT {head}, {q}, {k}, s.sample, NULL::int, s.j, {z}{pad}\n"
            "      FROM (\n{weighted}\n      ) AS s\n"
            "      JOIN (\n"
            "        -- each node's bias: the sum of its bias rows (one per edge, or one per node)\n"
            "        SELECT j, sum(value) AS value FROM prev WHERE quantity = {b} AND layer = {k} GROUP BY j\n"
            "      ) AS b ON b.j = s.j\n"
            "      WHERE {gate}"
        ).format(
            head=self._head(phase),
            q=Q(INPUT),
            k=Q(k),
            z=self._round(tr, sql.SQL("s.value + b.value")),
            pad=self._pad(tr),
            weighted=weighted,
            b=Q(BIAS),
            gate=self._gate(tr, phase),
        )

    def _activation(self, tr: Training, phase: Phase) -> sql.Composable:
        k = phase.layer
        assert k is not None
        f = ACTIVATIONS[tr.net.activation(k)]
        if not f.elementwise:
            # softmax over the layer: shift by the sample's largest input, then normalise
            return sql.SQL(
                "      SELECT {head}, {q}, {k}, e.sample, NULL::int, e.j, e.value / sum(e.value) OVER (PARTITION BY e.sample){pad}\n"
                "      FROM (\n"
                "        SELECT z.sample, z.j, {numerator} AS value\n"
                "        FROM prev AS z\n"
                "        WHERE {gate} AND z.quantity = {zq} AND z.layer = {k}\n"
                "      ) AS e"
            ).format(
                head=self._head(phase),
                q=Q(ACTIVATION),
                k=Q(k),
                pad=self._pad(tr),
                numerator=sql.SQL(f.sql_value).format(
                    z=sql.SQL("z.value"), zmax=sql.SQL("max(z.value) OVER (PARTITION BY z.sample)")
                ),
                gate=self._gate(tr, phase),
                zq=Q(INPUT),
            )
        return sql.SQL(
            "      SELECT {head}, {q}, {k}, z.sample, NULL::int, z.j, {f}{pad}\n"
            "      FROM prev AS z\n"
            "      WHERE {gate} AND z.quantity = {zq} AND z.layer = {k}"
        ).format(
            head=self._head(phase),
            q=Q(ACTIVATION),
            k=Q(k),
            f=sql.SQL(f.sql_value).format(z=sql.SQL("z.value")),
            pad=self._pad(tr),
            gate=self._gate(tr, phase),
            zq=Q(INPUT),
        )

    def _derivative(
        self, tr: Training, k: int, node: str, a_alias: str | None
    ) -> tuple[sql.Composable, sql.Composable]:
        """f'_k as SQL, and the joins that bring the z (and a) it needs, matched on (sample, node)."""
        f = ACTIVATIONS[tr.net.activation(k)]
        joins: list[sql.Composable] = []
        z: sql.Composable = sql.SQL("NULL")
        a: sql.Composable = sql.SQL("NULL")
        col = sql.SQL("j" if node == "y" else "i")
        if "{z}" in f.sql_derivative:
            joins.append(
                sql.SQL(
                    "\n      JOIN prev AS z ON z.quantity = {q} AND z.layer = {k} AND z.sample = {node}.sample "
                    "AND z.j = {node}.{col}"
                ).format(q=Q(INPUT), k=Q(k), node=sql.SQL(node), col=col)
            )
            z = sql.SQL("z.value")
        if "{a}" in f.sql_derivative:
            if a_alias is None:
                joins.append(
                    sql.SQL(
                        "\n      JOIN prev AS a ON a.quantity = {q} AND a.layer = {k} AND a.sample = {node}.sample "
                        "AND a.j = {node}.{col}"
                    ).format(q=Q(ACTIVATION), k=Q(k), node=sql.SQL(node), col=col)
                )
                a_alias = "a"
            a = sql.SQL("{a}.value").format(a=sql.SQL(a_alias))
        # always parenthesised: "x * 1 - a * a" would multiply before it subtracts
        return sql.SQL("(" + f.sql_derivative + ")").format(z=z, a=a), sql.Composed(joins)

    def _error(self, tr: Training, phase: Phase) -> sql.Composable:
        K = tr.net.depth
        loss = LOSSES[tr.net.loss]
        y, t = sql.SQL("y.value"), sql.SQL("t.value")
        target = sql.SQL("{t} AS t ON t.sample = {s}.sample AND t.node = {s}.j")
        common = dict(
            head=self._head(phase),
            gate=self._gate(tr, phase),
            K=Q(K),
            pad=self._pad(tr),
            aq=Q(ACTIVATION),
            zq=Q(INPUT),
            lq=Q(LOSS),
            dq=Q(DELTA),
        )
        if loss.outputs is None:
            derivative, joins = self._derivative(tr, K, "y", "y")
            loss_rows = sql.SQL(
                "      SELECT {head}, {lq}, NULL::int, y.sample, NULL::int, NULL::int, {loss}{pad}\n"
                "      FROM prev AS y JOIN {target}\n"
                "      WHERE {gate} AND y.quantity = {aq} AND y.layer = {K}\n"
                "      GROUP BY y.sample"
            ).format(
                loss=self._round(tr, sql.SQL("sum({})").format(sql.SQL(loss.sql_value).format(y=y, t=t))),
                target=target.format(t=sql.SQL("batch_targets"), s=sql.SQL("y")),
                **common,
            )
            delta = self._round(
                tr,
                sql.SQL("({grad}) * {d}").format(
                    grad=sql.SQL(loss.sql_gradient).format(y=y, t=t), d=derivative
                ),
            )
        else:
            # cross-entropy with its own output: the loss from z (stable), the delta is y - t
            joins = sql.SQL("")
            lse_join: sql.Composable = sql.SQL("")
            if tr.net.output_activation == "softmax":
                lse_join = sql.SQL(
                    "\n      JOIN (\n"
                    "        -- each sample's log-sum-exp of z, shifted by its largest z\n"
                    "        SELECT zz.sample, top.value + ln(sum(exp(greatest(zz.value - top.value, -700)))) AS value\n"
                    "        FROM prev AS zz JOIN (\n"
                    "          SELECT sample, max(value) AS value FROM prev WHERE quantity = {zq} AND layer = {K} GROUP BY sample\n"
                    "        ) AS top ON top.sample = zz.sample\n"
                    "        WHERE zz.quantity = {zq} AND zz.layer = {K}\n"
                    "        GROUP BY zz.sample, top.value\n"
                    "      ) AS lse ON lse.sample = z.sample"
                ).format(zq=Q(INPUT), K=Q(K))
            term = sql.SQL(SQL_CROSS_ENTROPY[tr.net.output_activation]).format(
                z=sql.SQL("z.value"), t=t, lse=sql.SQL("lse.value")
            )
            loss_rows = sql.SQL(
                "      SELECT {head}, {lq}, NULL::int, z.sample, NULL::int, NULL::int, sum({term}){pad}\n"
                "      FROM prev AS z JOIN {target}{lse_join}\n"
                "      WHERE {gate} AND z.quantity = {zq} AND z.layer = {K}\n"
                "      GROUP BY z.sample"
            ).format(
                term=term,
                target=target.format(t=sql.SQL("batch_targets"), s=sql.SQL("z")),
                lse_join=lse_join,
                **common,
            )
            delta = sql.SQL("y.value - t.value")
        return sql.SQL(
            "      -- the loss of each sample\n"
            "{loss_rows}\n"
            "      UNION ALL\n"
            "      -- the delta of each output node\n"
            "      SELECT {head}, {dq}, {K}, y.sample, NULL::int, y.j, {delta}{pad}\n"
            "      FROM prev AS y JOIN {target}{joins}\n"
            "      WHERE {gate} AND y.quantity = {aq} AND y.layer = {K}"
        ).format(
            loss_rows=loss_rows,
            delta=delta,
            target=target.format(t=sql.SQL("batch_targets"), s=sql.SQL("y")),
            joins=joins,
            **common,
        )

    def _delta(self, tr: Training, phase: Phase) -> sql.Composable:
        k = phase.layer
        assert k is not None
        derivative, joins = self._derivative(tr, k, "back", None)
        return sql.SQL(
            "      SELECT {head}, {dq}, {k}, back.sample, NULL::int, back.i, {delta}{pad}\n"
            "      FROM (\n"
            "        -- what each node sent forward, weighted back: sum over j of w[i, j] * d[s, j]\n"
            "        SELECT d.sample, w.i, sum(w.value * d.value) AS value\n"
            "        FROM prev AS w JOIN prev AS d ON d.quantity = {dq} AND d.layer = {k1} AND d.j = w.j\n"
            "        WHERE w.quantity = {wq} AND w.layer = {k1}\n"
            "        GROUP BY d.sample, w.i\n"
            "      ) AS back{joins}\n"
            "      WHERE {gate}"
        ).format(
            head=self._head(phase),
            dq=Q(DELTA),
            k=Q(k),
            k1=Q(k + 1),
            wq=Q(WEIGHT),
            delta=self._round(tr, sql.SQL("back.value * {d}").format(d=derivative)),
            pad=self._pad(tr),
            joins=joins,
            gate=self._gate(tr, phase),
        )

    def _update(self, tr: Training, phase: Phase) -> sql.Composable:
        opt = tr.optimizer
        g: sql.Composable = sql.SQL("g.value")
        if opt.l2:
            g = sql.SQL("(g.value + CASE WHEN p.quantity = {wq} THEN {l2} * p.value ELSE 0 END)").format(
                wq=Q(WEIGHT), l2=sql.Literal(opt.l2)
            )
        t = sql.SQL("(SELECT value FROM prev WHERE quantity = {sq}) + 1").format(sq=Q(STEP))
        w_new, m_new, v_new = opt.sql_step(
            sql.SQL("p.value"), g, sql.SQL("p.m"), sql.SQL("p.v"), t, sql.Literal(tr.rate)
        )
        w_new = opt.sql_decay(
            w_new,
            sql.SQL("p.value"),
            sql.Literal(tr.rate),
            sql.SQL("CASE WHEN p.quantity = {wq} THEN {d} ELSE 0 END").format(
                wq=Q(WEIGHT), d=sql.Literal(opt.weight_decay)
            ),
        )
        state = sql.SQL("").join(sql.SQL(", {}").format(e) for e in (m_new, v_new)[: len(opt.state)])
        steps: sql.Composable = sql.SQL("")
        if opt.name == "adam":
            steps = sql.SQL(
                "\n      UNION ALL\n"
                "      -- one more update made\n"
                "      SELECT {head}, {sq}, 0, NULL, NULL, NULL, value + 1{pad}\n"
                "      FROM prev WHERE {gate} AND quantity = {sq}"
            ).format(head=self._head(phase), sq=Q(STEP), pad=self._pad(tr), gate=self._gate(tr, phase))
        return sql.SQL(
            "      SELECT {head}, p.quantity, p.layer, NULL::bigint, p.i, p.j, {w_new}{state}\n"
            "      FROM prev AS p JOIN (\n"
            "        -- the gradient of the mean loss over the batch: a[s, i] * d[s, j] for a weight, d[s, j] for a bias\n"
            "        SELECT {wq} AS quantity, d.layer, a.j AS i, d.j, {mean_w} AS value\n"
            "        FROM prev AS d JOIN prev AS a ON a.quantity = {aq} AND a.layer = d.layer - 1 AND a.sample = d.sample\n"
            "        WHERE d.quantity = {dq}\n"
            "        GROUP BY d.layer, a.j, d.j\n"
            "        UNION ALL\n"
            "        SELECT {bq}, layer, NULL, j, {mean_b}\n"
            "        FROM prev WHERE quantity = {dq}\n"
            "        GROUP BY layer, j\n"
            "      ) AS g ON g.quantity = p.quantity AND g.layer = p.layer AND g.j = p.j AND (g.i = p.i OR p.quantity = {bq})\n"
            "      WHERE {gate}{progress}{steps}"
        ).format(
            head=self._head(phase),
            progress=sql.SQL(" AND (SELECT true{} FROM step)").format(
                tr.progress(
                    sql.SQL("epoch"),
                    sql.SQL("batch"),
                    sql.SQL("NULL::float8"),
                    sql.SQL("(SELECT n FROM batch_size)"),
                )
            )
            if tr.progress_run is not None
            else sql.SQL(""),
            w_new=self._round(tr, w_new),
            state=state,
            wq=Q(WEIGHT),
            bq=Q(BIAS),
            aq=Q(ACTIVATION),
            dq=Q(DELTA),
            mean_w=self._mean(tr, sql.SQL("sum(a.value * d.value)")),
            mean_b=self._mean(tr, sql.SQL("sum(value)")),
            gate=self._gate(tr, phase),
            steps=steps,
        )

    # --- reading the result ----------------------------------------------------------------------

    def validation_ctes(self, tr: Training) -> list[sql.Composable]:
        raise AssertionError("validation is the wide layout's: Loaded.layout refuses it in the long one")

    def trained(self, tr: Training) -> sql.Composable:
        state = "".join(f", {c}" for c in tr.optimizer.state)
        return sql.SQL(
            "  SELECT quantity, layer, i, j, value{state} FROM train\n"
            "  WHERE (epoch, batch, phase) = ({e}, {b}, {last})"
        ).format(
            state=sql.SQL(state),
            e=sql.Literal(tr.last[0]),
            b=sql.Literal(tr.last[1]),
            last=sql.Literal(tr.phases[-1].number),
        )

    def losses(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "SELECT epoch, sum(value) AS loss, count(*) AS samples FROM train WHERE quantity = {lq} GROUP BY epoch"
        ).format(lq=Q(LOSS))

    def trace(self, tr: Training, phase: Phase) -> sql.Composable:
        produced = tuple(q for q in phase.produces if q.layer is not None)
        # the loss has no layer: NULL never matches IN, so it is tested on its own
        produces_loss = Quantity(LOSS) in phase.produces
        starts: sql.Composable = sql.SQL("")
        if phase.number == 0:
            # the weights every later epoch of the block starts from: the last update of the epoch before,
            # kept as that epoch's phase 0 (batch 0), so each epoch's start can be looked at
            starts = sql.SQL(
                "\n    UNION ALL\n"
                "    SELECT epoch + 1, 0, sample, layer, quantity, i, j, value FROM train\n"
                "    WHERE phase = {last} AND batch = {nb} AND epoch < {end} AND quantity IN ({wq}, {bq})"
            ).format(
                last=sql.Literal(tr.phases[-1].number),
                nb=tr.batches_sql,
                end=sql.Literal(tr.last[0]),
                wq=Q(WEIGHT),
                bq=Q(BIAS),
            )
        return sql.SQL(
            "SELECT epoch, batch, sample, layer, quantity, i, j, value FROM train\n"
            "    WHERE phase = {p} AND ({cond}){starts}"
        ).format(
            starts=starts,
            p=sql.Literal(phase.number),
            cond=sql.SQL(" OR ").join(
                ([sql.SQL("(quantity, layer) IN ({})").format(self._in(produced))] if produced else [])
                + ([sql.SQL("quantity = {}").format(Q(LOSS))] if produces_loss else [])
            ),
        )
