"""init --layers (random weights) and gradcheck (SQL gradients against finite differences)."""

from __future__ import annotations

import dataclasses
import json
import math

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.model import functions
from sqlnet.model.initialize import initial_params
from sqlnet.model.network import Network


def fill_data(conn: psycopg.Connection, n: int, n_in: int, n_out: int, one_hot: bool = False) -> None:
    conn.execute(
        "INSERT INTO inputs SELECT s, i, sin(s * 7 + i) FROM generate_series(1, %s) s, generate_series(1, %s) i",
        (n, n_in),
    )
    target = f"(o = 1 + s %% {n_out})::int" if one_hot else "cos(s * 3 + o) / 2 + 0.5"
    conn.execute(
        f"INSERT INTO outputs SELECT s, o, {target} FROM generate_series(1, %s) s, generate_series(1, %s) o",
        (n, n_out),
    )


def test_init_layers_creates_random_repeatable_weights(db_url: str, conn: psycopg.Connection) -> None:
    created = sqlnet.init(db_url, layers=[4, 8, 8, 3], seed=5, bias="node")
    assert created == [
        "inputs",
        "outputs",
        "weights1",
        "biases1",
        "weights2",
        "biases2",
        "weights3",
        "biases3",
    ]
    (count,) = conn.execute("SELECT count(*) FROM weights2").fetchone()
    assert count == 64
    first = conn.execute("SELECT weight1value FROM weights1 ORDER BY 1").fetchall()
    sqlnet.init(db_url, layers=[4, 8, 8, 3], seed=5, bias="node", replace=True)
    assert conn.execute("SELECT weight1value FROM weights1 ORDER BY 1").fetchall() == first
    (zeros,) = conn.execute("SELECT count(*) FROM biases1 WHERE bias1value = 0").fetchone()
    assert zeros == 8
    # a shallower network replaces every old weights/biases table, so none extends it
    sqlnet.init(db_url, layers=[4, 3], seed=1, replace=True)
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert tables == {"inputs", "outputs", "weights1"}


def test_init_layers_refuses_to_overwrite(db_url: str) -> None:
    sqlnet.init(db_url, layers=[2, 2])
    with pytest.raises(sqlnet.InputError, match="weights1 already exist"):
        sqlnet.init(db_url, layers=[2, 2])


@pytest.mark.parametrize("scheme", ["he", "xavier", "uniform"])
def test_initialisation_scales(scheme: str) -> None:
    net = Network((200, 100, 1))
    w = [v for row in initial_params(net, scheme, seed=1).weights[0] for v in row]
    spread = math.sqrt(sum(v * v for v in w) / len(w))
    expected = {
        "he": math.sqrt(2 / 200),
        "xavier": math.sqrt(6 / 300) / math.sqrt(3),
        "uniform": 1 / math.sqrt(200) / math.sqrt(3),
    }
    assert spread == pytest.approx(expected[scheme], rel=0.05)


def test_trains_after_init(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, layers=[3, 6, 2], seed=3, bias="node")
    fill_data(conn, 12, 3, 2)
    report = sqlnet.check(
        db_url,
        epochs=5,
        learning_rate=0.2,
        batch_size=4,
        output_activation="sigmoid",
        loss="cross-entropy",
        hidden_activation="tanh",
    )
    assert report.ok, report.differences


@pytest.mark.parametrize(
    ("hidden", "output", "loss", "bias", "one_hot"),
    [
        ("relu", "linear", "half-se", "edge", False),
        ("tanh", "linear", "se", "node", False),
        ("sigmoid", "sigmoid", "cross-entropy", "none", False),
        ("tanh", "softmax", "cross-entropy", "node", True),
    ],
)
def test_gradcheck_agrees(
    db_url: str, conn: psycopg.Connection, hidden: str, output: str, loss: str, bias: str, one_hot: bool
) -> None:
    sqlnet.init(db_url, layers=[3, 4, 4, 3], seed=7, bias=bias, init="xavier")
    fill_data(conn, 9, 3, 3, one_hot)
    if bias == "edge":
        # biases of exactly 0 behind a dead ReLU layer put a node's input exactly at ReLU's kink,
        # where no derivative exists and finite differences see half a slope: move off it
        for k in (1, 2, 3):
            conn.execute(f"UPDATE weights{k} SET weight{k}bias = 0.01 * weight{k}inputnodenumber")
    report = sqlnet.gradcheck(db_url, hidden_activation=hidden, output_activation=output, loss=loss)
    assert report.ok, report.differences
    assert (
        sum(d.checked for d in report.differences)
        == 3 * 4 + 4 * 4 + 4 * 3 + {"edge": 3 * 4 + 4 * 4 + 4 * 3, "node": 11, "none": 0}[bias]
    )


def test_gradcheck_catches_a_wrong_derivative(
    db_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break tanh's derivative in the SQL only: the finite differences of the reference expose it."""
    sqlnet.init(db_url, layers=[2, 3, 1], seed=2)
    fill_data(conn, 6, 2, 1)
    wrong = dataclasses.replace(functions.ACTIVATIONS["tanh"], sql_derivative="1")
    monkeypatch.setitem(functions.ACTIVATIONS, "tanh", wrong)
    report = sqlnet.gradcheck(db_url, hidden_activation="tanh")
    assert not report.ok
    worst = {d.table: d.worst_relative for d in report.differences}
    assert worst["public.weights1.weight1value"] > 1e-3  # the hidden layer's gradient is wrong
    assert worst["public.weights2.weight2value"] < 1e-5  # the output layer's is not


def test_gradcheck_samples_large_networks(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, layers=[10, 20, 5], seed=1)
    fill_data(conn, 4, 10, 5)
    report = sqlnet.gradcheck(db_url, max_params=40)
    assert sum(d.checked for d in report.differences) == 40
    assert report.ok


def test_cli_init_and_gradcheck(db_url: str, conn: psycopg.Connection) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["init", "--database-url", db_url, "--layers", "2,3,1", "--seed", "4"])
    assert result.exit_code == 0 and "a 2-3-1 network, he initialisation, seed 4" in result.stdout
    fill_data(conn, 5, 2, 1)
    result = runner.invoke(main, ["gradcheck", "--database-url", db_url, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ok"] is True
    result = runner.invoke(main, ["gradcheck", "--database-url", db_url, "--tolerance", "-1"])
    assert result.exit_code == 1 and "DISAGREE" in result.stdout
    result = runner.invoke(main, ["init", "--database-url", db_url, "--layers", "2,x"])
    assert result.exit_code == 2


def test_softmax_targets_must_be_distributions(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, layers=[2, 3], seed=1, bias="node")
    fill_data(conn, 4, 2, 3)  # targets in [0, 1] that do not sum to 1
    with pytest.raises(sqlnet.InputError, match="sum to 1"):
        sqlnet.train(db_url, output_activation="softmax", loss="cross-entropy")
