"""Optimizers as data: each update rule in Python and in SQL, side by side.

Every parameter row carries its optimizer state in the columns ``m`` (momentum's velocity, Adam's
first moment) and ``v`` (Adam's second moment); Adam's step count t is the number of updates
made so far, kept across runs in ``sqlnet.optimizer_state``. With g the gradient of the mean
loss over the batch (plus ``l2 * w`` for weights):

- gd:        w' = w - rate * g
- momentum:  m' = mu * m + g;  w' = w - rate * m'          (Nesterov: w' = w - rate * (g + mu * m'))
- adam:      m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g^2   (g^2 counted as 0 where |g| < 1e-150);
             w' = w - rate * (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)

Two ways to pull weights towards zero (weights only, never biases):

- ``l2``: the L2 penalty l2/2 * w^2 added to the loss, so l2 * w joins the gradient *before* the
  optimizer sees it (coupled: Adam scales it by its per-parameter step like any gradient);
- ``weight_decay``: decoupled weight decay, w' = (the optimizer's w') - rate * weight_decay * w, after
  the step (Loshchilov & Hutter; with Adam this is AdamW). With plain gradient descent both are the
  same update.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlnet.errors import InputError

if TYPE_CHECKING:
    from psycopg import sql

OPTIMIZERS = ("gd", "momentum", "adam")

# PostgreSQL raises "value out of range: underflow" where IEEE arithmetic rounds a product to 0, and Adam
# squares every gradient: one under ~1e-162 (a saturated softmax's on unscaled data) would stop the
# training, although its square adds under 1e-300 to v, which eps (1e-8) dwarfs. So the reference, the
# SQL and the kernels all count the square of a gradient under this as 0 (a NaN still passes through).
SQUARE_FLOOR = 1e-150


@dataclass(frozen=True)
class Optimizer:
    name: str = "gd"
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 0.0
    weight_decay: float = 0.0  # decoupled (AdamW-style), weights only

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.name!r}: choose one of {', '.join(OPTIMIZERS)}")
        for what, value, lo, hi in (
            ("momentum", self.momentum, 0.0, 1.0),
            ("beta1", self.beta1, 0.0, 1.0),
            ("beta2", self.beta2, 0.0, 1.0),
        ):
            if not (lo <= value < hi):
                raise InputError(f"{what} must be in [{lo}, {hi}), got {value!r}")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise InputError(f"epsilon must be a positive number, got {self.epsilon!r}")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise InputError(f"--l2 must be a number >= 0, got {self.l2!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise InputError(f"--weight-decay must be a number >= 0, got {self.weight_decay!r}")
        if self.nesterov and self.name != "momentum":
            raise InputError("--nesterov needs --optimizer momentum")

    @property
    def state(self) -> tuple[str, ...]:
        """The state columns each parameter row carries."""
        return {"gd": (), "momentum": ("m",), "adam": ("m", "v")}[self.name]

    def describe(self) -> str:
        text = {
            "gd": "gradient descent",
            "momentum": f"{'Nesterov ' if self.nesterov else ''}momentum {self.momentum}",
            "adam": f"Adam (beta1 {self.beta1}, beta2 {self.beta2}, eps {self.epsilon})",
        }[self.name]
        return (
            text
            + (f", L2 {self.l2}" if self.l2 else "")
            + (f", weight decay {self.weight_decay}" if self.weight_decay else "")
        )

    # --- Python ------------------------------------------------------------------------------

    def step(self, w: float, g: float, m: float, v: float, t: int, rate: float) -> tuple[float, float, float]:
        """One update of one parameter: returns (w', m', v'); g already includes any L2 term."""
        if self.name == "gd":
            return w - rate * g, m, v
        if self.name == "momentum":
            m = self.momentum * m + g
            return w - rate * ((g + self.momentum * m) if self.nesterov else m), m, v
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (0 * g if abs(g) < SQUARE_FLOOR else (1 - self.beta2) * g * g)
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        return w - rate * m_hat / (math.sqrt(v_hat) + self.epsilon), m, v

    def decay(self, w_new: float, w: float, rate: float) -> float:
        """Decoupled weight decay after the step (weights only; the caller knows which is which)."""
        return w_new - rate * self.weight_decay * w if self.weight_decay else w_new

    # --- SQL ---------------------------------------------------------------------------------

    def sql_decay(
        self, w_new: sql.Composable, w: sql.Composable, rate: sql.Composable, factor: sql.Composable | None = None
    ) -> sql.Composable:
        """(w') - rate * weight_decay * w, with `factor` standing for weight_decay where only some rows
        are weights (a CASE in the long layout)."""
        from psycopg import sql

        if not self.weight_decay:
            return w_new
        return sql.SQL("({w_new}) - {rate} * {f} * {w}").format(
            w_new=w_new, rate=rate, f=factor if factor is not None else sql.Literal(self.weight_decay), w=w
        )

    def sql_corrections(self, t: sql.Composable) -> list[tuple[str, sql.Composable]]:
        """Adam's bias corrections (1 - beta1^t, 1 - beta2^t) as (name, SQL): the same for every
        parameter of an update, so a layout may compute them once and pass them to sql_weight."""
        from psycopg import sql

        if self.name != "adam":
            return []
        return [
            (name, sql.SQL("(1 - power({b}, {t}))").format(b=sql.Literal(beta), t=t))
            for name, beta in (("c1", self.beta1), ("c2", self.beta2))
        ]

    def sql_moments(
        self, g: sql.Composable, m: sql.Composable, v: sql.Composable
    ) -> tuple[sql.Composable, sql.Composable]:
        """The SQL for (m', v') of one parameter: m and v are unchanged where the optimizer keeps none."""
        from psycopg import sql  # here: the model itself needs no database driver

        L = sql.Literal
        if self.name == "gd":
            return m, v
        if self.name == "momentum":
            return sql.SQL("{mu} * {m} + {g}").format(mu=L(self.momentum), m=m, g=g), v
        m_new = sql.SQL("{b1} * {m} + {c1} * {g}").format(b1=L(self.beta1), m=m, c1=L(1 - self.beta1), g=g)
        v_new = sql.SQL("{b2} * {v} + CASE WHEN abs({g}) < {floor} THEN 0 ELSE {c2} * {g} * {g} END").format(
            b2=L(self.beta2), v=v, c2=L(1 - self.beta2), g=g, floor=L(SQUARE_FLOOR)
        )
        return m_new, v_new

    def sql_weight(
        self,
        w: sql.Composable,
        g: sql.Composable,
        m_new: sql.Composable,
        v_new: sql.Composable,
        rate: sql.Composable,
        corrections: Mapping[str, sql.Composable],
    ) -> sql.Composable:
        """The SQL for w' of one parameter from its new moments (sql_moments) and, for Adam, the bias
        corrections (sql_corrections, by name)."""
        from psycopg import sql

        if self.name == "gd":
            return sql.SQL("{w} - {rate} * {g}").format(w=w, rate=rate, g=g)
        if self.name == "momentum":
            step = (
                sql.SQL("{g} + {mu} * ({m_new})").format(g=g, mu=sql.Literal(self.momentum), m_new=m_new)
                if self.nesterov
                else m_new
            )
            return sql.SQL("{w} - {rate} * ({step})").format(w=w, rate=rate, step=step)
        return sql.SQL("{w} - {rate} * (({m_new}) / {c1}) / (sqrt(({v_new}) / {c2}) + {eps})").format(
            w=w,
            rate=rate,
            m_new=m_new,
            c1=corrections["c1"],
            v_new=v_new,
            c2=corrections["c2"],
            eps=sql.Literal(self.epsilon),
        )

    def sql_step(
        self,
        w: sql.Composable,
        g: sql.Composable,
        m: sql.Composable,
        v: sql.Composable,
        t: sql.Composable,
        rate: sql.Composable,
    ) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
        """The SQL for (w', m', v') of one parameter row, as one expression each; m' and v' may refer
        to m and v only."""
        m_new, v_new = self.sql_moments(g, m, v)
        w_new = self.sql_weight(w, g, m_new, v_new, rate, dict(self.sql_corrections(t)))
        return w_new, m_new, v_new
