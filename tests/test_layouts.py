"""Choosing the layout, and the two layouts against each other and the reference."""

from __future__ import annotations

import random

import psycopg
import pytest

import sqlnet
from sqlnet.compile import wide
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Network
from tests.helpers import random_data, random_params
from tests.test_reference import assert_close


def make(
    conn: psycopg.Connection, sizes: tuple[int, ...], samples: int = 5, ctype: str = "double precision"
) -> Network:
    rng = random.Random(str(sizes))
    net = Network(sizes, "relu", "linear", "half-se", "node")
    create_tables(
        conn, net, random_params(rng, net), random_data(rng, net, samples), column_type=ctype, samples=True
    )
    return net


def test_auto_picks_wide_and_long_when_needed(db_url: str, conn: psycopg.Connection) -> None:
    make(conn, (3, 4, 2), ctype="numeric")
    assert sqlnet.train(db_url).layout == "wide"
    assert sqlnet.train(db_url, trace=True).layout == "long"
    assert sqlnet.train(db_url, numeric="exact").layout == "long"
    with pytest.raises(sqlnet.InputError, match="wide layout cannot run this: --trace"):
        sqlnet.train(db_url, trace=True, layout="wide")


def test_too_wide_for_the_wide_layout_falls_back_to_long(db_url: str, conn: psycopg.Connection) -> None:
    net = make(conn, (2, 600, 1), samples=3)
    assert not wide.fits(net)
    result = sqlnet.train(db_url, epochs=2, learning_rate=0.01)
    assert result.layout == "long"
    with pytest.raises(sqlnet.InputError, match="columns per sample"):
        sqlnet.train(db_url, layout="wide")


@pytest.mark.parametrize("bias", ["node", "edge"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_many_parameters_in_several_column_ctes_and_gradient_groups(
    db_url: str, conn: psycopg.Connection, bias: str, optimizer: str
) -> None:
    """Past 1000 parameters a layer's columns are split over several one-row CTEs (a target list may
    have 1664 entries), and past 256 gradient sums a mini-batch training sums in groups: the same
    numbers as the reference, for both bias layouts (an edge bias repeats its node's sum)."""
    rng = random.Random("many")
    net = Network((40, 30, 3), "tanh", "linear", "half-se", bias)
    params, data = random_params(rng, net, 0.2), random_data(rng, net, 7)
    create_tables(conn, net, params, data, samples=True)
    options = dict(epochs=2, learning_rate=0.05, batch_size=3, layout="wide", optimizer=optimizer,
                   hidden_activation="tanh")
    script = sqlnet.training_sql(db_url, **options)
    assert "params1_2 AS MATERIALIZED" in script  # layer 1's 1200 weights and 30 biases: two CTEs
    assert "g2.part" in script  # the gradient's 1323 sums in groups of 256
    result = sqlnet.train(db_url, **options)
    want = reference.train(
        net, params, data, 0.05, 2, batch_size=3, optimizer=sqlnet_optimizer(optimizer)
    )
    assert_close(result.params.weights, want.params.weights)
    assert_close(result.params.biases, want.params.biases)


def sqlnet_optimizer(name: str):  # type: ignore[no-untyped-def]
    from sqlnet.model.optimizers import Optimizer

    return Optimizer(name)


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_layouts_agree_with_each_other(db_url: str, conn: psycopg.Connection, layout: str) -> None:
    make(conn, (4, 5, 5, 2), samples=9)
    report = sqlnet.check(
        db_url, epochs=3, learning_rate=0.1, batch_size=4, shuffle=2, optimizer="momentum", layout=layout
    )
    assert report.ok, report.differences


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize("shuffle", [None, 5])
def test_blocks_of_one_transaction_share_the_samples_tables(
    db_url: str, conn: psycopg.Connection, layout: str, shuffle: int | None
) -> None:
    """A training of many statements builds the mini-batch samples' tables once, and each block (only
    when shuffled) its own batches: the result is the reference's, block after block."""
    from tests.helpers import table_params
    from tests.test_reference import assert_close

    rng = random.Random(11)
    net = Network((3, 4, 2), "tanh", "linear", "half-se", "node")
    params, data = random_params(rng, net), random_data(rng, net, 9)
    create_tables(conn, net, params, data, samples=True)
    result = sqlnet.train(
        db_url, epochs=4, learning_rate=0.05, batch_size=2, shuffle=shuffle, layout=layout,
        updates_per_statement=3, hidden_activation="tanh",
    )  # fmt: skip
    assert result.statements == 7  # 4 epochs of 5 batches, 3 updates a statement
    script = sqlnet.training_sql(db_url, epochs=4, learning_rate=0.05, batch_size=2, shuffle=shuffle,
                                 layout=layout, updates_per_statement=3)  # fmt: skip
    assert script.count("CREATE TEMP TABLE sqlnet_batches") == (7 if shuffle is not None else 0)
    assert script.count("CREATE TEMP TABLE sqlnet_wide" if layout == "wide" else "CREATE TEMP TABLE sqlnet_x") == 1
    want = reference.train(net, params, data, 0.05, 4, batch_size=2, shuffle=shuffle).params
    got = table_params(conn, net)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
