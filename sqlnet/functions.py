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


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "relu",
            value=lambda z: z if z > 0 else 0.0,
            derivative=lambda z, a: 1.0 if z > 0 else 0.0,
            sql_value="greatest({z}, 0)",
            sql_derivative="CASE WHEN {z} > 0 THEN 1 ELSE 0 END",
            formula="max(z, 0)",
        ),
        Activation(
            "linear",
            value=lambda z: z,
            derivative=lambda z, a: 1.0,
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
    )
}


@dataclass(frozen=True)
class Loss:
    name: str
    value: Callable[[float, float], float]  # the loss contributed by one output y with target t
    gradient: Callable[[float, float], float]  # dL/dy
    sql_value: str  # in terms of {y} and {t}
    sql_gradient: str
    formula: str


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            "half-se",
            value=lambda y, t: 0.5 * (y - t) * (y - t),
            gradient=lambda y, t: y - t,
            sql_value="0.5 * ({y} - {t}) * ({y} - {t})",
            sql_gradient="{y} - {t}",
            formula="1/2 * sum over outputs of (y - t)^2",
        ),
        Loss(
            "se",
            value=lambda y, t: (y - t) * (y - t),
            gradient=lambda y, t: 2.0 * (y - t),
            sql_value="({y} - {t}) * ({y} - {t})",
            sql_gradient="2 * ({y} - {t})",
            formula="sum over outputs of (y - t)^2",
        ),
    )
}
