"""The bad-data matrix: every input sqlnet reads, broken every way we know, through the command line.

Each case breaks the tables of a working network with a few SQL statements and then runs the
commands that read them. Every command must exit with 1, print a message that names the table,
the column and the row (or what is missing) and what to do, and change nothing anywhere in the
database: sqlnet's own schemas included (a checksum of every table, view and function).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.model import reference
from tests.helpers import database_snapshot, table_data

SAMPLES_TABLES = [
    "CREATE TABLE inputs (sampleId bigint, inputNode int, inputValue float8)",
    "CREATE TABLE outputs (sampleId bigint, outputNode int, outputValue float8)",
    "CREATE TABLE weights1 (weight1InputNodeNumber int, weight1OutputNodeNumber int, weight1Value float8, "
    "weight1Bias float8)",
    "CREATE TABLE weights2 (weight2InputNodeNumber int, weight2OutputNodeNumber int, weight2Value float8, "
    "weight2Bias float8)",
    "INSERT INTO inputs VALUES (1, 1, 0.1), (1, 2, 0.2), (2, 1, 0.3), (2, 2, 0.4), (3, 1, 0.5), (3, 2, 0.6)",
    "INSERT INTO outputs VALUES (1, 1, 0.5), (2, 1, 0.25), (3, 1, 0.75)",
    "INSERT INTO weights1 VALUES (1, 1, 0.1, 0), (1, 2, 0.2, 0), (2, 1, 0.3, 0), (2, 2, 0.4, 0)",
    "INSERT INTO weights2 VALUES (1, 1, 0.5, 0), (2, 1, 0.6, 0)",
]
NODE_BIAS_TABLES = [
    "ALTER TABLE weights1 DROP COLUMN weight1Bias",
    "ALTER TABLE weights2 DROP COLUMN weight2Bias",
    "CREATE TABLE biases1 (bias1NodeNumber int, bias1Value float8)",
    "CREATE TABLE biases2 (bias2NodeNumber int, bias2Value float8)",
    "INSERT INTO biases1 VALUES (1, 0.1), (2, 0.2)",
    "INSERT INTO biases2 VALUES (1, 0.3)",
]


@dataclass
class Case:
    name: str
    base: str  # "post" (the blog post's tables), "samples" (sampleId, 3 samples) or "node-bias"
    breaks: list[str]  # the SQL that breaks the tables
    words: list[str]  # what the message must say: table, column, row, what to do
    options: list[str] = field(default_factory=list)  # training options the case needs


CASES = [
    # --- missing things -----------------------------------------------------------------------------
    Case("missing table", "post", ["DROP TABLE outputs"], ["'outputs' not found", "sqlnet init"]),
    Case("missing weights", "post", ["DROP TABLE weights1"], ["'weights1' not found"]),
    Case("missing column", "post", ["ALTER TABLE inputs DROP COLUMN inputvalue"], ["inputs", "inputvalue"]),
    Case("empty inputs", "post", ["DELETE FROM inputs"], ["inputs is empty", "a row for every node"]),
    Case("empty weights", "samples", ["DELETE FROM weights2"], ["weights2 is empty"]),
    Case("empty outputs", "samples", ["DELETE FROM outputs"], ["outputs is empty"]),
    Case(
        "sampleId only in inputs",
        "post",
        ["ALTER TABLE inputs ADD COLUMN sampleId integer DEFAULT 1"],
        ["public.inputs has a sampleId column but public.outputs has none"],
    ),
    Case(
        "edge bias column missing",
        "post",
        ["ALTER TABLE weights2 DROP COLUMN weight2bias"],
        ["'weight2bias' in public.weights2", "--bias none"],
        ["--bias", "edge"],
    ),
    # --- values that are not finite numbers --------------------------------------------------------
    Case(
        "NULL weight",
        "post",
        [
            "UPDATE weights1 SET weight1value = NULL WHERE weight1inputnodenumber = 2 AND weight1outputnodenumber = 1"
        ],
        [
            "weights1.weight1value is NULL",
            "weight1inputnodenumber = 2, weight1outputnodenumber = 1",
            "UPDATE",
        ],
    ),
    Case(
        "NULL bias",
        "post",
        [
            "UPDATE weights2 SET weight2bias = NULL WHERE weight2outputnodenumber = 3 AND weight2inputnodenumber = 1"
        ],
        ["weights2.weight2bias is NULL", "weight2inputnodenumber = 1, weight2outputnodenumber = 3"],
    ),
    Case(
        "NaN input",
        "post",
        ["UPDATE inputs SET inputvalue = 'NaN' WHERE inputnode = 2"],
        ["inputs.inputvalue is NaN", "inputnode = 2"],
    ),
    Case(
        "Infinity target",
        "samples",
        ["UPDATE outputs SET outputvalue = 'Infinity' WHERE sampleid = 2"],
        ["outputs.outputvalue is Infinity", "sampleid = 2, outputnode = 1"],
    ),
    Case(
        "-Infinity weight",
        "samples",
        ["UPDATE weights2 SET weight2value = '-Infinity' WHERE weight2inputnodenumber = 2"],
        ["weights2.weight2value is -Infinity", "weight2inputnodenumber = 2, weight2outputnodenumber = 1"],
    ),
    Case(
        "NULL node number",
        "samples",
        ["UPDATE inputs SET inputnode = NULL WHERE sampleid = 3 AND inputnode = 2"],
        ["inputs.inputnode is NULL", "sampleid = 3, inputnode = NULL"],
    ),
    Case(
        "NULL sample id",
        "samples",
        ["UPDATE outputs SET sampleid = NULL WHERE sampleid = 1"],
        ["outputs.sampleid is NULL", "sampleid = NULL, outputnode = 1"],
    ),
    Case(
        "NaN node bias",
        "node-bias",
        ["UPDATE biases1 SET bias1value = 'NaN' WHERE bias1nodenumber = 2"],
        ["biases1.bias1value is NaN", "bias1nodenumber = 2"],
    ),
    # --- text where numbers belong -----------------------------------------------------------------
    Case(
        "text that is not a number",
        "samples",
        [
            "ALTER TABLE inputs ALTER COLUMN inputvalue TYPE text",
            "UPDATE inputs SET inputvalue = 'abc' WHERE sampleid = 2 AND inputnode = 1",
        ],
        ["inputs.inputvalue is text, not a number", "'abc'", "sampleid = 2, inputnode = 1", "ALTER TABLE"],
    ),
    Case(
        "numbers stored as text",
        "post",
        ["ALTER TABLE weights2 ALTER COLUMN weight2value TYPE text"],
        ["weights2.weight2value is text", "every row holds one", "TYPE double precision USING"],
    ),
    Case(
        "text node numbers",
        "samples",
        ["ALTER TABLE outputs ALTER COLUMN outputnode TYPE varchar", "UPDATE outputs SET outputnode = 'one'"],
        ["outputs.outputnode is varchar", "'one'", "sampleid = 1"],
    ),
    # --- keys: duplicates, gaps, layers that do not chain ------------------------------------------
    Case(
        "duplicate edge",
        "post",
        ["INSERT INTO weights1 VALUES (1, 2, 9, 9)"],
        [
            "weights1 has 2 rows",
            "weight1inputnodenumber = 1, weight1outputnodenumber = 2",
            "keep exactly one",
        ],
    ),
    Case(
        "missing edge",
        "post",
        ["DELETE FROM weights2 WHERE weight2inputnodenumber = 2 AND weight2outputnodenumber = 3"],
        ["weights2 has 5 rows", "weight2inputnodenumber = 2, weight2outputnodenumber = 3 is missing"],
    ),
    Case(
        "duplicate sample row",
        "samples",
        ["INSERT INTO inputs VALUES (2, 1, 0.9)"],
        ["inputs has 3 rows (2 distinct nodes) for sample 2", "exactly one row"],
    ),
    Case(
        "sample lacks an input",
        "samples",
        ["DELETE FROM inputs WHERE sampleid = 2 AND inputnode = 2"],
        ["inputs has 1 rows (1 distinct nodes) for sample 2", "2 input nodes"],
    ),
    Case(
        "sample without targets",
        "samples",
        ["DELETE FROM outputs WHERE sampleid = 3"],
        ["sample 3 is in public.inputs but not in public.outputs"],
    ),
    Case(
        "targets without a sample",
        "samples",
        ["INSERT INTO outputs VALUES (4, 1, 0.5)"],
        ["sample 4 is in public.outputs but not in public.inputs"],
    ),
    Case(
        "gap in node numbers",
        "post",
        ["UPDATE inputs SET inputnode = 4 WHERE inputnode = 3"],
        ["inputs.inputnode numbers its nodes 1..4", "without gaps"],
    ),
    Case(
        "node zero",
        "samples",
        ["UPDATE inputs SET inputnode = 0 WHERE inputnode = 2"],
        ["inputs.inputnode numbers its nodes 0..1", "1..n"],
    ),
    Case(
        "negative node",
        "samples",
        ["UPDATE weights2 SET weight2outputnodenumber = -1"],
        ["weights2.weight2outputnodenumber numbers its nodes -1..-1"],
    ),
    Case(
        "absurd node number",
        "samples",
        ["UPDATE inputs SET inputnode = 2147483647 WHERE inputnode = 2"],
        ["inputs.inputnode numbers its nodes 1..2147483647", "without gaps"],
    ),
    Case(
        "fractional node",
        "post",
        ["UPDATE inputs SET inputnode = 1.5 WHERE inputnode = 1"],
        ["inputs.inputnode holds 1.5", "inputnode = 1.5", "whole numbers"],
    ),
    Case(
        "fractional sample id",
        "samples",
        [
            "ALTER TABLE outputs ALTER COLUMN sampleid TYPE numeric",
            "UPDATE outputs SET sampleid = 2.5 WHERE sampleid = 2",
        ],
        ["outputs.sampleid holds 2.5", "sampleid = 2.5, outputnode = 1", "whole numbers"],
    ),
    Case(
        "layers do not chain",
        "post",
        ["UPDATE weights2 SET weight2inputnodenumber = weight2inputnodenumber + 1"],
        ["weights2.weight2inputnodenumber", "1..n"],
    ),
    Case(
        "node without weights",
        "post",
        ["DELETE FROM weights2 WHERE weight2inputnodenumber = 2"],
        [
            "do not chain",
            "weights2.weight2inputnodenumber has nodes 1..1",
            "weights1.weight1outputnodenumber",
        ],
    ),
    Case(
        "a third layer that does not chain",
        "samples",
        [
            "CREATE TABLE weights3 (weight3InputNodeNumber int, weight3OutputNodeNumber int, "
            "weight3Value float8, weight3Bias float8)",
            "INSERT INTO weights3 VALUES (1, 1, 1, 0), (2, 1, 1, 0)",
        ],
        [
            "do not chain",
            "weights3.weight3inputnodenumber has nodes 1..2",
            "weights2.weight2outputnodenumber",
        ],
    ),
    Case(
        "outputs do not match the last layer",
        "post",
        ["DELETE FROM outputs WHERE outputnode = 3"],
        ["outputs.outputnode has nodes 1..2", "weights2.weight2outputnodenumber) has 1..3"],
    ),
    Case(
        "duplicate node bias",
        "node-bias",
        ["INSERT INTO biases1 VALUES (2, 0.5)"],
        ["biases1 has 3 rows for 2 nodes", "exactly one row per node"],
    ),
    Case(
        "node bias for a node that is not there",
        "node-bias",
        ["INSERT INTO biases2 VALUES (2, 0.5)"],
        ["biases2.bias2nodenumber has nodes 1..2 but layer 2 has 1 nodes"],
    ),
    Case(
        "integer weights",
        "post",
        ["ALTER TABLE weights1 ALTER COLUMN weight1value TYPE integer"],
        ["weights1.weight1value", "integer", "ALTER TABLE"],
    ),
    # --- targets the loss cannot take ---------------------------------------------------------------
    Case(
        "cross-entropy target above 1",
        "samples",
        ["UPDATE outputs SET outputvalue = 2 WHERE sampleid = 3"],
        ["outputs.outputvalue is 2 for sample 3, output node 1", "between 0 and 1"],
        ["--loss", "cross-entropy", "--output-activation", "sigmoid"],
    ),
    Case(
        "softmax targets that are no distribution",
        "post",
        [
            "UPDATE outputs SET outputvalue = 0.5",
        ],
        ["the targets of sample 1 in public.outputs sum to 1.5", "sum to 1"],
        ["--loss", "cross-entropy", "--output-activation", "softmax"],
    ),
    # --- options that do not fit the data ----------------------------------------------------------
    Case(
        "batch larger than the data",
        "samples",
        [],
        ["batch size 4 is larger than the data (3 samples"],
        ["--batch-size", "4"],
    ),
]

COMMANDS = {
    "train": ["train", "--epochs", "2", "--learning-rate", "0.01"],
    "train-checkpoints": ["train", "--epochs", "2", "--learning-rate", "0.01", "--checkpoint-every", "1"],
    "check": ["check", "--epochs", "2"],
    "gradcheck": ["gradcheck"],
    "sql": ["sql"],
}


def build(conn: psycopg.Connection, url: str, base: str) -> None:
    if base == "post":
        sqlnet.init(url, example="post")
        return
    for statement in SAMPLES_TABLES + (NODE_BIAS_TABLES if base == "node-bias" else []):
        conn.execute(statement)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_data_is_refused_by_every_command_and_nothing_changes(
    db_url: str, conn: psycopg.Connection, case: Case
) -> None:
    build(conn, db_url, case.base)
    # the network trains before it is broken: each case breaks one thing
    assert sqlnet.check(db_url, epochs=1).ok
    conn.execute("DROP SCHEMA IF EXISTS sqlnet CASCADE")
    for statement in case.breaks:
        conn.execute(statement)
    before = database_snapshot(conn)
    for command, args in COMMANDS.items():
        if command == "gradcheck" and "--batch-size" in case.options:
            continue  # gradcheck takes one full-batch step: it has no batch size to refuse
        result = CliRunner().invoke(main, [*args, *case.options, "--database-url", db_url])
        assert result.exit_code == 1, (command, result.output, result.exception)
        message = " ".join(result.stderr.split())
        assert message.startswith("error: "), (command, message)
        for word in case.words:
            assert word in message, (command, word, message)
        assert database_snapshot(conn) == before, command


# --- the samples `predict` and `export --view` read ---------------------------------------------------

LONG_SAMPLES = [
    "CREATE TABLE new_long (sampleId bigint, inputNode int, inputValue float8)",
    "INSERT INTO new_long VALUES (1, 1, 0.1), (1, 2, 0.2), (2, 1, 0.3), (2, 2, 0.4)",
]
WIDE_SAMPLES = [
    "CREATE TABLE new_wide (customer text, a float8, b float8)",
    "INSERT INTO new_wide VALUES ('ann', 0.1, 0.2), ('bob', 0.3, 0.4)",
]
LONG = ["--table", "new_long"]
WIDE = ["--table", "new_wide", "--id", "customer", "--features", "a,b"]

PREDICT_CASES = [
    Case("NULL input value", "long", ["UPDATE new_long SET inputvalue = NULL WHERE sampleid = 2 AND inputnode = 1"],
         ["new_long.inputvalue is NULL", "sampleid = 2, inputnode = 1"]),
    Case("NaN input value", "long", ["UPDATE new_long SET inputvalue = 'NaN' WHERE sampleid = 1 AND inputnode = 2"],
         ["new_long.inputvalue is NaN", "sampleid = 1, inputnode = 2"]),
    Case("duplicate input row", "long", ["INSERT INTO new_long VALUES (2, 2, 0.5)"],
         ["new_long has 3 rows (2 distinct nodes) for sample 2", "2 input nodes"]),
    Case("missing input row", "long", ["DELETE FROM new_long WHERE sampleid = 1 AND inputnode = 1"],
         ["new_long has 1 rows (1 distinct nodes) for sample 1"]),
    Case("node the network lacks", "long", ["UPDATE new_long SET inputnode = 3 WHERE inputnode = 2"],
         ["new_long.inputnode has nodes 1..3", "input nodes 1..2"]),
    Case("text input values", "long", ["ALTER TABLE new_long ALTER COLUMN inputvalue TYPE text",
                                        "UPDATE new_long SET inputvalue = 'n/a' WHERE sampleid = 2 AND inputnode = 2"],
         ["new_long.inputvalue is text", "'n/a'", "sampleid = 2, inputnode = 2"]),
    Case("NULL feature", "wide", ["UPDATE new_wide SET b = NULL WHERE customer = 'bob'"],
         ["new_wide.b is NULL", "customer = bob"]),
    Case("Infinity feature", "wide", ["UPDATE new_wide SET a = '-Infinity' WHERE customer = 'ann'"],
         ["new_wide.a is -Infinity", "customer = ann"]),
    Case("text feature", "wide", ["ALTER TABLE new_wide ALTER COLUMN a TYPE text", "UPDATE new_wide SET a = 'x' WHERE customer = 'bob'"],
         ["new_wide.a is text", "'x'", "customer = bob"]),
    Case("duplicate id", "wide", ["INSERT INTO new_wide VALUES ('ann', 1, 1)"],
         ["new_wide.customer = ann in 2 rows", "unique"]),
    Case("NULL id", "wide", ["UPDATE new_wide SET customer = NULL WHERE customer = 'bob'"],
         ["new_wide.customer is NULL", "needs an id"]),
    Case("missing feature column", "wide", ["ALTER TABLE new_wide DROP COLUMN b"],
         ["new_wide has no column 'b'"]),
]  # fmt: skip


@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c.name for c in PREDICT_CASES])
def test_bad_samples_to_predict_are_refused_and_nothing_changes(
    db_url: str, conn: psycopg.Connection, case: Case
) -> None:
    build(conn, db_url, "samples")
    for statement in LONG_SAMPLES + WIDE_SAMPLES:
        conn.execute(statement)
    where = LONG if case.base == "long" else WIDE
    for statement in case.breaks:
        conn.execute(statement)
    before = database_snapshot(conn)
    for args in (["predict", *where, "--into", "p"], ["export", *where, "--view", "v"]):
        result = CliRunner().invoke(main, [*args, "--database-url", db_url])
        assert result.exit_code == 1, (args, result.output, result.exception)
        message = " ".join(result.stderr.split())
        for word in case.words:
            assert word in message, (args[0], word, message)
        assert database_snapshot(conn) == before, args[0]


def test_the_unbroken_samples_predict(db_url: str, conn: psycopg.Connection) -> None:
    """The base of the cases above works: what the cases refuse is what they break."""
    build(conn, db_url, "samples")
    for statement in LONG_SAMPLES + WIDE_SAMPLES:
        conn.execute(statement)
    for where, into in ((LONG, "p1"), (WIDE, "p2")):
        result = CliRunner().invoke(main, ["predict", *where, "--into", into, "--database-url", db_url])
        assert result.exit_code == 0, result.output
    long = [r[1:] for r in conn.execute("SELECT * FROM p1 ORDER BY sampleid")]
    wide = [r[1:] for r in conn.execute("SELECT * FROM p2 ORDER BY customer")]  # ann, bob: samples 1, 2
    assert long == wide and len(long) == 2


def test_absurd_but_valid_values_train_like_any_other(db_url: str, conn: psycopg.Connection) -> None:
    """Sample ids far beyond int4 and negative ones are data, not errors: the same training, and with
    --shuffle the reference's order for those ids."""
    build(conn, db_url, "samples")
    first = sqlnet.train(db_url, epochs=3, learning_rate=0.1, batch_size=2)
    sqlnet.restore(db_url, first.run_id)
    ids = {1: -9_000_000_000_000_000, 2: 0, 3: 9_000_000_000_000_000}  # the same order
    for table in ("inputs", "outputs"):
        for old, new in ids.items():
            conn.execute(f"UPDATE {table} SET sampleid = %s WHERE sampleid = %s", (new, old))
    again = sqlnet.train(db_url, epochs=3, learning_rate=0.1, batch_size=2)
    assert again.losses == first.losses and again.params == first.params
    sqlnet.restore(db_url, again.run_id)
    shuffled = sqlnet.train(db_url, epochs=3, learning_rate=0.1, batch_size=2, shuffle=5)
    data = table_data(conn, shuffled.network)
    want = reference.train(shuffled.network, shuffled.initial, data, 0.1, 3, batch_size=2, shuffle=5)
    assert shuffled.losses == pytest.approx(want.losses, rel=1e-12)


