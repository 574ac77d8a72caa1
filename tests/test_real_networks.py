"""Issue 3: many samples, batches, activations, losses, optimizers, exact decimals — SQL vs reference."""

from __future__ import annotations

import random
from decimal import Decimal

import psycopg
import pytest

import sqlnet
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Dataset, Network, Params, Sample
from sqlnet.model.optimizers import Optimizer
from sqlnet.model.reference import Arithmetic, OptimizerState
from tests.helpers import random_data, random_network, random_params, table_params
from tests.test_reference import assert_close


def setup(
    conn: psycopg.Connection,
    seed: object,
    depth: int = 2,
    bias: str = "node",
    hidden: str = "relu",
    output: str = "linear",
    loss: str | None = None,
    samples: int = 7,
    ctype: str = "double precision",
):
    rng = random.Random(str(seed))
    net = random_network(rng, depth, bias, hidden, output, loss)
    params = random_params(rng, net)
    data = random_data(rng, net, samples)
    create_tables(conn, net, params, data, column_type=ctype, samples=True)
    return net, params, data


@pytest.mark.parametrize(
    ("batch_size", "shuffle"), [(0, None), (1, None), (3, None), (7, None), (2, 11), (1, 5), (4, 0)]
)
def test_batches_match_reference(
    db_url: str, conn: psycopg.Connection, batch_size: int, shuffle: int | None
) -> None:
    net, params, data = setup(conn, f"batch{batch_size}{shuffle}", hidden="tanh")
    result = sqlnet.train(
        db_url,
        epochs=3,
        learning_rate=0.1,
        hidden_activation="tanh",
        loss=net.loss,
        batch_size=batch_size,
        shuffle=shuffle,
        updates_per_statement=4,
    )
    want = reference.train(net, params, data, 0.1, 3, batch_size=batch_size, shuffle=shuffle)
    assert result.losses == pytest.approx(want.losses, rel=1e-9)
    assert_close(result.params.weights, want.params.weights)
    assert_close(result.params.biases, want.params.biases)
    assert_close(table_params(conn, net).weights, want.params.weights)


def test_sgd_is_not_full_batch(db_url: str, conn: psycopg.Connection) -> None:
    """One update per sample moves the weights differently from one update per epoch."""
    net, params, data = setup(conn, "sgd")
    sgd = sqlnet.check(db_url, epochs=2, learning_rate=0.1, loss=net.loss, batch_size=1)
    full = sqlnet.check(db_url, epochs=2, learning_rate=0.1, loss=net.loss)
    assert sgd.ok and full.ok
    assert sgd.sql_losses[-1] != pytest.approx(full.sql_losses[-1], rel=1e-6)


def test_shuffle_changes_the_order_but_is_deterministic(db_url: str, conn: psycopg.Connection) -> None:
    net, params, data = setup(conn, "shuffle")
    a = sqlnet.check(db_url, epochs=2, learning_rate=0.1, loss=net.loss, batch_size=2, shuffle=1)
    b = sqlnet.check(db_url, epochs=2, learning_rate=0.1, loss=net.loss, batch_size=2, shuffle=1)
    c = sqlnet.check(db_url, epochs=2, learning_rate=0.1, loss=net.loss, batch_size=2, shuffle=2)
    assert a.ok and b.ok and c.ok
    assert a.sql_losses == b.sql_losses
    assert a.sql_losses != c.sql_losses


@pytest.mark.parametrize(
    "optimizer",
    [
        {"optimizer": "momentum", "momentum": 0.9},
        {"optimizer": "momentum", "momentum": 0.5, "nesterov": True},
        {"optimizer": "adam"},
        {"optimizer": "adam", "beta1": 0.8, "beta2": 0.99, "l2": 0.01},
        {"optimizer": "gd", "l2": 0.1},
    ],
)
def test_optimizers_match_reference_and_continue_across_runs(
    db_url: str, conn: psycopg.Connection, optimizer: dict
) -> None:
    net, params, data = setup(conn, f"opt{optimizer}", bias="edge", samples=5)
    opts = dict(learning_rate=0.05, loss=net.loss, batch_size=2, **optimizer)
    first = sqlnet.train(db_url, epochs=2, **opts)
    second = sqlnet.train(db_url, epochs=2, **opts)  # continues the kept optimizer state
    o = Optimizer(
        optimizer.get("optimizer", "gd"),
        optimizer.get("momentum", 0.9),
        optimizer.get("nesterov", False),
        optimizer.get("beta1", 0.9),
        optimizer.get("beta2", 0.999),
        1e-8,
        optimizer.get("l2", 0.0),
    )
    state = OptimizerState.zeros(net)
    want1 = reference.train(net, params, data, 0.05, 2, batch_size=2, optimizer=o, state=state)
    want2 = reference.train(net, want1.params, data, 0.05, 2, batch_size=2, optimizer=o, state=state)
    assert first.losses == pytest.approx(want1.losses, rel=1e-9)
    assert second.losses == pytest.approx(want2.losses, rel=1e-9)
    assert_close(second.params.weights, want2.params.weights)
    assert_close(second.params.biases, want2.params.biases)
    # and `check` starts from the kept state too
    assert sqlnet.check(db_url, epochs=2, **opts).ok


def test_reset_optimizer_starts_from_zero(db_url: str, conn: psycopg.Connection) -> None:
    net, params, data = setup(conn, "reset", samples=4)
    sqlnet.train(db_url, epochs=1, learning_rate=0.05, loss=net.loss, optimizer="adam")
    before = table_params(conn, net)
    result = sqlnet.train(
        db_url, epochs=1, learning_rate=0.05, loss=net.loss, optimizer="adam", reset_optimizer=True
    )
    want = reference.train(net, before, data, 0.05, 1, optimizer=Optimizer("adam"))
    assert_close(result.params.weights, want.params.weights)


