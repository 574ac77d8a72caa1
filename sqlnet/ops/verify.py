"""`check` and `gradcheck`: the SQL against the pure-Python reference and against finite differences."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlnet.compile import wide
from sqlnet.compile.shared import held_out
from sqlnet.db import store
from sqlnet.db.networks import load_optimizer_state, prepare_state
from sqlnet.db.tables import TableMap, read_data, read_params
from sqlnet.errors import CheckFailed
from sqlnet.model import reference
from sqlnet.model.network import Dataset, Network, Params
from sqlnet.model.reference import Arithmetic
from sqlnet.ops.common import (
    DatabaseLike,
    TrainOptions,
    connect,
    load_network,
)
from sqlnet.ops.defaults import DEFAULT_TOLERANCE
from sqlnet.ops.execute import run_statements


@dataclass(frozen=True)
class Difference:
    """The largest difference between SQL and reference for one table column (or the losses)."""

    table: str
    max_abs: float
    max_rel: float  # relative to max(1, |reference|)
    values: int
    digit_mismatches: int = 0  # exact mode: values whose decimal digits differ at all


def compare(net: Network, tables: TableMap | None, got: Params, want: Params) -> list[Difference]:
    result = []
    for k in range(1, net.depth + 1):
        wname = tables.weights[k - 1].label("value") if tables else f"weights{k}.value"
        result.append(_difference(wname, got.weights[k - 1], want.weights[k - 1]))
        if net.bias == "edge":
            bname = tables.weights[k - 1].label("bias") if tables else f"weights{k}.bias"
        else:
            bname = tables.biases[k - 1].label("value") if tables and tables.biases else f"biases{k}.value"
        if net.bias != "none":
            result.append(_difference(bname, got.biases[k - 1], want.biases[k - 1]))
    return result


def _difference(name: str, got: list[list[Any]], want: list[list[Any]]) -> Difference:
    pairs = [(g, w) for grow, wrow in zip(got, want) for g, w in zip(grow, wrow)]
    difference = _pairs_difference(name, [(float(g), float(w)) for g, w in pairs])
    # exact mode: the digits must be the same, not merely close
    mismatches = sum(1 for g, w in pairs if isinstance(w, Decimal) and g != w)
    return Difference(difference.table, difference.max_abs, difference.max_rel, difference.values, mismatches)


def _pairs_difference(name: str, pairs: list[tuple[float, float]]) -> Difference:
    def rel(g: float, w: float) -> float:
        return math.inf if math.isnan(g) or math.isnan(w) else abs(g - w) / max(1.0, abs(w))

    return Difference(
        name,
        max(
            (abs(g - w) if not (math.isnan(g) or math.isnan(w)) else math.inf for g, w in pairs), default=0.0
        ),
        max((rel(g, w) for g, w in pairs), default=0.0),
        len(pairs),
    )


@dataclass
class CheckReport:
    network: Network
    options: TrainOptions
    differences: list[Difference]
    tolerance: float
    sql_losses: list[float]
    reference_losses: list[float]
    computed: str = ""  # who computed the trained side: the native kernels or SQL, and why

    @property
    def ok(self) -> bool:
        return all(d.max_rel <= self.tolerance and not d.digit_mismatches for d in self.differences)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "network": store.network_json(self.network),
            "options": self.options.as_json(),
            "differences": [d.__dict__ for d in self.differences],
            "final_loss": {"sql": self.sql_losses[-1], "reference": self.reference_losses[-1]},
            "computed": self.computed,
        }


def check(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    raise_on_failure: bool = False,
    **options: Any,
) -> CheckReport:
    """Train with the SQL and with the reference from the same tables, then roll back: nothing changes.
    Where the training runs in the native kernels, it also runs in pure SQL (from the same start, in a
    savepoint) and the report compares the kernels with the SQL as well as with the reference."""
    opts = TrainOptions(**options)
    with connect(database).transaction(commit=False) as s:
        loaded = load_network(s, schema, opts)
        tables, net, opts = loaded.tables, loaded.net, loaded.options
        initial = read_params(s.pg, tables, net, opts.num)
        data = read_data(s.pg, tables, net, opts.num)
        if opts.validation_fraction:  # the reference trains on the samples the SQL trains on
            held = {int(r[0]) for r in s.pg.execute(held_out(next(loaded.trainings())))}
            data = Dataset([x for x in data.samples if x.id not in held])
        store.ensure_schema(s)  # momentum and Adam read their state from it; all of this rolls back
        # the state train would start from: another optimizer's, or one of another shape, is dropped
        prepare_state(s, tables.resolved_schema, net, opts.make_optimizer(), loaded.definition)
        state = load_optimizer_state(s, tables.resolved_schema, net)
        computed, why = loaded.choice(False)
        # the kernels are compared with pure SQL too where the SQL's wide layout holds the network (the
        # long one would take minutes for a network that needs it: `--kernels sql` checks it alone)
        three_way = computed == "native" and wide.fits(net)
        if computed == "native" and not three_way:
            why += "; not compared with pure SQL here (its long layout would take minutes: --kernels sql checks it)"
        if three_way:
            s.pg.execute("SAVEPOINT sqlnet_check")
        got, sql_losses, _, _ = run_statements(s, loaded.trainings(), None, largest=loaded.largest)
        pure: tuple[Params, list[float]] | None = None
        if three_way:  # the same training in pure SQL, from the same start
            s.pg.execute("ROLLBACK TO SAVEPOINT sqlnet_check")
            as_sql = dataclasses.replace(loaded, options=dataclasses.replace(opts, kernels="sql"))
            got_sql, pure_losses, _, _ = run_statements(s, as_sql.trainings(), None, largest=loaded.largest)
            pure = (got_sql, pure_losses)
    want = reference.train(
        net,
        initial,
        data,
        float(opts.learning_rate),
        opts.epochs,
        batch_size=opts.batch_size,
        shuffle=opts.shuffle,
        optimizer=opts.make_optimizer(),
        state=state,
        arith=Arithmetic(opts.scale_or_none),
    )
    differences = [
        *compare(net, tables, got, want.params),
        _pairs_difference("loss per epoch", list(zip(sql_losses, want.losses))),
    ]
    if pure is not None:  # the kernels against the pure SQL
        differences += [
            dataclasses.replace(d, table=f"{d.table} (kernels vs SQL)")
            for d in [*compare(net, tables, got, pure[0]), _pairs_difference("loss per epoch", list(zip(sql_losses, pure[1])))]
        ]  # fmt: skip
    report = CheckReport(net, opts, differences, tolerance, sql_losses, want.losses, why)
    if raise_on_failure and not report.ok:
        worst = max(report.differences, key=lambda d: d.max_rel)
        raise CheckFailed(
            f"SQL and reference differ by {worst.max_rel:.3g} in {worst.table} (tolerance {tolerance})"
        )
    return report


@dataclass(frozen=True)
class GradientDifference:
    table: str
    checked: int  # parameters compared
    worst_relative: float  # |sql - fd| / max(|sql|, |fd|, 1e-8)
    worst_absolute: float


@dataclass
class GradcheckReport:
    network: Network
    differences: list[GradientDifference]
    tolerance: float
    epsilon: float

    @property
    def ok(self) -> bool:
        return all(d.worst_relative <= self.tolerance for d in self.differences)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tolerance": self.tolerance,
            "epsilon": self.epsilon,
            "network": store.network_json(self.network),
            "differences": [d.__dict__ for d in self.differences],
        }


def gradcheck(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    epsilon: float = 1e-6,
    tolerance: float = 1e-4,
    max_params: int = 500,
    seed: int = 0,
    **options: Any,
) -> GradcheckReport:
    """The gradient the SQL backward phases compute, against central finite differences of the reference.

    The SQL runs one full-batch gradient-descent update at learning rate 1 inside a transaction
    that rolls back, so its gradient is exactly (weights before) - (weights after). Each
    parameter's finite difference is (L(p + eps) - L(p - eps)) / 2 eps of the reference's mean
    loss. Networks with more than `max_params` parameters are checked on a seeded sample of them.
    ReLU has no derivative at 0: a node input of exactly 0 (say, behind a dead layer with zero
    biases) shows up as a disagreement although both sides are right about their own definitions.
    """
    fixed = {
        "epochs": 1,
        "learning_rate": 1.0,
        "batch_size": 0,
        "optimizer": "gd",
        "l2": 0.0,
        "weight_decay": 0.0,
        "numeric": "float",
        "validation_fraction": 0.0,  # the gradient of the loss over every sample, as the reference's below
    }
    opts = TrainOptions(**{**options, **fixed})
    with connect(database).transaction(commit=False) as s:
        loaded = load_network(s, schema, opts)
        tables, net = loaded.tables, loaded.net
        initial = read_params(s.pg, tables, net)
        data = read_data(s.pg, tables, net)
        after, _, _, _ = run_statements(s, loaded.trainings(), None)

    names = {("weights", k): tables.weights[k].label("value") for k in range(net.depth)}
    for k in range(net.depth):
        names[("biases", k)] = (
            tables.weights[k].label("bias")
            if net.bias == "edge"
            else tables.biases[k].label("value")
            if tables.biases
            else ""
        )
    where = [
        (kind, k, r, j)
        for kind in ("weights", "biases")
        for k, m in enumerate(getattr(initial, kind))
        for r, row in enumerate(m)
        for j in range(len(row))
    ]
    if len(where) > max_params:
        where = sorted(random.Random(seed).sample(where, max_params))
    worst: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for kind, k, r, j in where:
        sql_gradient = getattr(initial, kind)[k][r][j] - getattr(after, kind)[k][r][j]
        losses = []
        for sign in (1, -1):
            p = initial.copy()
            getattr(p, kind)[k][r][j] += sign * epsilon
            losses.append(reference.mean_loss(net, p, data))
        numeric = (losses[0] - losses[1]) / (2 * epsilon)
        gap = abs(sql_gradient - numeric)
        relative = gap / max(abs(sql_gradient), abs(numeric), 1e-8)
        name = names[(kind, k)]
        w = worst.setdefault(name, [0.0, 0.0])
        w[0], w[1] = max(w[0], relative), max(w[1], gap)
        counts[name] = counts.get(name, 0) + 1
    differences = [GradientDifference(name, counts[name], w[0], w[1]) for name, w in sorted(worst.items())]
    return GradcheckReport(net, differences, tolerance, epsilon)
