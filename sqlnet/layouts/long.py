"""The long (relational) layout: one row per value, matrix products as JOIN + GROUP BY.

Every row of the recursive CTE is ``(epoch, phase, quantity, layer, sample, i, j, value)``:

- a weight or bias: quantity 'weight' or 'bias', the layer, the edge (i, j) and no sample
  (a node bias has no i);
- a node's value: quantity 'input' (z), 'activation' (a) or 'delta' (dL/dz), its layer, the sample
  and the node j;
- a sample's loss: quantity 'loss', the sample.

Rows never span layers or nodes, so no layer width can reach PostgreSQL's 1600-column limit, and
the size of a step is the sum (never the product) of the layer sizes times the samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from sqlnet.functions import ACTIVATIONS, LOSSES
from sqlnet.phases import ACTIVATION, BIAS, DELTA, INPUT, LOSS, WEIGHT, Phase, Quantity

if TYPE_CHECKING:
    from sqlnet.statement import Training

Q = sql.Literal  # quantity names and layer numbers are sqlnet's own constants, inlined for readability


def _phase_cte(phase: Phase) -> sql.Identifier:
    return sql.Identifier(phase.table)


class LongLayout:
    name = "long"
    columns = sql.SQL("epoch, phase, quantity, layer, sample, i, j, value")

    # --- phase 0 ---------------------------------------------------------------------------------

    def start(self, tr: Training) -> sql.Composable:
        parts: list[sql.Composable] = []
        epoch = sql.Literal(tr.first_epoch - 1)
        for k, w in enumerate(tr.tables.weights, start=1):
            parts.append(
                sql.SQL(
                    "  SELECT {epoch}, 0, {q}::text, {k}, NULL::bigint, {i}::int, {j}::int, {v}::float8\n  FROM {t}"
                ).format(
                    epoch=epoch,
                    q=Q(WEIGHT),
                    k=Q(k),
                    i=w.col("in"),
                    j=w.col("out"),
                    v=w.col("value"),
                    t=w.ident,
                )
            )
            if tr.tables.bias == "edge":
                parts.append(
                    sql.SQL(
                        "  SELECT {epoch}, 0, {q}, {k}, NULL, {i}::int, {j}::int, {b}::float8\n  FROM {t}"
                    ).format(
                        epoch=epoch,
                        q=Q(BIAS),
                        k=Q(k),
                        i=w.col("in"),
                        j=w.col("out"),
                        b=w.col("bias"),
                        t=w.ident,
                    )
                )
            elif tr.tables.bias == "node":
                b = tr.tables.biases[k - 1]
                parts.append(
                    sql.SQL(
                        "  SELECT {epoch}, 0, {q}, {k}, NULL, NULL, {j}::int, {v}::float8\n  FROM {t}"
                    ).format(epoch=epoch, q=Q(BIAS), k=Q(k), j=b.col("node"), v=b.col("value"), t=b.ident)
                )
        return sql.SQL("\n  UNION ALL\n").join(parts)

    # --- the recursive term --------------------------------------------------------------------

    def step_prelude(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "    -- the rows of the previous step: every row of a step has the same epoch and phase\n"
            "    prev AS (SELECT * FROM train),\n"
            "    step AS (SELECT epoch, phase FROM prev LIMIT 1)"
        )

    def _gate(self, tr: Training, phase: Phase) -> sql.Composable:
        """The condition under which this phase runs: the previous step was the phase before it.

        It reads only `step`, so PostgreSQL evaluates it once per step (a one-time filter) and
        skips the other phases' fragments entirely.
        """
        if phase.number == 1:
            return sql.SQL(
                "(SELECT phase FROM step) IN (0, {last}) AND (SELECT epoch FROM step) < {end}"
            ).format(last=sql.Literal(tr.phases[-1].number), end=sql.Literal(tr.last_epoch))
        return sql.SQL("(SELECT phase FROM step) = {p}").format(p=sql.Literal(phase.number - 1))

    def _head(self, phase: Phase) -> sql.Composable:
        """The epoch and phase every row of this step gets (phase 1 starts the next epoch)."""
        epoch = "(SELECT epoch FROM step) + 1" if phase.number == 1 else "(SELECT epoch FROM step)"
        return sql.SQL(epoch + ", {p}").format(p=sql.Literal(phase.number))

    def _carry(self, tr: Training, phase: Phase) -> sql.Composable:
        if not phase.carry:
            return sql.SQL("")
        keep = sql.SQL(", ").join(
            sql.SQL("({q}, {k})").format(q=Q(q.kind), k=Q(q.layer)) for q in phase.carry
        )
        return sql.SQL(
            "\n      UNION ALL\n"
            "      -- carried forward for later phases: {names}\n"
            "      SELECT {head}, quantity, layer, sample, i, j, value\n"
            "      FROM prev\n"
            "      WHERE {gate} AND (quantity, layer) IN ({keep})"
        ).format(
            names=sql.SQL(", ".join(str(q) for q in phase.carry)),
            head=self._head(phase),
            gate=self._gate(tr, phase),
            keep=keep,
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
        if k == 1:
            source = sql.SQL("x AS a ON a.node = w.i")
        else:
            source = sql.SQL("prev AS a ON a.quantity = {q} AND a.layer = {k} AND a.j = w.i").format(
                q=Q(ACTIVATION), k=Q(k - 1)
            )
        weighted = sql.SQL(
            "        SELECT a.sample, w.j, sum(w.value * a.value) AS value\n"
            "        FROM prev AS w JOIN {source}\n"
            "        WHERE w.quantity = {w} AND w.layer = {k}\n"
            "        GROUP BY a.sample, w.j"
        ).format(source=source, w=Q(WEIGHT), k=Q(k))
        if tr.net.bias == "none":
            return sql.SQL(
                "      SELECT {head}, {q}, {k}, s.sample, NULL::int, s.j, s.value\n"
                "      FROM (\n{weighted}\n      ) AS s\n"
                "      WHERE {gate}"
            ).format(
                head=self._head(phase), q=Q(INPUT), k=Q(k), weighted=weighted, gate=self._gate(tr, phase)
            )
        return sql.SQL(
            "      SELECT {head}, {q}, {k}, s.sample, NULL::int, s.j, s.value + b.value\n"
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
            weighted=weighted,
            b=Q(BIAS),
            gate=self._gate(tr, phase),
        )

    def _activation(self, tr: Training, phase: Phase) -> sql.Composable:
        k = phase.layer
        assert k is not None
        f = ACTIVATIONS[tr.net.activation(k)]
        return sql.SQL(
            "      SELECT {head}, {q}, {k}, z.sample, NULL::int, z.j, {f}\n"
            "      FROM prev AS z\n"
            "      WHERE {gate} AND z.quantity = {zq} AND z.layer = {k}"
        ).format(
            head=self._head(phase),
            q=Q(ACTIVATION),
            k=Q(k),
            f=sql.SQL(f.sql_value).format(z=sql.SQL("z.value")),
            gate=self._gate(tr, phase),
            zq=Q(INPUT),
        )

    def _derivative(
        self, tr: Training, k: int, node: str, a_alias: str | None
    ) -> tuple[sql.Composable, sql.Composable]:
        """f'_k as SQL, and the joins that bring the z (and a) it needs, matched on (sample, node)."""
        f = ACTIVATIONS[tr.net.activation(k)]
        joins: list[sql.Composable] = []
        z = a = sql.SQL("NULL")
        if "{z}" in f.sql_derivative:
            joins.append(
                sql.SQL(
                    "\n      JOIN prev AS z ON z.quantity = {q} AND z.layer = {k} AND z.sample = {node}.sample "
                    "AND z.j = {node}.{col}"
                ).format(q=Q(INPUT), k=Q(k), node=sql.SQL(node), col=sql.SQL("j" if node == "y" else "i"))
            )
            z = sql.SQL("z.value")
        if "{a}" in f.sql_derivative:
            if a_alias is None:
                joins.append(
                    sql.SQL(
                        "\n      JOIN prev AS a ON a.quantity = {q} AND a.layer = {k} AND a.sample = {node}.sample "
                        "AND a.j = {node}.i"
                    ).format(q=Q(ACTIVATION), k=Q(k), node=sql.SQL(node))
                )
                a_alias = "a"
            a = sql.SQL("{a}.value").format(a=sql.Identifier(a_alias))
        # always parenthesised: "x * 1 - a * a" would multiply before it subtracts
        return sql.SQL("(" + f.sql_derivative + ")").format(z=z, a=a), sql.Composed(joins)

    def _error(self, tr: Training, phase: Phase) -> sql.Composable:
        K = tr.net.depth
        loss = LOSSES[tr.net.loss]
        y, t = sql.SQL("y.value"), sql.SQL("t.value")
        derivative, joins = self._derivative(tr, K, "y", "y")
        return sql.SQL(
            "      -- the loss of each sample\n"
            "      SELECT {head}, {lq}, NULL::int, y.sample, NULL::int, NULL::int, sum({loss})\n"
            "      FROM prev AS y JOIN target AS t ON t.sample = y.sample AND t.node = y.j\n"
            "      WHERE {gate} AND y.quantity = {aq} AND y.layer = {K}\n"
            "      GROUP BY y.sample\n"
            "      UNION ALL\n"
            "      -- the delta of each output node: dL/dy * f'(z)\n"
            "      SELECT {head}, {dq}, {K}, y.sample, NULL::int, y.j, ({grad}) * {derivative}\n"
            "      FROM prev AS y JOIN target AS t ON t.sample = y.sample AND t.node = y.j{joins}\n"
            "      WHERE {gate} AND y.quantity = {aq} AND y.layer = {K}"
        ).format(
            head=self._head(phase),
            lq=Q(LOSS),
            loss=sql.SQL(loss.sql_value).format(y=y, t=t),
            gate=self._gate(tr, phase),
            aq=Q(ACTIVATION),
            K=Q(K),
            dq=Q(DELTA),
            grad=sql.SQL(loss.sql_gradient).format(y=y, t=t),
            derivative=derivative,
            joins=joins,
        )

    def _delta(self, tr: Training, phase: Phase) -> sql.Composable:
        k = phase.layer
        assert k is not None
        derivative, joins = self._derivative(tr, k, "back", None)
        return sql.SQL(
            "      SELECT {head}, {dq}, {k}, back.sample, NULL::int, back.i, back.value * {derivative}\n"
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
            derivative=derivative,
            joins=joins,
            gate=self._gate(tr, phase),
        )

    def _update(self, tr: Training, phase: Phase) -> sql.Composable:
        weights = sql.SQL(
            "      -- the weights: w[i, j] - rate * mean over samples of a[s, i] * d[s, j]\n"
            "      SELECT {head}, {wq}, w.layer, NULL::bigint, w.i, w.j, w.value - {rate} * g.value\n"
            "      FROM prev AS w JOIN (\n"
            "        SELECT d.layer, a.j AS i, d.j, sum(a.value * d.value) / (SELECT n FROM batch) AS value\n"
            "        FROM prev AS d JOIN (\n"
            "          SELECT layer, sample, j, value FROM prev WHERE quantity = {aq}\n"
            "          UNION ALL\n"
            "          SELECT 0, sample, node, value FROM x\n"
            "        ) AS a ON a.layer = d.layer - 1 AND a.sample = d.sample\n"
            "        WHERE d.quantity = {dq}\n"
            "        GROUP BY d.layer, a.j, d.j\n"
            "      ) AS g ON g.layer = w.layer AND g.i = w.i AND g.j = w.j\n"
            "      WHERE {gate} AND w.quantity = {wq}"
        ).format(
            head=self._head(phase),
            wq=Q(WEIGHT),
            rate=sql.Literal(tr.learning_rate),
            aq=Q(ACTIVATION),
            dq=Q(DELTA),
            gate=self._gate(tr, phase),
        )
        if tr.net.bias == "none":
            return weights
        biases = sql.SQL(
            "\n      UNION ALL\n"
            "      -- the biases: every bias row of node j moves by rate * mean over samples of d[s, j]\n"
            "      SELECT {head}, {bq}, b.layer, NULL::bigint, b.i, b.j, b.value - {rate} * g.value\n"
            "      FROM prev AS b JOIN (\n"
            "        SELECT layer, j, sum(value) / (SELECT n FROM batch) AS value\n"
            "        FROM prev WHERE quantity = {dq}\n"
            "        GROUP BY layer, j\n"
            "      ) AS g ON g.layer = b.layer AND g.j = b.j\n"
            "      WHERE {gate} AND b.quantity = {bq}"
        ).format(
            head=self._head(phase),
            bq=Q(BIAS),
            rate=sql.Literal(tr.learning_rate),
            dq=Q(DELTA),
            gate=self._gate(tr, phase),
        )
        return sql.Composed([weights, biases])

    # --- reading the result ----------------------------------------------------------------------

    def trained(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "  SELECT quantity, layer, i, j, value FROM train WHERE epoch = {end} AND phase = {last}"
        ).format(end=sql.Literal(tr.last_epoch), last=sql.Literal(tr.phases[-1].number))

    def losses(self, tr: Training) -> sql.Composable:
        return sql.SQL(
            "SELECT epoch, avg(value) AS loss FROM train WHERE quantity = {lq} GROUP BY epoch"
        ).format(lq=Q(LOSS))

    def trace(self, tr: Training, phase: Phase) -> sql.Composable:
        produced = sql.SQL(", ").join(
            sql.SQL("({q}, {k})").format(q=Q(q.kind), k=Q(q.layer)) for q in phase.produces
        )
        # the loss has no layer: NULL never matches IN, so it is tested on its own
        produces_loss = Quantity(LOSS) in phase.produces
        return sql.SQL(
            "SELECT epoch, sample, layer, quantity, i, j, value FROM train\n"
            "    WHERE phase = {p} AND ((quantity, layer) IN ({produced}){loss})"
        ).format(
            p=sql.Literal(phase.number),
            produced=produced,
            loss=sql.SQL(" OR quantity = {lq}").format(lq=Q(LOSS)) if produces_loss else sql.SQL(""),
        )