@pytest.mark.parametrize(("output", "depth"), [("softmax", 1), ("softmax", 3), ("sigmoid", 2)])
def test_cross_entropy_matches_reference(
    db_url: str, conn: psycopg.Connection, output: str, depth: int
) -> None:
    net, params, data = setup(
        conn, f"ce{output}{depth}", depth=depth, output=output, loss="cross-entropy", hidden="sigmoid"
    )
    report = sqlnet.check(
        db_url,
        epochs=3,
        learning_rate=0.5,
        hidden_activation="sigmoid",
        output_activation=output,
        loss="cross-entropy",
        batch_size=3,
    )
    assert report.ok, report.differences
    assert report.sql_losses[-1] < report.sql_losses[0]


def test_cross_entropy_is_stable_for_huge_inputs(db_url: str, conn: psycopg.Connection) -> None:
    """z of +-1000 would overflow exp() in a naive softmax or log(sigmoid)."""
    net = Network((1, 3), "relu", "softmax", "cross-entropy", "node")
    params = Params([[[1000.0, -1000.0, 0.0]]], [[[0.0, 0.0, 0.0]]])
    data = Dataset([Sample(1, (1.0,), (0.0, 1.0, 0.0)), Sample(2, (-1.0,), (1.0, 0.0, 0.0))])
    create_tables(conn, net, params, data)
    report = sqlnet.check(
        db_url, epochs=1, learning_rate=0.001, output_activation="softmax", loss="cross-entropy"
    )
    assert report.ok, report.differences
    assert report.sql_losses[0] == pytest.approx(2000.0, rel=1e-9)


def test_exact_numeric_reproduces_decimal_digit_for_digit(db_url: str, conn: psycopg.Connection) -> None:
    net, params, data = setup(conn, "exact", depth=3, bias="edge", samples=5, ctype="numeric")
    report = sqlnet.check(
        db_url,
        epochs=4,
        learning_rate=0.3,
        loss=net.loss,
        numeric="exact",
        scale=10,
        batch_size=2,
        updates_per_statement=3,
    )
    assert report.ok
    assert all(d.digit_mismatches == 0 for d in report.differences)
    result = sqlnet.train(
        db_url, epochs=4, learning_rate=0.3, loss=net.loss, numeric="exact", scale=10, batch_size=2
    )
    stored = conn.execute("SELECT weight1value FROM weights1 ORDER BY 1 LIMIT 1").fetchone()[0]
    assert isinstance(stored, Decimal) and stored.as_tuple().exponent >= -10
    with conn.cursor() as cur:
        rows = cur.execute(
            "SELECT weight2inputnodenumber, weight2outputnodenumber, weight2value FROM weights2"
        ).fetchall()
    exact = reference.train(
        net,
        Params(
            [[[Decimal(str(v)) for v in r] for r in m] for m in params.weights],
            [[[Decimal(str(v)) for v in r] for r in m] for m in params.biases],
        ),
        data,
        0.3,
        4,
        batch_size=2,
        arith=Arithmetic(10),
    )
    for i, j, v in rows:
        assert v == exact.params.weights[1][int(i) - 1][int(j) - 1]  # the same digits, not merely close
    assert result.losses


def test_exact_mode_refuses_what_it_cannot_reproduce(post_db: str) -> None:
    with pytest.raises(sqlnet.InputError, match="relu and linear"):
        sqlnet.train(post_db, numeric="exact", hidden_activation="tanh")
    with pytest.raises(sqlnet.InputError, match="plain gradient descent"):
        sqlnet.train(post_db, numeric="exact", optimizer="adam")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"batch_size": 8}, "batch size 8 is larger than the data"),
        ({"output_activation": "softmax", "loss": "cross-entropy"}, "at least 2 output nodes"),
        ({"loss": "cross-entropy"}, "needs a softmax or sigmoid output"),
        ({"output_activation": "softmax"}, "softmax output needs --loss cross-entropy"),
        ({"hidden_activation": "softmax"}, "can only be the output activation"),
        ({"output_activation": "sigmoid", "loss": "cross-entropy"}, "between 0 and 1"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"nesterov": True}, "--nesterov needs --optimizer momentum"),
        ({"optimizer": "momentum", "momentum": 1.5}, "momentum must be in"),
    ],
)
def test_bad_real_network_options(db_url: str, conn: psycopg.Connection, options: dict, words: str) -> None:
    rng = random.Random(3)
    net = Network((2, 3, 1))
    data = Dataset([Sample(i, (rng.random(), rng.random()), (rng.uniform(2, 3),)) for i in range(1, 8)])
    create_tables(conn, net, random_params(rng, net), data)
    with pytest.raises(sqlnet.InputError, match=words):
        sqlnet.train(db_url, **options)


def test_linear_fit_by_per_sample_sgd(db_url: str, conn: psycopg.Connection) -> None:
    """The 1-1-1 linear tutorial: f(x) = 5x + 3 on x = 0..12 by per-sample SGD in order."""
    net = Network((1, 1, 1), "linear", "linear", "half-se", "node")
    data = Dataset([Sample(x + 1, (x / 12,), (5 * x / 12 + 3,)) for x in range(13)])
    create_tables(conn, net, Params([[[0.5]], [[0.5]]], [[[0.0]], [[0.0]]]), data)
    result = sqlnet.train(
        db_url,
        epochs=150,
        learning_rate=0.1,
        hidden_activation="linear",
        batch_size=1,
        updates_per_statement=500,
    )
    want = reference.train(net, Params([[[0.5]], [[0.5]]], [[[0.0]], [[0.0]]]), data, 0.1, 150, batch_size=1)
    assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-15)
    assert result.losses[-1] < 1e-6
