"""The reference: forward pass, loss, backpropagation and gradient descent in plain Python.

No NumPy, no SQL: this module is the textbook, and every number the SQL produces is checked
against it. Notation: layer k takes activations a[k-1] to inputs z[k] = W_k^T a[k-1] + bias,
then a[k] = f_k(z[k]); delta[k] = dL/dz[k].
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlnet.functions import ACTIVATIONS, LOSSES
from sqlnet.network import Dataset, Network, Params, Sample, Vector


@dataclass
class Forward:
    """The values of one sample's forward pass: z[k] and a[k] for k = 0..K (z[0] = a[0] = x)."""

    z: list[Vector]
    a: list[Vector]

    @property
    def output(self) -> Vector:
        return self.a[-1]


def forward(net: Network, params: Params, x: Vector | tuple[float, ...]) -> Forward:
    z: list[Vector] = [list(x)]
    a: list[Vector] = [list(x)]
    for k in range(1, net.depth + 1):
        f = ACTIVATIONS[net.activation(k)]
        w, b = params.weights[k - 1], params.biases[k - 1]
        zk = [
            sum(w[i][j] * a[k - 1][i] for i in range(net.sizes[k - 1])) + sum(row[j] for row in b)
            for j in range(net.sizes[k])
        ]
        z.append(zk)
        a.append([f.value(v) for v in zk])
    return Forward(z, a)


def sample_loss(net: Network, y: Vector, t: tuple[float, ...]) -> float:
    loss = LOSSES[net.loss]
    return sum(loss.value(yo, to) for yo, to in zip(y, t))


def backward(net: Network, params: Params, fwd: Forward, t: tuple[float, ...]) -> list[Vector]:
    """delta[k] = dL/dz[k] for k = 1..K, returned as a list indexed k - 1."""
    K = net.depth
    loss = LOSSES[net.loss]
    f_out = ACTIVATIONS[net.activation(K)]
    # the output layer: dL/dz = dL/dy * f'(z)
    deltas: dict[int, Vector] = {
        K: [loss.gradient(y, tj) * f_out.derivative(z, y) for y, tj, z in zip(fwd.a[K], t, fwd.z[K])]
    }
    # a hidden layer: each node's delta sums what it sent forward, weighted by the (old) weights
    for k in range(K - 1, 0, -1):
        f = ACTIVATIONS[net.activation(k)]
        w_next = params.weights[k]
        deltas[k] = [
            f.derivative(fwd.z[k][i], fwd.a[k][i])
            * sum(w_next[i][j] * deltas[k + 1][j] for j in range(net.sizes[k + 1]))
            for i in range(net.sizes[k])
        ]
    return [deltas[k] for k in range(1, K + 1)]


def gradients(net: Network, params: Params, samples: list[Sample]) -> tuple[Params, float]:
    """The gradient of the mean loss over the samples, and that mean loss."""
    n = len(samples)
    grad = Params(
        [[[0.0] * net.sizes[k] for _ in range(net.sizes[k - 1])] for k in range(1, net.depth + 1)],
        [[[0.0] * net.sizes[k] for _ in range(net.bias_rows(k))] for k in range(1, net.depth + 1)],
    )
    total = 0.0
    for s in samples:
        fwd = forward(net, params, s.x)
        total += sample_loss(net, fwd.output, s.t)
        deltas = backward(net, params, fwd, s.t)
        for k in range(1, net.depth + 1):
            d, a_prev = deltas[k - 1], fwd.a[k - 1]
            for i, ai in enumerate(a_prev):
                for j, dj in enumerate(d):
                    grad.weights[k - 1][i][j] += ai * dj / n
            for row in grad.biases[k - 1]:
                for j, dj in enumerate(d):
                    row[j] += dj / n
    return grad, total / n


def step(net: Network, params: Params, samples: list[Sample], learning_rate: float) -> tuple[Params, float]:
    """One gradient-descent update on the samples; returns the new parameters and the loss before it."""
    grad, loss = gradients(net, params, samples)
    new = params.copy()
    for new_m, grad_m in zip(new.weights + new.biases, grad.weights + grad.biases):
        for row, grow in zip(new_m, grad_m):
            for j, g in enumerate(grow):
                row[j] -= learning_rate * g
    return new, loss


@dataclass
class TrainResult:
    params: Params
    losses: list[float] = field(default_factory=list)  # the mean loss of each epoch, before its update


def train(net: Network, params: Params, data: Dataset, learning_rate: float, epochs: int) -> TrainResult:
    """Full-batch gradient descent, one update per epoch, as the SQL does it."""
    result = TrainResult(params.copy())
    for _ in range(epochs):
        result.params, loss = step(net, result.params, data.samples, learning_rate)
        result.losses.append(loss)
    return result


def mean_loss(net: Network, params: Params, data: Dataset) -> float:
    return sum(sample_loss(net, forward(net, params, s.x).output, s.t) for s in data.samples) / len(data)
