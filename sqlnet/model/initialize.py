"""Random starting weights, so nobody writes weights tables by hand.

- he:      normal with standard deviation sqrt(2 / n_in) (for ReLU layers)
- xavier:  uniform in +-sqrt(6 / (n_in + n_out)) (for sigmoid and tanh layers)
- uniform: uniform in +-1 / sqrt(n_in)
Biases start at zero. The same seed gives the same weights.
"""

from __future__ import annotations

import math
import random

from sqlnet.errors import InputError
from sqlnet.model.network import Network, Params

INITS = ("he", "xavier", "uniform")


def initial_params(net: Network, scheme: str = "he", seed: int | None = None) -> Params:
    if scheme not in INITS:
        raise InputError(f"unknown initialisation {scheme!r}: choose one of {', '.join(INITS)}")
    rng = random.Random(seed)

    def draw(n_in: int, n_out: int) -> float:
        if scheme == "he":
            return rng.gauss(0.0, math.sqrt(2.0 / n_in))
        limit = math.sqrt(6.0 / (n_in + n_out)) if scheme == "xavier" else 1.0 / math.sqrt(n_in)
        return rng.uniform(-limit, limit)

    weights = [
        [[draw(net.sizes[k - 1], net.sizes[k]) for _ in range(net.sizes[k])] for _ in range(net.sizes[k - 1])]
        for k in range(1, net.depth + 1)
    ]
    biases = [[[0.0] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)]
    return Params(weights, biases)
