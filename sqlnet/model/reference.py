"""The reference: forward pass, loss, backpropagation and the optimizers in plain Python.

No NumPy, no SQL: this module is the textbook, and every number the SQL produces is checked
against it. Notation: layer k takes activations a[k-1] to inputs z[k] = W_k^T a[k-1] + bias,
then a[k] = f_k(z[k]); delta[k] = dL/dz[k].

`Arithmetic` says how numbers round: in float8 nothing is rounded; in exact mode every phase
rounds to a fixed number of decimals exactly where the SQL does, so Python's Decimal reproduces
PostgreSQL's NUMERIC digit for digit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sqlnet.model.functions import ACTIVATIONS, LOSSES, cross_entropy_terms, softmax
from sqlnet.model.network import Dataset, Network, Params, Sample, Vector
from sqlnet.model.optimizers import Optimizer

Number = Any  # float, or Decimal in exact mode


@dataclass(frozen=True)
class Arithmetic:
    """float8 (scale None) or exact decimals rounded at `scale` digits after the point."""

    scale: int | None = None

    def number(self, v: Any) -> Number:
        return float(v) if self.scale is None else Decimal(str(v))

    def round(self, x: Number) -> Number:
        """PostgreSQL's round(numeric, s): half away from zero, which is Decimal's ROUND_HALF_UP."""
        if self.scale is None:
            return x
        return x.quantize(Decimal(1).scaleb(-self.scale), rounding=ROUND_HALF_UP)

    def mean(self, total: Number, n: int) -> Number:
        """sum / n; exact mode truncates at `scale` digits like div(total * 10^s, n) * 1e-s."""
        if self.scale is None:
            return total / n
        return ((total.scaleb(self.scale)) / n).to_integral_value(rounding=ROUND_DOWN).scaleb(-self.scale)


FLOAT = Arithmetic()


@dataclass
class Forward:
    """The values of one sample's forward pass: z[k] and a[k] for k = 0..K (z[0] = a[0] = x)."""

    z: list[Vector]
    a: list[Vector]

    @property
    def output(self) -> Vector:
        return self.a[-1]


def forward(
    net: Network, params: Params, x: Vector | tuple[float, ...], arith: Arithmetic = FLOAT
) -> Forward:
    z: list[Vector] = [list(x)]
    a: list[Vector] = [list(x)]
    for k in range(1, net.depth + 1):
        f = ACTIVATIONS[net.activation(k)]
        w, b = params.weights[k - 1], params.biases[k - 1]
        zk = [
            arith.round(
                sum(w[i][j] * a[k - 1][i] for i in range(net.sizes[k - 1])) + sum(row[j] for row in b)
            )
            for j in range(net.sizes[k])
        ]
        z.append(zk)
        a.append(softmax(zk) if not f.elementwise else [f.value(v) for v in zk])
    return Forward(z, a)


def sample_loss(net: Network, fwd: Forward, t: tuple[float, ...], arith: Arithmetic = FLOAT) -> Number:
    loss = LOSSES[net.loss]
    if loss.outputs is not None:  # cross-entropy, from z for stability
        return cross_entropy_terms(net.output_activation, fwd.z[-1], t)
    return arith.round(sum(loss.value(y, tj) for y, tj in zip(fwd.output, t)))


def backward(
    net: Network, params: Params, fwd: Forward, t: tuple[float, ...], arith: Arithmetic = FLOAT
) -> list[Vector]:
    """delta[k] = dL/dz[k] for k = 1..K, returned as a list indexed k - 1."""
    K = net.depth
    loss = LOSSES[net.loss]
    f_out = ACTIVATIONS[net.activation(K)]
    # the output layer: dL/dz = dL/dy * f'(z), which is y - t for cross-entropy with its own output
    paired = loss.outputs is not None
    deltas: dict[int, Vector] = {
        K: [
            arith.round(loss.gradient(y, tj) * (1 if paired else f_out.derivative(z, y)))
            for y, tj, z in zip(fwd.a[K], t, fwd.z[K])
        ]
    }
    # a hidden layer: each node's delta sums what it sent forward, weighted by the (old) weights
    for k in range(K - 1, 0, -1):
        f = ACTIVATIONS[net.activation(k)]
        w_next = params.weights[k]
        deltas[k] = [
            arith.round(
                sum(w_next[i][j] * deltas[k + 1][j] for j in range(net.sizes[k + 1]))
                * f.derivative(fwd.z[k][i], fwd.a[k][i])
            )
            for i in range(net.sizes[k])
        ]
    return [deltas[k] for k in range(1, K + 1)]


