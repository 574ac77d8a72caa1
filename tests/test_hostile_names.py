"""Hostile names: every schema, table and column name a user gives is an identifier, nothing more.

Each name here would break out of naive SQL text (a quote, a semicolon and a comment, a percent
sign psycopg might read as a placeholder, a dollar-quote, a backslash, non-ASCII). The network
lives in a schema with that very name, so quoting that works only by accident would train the
wrong tables or fail; the bait tables next to it prove nothing else was touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from sqlnet.cli import main
from sqlnet.model.reference import forward
from sqlnet.model.reference import train as reference_train
from tests.helpers import POST_DATA, POST_NET, POST_PARAMS, database_snapshot, table_params
from tests.test_reference import assert_close

HOSTILE = [
    'x"; DROP TABLE inputs; --',
    "a%sb%(x)s",
    "Robert'); DROP TABLE weights1;--",
    "$$; DROP SCHEMA public CASCADE; $$",
    "back\\slash",
    "ünï cödé ∑",
]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bait(post_db: str, conn: psycopg.Connection) -> str:
    """The post's tables in public (what an injection would drop), plus a table nobody should touch."""
    conn.execute("CREATE TABLE precious (id int PRIMARY KEY, note text)")
    conn.execute("INSERT INTO precious VALUES (1, 'do not drop')")
    return post_db


@pytest.mark.parametrize("name", HOSTILE)
def test_a_schema_that_does_not_exist_is_only_a_name(bait: str, conn: psycopg.Connection, name: str) -> None:
    before = database_snapshot(conn)
    commands = [
        ["train", "--epochs", "2"],
        ["train", "--epochs", "2", "--checkpoint-every", "1"],
        ["check"],
        ["sql"],
        ["gradcheck"],
        ["predict", "--table", "inputs", "--into", "p"],
        ["export", "--function", "f"],
        ["predict", "--table", "inputs", "--into", "p", "--table-schema"],
        ["load", "--from-table", "inputs", "--target", "inputvalue", "--from-schema"],
    ]
    for command in commands:
        flag = [] if command[-1].startswith("--") else ["--schema"]
        code, _, err = run(*command, *flag, name, "--database-url", bait)
        assert code == 1, (command, err)
        assert "does not exist" in err, (command, err)
    assert database_snapshot(conn) == before


@pytest.mark.parametrize("name", HOSTILE)
def test_a_network_in_a_hostile_schema_trains_and_nothing_else_changes(
    bait: str, conn: psycopg.Connection, name: str
) -> None:
    public_before = database_snapshot(conn)
    assert run("init", "--database-url", bait, "--example", "post", "--schema", name)[0] == 0
    code, out, err = run(
        "train",
        "--database-url",
        bait,
        "--schema",
        name,
        "--epochs",
        "3",
        "--learning-rate",
        "0.001",
        "--json",
    )
    assert code == 0, err
    ref = reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.001, 3)
    want = ref.params
    assert json.loads(out)["losses"] == pytest.approx(ref.losses, rel=1e-12)
    got = table_params(conn, POST_NET, schema=name)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
    # the statement `sqlnet sql` prints runs as printed and trains the same tables one epoch further
    code, script, err = run("sql", "--database-url", bait, "--schema", name, "--learning-rate", "0.001")
    assert code == 0, err
    conn.execute(script)
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.001, 4).params
    got = table_params(conn, POST_NET, schema=name)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
    # the public tables are the bait: not one row of them changed
    after = database_snapshot(conn)
    assert {k: v for k, v in after.items() if k.startswith("public.")} == public_before


@pytest.mark.parametrize("name", HOSTILE[:3])
def test_hostile_names_for_what_sqlnet_creates_and_reads(
    bait: str, conn: psycopg.Connection, name: str, tmp_path: Path
) -> None:
    """Prediction tables, views, functions, CSV headers and source tables with hostile names."""
    assert run("init", "--database-url", bait, "--example", "post", "--schema", name)[0] == 0
    assert run("train", "--database-url", bait, "--schema", name, "--learning-rate", "0.001")[0] == 0
    before = database_snapshot(conn)

    # samples in a wide table whose table, id and feature names are all hostile
    samples = "samples " + name
    features = [f"{name} {i}" for i in (1, 2, 3)]
    conn.execute(
        sql.SQL("CREATE TABLE {} ({} int, {})").format(
            sql.Identifier(name, samples),
            sql.Identifier(name + "id"),
            sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(f)) for f in features),
        )
    )
    conn.execute(
        sql.SQL("INSERT INTO {} VALUES (7, 1, 3, 5), (8, 0.5, 0, 1)").format(sql.Identifier(name, samples))
    )
    where = ["--schema", name, "--table-schema", name, "--table", samples, "--id", name + "id"]
    where += ["--features", ",".join(features)]
    code, _, err = run("predict", "--database-url", bait, *where, "--into", name)
    assert code == 0, err
    code, _, err = run("export", "--database-url", bait, *where[:4], "--function", name)
    assert code == 0, err
    code, _, err = run("export", "--database-url", bait, *where, "--view", name + " view")
    assert code == 0, err
    query = "SELECT array_agg(v ORDER BY i, n) FROM (SELECT {id} AS i, output_1, output_2, output_3 FROM {t}) AS p, " \
        "LATERAL (VALUES (1, output_1), (2, output_2), (3, output_3)) AS o (n, v)"
    table = conn.execute(
        sql.SQL(query).format(id=sql.Identifier(name + "id"), t=sql.Identifier(name, name))
    ).fetchone()[0]
    view = conn.execute(
        sql.SQL(query).format(id=sql.Identifier(name + "id"), t=sql.Identifier(name, name + " view"))
    ).fetchone()[0]
    function = conn.execute(
        sql.SQL("SELECT {}(ARRAY[1, 3, 5]::float8[]) || {}(ARRAY[0.5, 0, 1]::float8[])").format(
            sql.Identifier(name, name), sql.Identifier(name, name)
        )
    ).fetchone()[0]
    assert len(table) == 6 and table == view
    assert function == pytest.approx(table, rel=1e-12)
    net = POST_NET
    params = table_params(conn, net, schema=name)
    want = [v for x in ((1, 3, 5), (0.5, 0, 1)) for v in forward(net, params, x).output]
    assert table == pytest.approx(want, rel=1e-12)

    # a CSV whose header names are hostile, loaded into a second hostile schema
    other = name + "2"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(other)))
    csv = tmp_path / "hostile.csv"
    csv.write_text(f'"{name.replace(chr(34), 2 * chr(34))}",y\n1,2\n3,4\n')
    code, out, err = run("load", str(csv), "--database-url", bait, "--schema", other, "--target", "y")
    assert code == 0, err
    # and the table it made read back through --from-table with hostile names on both sides
    third = name + "3"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(third)))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({} float8, {} float8)").format(
            sql.Identifier(other, name), sql.Identifier(name), sql.Identifier("y" + name)
        )
    )
    conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 2), (3, 4)").format(sql.Identifier(other, name)))
    code, out, err = run(
        "load", "--database-url", bait, "--schema", third, "--from-schema", other, "--from-table", name,
        "--target", "y" + name,
    )  # fmt: skip
    assert code == 0, err
    for schema in (other, third):
        got = conn.execute(
            sql.SQL("SELECT array_agg(inputvalue ORDER BY sampleid) FROM {}").format(
                sql.Identifier(schema, "inputs")
            )
        ).fetchone()
        assert got == ([1.0, 3.0],)

    def public(snapshot: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in snapshot.items() if k.startswith("public.")}

    assert public(database_snapshot(conn)) == public(before)
