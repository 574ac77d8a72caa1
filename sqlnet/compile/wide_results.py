"""What the PostgreSQL statement reads of the wide layout's recursion once it has run: the parameters
of the last update as rows (``trained``), each epoch's loss, and the held-out samples' loss and
accuracy under the parameters at the end of every epoch (``validation_ctes``).

A part of ``sqlnet.compile.wide.WideLayout`` (its base class), kept apart for its length: it reads the
state row's columns (``w1``, ``b1``, ``mw1``, ...) that ``WideLayout`` writes.
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.training import Training
from sqlnet.compile.wide_phases import _at, _c, _materialized, _sum, correct
from sqlnet.model.functions import ACTIVATIONS, LOSSES, SQL_CROSS_ENTROPY
from sqlnet.model.phases import BIAS, STEP, WEIGHT


class WideResults:
    """The result-reading CTEs of the wide layout's statement."""

    def _pivot(self, tr: Training, validation: bool = False) -> sql.Composable:
        raise NotImplementedError  # WideLayout's: the samples, one wide row each

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
        hit = correct(tr, z, ts)  # classification: the largest output is the class
        ctes.append(
            sql.SQL(
                "-- the mean loss (and, for a softmax output, the accuracy) over the held-out samples, per epoch\n"
                "validation AS (\n  SELECT epoch, avg({loss}) AS loss, avg({correct}) AS accuracy, count(*) AS samples\n"
                "  FROM validation_{K}\n  GROUP BY epoch\n)"
            ).format(loss=loss_sql, correct=hit, K=sql.SQL(str(K)))
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
