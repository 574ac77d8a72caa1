"""What the PostgreSQL statement reads of the wide layout's recursion once it has run: the parameters
of the last update as rows (``trained``), each epoch's loss, and the held-out samples' loss and
accuracy under the parameters at the end of every epoch (``validation_ctes``).

A part of ``sqlnet.compile.wide.WideLayout`` (its base class), kept apart for its length: it reads the
state row's columns (``w1``, ``b1``, ``mw1``, ...) that ``WideLayout`` writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg import sql

from sqlnet.compile.training import Training
from sqlnet.compile.wide_phases import ParamColumns, _c, _materialized, correct
from sqlnet.model.phases import BIAS, STEP, WEIGHT


class WideResults:
    """The result-reading CTEs of the wide layout's statement."""

    def _pivot(self, tr: Training, validation: bool = False) -> sql.Composable:
        raise NotImplementedError  # WideLayout's: the samples, one wide row each

    # --- validation ----------------------------------------------------------------------------

    def validation_ctes(self, tr: Training) -> list[sql.Composable]:
        """The held-out samples through the network as each epoch left it: loss and accuracy per epoch.

        The recursion's rows at the end of every epoch hold that epoch's parameters, so the forward pass
        runs once per (epoch, held-out sample) after the training, not inside it: the training's own
        forward and error phases (``WidePhases.scored_ctes``, as Spark's validation runs them), each epoch's
        parameters read from its row and joined to its samples by the epoch."""
        net = tr.net
        n_out = net.sizes[-1]
        ctes: list[sql.Composable] = [
            sql.SQL(
                "-- the held-out samples, one row each\nvalidation_rows {mat} (\n  {rows}\n)"
            ).format(mat=_materialized(tr), rows=self._pivot(tr, validation=True)),
            sql.SQL(
                "-- the parameters at the end of every epoch\n"
                "epoch_ends {mat} (\n  SELECT * FROM train WHERE phase = {p} AND batch = {nb}\n)"
            ).format(mat=_materialized(tr), p=sql.Literal(tr.phases[-1].number), nb=tr.batches_sql),
            sql.SQL(
                "-- every held-out sample under every epoch's parameters\n"
                "batch_rows AS (\n  SELECT e.epoch, v.* FROM validation_rows AS v CROSS JOIN (SELECT epoch FROM epoch_ends) AS e\n)"
            ),
        ]
        pc = ParamColumns(self._param_columns(tr), _materialized(tr), source="epoch_ends", key="epoch")
        scored, last = self.scored_ctes(tr, pc, keep=("epoch",))
        ctes += scored
        z = [sql.SQL("s.{}").format(_c(f"z{net.depth}_{j}")) for j in range(1, n_out + 1)]
        ts = [sql.SQL("s.{}").format(_c(f"t{j}")) for j in range(1, n_out + 1)]
        ctes.append(
            sql.SQL(
                "-- the mean loss (and, for a softmax output, the accuracy) over the held-out samples, per epoch\n"
                "validation AS (\n  SELECT s.epoch, avg(s.loss) AS loss, avg({correct}) AS accuracy, count(*) AS samples\n"
                "  FROM {last} AS s\n  GROUP BY s.epoch\n)"
            ).format(correct=correct(tr, z, ts), last=sql.Identifier(last))
        )
        return ctes

    if TYPE_CHECKING:  # WidePhases' (WideLayout has both): for the type checker only, never shadowing them

        def _param_columns(self, tr: Training) -> dict[int, list[tuple[str, sql.Composable]]]: ...

        def scored_ctes(
            self, tr: Training, pc: ParamColumns | None = None, keep: tuple[str, ...] = ()
        ) -> tuple[list[sql.Composable], str]: ...

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