# --- the files `load` reads -------------------------------------------------------------------------

# (what is wrong, the file's bytes, extra options, what the message must say)
CSV_CASES = [
    ("empty file", b"", [], ["is empty", "a header line"]),
    ("header only", b"a,y\n", [], ["no rows"]),
    ("no such target", b"a,b\n1,2\n", [], ["has no column 'y' (it has a, b)"]),
    ("text value", b"a,y\n1,2\nx,3\n", [], ["line 3, column 'a': 'x' is not a number"]),
    ("missing value", b"a,y\n1,2\n,3\n", [], ["line 3, column 'a': the value is missing"]),
    ("infinite target", b"a,y\n1,inf\n", [], ["line 2, column 'y': 'inf' is not a finite number"]),
    ("NaN target", b"a,y\n1,2\n2,nan\n", [], ["line 3, column 'y': 'nan' is not a finite number"]),
    ("overflowing number", b"a,y\n1e400,2\n", [], ["line 2, column 'a': '1e400' is not a finite number"]),
    ("short row", b"a,y\n1,2\n3\n", [], ["line 3: 1 fields where the header has 2"]),
    ("long row", b"a,y\n1,2,5\n", [], ["line 2: 3 fields where the header has 2"]),
    ("unclosed quote", b'a,y\n"1,2\n', [], ["line 2: 1 fields where the header has 2", "quotes"]),
    ("repeated header", b"a,a,y\n1,2,3\n", [], ["names column 'a' more than once"]),
    ("not UTF-8", b"a,y\n\xff\xfe,2\n", [], ["is not UTF-8 text", "0xff"]),
    ("several labels", b"a,y,z\n1,2,3\n", ["--target", "z", "--classes"], ["one label column"]),
    ("unnamed column", b"a,,y\n1,2,3\n", [], ["column 2 of the header has no name"]),
    ("not UTF-8, later", b"a,y\n1,2\n3,4\n\xe9,5\n", [], ["line 4 is not UTF-8 text", "0xe9"]),
    ("another delimiter", b"a;y\n1;2\n", [], ["has no column 'y'", "--delimiter ';'"]),
    ("a comma in a number", b"a;y\n1,5;2\n", ["--delimiter", ";"], ["line 2, column 'a': '1,5' is not a number"]),
    ("5,000 columns", (",".join(f"f{i}" for i in range(5000)) + ",y\n" + ",".join(["1"] * 5001) + "\n").encode(), [],
     ["5001 numeric columns", "at most 990 doubles", "--features"]),
    ("bad delimiter", b"a,y\n1,2\n", ["--delimiter", "ab"], ["--delimiter must be one character"]),
]


