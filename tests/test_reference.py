"""The reference maths against the post's numbers and against finite differences (no database)."""

from __future__ import annotations

import random

import pytest

from sqlnet.model import reference
from sqlnet.model.functions import ACTIVATIONS
from sqlnet.model.network import Dataset, Network, Params, Sample
from tests.helpers import (
    POST_BIASES_AFTER,
    POST_DATA,
    POST_NET,
    POST_PARAMS,
    POST_WEIGHTS_AFTER,
    random_data,
    random_network,
    random_params,
)


def assert_close(got: list, want: list, tol: float = 1e-9) -> None:
    flat_got = [v for m in got for row in m for v in row]
    flat_want = [v for m in want for row in m for v in row]
    assert len(flat_got) == len(flat_want)
    for g, w in zip(flat_got, flat_want):
        assert g == pytest.approx(w, rel=tol, abs=tol), (got, want)


def test_post_forward() -> None:
    fwd = reference.forward(POST_NET, POST_PARAMS, POST_DATA.samples[0].x)
    assert fwd.z[1] == [50, 59]
    assert fwd.a[1] == [50, 59]
    assert fwd.output == [291, 400, 509]
    assert reference.sample_loss(POST_NET, fwd, POST_DATA.samples[0].t) == 9


def test_post_one_step() -> None:
    new, loss = reference.step(POST_NET, POST_PARAMS, POST_DATA.samples, 0.1)
    assert loss == 9
    assert_close(new.weights, POST_WEIGHTS_AFTER)
    assert_close(new.biases, POST_BIASES_AFTER)


def test_step_does_not_touch_its_input() -> None:
    before = POST_PARAMS.copy()
    reference.step(POST_NET, POST_PARAMS, POST_DATA.samples, 0.1)
    assert before == POST_PARAMS


def _numeric_gradient(
    net: Network, params: Params, data: Dataset, which: str, k: int, r: int, j: int
) -> float:
    h = 1e-6
    values = []
    for sign in (1, -1):
        p = params.copy()
        (p.weights if which == "w" else p.biases)[k][r][j] += sign * h
        values.append(reference.mean_loss(net, p, data))
    return (values[0] - values[1]) / (2 * h)


@pytest.mark.parametrize("bias", ["edge", "node", "none"])
@pytest.mark.parametrize("hidden", [a for a in ACTIVATIONS if ACTIVATIONS[a].elementwise])
@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("linear", None),
        ("sigmoid", None),
        ("tanh", None),
        ("sigmoid", "cross-entropy"),
        ("softmax", "cross-entropy"),
    ],
)
def test_gradients_match_finite_differences(bias: str, hidden: str, output: str, loss: str | None) -> None:
    rng = random.Random(f"{bias}{hidden}{output}{loss}")
    for depth in (1, 2, 3):
        net = random_network(rng, depth, bias, hidden, output, loss)
        params = random_params(rng, net)
        data = random_data(rng, net, 3)
        grad, _ = reference.gradients(net, params, data.samples)
        for k in range(net.depth):
            for which, analytic in (("w", grad.weights[k]), ("b", grad.biases[k])):
                for r, row in enumerate(analytic):
                    for j, g in enumerate(row):
                        numeric = _numeric_gradient(net, params, data, which, k, r, j)
                        assert g == pytest.approx(numeric, rel=1e-5, abs=1e-7), (net, which, k, r, j)


def test_linear_fit_converges() -> None:
    """The 1-1-1 linear tutorial: f(x) = 5x + 3 on x = 0..12, node biases; full batch here."""
    net = Network((1, 1, 1), "linear", "linear", "half-se", "node")
    data = Dataset([Sample(x + 1, (x / 12,), (5 * x / 12 + 3,)) for x in range(13)])
    params = Params([[[0.5]], [[0.5]]], [[[0.0]], [[0.0]]])
    result = reference.train(net, params, data, 0.3, 2000)
    assert result.losses[-1] < 1e-9
    assert result.losses[-1] < result.losses[0]


def test_sigmoid_network_without_biases_changes_weights_by_eta_delta_input() -> None:
    """The 3-2-1 sigmoid tutorial shape: weight change = -eta * delta * input for one sample."""
    net = Network((3, 2, 1), "sigmoid", "sigmoid", "half-se", "none")
    params = Params([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[0.7], [0.8]]], [[], []])
    sample = Sample(1, (1.0, 0.0, 1.0), (1.0,))
    fwd = reference.forward(net, params, sample.x)
    deltas = reference.backward(net, params, fwd, sample.t)
    new, _ = reference.step(net, params, [sample], 0.5)
    for k in (0, 1):
        for i, a in enumerate(fwd.a[k]):
            for j, d in enumerate(deltas[k]):
                assert new.weights[k][i][j] - params.weights[k][i][j] == pytest.approx(
                    -0.5 * d * a, abs=1e-15
                )
