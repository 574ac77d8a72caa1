"""predict and export: the forward pass in SQL against the reference, and the exported view/function."""

from __future__ import annotations

import random

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import random_data, random_network, random_params, table_params

CASES = [
    (1, "edge", "relu", "linear"),
    (2, "node", "tanh", "sigmoid"),
    (3, "none", "sigmoid", "softmax"),
    (2, "node", "relu", "softmax"),
]


@pytest.mark.parametrize(("depth", "bias", "hidden", "output"), CASES)
def test_predict_view_and_function_match_the_reference(
    db_url: str, conn: psycopg.Connection, depth: int, bias: str, hidden: str, output: str
) -> None:
    rng = random.Random(f"{depth}{bias}{hidden}{output}")
    net = random_network(rng, depth, bias, hidden, output, "cross-entropy" if output == "softmax" else None)
    data = random_data(rng, net, 6)
    create_tables(conn, net, random_params(rng, net), data, samples=True)
    sqlnet.train(
        db_url, epochs=2, learning_rate=0.1, hidden_activation=hidden, output_activation=output, loss=net.loss
    )
    params = table_params(conn, net)
    want = {s.id: reference.forward(net, params, s.x).output for s in data.samples}

    p = sqlnet.predict(db_url, table="inputs", into="predictions")
    assert p.source.startswith("run ") and p.rows == len(data) * net.sizes[-1]
    sqlnet.export(db_url, view="predicted", table="inputs")
    sqlnet.export(db_url, function="net")
    for source in ("predictions", "predicted"):
        for sample, node, value in conn.execute(f"SELECT sampleid, outputnode, outputvalue FROM {source}"):
            assert value == pytest.approx(want[sample][node - 1], rel=1e-9, abs=1e-12), (source, sample, node)
    for s in data.samples:
        (got,) = conn.execute("SELECT net(%s::float8[])", (list(s.x),)).fetchone()
        assert got == pytest.approx(want[s.id], rel=1e-9, abs=1e-12)


def test_exported_view_needs_no_weights_tables(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE new_samples (id int, a float8, b float8, c float8)")
    conn.execute("INSERT INTO new_samples VALUES (7, 1, 3, 5), (8, 0, 0, 0)")
    sqlnet.export(db_url, view="post_predictions", table="new_samples", features=["a", "b", "c"])
    conn.execute("ALTER TABLE weights1 RENAME TO old_weights1")  # the view does not read it
    rows = conn.execute("SELECT * FROM post_predictions WHERE sampleid = 7 ORDER BY outputnode").fetchall()
    assert [r[2] for r in rows] == [291, 400, 509]  # the post's forward pass


def test_predict_errors(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE bad (sampleId int, inputNode int, inputValue float8)")
    conn.execute("INSERT INTO bad VALUES (1, 1, 0.5), (1, 2, 0.5)")
    with pytest.raises(sqlnet.InputError, match="for sample 1, but the network has 3 input nodes"):
        sqlnet.predict(db_url, table="bad", into="p")
    with pytest.raises(sqlnet.InputError, match="name its feature columns with --features"):
        sqlnet.predict(db_url, table="weights1", into="p")
    with pytest.raises(sqlnet.InputError, match="no column 'nope'"):
        sqlnet.predict(
            db_url,
            table="weights1",
            into="p",
            id_column="weight1value",
            features=["weight1inputnodenumber", "weight1bias", "nope"],
        )
    with pytest.raises(sqlnet.InputError, match="exactly one of --view"):
        sqlnet.export(db_url)
    conn.execute("INSERT INTO bad VALUES (1, 3, 0.5)")
    sqlnet.predict(db_url, table="bad", into="p")
    with pytest.raises(sqlnet.InputError, match="already exists"):
        sqlnet.predict(db_url, table="bad", into="p")
    assert sqlnet.predict(db_url, table="bad", into="p", replace=True).rows == 3


def test_cli_predict_and_export(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE s (sampleId int, inputNode int, inputValue float8)")
    conn.execute("INSERT INTO s VALUES (1, 1, 1), (1, 2, 3), (1, 3, 5)")
    result = CliRunner().invoke(main, ["predict", "--database-url", db_url, "--table", "s", "--into", "p"])
    assert result.exit_code == 0 and "wrote 3 rows into p" in result.stdout
    result = CliRunner().invoke(main, ["export", "--database-url", db_url, "--function", "post_net"])
    assert result.exit_code == 0, result.stderr
    (out,) = conn.execute("SELECT post_net(ARRAY[1, 3, 5]::float8[])").fetchone()
    assert out == [291, 400, 509]
