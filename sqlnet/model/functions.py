"""Activations and losses as data: each one's value and derivative, in Python and in SQL, side by side.

The reference maths calls the Python lambdas; the SQL layouts format the SQL templates, whose
placeholders ``{z}`` (a node's input), ``{a}`` (its activation), ``{y}`` (an output) and ``{t}``
(its target) are filled with ``psycopg.sql`` fragments. A new activation is one more row here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# PostgreSQL raises "value out of range: overflow/underflow" where Python's math.exp would; clamping
# the argument of exp() to +-700 keeps both finite, and both sides clamp the same way.
EXP_LIMIT = 700.0


def _clamp(z: float) -> float:
    return max(-EXP_LIMIT, min(EXP_LIMIT, z))


@dataclass(frozen=True)
class Activation:
    name: str
    value: Callable[[float], float]  # a = f(z)
    derivative: Callable[[float, float], float]  # f'(z), given z and a = f(z)
    sql_value: str  # SQL for f, in terms of {z}
    sql_derivative: str  # SQL for f', in terms of {z} and {a}
    formula: str  # for comments in the generated SQL
    elementwise: bool = True  # softmax is not: each output depends on all of its layer
    # f' in terms of {a} alone, where sql_derivative needs z: a layout that drops z after the
    # activation (the wide one) uses it (relu: a = max(z, 0) > 0 exactly when z > 0)
    sql_derivative_of_a: str = ""

    @property
    def sql_derivative_from_a(self) -> str | None:
        """f' computed from the activation alone, or None where it needs z."""
        if "{z}" not in self.sql_derivative:
            return self.sql_derivative
        return self.sql_derivative_of_a or None


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "relu",
            value=lambda z: z if z > 0 else 0 * z,  # 0 * z keeps the type: float, or Decimal in exact mode
            derivative=lambda z, a: 1 if z > 0 else 0,
            sql_value="greatest({z}, 0)",
            sql_derivative="CASE WHEN {z} > 0 THEN 1 ELSE 0 END",
            sql_derivative_of_a="CASE WHEN {a} > 0 THEN 1 ELSE 0 END",
            formula="max(z, 0)",
        ),
        Activation(
            "linear",
            value=lambda z: z,
            derivative=lambda z, a: 1,
            sql_value="{z}",
            sql_derivative="1",
            formula="z",
        ),
        Activation(
            "sigmoid",
            value=lambda z: 1.0 / (1.0 + math.exp(-_clamp(z))),
            derivative=lambda z, a: a * (1.0 - a),
            sql_value="1 / (1 + exp(-least(greatest({z}, -700), 700)))",
            sql_derivative="{a} * (1 - {a})",
            formula="1 / (1 + exp(-z))",
        ),
        Activation(
            "tanh",
            value=math.tanh,
            derivative=lambda z, a: 1.0 - a * a,
            sql_value="tanh({z})",
            sql_derivative="1 - {a} * {a}",
            formula="tanh(z)",
        ),
        # softmax couples the nodes of its layer, so its value is computed over a whole layer
        # (``softmax`` below) and it only serves as the output of a cross-entropy loss, whose delta
        # y - t already includes its derivative; value and derivative here are never used per node.
        Activation(
            "softmax",
            value=lambda z: math.nan,
            derivative=lambda z, a: math.nan,
            sql_value="exp(greatest({z} - {zmax}, -700))",  # then divided by its sum over the layer
            sql_derivative="1",
            formula="exp(z - max z) / sum of exp(z - max z)",
            elementwise=False,
        ),
    )
}


def softmax(z: list[float]) -> list[float]:
    """Numerically stable: shift by the largest input; exp() is clamped at -700 like the SQL's."""
    top = max(z)
    e = [math.exp(max(v - top, -EXP_LIMIT)) for v in z]
    total = sum(e)
    return [v / total for v in e]


def softplus(x: float) -> float:
    """log(1 + exp(x)) without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


SQL_SOFTPLUS = "(greatest({x}, 0) + ln(1 + exp(-least(abs({x}), 700))))"


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable[[float, float], float]  # the loss contributed by one output y with target t
    gradient: Callable[[float, float], float]  # dL/dy
    sql_value: str  # in terms of {y} and {t}
    sql_gradient: str
    formula: str
    # None: any output activation, delta = dL/dy * f'(z). Otherwise the output activations it
    # pairs with, whose delta simplifies to y - t and whose loss is computed from z (stable).
    outputs: tuple[str, ...] | None = None


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            "half-se",
            value=lambda y, t: (y - t) * (y - t) / 2,  # = 0.5 * (y - t)^2 exactly, in float and Decimal
            gradient=lambda y, t: y - t,
            sql_value="0.5 * ({y} - {t}) * ({y} - {t})",
            sql_gradient="{y} - {t}",
            formula="1/2 * sum over outputs of (y - t)^2",
        ),
        Loss(
            "se",
            value=lambda y, t: (y - t) * (y - t),
            gradient=lambda y, t: 2 * (y - t),
            sql_value="({y} - {t}) * ({y} - {t})",
            sql_gradient="2 * ({y} - {t})",
            formula="sum over outputs of (y - t)^2",
        ),
        Loss(
            "cross-entropy",
            value=lambda y, t: math.nan,  # computed from z: see cross_entropy_terms
            gradient=lambda y, t: y - t,
            sql_value="",
            sql_gradient="{y} - {t}",
            formula="cross-entropy: -sum over outputs of t * log(y) (softmax), "
            "or of t log y + (1 - t) log(1 - y) (sigmoid)",
            outputs=("softmax", "sigmoid"),
        ),
    )
}


# Cross-entropy from the output's input z, never from log(y), which is -inf once y rounds to 0:
#   softmax: -t * log softmax(z) = -t * (z - logsumexp(z))
#   sigmoid: -(t log s(z) + (1 - t) log(1 - s(z))) = t * softplus(-z) + (1 - t) * softplus(z)
def cross_entropy_terms(output: str, z: list[float], t: tuple[float, ...]) -> float:
    if output == "softmax":
        top = max(z)
        lse = top + math.log(sum(math.exp(max(v - top, -EXP_LIMIT)) for v in z))
        return sum(-tj * (zj - lse) for zj, tj in zip(z, t))
    return sum(tj * softplus(-zj) + (1 - tj) * softplus(zj) for zj, tj in zip(z, t))


SQL_CROSS_ENTROPY = {
    # {lse} is the sample's log-sum-exp of z
    "softmax": "-{t} * ({z} - {lse})",
    "sigmoid": "{t} * " + SQL_SOFTPLUS.format(x="-{z}") + " + (1 - {t}) * " + SQL_SOFTPLUS.format(x="{z}"),
}