@pytest.mark.parametrize(
    ("content", "options", "words"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES]
)
def test_bad_files_are_refused_and_nothing_changes(
    db_url: str,
    conn: psycopg.Connection,
    tmp_path: Path,
    content: bytes,
    options: list[str],
    words: list[str],
) -> None:
    build(conn, db_url, "samples")  # a network whose inputs and outputs a load would replace
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    before = database_snapshot(conn)
    result = CliRunner().invoke(
        main, ["load", str(path), "--target", "y", *options, "--database-url", db_url]
    )
    assert result.exit_code == 1, (result.output, result.exception)
    message = " ".join(result.stderr.split())
    if not options or (options[0] == "--delimiter" and options[1] == ";"):  # a problem of the file: named
        assert str(path) in message
    for word in words:
        assert word in message, (word, message)
    assert database_snapshot(conn) == before


def test_a_byte_order_mark_is_not_part_of_the_first_name(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa,y\n1,2\n".encode())
    loaded = sqlnet.load(db_url, file=str(path), targets=["y"])
    assert loaded.features == ["a"]


def test_odd_but_valid_files_load_exactly(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """A byte-order mark, CRLF line ends, quoted fields holding the delimiter, a quote and a line end, another
    delimiter, a tab: each loads, and the values are what the file says."""
    files = {
        "semicolons": ("\ufeffname;a;y\r\n\"x;1\";1.5;2\r\n\"two\r\nlines\";-3e2;4\r\n".encode(), ";"),
        "tabs": (b"name\ta\ty\n\"say \"\"hi\"\"\"\t0.25\t1\nplain\t1e-3\t0\n", "\t"),
        "commas": (b'name,a,y\r\n"a, b",7,8\r\n"c\nd",9,10\r\n', ","),
    }
    want = {
        "semicolons": [("x;1", 1.5, 2.0), ("two\r\nlines", -300.0, 4.0)],
        "tabs": [('say "hi"', 0.25, 1.0), ("plain", 0.001, 0.0)],
        "commas": [("a, b", 7.0, 8.0), ("c\nd", 9.0, 10.0)],
    }
    for name, (content, delimiter) in files.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(content)
        args = ["load", str(path), "--target", "y", "--id", "name", "--schema", name, "--database-url", db_url]
        done = CliRunner().invoke(main, [*args, "--delimiter", "\\t" if delimiter == "\t" else delimiter])
        assert done.exit_code == 0, (name, done.output)
        rows = conn.execute(f"SELECT name, a, y FROM {name}.raw ORDER BY sampleid").fetchall()
        assert rows == want[name], name
        inputs = [v for (v,) in conn.execute(f"SELECT inputvalue FROM {name}.inputs ORDER BY sampleid")]
        assert inputs == [r[1] for r in want[name]]


# --- a unique index on the samples' keys spares the check a sort, only where it proves something ----------

# three inputs: a sample whose nodes are 1, 1, 3 has as many rows as its highest node, from node 1 up, and
# only counting its distinct nodes (or an index that forbids the duplicate) finds node 2 missing
THREE_INPUTS = [
    *SAMPLES_TABLES[:4],  # the same four tables
    "INSERT INTO inputs SELECT s, n, s * 0.1 + n * 0.01 FROM generate_series(1, 3) AS s, generate_series(1, 3) AS n",
    "INSERT INTO outputs VALUES (1, 1, 0.5), (2, 1, 0.25), (3, 1, 0.75)",
    "INSERT INTO weights1 SELECT i, j, i * 0.1 - j * 0.05, 0 FROM generate_series(1, 3) AS i, generate_series(1, 2) AS j",
    "INSERT INTO weights2 VALUES (1, 1, 0.5, 0), (2, 1, 0.6, 0)",
]
UNIQUE_INDEXES = {
    "primary key": ("ALTER TABLE inputs ADD PRIMARY KEY (sampleId, inputNode)", True),
    "the other order": ("CREATE UNIQUE INDEX ON inputs (inputNode, sampleId)", True),
    "deferred": ("ALTER TABLE inputs ADD UNIQUE (sampleId, inputNode) DEFERRABLE INITIALLY DEFERRED", False),
    "partial": ("CREATE UNIQUE INDEX ON inputs (sampleId, inputNode) WHERE inputNode > 1", False),
    "more columns": ("CREATE UNIQUE INDEX ON inputs (sampleId, inputNode, inputValue)", False),
    "included column": ("CREATE UNIQUE INDEX ON inputs (sampleId, inputNode) INCLUDE (inputValue)", False),
    "not unique": ("CREATE INDEX ON inputs (sampleId, inputNode)", False),
}


@pytest.mark.parametrize("name", UNIQUE_INDEXES)
def test_only_a_unique_index_enforced_now_on_exactly_the_keys_spares_the_distinct_count(
    db_url: str, conn: psycopg.Connection, name: str
) -> None:
    from sqlnet.compile.tables import Table
    from sqlnet.db.checks import unique_keys

    for statement in THREE_INPUTS:
        conn.execute(statement)
    statement, proves = UNIQUE_INDEXES[name]
    conn.execute(statement)
    inputs = Table("public", "inputs", {"sample": "sampleid", "node": "inputnode", "value": "inputvalue"})
    assert unique_keys(conn, inputs) is proves
    assert sqlnet.check(db_url, epochs=1).ok  # the network trains before it is broken
    # whatever the index, a sample whose nodes are 1, 1, 3 is refused: here inside the caller's own
    # transaction, where a deferred constraint lets the duplicate in until the commit
    with psycopg.connect(db_url) as mine:
        try:
            mine.execute("UPDATE inputs SET inputNode = 1 WHERE sampleId = 2 AND inputNode = 2")
        except psycopg.errors.UniqueViolation:
            assert name in ("primary key", "the other order", "included column")  # no duplicate can exist
            return
        with pytest.raises(sqlnet.InputError, match=r"inputs has 3 rows \(2 distinct nodes\) for sample 2"):
            sqlnet.train(mine, epochs=1, learning_rate=0.01, kernels="sql")
        mine.rollback()
