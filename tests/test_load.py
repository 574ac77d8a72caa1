"""load: CSV files and tables into inputs/outputs, classes, standardisation, and predict on raw values."""

from __future__ import annotations

import math
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main

CSV = """size,weight,label
1,10,small
2,20,small
8,70,large
9,90,large
5,50,medium
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_csv_with_classes_and_standardisation(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    loaded = sqlnet.load(db_url, file=write(tmp_path, CSV), targets=["label"], classes=True, standardize=True)
    assert (loaded.samples, loaded.features, loaded.classes) == (
        5,
        ["size", "weight"],
        ["large", "medium", "small"],
    )
    rows = conn.execute("SELECT sampleid, outputnode, outputvalue FROM outputs ORDER BY 1, 2").fetchall()
    assert [v for s, _, v in rows if s == 1] == [0, 0, 1]  # sample 1 is "small", the third class
    sizes = [
        v for (v,) in conn.execute("SELECT inputvalue FROM inputs WHERE inputnode = 1 ORDER BY sampleid")
    ]
    assert sum(sizes) == pytest.approx(0, abs=1e-12)
    assert math.sqrt(sum(v * v for v in sizes) / 5) == pytest.approx(1)
    # train, then predict raw values: sqlnet standardises them as at load and names the class
    sqlnet.init(db_url, layers=[2, 6, 3], seed=2, bias="node")
    sqlnet.train(
        db_url,
        epochs=300,
        learning_rate=0.5,
        hidden_activation="tanh",
        output_activation="softmax",
        loss="cross-entropy",
    )
    conn.execute("CREATE TABLE fresh (id int, size float8, weight float8)")
    conn.execute("INSERT INTO fresh VALUES (1, 1.5, 15), (2, 8.5, 80)")
    sqlnet.predict(db_url, table="fresh", into="guess")  # its columns by the names load kept
    guesses = dict(conn.execute("SELECT id, label FROM guess"))
    assert guesses == {1: "small", 2: "large"}
    # load kept the rows as read, beside the samples
    raw = conn.execute("SELECT sampleid, size, weight, label FROM raw ORDER BY sampleid").fetchall()
    assert raw[0] == (1, 1, 10, "small") and len(raw) == 5


def test_load_from_table_with_numeric_targets(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE houses (rooms int, area float8, age int, price float8)")
    conn.execute("INSERT INTO houses VALUES (3, 70, 10, 300), (4, 95, 5, 420)")
    loaded = sqlnet.load(db_url, from_table="houses", targets=["price"], features=["area", "rooms"])
    assert loaded.features == ["area", "rooms"] and loaded.classes is None
    assert conn.execute("SELECT inputvalue FROM inputs WHERE sampleid = 2 ORDER BY inputnode").fetchall() == [
        (95,),
        (4,),
    ]
    assert conn.execute("SELECT outputvalue FROM outputs ORDER BY sampleid").fetchall() == [(300,), (420,)]


def test_load_streams_a_large_view(db_url: str, conn: psycopg.Connection) -> None:
    """More rows than one fetch (the passes stream the source from a second connection, in one
    snapshot): every row arrives, and the standardisation equals the one SQL computes."""
    conn.execute(
        "CREATE VIEW measurements AS SELECT g AS id, (g % 97)::float8 AS a, sqrt(g)::float8 AS b, "
        "(g % 7 = 0)::int::float8 AS y FROM generate_series(1, 12000) AS g"
    )
    loaded = sqlnet.load(
        db_url, from_table="measurements", targets=["y"], features=["a", "b"], standardize=True
    )
    assert loaded.samples == 12000
    (n, mean_a, std_b) = conn.execute("SELECT count(*), avg(a), stddev_pop(b) FROM measurements").fetchone()
    (means, stds) = conn.execute("SELECT means, stds FROM sqlnet.networks").fetchone()
    assert means[0] == pytest.approx(mean_a, rel=1e-12) and stds[1] == pytest.approx(std_b, rel=1e-12)
    assert conn.execute("SELECT count(*) FROM inputs").fetchone() == (2 * n,)
    assert conn.execute("SELECT sum(outputvalue) FROM outputs").fetchone() == (12000 // 7,)


def test_load_replaces_what_it_made_only_with_replace_and_says_so(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    sqlnet.init(db_url, example="post")  # the post's inputs, made by sqlnet, without sampleId
    args = ["load", write(tmp_path, CSV), "--database-url", db_url, "--target", "weight", "--features", "size"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "table public.inputs already exists (sqlnet made it" in refused.stderr
    assert "--replace" in refused.stderr
    result = CliRunner().invoke(main, [*args, "--replace"])
    assert result.exit_code == 0, result.stderr
    assert "replaced" in result.stdout and "loaded 5 samples" in result.stdout
    again = CliRunner().invoke(main, [*args, "--replace"])
    assert again.exit_code == 0 and "replaced the 5 samples that were in public.inputs/outputs" in again.stdout


def test_empty_samples_init_made_are_filled_without_replace(db_url: str, tmp_path: Path) -> None:
    sqlnet.init(db_url, layers=[2, 3], seed=1)  # empty inputs and outputs: nothing to lose
    loaded = sqlnet.load(db_url, file=write(tmp_path, CSV), targets=["label"], classes=True)
    assert loaded.samples == 5 and loaded.replaced == 0


def test_an_id_column_is_kept_and_must_be_unique(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    text = "name,size,weight,label\nann,1,10,small\nbob,9,90,large\n"
    loaded = sqlnet.load(db_url, file=write(tmp_path, text), targets=["label"], classes=True, id_column="name")
    assert loaded.features == ["size", "weight"] and loaded.id_column == "name"
    assert conn.execute("SELECT sampleid, name FROM raw ORDER BY 1").fetchall() == [(1, "ann"), (2, "bob")]
    numbers = "n,size,weight,label\n7,1,10,small\n9,9,90,large\n"
    sqlnet.load(db_url, file=write(tmp_path, numbers), targets=["label"], classes=True, id_column="n", replace=True)
    assert conn.execute("SELECT pg_typeof(n)::text FROM raw LIMIT 1").fetchone() == ("bigint",)  # whole numbers
    twice = "name,size,weight,label\nann,1,10,small\nann,9,90,large\n"
    with pytest.raises(sqlnet.InputError, match="the id 'ann' is in 2 rows; an id must be unique"):
        sqlnet.load(db_url, file=write(tmp_path, twice), targets=["label"], classes=True, id_column="name", replace=True)
    assert conn.execute("SELECT count(*) FROM raw").fetchone() == (2,)  # the load before stays


def test_the_raw_table_never_takes_a_network_tables_place(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    sqlnet.init(db_url, layers=[2, 3], seed=1)
    before = conn.execute("SELECT count(*) FROM weights1").fetchone()
    for name in ("weights1", "inputs", "biases2"):
        with pytest.raises(sqlnet.InputError, match=f"--raw-table {name} would take the place of one of the network's"):
            sqlnet.load(db_url, file=write(tmp_path, CSV), targets=["label"], classes=True, raw_table=name, replace=True)
    assert conn.execute("SELECT count(*) FROM weights1").fetchone() == before