def zeros_like(net: Network, value: Number = 0.0) -> Params:
    return Params(
        [[[value] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[value] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )


def gradients(
    net: Network, params: Params, samples: list[Sample], arith: Arithmetic = FLOAT
) -> tuple[Params, list[Number]]:
    """The gradient of the mean loss over the samples, and each sample's loss."""
    total = zeros_like(net, arith.number(0))
    losses = []
    for s in samples:
        fwd = forward(net, params, s.x, arith)
        losses.append(sample_loss(net, fwd, s.t, arith))
        deltas = backward(net, params, fwd, s.t, arith)
        for k in range(1, net.depth + 1):
            d, a_prev = deltas[k - 1], fwd.a[k - 1]
            for i, ai in enumerate(a_prev):
                for j, dj in enumerate(d):
                    total.weights[k - 1][i][j] += ai * dj
            for row in total.biases[k - 1]:
                for j, dj in enumerate(d):
                    row[j] += dj
    n = len(samples)
    mean = Params(
        [[[arith.mean(g, n) for g in row] for row in m] for m in total.weights],
        [[[arith.mean(g, n) for g in row] for row in m] for m in total.biases],
    )
    return mean, losses


@dataclass
class OptimizerState:
    """Per-parameter state (m, v shaped like Params) and the number of updates made so far."""

    m: Params
    v: Params
    t: int = 0

    @classmethod
    def zeros(cls, net: Network) -> OptimizerState:
        return cls(zeros_like(net), zeros_like(net), 0)


def update(
    net: Network,
    params: Params,
    grad: Params,
    rate: Number,
    optimizer: Optimizer,
    state: OptimizerState,
    arith: Arithmetic = FLOAT,
) -> Params:
    """Apply one optimizer step to every weight and bias; updates `state` in place."""
    state.t += 1
    new = params.copy()
    for kind in ("weights", "biases"):
        for m_new, m_grad, m_m, m_v in zip(
            getattr(new, kind), getattr(grad, kind), getattr(state.m, kind), getattr(state.v, kind)
        ):
            for row, grow, mrow, vrow in zip(m_new, m_grad, m_m, m_v):
                for j, g in enumerate(grow):
                    if kind == "weights" and optimizer.l2:
                        g = g + optimizer.l2 * row[j]  # L2 decay on weights, not on biases
                    w, mrow[j], vrow[j] = optimizer.step(row[j], g, mrow[j], vrow[j], state.t, rate)
                    if kind == "weights":
                        w = optimizer.decay(w, row[j], rate)  # decoupled weight decay, after the step
                    row[j] = arith.round(w)
    return new


def step(
    net: Network, params: Params, samples: list[Sample], learning_rate: float, arith: Arithmetic = FLOAT
) -> tuple[Params, float]:
    """One plain gradient-descent update on the samples; returns the new parameters and the mean loss."""
    grad, losses = gradients(net, params, samples, arith)
    new = update(net, params, grad, learning_rate, Optimizer(), OptimizerState.zeros(net), arith)
    return new, sum(losses) / len(losses)


def batch_order(data: Dataset, epoch: int, shuffle: int | None) -> list[Sample]:
    """The samples in ascending sample id, or shuffled for the epoch: by md5('seed:epoch:sample')."""
    if shuffle is None:
        return sorted(data.samples, key=lambda s: s.id)
    return sorted(
        data.samples, key=lambda s: (hashlib.md5(f"{shuffle}:{epoch}:{s.id}".encode()).hexdigest(), s.id)
    )


def batches(data: Dataset, epoch: int, batch_size: int, shuffle: int | None) -> list[list[Sample]]:
    """Consecutive batches of `batch_size` samples (0: one batch of all), the last possibly smaller."""
    order = batch_order(data, epoch, shuffle)
    size = batch_size or len(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


@dataclass
class TrainResult:
    params: Params
    losses: list[float] = field(default_factory=list)  # the mean loss of each epoch over its samples
    state: OptimizerState | None = None


def train(
    net: Network,
    params: Params,
    data: Dataset,
    learning_rate: float,
    epochs: int,
    *,
    batch_size: int = 0,
    shuffle: int | None = None,
    optimizer: Optimizer | None = None,
    state: OptimizerState | None = None,
    arith: Arithmetic = FLOAT,
) -> TrainResult:
    """Train as the SQL does: per epoch, one update per batch; each sample's loss is taken in its batch."""
    optimizer = optimizer or Optimizer()
    state = state or OptimizerState.zeros(net)
    rate = arith.number(learning_rate)
    params = Params(
        [[[arith.number(v) for v in row] for row in m] for m in params.weights],
        [[[arith.number(v) for v in row] for row in m] for m in params.biases],
    )
    data = Dataset(
        [Sample(s.id, tuple(map(arith.number, s.x)), tuple(map(arith.number, s.t))) for s in data.samples]
    )
    with localcontext() as ctx:
        ctx.prec = 400  # exact mode: sums of products never round; only Arithmetic.round does
        result = TrainResult(params, state=state)
        for epoch in range(1, epochs + 1):
            epoch_losses: list[Number] = []
            for batch in batches(data, epoch, batch_size, shuffle):
                grad, losses = gradients(net, result.params, batch, arith)
                epoch_losses += losses
                result.params = update(net, result.params, grad, rate, optimizer, state, arith)
            result.losses.append(float(sum(epoch_losses)) / len(epoch_losses))
    return result


def mean_loss(net: Network, params: Params, data: Dataset) -> float:
    return sum(sample_loss(net, forward(net, params, s.x), s.t) for s in data.samples) / len(data)
