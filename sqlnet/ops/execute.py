"""Running a training's statements and reading their result: parameters, losses, divergence."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from sqlnet.compile.dialect import POSTGRES
from sqlnet.compile.statement import settings
from sqlnet.compile.statement import statements as statements_of
from sqlnet.compile.training import Training
from sqlnet.db.connection import Session
from sqlnet.db.guard import (
    Deadline,
)
from sqlnet.db.tables import verify_params
from sqlnet.errors import DatabaseError, Diverged
from sqlnet.model.network import Network, Params


def _params_from_rows(
    net: Network, rows: list[tuple[Any, ...]]
) -> tuple[Params, dict[int, tuple[float, int]]]:
    """Split a training statement's result into the trained parameters and epoch -> (loss sum, samples)."""
    params = Params(
        [[[math.nan] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[math.nan] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    losses = {}
    for quantity, epoch, layer, i, j, value, samples in rows:
        if quantity == "loss":
            losses[epoch] = (float(value), int(samples))
        elif quantity.startswith("val_"):
            continue  # read by _validation_from_rows
        elif quantity == "weight":
            params.weights[layer - 1][i - 1][j - 1] = value
        else:
            params.biases[layer - 1][(i or 1) - 1][j - 1] = value
    return params, losses


def _validation_from_rows(rows: list[tuple[Any, ...]], into: dict[int, list[float | None]]) -> None:
    """epoch -> [validation loss, validation accuracy (None unless classifying)]."""
    for quantity, epoch, _, _, _, value, _ in rows:
        if quantity in ("val_loss", "val_accuracy"):
            into.setdefault(epoch, [None, None])[quantity == "val_accuracy"] = (
                None if value is None else float(value)
            )


# an epoch's loss this many times the first epoch's: the training diverged (an error, unless allowed)
DIVERGED_GROWTH = 1e6
TINY_LOSS = 1e-9  # the growth is measured from at least this, so a near-perfect fit may wobble


@dataclass
class Growth:
    """Watches the epochs' losses across a run's statements (and checkpoints) for divergence: a loss past
    `factor` times the first epoch's. `factor` None: allowed (`--allow-divergence`)."""

    factor: float | None = DIVERGED_GROWTH
    first: float | None = None  # the first epoch's loss (for a resumed run: its recorded epoch 1)

    def settle(self, losses: list[float]) -> None:
        """At the end of a run's statements (each epoch over): epoch 1's loss, if no baseline yet."""
        if self.first is None and losses:
            self.first = losses[0]

    def check(
        self,
        tr: Training,
        means: dict[int, float],
        largest: dict[str, float] | None,
        so_far: Callable[[], list[float]],
    ) -> None:
        """Raise Diverged (with every epoch's loss so far) if one of these epochs' losses is past the bound."""
        if self.first is None:
            losses = so_far()
            # epoch 1's mean is the baseline once epoch 1 is over: before, with statements of fewer updates
            # than an epoch, it is the mean of its first batches only (found by the property test: a first
            # batch's 4.98 against epoch 1's 89.9 called a 4.7e5-fold growth a divergence)
            if len(losses) < 2:
                return
            self.first = losses[0]
        if self.factor is None:
            return
        # a loss that starts at (nearly) nothing and stays small is not diverging: 1e-14 -> 1e-8 is noise
        floor = self.factor * max(self.first, TINY_LOSS)
        for epoch, loss in sorted(means.items()):
            if loss > floor:
                raise Diverged(
                    divergence_message(
                        tr,
                        f"the loss grew from {self.first:.4g} in the first epoch to {loss:.4g} in epoch {epoch}, "
                        f"past {self.factor:g} times; --allow-divergence would keep such weights",
                        largest,
                    ),
                    so_far(),
                )


def run_statements(
    s: Session,
    trainings: Iterable[Training],
    on_block: Callable[[int, float], None] | None,
    deadline: Deadline | None = None,
    validation: dict[int, list[float | None]] | None = None,
    largest: dict[str, float] | None = None,
    growth: Growth | None = None,
) -> tuple[Params, list[float], float, int]:
    """Run every block; returns the trained parameters, the loss per epoch, the seconds in SQL and the
    number of training statements. A loss that leaves float8's range, is not finite, or grows past
    `growth` raises Diverged (with the epochs' losses so far)."""
    params: Params | None = None
    in_sql = 0.0
    sums: dict[int, list[float]] = {}
    count = 0
    growth = growth if growth is not None else Growth()

    def so_far() -> list[float]:
        return [total / n for _, (total, n) in sorted(sums.items()) if n]
    s.pg.execute(POSTGRES.pin)
    (limit,) = s.pg.execute("SELECT current_setting('statement_timeout')").fetchone()  # type: ignore[misc]
    for tr in trainings:
        if count == 0:
            for setting in settings(tr):
                s.pg.execute(sql.Composed([setting]))  # one Composable, as psycopg executes it
        count += 1
        try:
            started = time.perf_counter()
            for statement in statements_of(tr, again=count > 1):
                if deadline:
                    deadline.arm(s.pg)
                # binary results: 100k weights come back as doubles, not as text to parse (~30 ms of 784-128-10)
                cur = s.pg.execute(statement, binary=True)
            rows = cur.fetchall()
            in_sql += time.perf_counter() - started
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            if deadline and deadline.end is not None:
                raise deadline.expired() from exc
            if limit not in ("0", "0ms"):  # the role's or the database's own limit, not --timeout
                raise DatabaseError(
                    f"the server cancelled a training statement after statement_timeout = {limit} (a setting "
                    f"of this role or database): lower --updates-per-statement "
                    f"so that each statement ends sooner, or raise the limit (SET statement_timeout)"
                ) from exc
            raise
        except OUT_OF_RANGE as exc:
            raise Diverged(
                divergence_message(tr, exc.diag.message_primary or str(exc), largest), so_far()
            ) from exc
        params, block = _params_from_rows(tr.net, rows)
        if not all(math.isfinite(total) for total, _ in block.values()):
            raise Diverged(divergence_message(tr, "the loss is not a finite number", largest), so_far())
        verify_params(s.pg, tr.tables, params)  # the tables hold exactly what the statement wrote
        if validation is not None:
            _validation_from_rows(rows, validation)
        for epoch, (total, n) in block.items():
            acc = sums.setdefault(epoch, [0.0, 0])
            acc[0] += total
            acc[1] += n
        # the epochs this block touched (each one's mean so far): earlier epochs were looked at already
        growth.check(tr, {e: sums[e][0] / sums[e][1] for e in block if sums[e][1]}, largest, so_far)
        if on_block:
            epoch = tr.last[0]
            on_block(epoch, sums[epoch][0] / sums[epoch][1])
    assert params is not None
    growth.settle(so_far())  # a checkpointed run's next statements compare with this run's epoch 1
    return params, [total / n for _, (total, n) in sorted(sums.items())], in_sql, count


# what PostgreSQL raises when float8 (or numeric) arithmetic leaves its range: the training diverged
OUT_OF_RANGE = (
    psycopg.errors.NumericValueOutOfRange,  # overflow, and underflow (PostgreSQL will not round to 0)
    psycopg.errors.FloatingPointException,
    psycopg.errors.DivisionByZero,
    psycopg.errors.InvalidArgumentForLogarithm,
    psycopg.errors.InvalidArgumentForPowerFunction,
)


def divergence_message(tr: Training, what: str, largest: dict[str, float] | None) -> str:
    """What went out of range, between which epochs, and what to change."""
    advice = [f"a smaller learning rate (this run: {tr.learning_rate:g}; try {tr.learning_rate / 10:g})"]
    big = {k: v for k, v in (largest or {}).items() if v > LARGE_VALUE}
    for label, value in big.items():
        advice.append(
            f"scaling {label} (it holds values up to {value:.3g}; `sqlnet load --standardize` does)"
        )
    if "underflow" in what:  # a saturated sigmoid or softmax: its tiny numbers come from large inputs
        what += "; a number fell below float8's smallest, which PostgreSQL refuses where NumPy rounds to 0"
        if not big:
            advice.append("scaling the inputs (`sqlnet load --standardize` does)")
    if tr.optimizer.name == "gd":
        advice.append("--optimizer adam, whose steps do not grow with the gradient")
    when = (
        f"in epoch {tr.first[0]}"
        if tr.first[0] == tr.last[0]
        else f"between epoch {tr.first[0]} and {tr.last[0]}"
    )
    return f"the training diverged {when} ({what}). Try " + ", or ".join(advice)


# values beyond this in the data or the weights are worth a word when a training diverges
LARGE_VALUE = 1e3
