"""SQL against the reference on many networks: sizes, depths, activations, bias layouts, column types."""

from __future__ import annotations

import random

import psycopg
import pytest

import sqlnet
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import random_data, random_network, random_params, table_params
from tests.test_reference import assert_close

CASES = [
    # depth, bias, hidden, output, samples, column type
    (1, "edge", "relu", "linear", 1, "numeric"),
    (2, "edge", "relu", "linear", 1, "double precision"),
    (2, "node", "relu", "linear", 4, "double precision"),
    (2, "none", "sigmoid", "sigmoid", 3, "numeric"),
    (3, "node", "tanh", "linear", 5, "double precision"),
    (3, "edge", "sigmoid", "tanh", 2, "double precision"),
    (4, "none", "relu", "linear", 3, "double precision"),
    (4, "node", "linear", "sigmoid", 6, "numeric"),
    (5, "edge", "tanh", "tanh", 2, "double precision"),
]


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize(("depth", "bias", "hidden", "output", "samples", "ctype"), CASES)
def test_sql_matches_reference(
    db_url: str,
    conn: psycopg.Connection,
    depth: int,
    bias: str,
    hidden: str,
    output: str,
    samples: int,
    ctype: str,
    layout: str,
) -> None:
    rng = random.Random(f"{depth}{bias}{hidden}{output}{samples}")
    net = random_network(rng, depth, bias, hidden, output)
    params = random_params(rng, net)
    data = random_data(rng, net, samples)
    create_tables(conn, net, params, data, column_type=ctype)
    options = dict(
        epochs=4,
        learning_rate=0.05,
        hidden_activation=hidden,
        output_activation=output,
        loss=net.loss,
        layout=layout,
    )

    result = sqlnet.train(db_url, **options)
    want = reference.train(net, result.initial, data, 0.05, 4)
    assert result.network == net
    assert result.layout == layout
    assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-12)
    assert_close(result.params.weights, want.params.weights)
    assert_close(result.params.biases, want.params.biases)
    # what was written back is what was trained (NUMERIC keeps 15 significant digits)
    stored = table_params(conn, net)
    assert_close(stored.weights, want.params.weights)
    if bias != "none":
        assert_close(stored.biases, want.params.biases)


def test_integer_node_columns_and_inputs(db_url: str, conn: psycopg.Connection) -> None:
    rng = random.Random(7)
    net = random_network(rng, 2, "edge")
    params = random_params(rng, net)
    data = random_data(rng, net, 1)
    create_tables(conn, net, params, data)
    conn.execute(
        "ALTER TABLE weights1 ALTER COLUMN weight1inputnodenumber TYPE integer, "
        "ALTER COLUMN weight1outputnodenumber TYPE integer"
    )
    conn.execute("ALTER TABLE inputs ALTER COLUMN inputvalue TYPE integer USING round(inputvalue * 10)")
    report = sqlnet.check(db_url, epochs=3, learning_rate=0.05, loss=net.loss)
    assert report.ok, report.differences


@pytest.mark.parametrize("seed", range(12))
def test_random_networks_check(db_url: str, conn: psycopg.Connection, seed: int) -> None:
    rng = random.Random(1000 + seed)
    depth = rng.randint(1, 5)
    bias = rng.choice(["edge", "node", "none"])
    hidden, output = (
        rng.choice(["relu", "tanh", "sigmoid", "linear"]),
        rng.choice(["linear", "sigmoid", "tanh"]),
    )
    net = random_network(rng, depth, bias, hidden, output)
    create_tables(conn, net, random_params(rng, net), random_data(rng, net, rng.randint(1, 6)), schema="net")
    report = sqlnet.check(
        db_url,
        schema="net",
        epochs=rng.randint(1, 5),
        learning_rate=rng.choice([0.01, 0.1, 0.3]),
        hidden_activation=hidden,
        output_activation=output,
        loss=net.loss,
        updates_per_statement=rng.randint(1, 3),
    )
    assert report.network == net
    assert report.ok, report.differences
