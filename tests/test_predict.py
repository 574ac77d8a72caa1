"""predict and export: the forward pass in SQL against the reference (and NumPy), the network's own record
(feature names, standardisation, classes, ids) used as a user meets it, and nothing of a user's replaced."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

import sqlnet
from sqlnet.cli import main
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import database_snapshot, random_data, random_network, random_params, table_params

CASES = [
    (1, "edge", "relu", "linear"),
    (2, "node", "tanh", "sigmoid"),
    (3, "none", "sigmoid", "softmax"),
    (2, "node", "relu", "softmax"),
]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.mark.parametrize(("depth", "bias", "hidden", "output"), CASES)
def test_predict_view_and_function_match_the_reference(
    db_url: str, conn: psycopg.Connection, depth: int, bias: str, hidden: str, output: str
) -> None:
    """A network sqlnet did not load (no names kept): one row per sample, output_1.. in node order."""
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
    outputs = [f"output_{k}" for k in range(1, net.sizes[-1] + 1)]
    assert p.source.startswith("run ") and p.rows == len(data) and p.columns == ["sampleid", *outputs]
    assert p.created == "public.predictions"
    sqlnet.export(db_url, view="predicted", table="inputs")
    sqlnet.export(db_url, function="net")
    picked = sql.SQL(", ").join(map(sql.Identifier, outputs))
    for source in ("predictions", "predicted"):
        rows = conn.execute(sql.SQL("SELECT sampleid, {} FROM {}").format(picked, sql.Identifier(source))).fetchall()
        assert sorted(r[0] for r in rows) == sorted(want)
        for sample, *values in rows:
            assert values == pytest.approx(want[sample], rel=1e-9, abs=1e-12), (source, sample)
    for s in data.samples:
        (got,) = conn.execute("SELECT net(%s::float8[])", (list(s.x),)).fetchone()
        assert got == pytest.approx(want[s.id], rel=1e-9, abs=1e-12)


def test_exported_view_needs_no_weights_tables(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE new_samples (id int, a float8, b float8, c float8)")
    conn.execute("INSERT INTO new_samples VALUES (7, 1, 3, 5), (8, 0, 0, 0)")
    sqlnet.export(db_url, view="post_predictions", table="new_samples", features=["a", "b", "c"])
    conn.execute("ALTER TABLE weights1 RENAME TO old_weights1")  # the view does not read it
    row = conn.execute("SELECT output_1, output_2, output_3 FROM post_predictions WHERE id = 7").fetchone()
    assert list(row) == [291, 400, 509]  # the post's forward pass


def test_predict_errors_name_the_schema_and_what_to_do(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE bad (sampleId int, inputNode int, inputValue float8)")
    conn.execute("INSERT INTO bad VALUES (1, 1, 0.5), (1, 2, 0.5)")
    with pytest.raises(sqlnet.InputError, match=r"public.bad has 2 rows .* for sample 1, but the network has 3 input"):
        sqlnet.predict(db_url, table="bad", into="p")
    with pytest.raises(sqlnet.InputError, match=r"network 'public' keeps no feature names .* columns of public.weights1"):
        sqlnet.predict(db_url, table="weights1", into="p")
    with pytest.raises(sqlnet.InputError, match=r"table public.weights1 has no column 'nope'"):
        sqlnet.predict(db_url, table="weights1", into="p", id_column="weight1value",
                       features=["weight1inputnodenumber", "weight1bias", "nope"])  # fmt: skip
    with pytest.raises(sqlnet.InputError, match="2 features given with --features, but network 'public' has 3"):
        sqlnet.predict(db_url, table="weights1", into="p", features=["weight1bias", "weight1value"])
    with pytest.raises(sqlnet.InputError, match=r"table public.nowhere not found: .*looked in schema 'public'"):
        sqlnet.predict(db_url, table="nowhere", into="p")
    with pytest.raises(sqlnet.InputError, match="exactly one of --view"):
        sqlnet.export(db_url)
    with pytest.raises(sqlnet.InputError, match="exactly one of --table T or --csv FILE"):
        sqlnet.predict(db_url, into="p")
    conn.execute("INSERT INTO bad VALUES (1, 3, 0.5)")
    sqlnet.predict(db_url, table="bad", into="p")
    with pytest.raises(sqlnet.InputError, match=r"table public.p already exists .*add --replace"):
        sqlnet.predict(db_url, table="bad", into="p")
    assert sqlnet.predict(db_url, table="bad", into="p", replace=True).rows == 1
    code, _, err = run("export", "--database-url", db_url, "--function", "f")
    code, _, err = run("export", "--database-url", db_url, "--function", "f")
    assert code == 1 and "function public.f(x double precision[]) already exists" in err and "--replace" in err
    assert "Traceback" not in err and "SQLSTATE" not in err


def test_cli_predict_and_export(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE s (sampleId int, inputNode int, inputValue float8)")
    conn.execute("INSERT INTO s VALUES (1, 1, 1), (1, 2, 3), (1, 3, 5)")
    code, out, err = run("predict", "--database-url", db_url, "--table", "s", "--into", "p")
    assert code == 0, err
    assert "wrote 1 rows into public.p (sampleid, output_1, output_2, output_3): network 'public'" in out
    code, out, err = run("export", "--database-url", db_url, "--function", "post_net")
    assert code == 0, err
    (got,) = conn.execute("SELECT public.post_net(ARRAY[1, 3, 5]::float8[])").fetchone()
    assert got == [291, 400, 509]


# --- the data workflow, as a user meets it: scikit-learn's wine data from a CSV ---------------------


def wine_csv(path: Path) -> tuple[list[str], list[list[float]], list[str]]:
    from sklearn.datasets import load_wine

    d = load_wine()
    names = [f.replace("od280/od315_of_diluted_wines", "od280/od315") for f in d.feature_names]
    rows = [[float(v) for v in x] for x in d.data]
    labels = [str(d.target_names[y]) for y in d.target]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["wine", *names, "kind"])
        for n, (x, y) in enumerate(zip(rows, labels), start=1):
            w.writerow([f"w{n:03d}", *x, y])
    return names, rows, labels


def numpy_forward(conn: psycopg.Connection, schema: str, raw: list[list[float]], sizes: list[int]):  # type: ignore[no-untyped-def]
    """The network's probabilities by NumPy: its own standardisation of the raw rows (population std, as
    load's), the weights read from the tables, tanh and softmax written out here."""
    import numpy as np

    x = np.array(raw)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    for k in (1, 2):
        w = np.zeros((sizes[k - 1], sizes[k]))
        for i, j, v in conn.execute(sql.SQL("SELECT weight{k}inputnodenumber, weight{k}outputnodenumber, weight{k}value "
                                            "FROM {t}").format(k=sql.SQL(str(k)), t=sql.Identifier(schema, f"weights{k}"))):  # fmt: skip
            w[int(i) - 1, int(j) - 1] = v
        b = np.zeros(sizes[k])
        for j, v in conn.execute(sql.SQL("SELECT bias{k}nodenumber, bias{k}value FROM {t}").format(
                k=sql.SQL(str(k)), t=sql.Identifier(schema, f"biases{k}"))):  # fmt: skip
            b[int(j) - 1] = v
        x = x @ w + b
        x = np.tanh(x) if k == 1 else np.exp(x - x.max(axis=1, keepdims=True))
    return x / x.sum(axis=1, keepdims=True)


def test_the_wine_workflow_from_csv_to_labelled_predictions(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """CSV in, train, predict by the stored names (the kept raw table, the network's own inputs, a CSV,
    standard input), an exported view and function: all equal to NumPy on the standardised rows, the
    network's own samples never standardised twice."""
    names, rows, labels = wine_csv(tmp_path / "wine.csv")
    code, out, err = run("load", str(tmp_path / "wine.csv"), "--database-url", db_url, "--schema", "wine",
                         "--target", "kind", "--classes", "--standardize", "--id", "wine", "--validation-fraction", "0.2",
                         "--seed", "3")  # fmt: skip
    assert code == 0, err
    assert "loaded 178 samples into wine.inputs/outputs: 13 features, 3 classes (class_0, class_1, class_2)" in out
    assert "features (standardised): alcohol, malic_acid" in out and "od280/od315, proline" in out
    assert "validation: 36 of 178 samples held out of training (fraction 0.2, seed 3)" in out
    assert "the rows as read: wine.raw (sampleid, ids from wine)" in out
    sqlnet.init(db_url, schema="wine", layers=[13, 8, 3], seed=1, bias="node")
    result = sqlnet.train(db_url, schema="wine", epochs=40, batch_size=16, shuffle=1, optimizer="adam",
                          learning_rate=0.02, hidden_activation="tanh", output_activation="softmax",
                          loss="cross-entropy")  # fmt: skip
    assert result.validation and result.validation[-1][1] >= 0.9  # the stored split was held out and scored
    want = numpy_forward(conn, "wine", rows, [13, 8, 3])

    p = sqlnet.predict(db_url, schema="wine", table="raw", into="pred")
    assert p.columns == ["wine", "label", "probability", "p_class_0", "p_class_1", "p_class_2"]
    assert p.created == "wine.pred" and p.rows == 178 and not p.notes
    # the raw table holds the truth under the stored target name: the predictions are scored against it
    assert p.score is not None and p.score["against"] == "wine.raw.kind" and p.score["rows"] == 178
    own = sqlnet.predict(db_url, schema="wine", table="inputs", into="pred_inputs")
    assert own.notes and "already standardised by load: used as they are, not standardised again" in own.notes[0]
    code, out, err = run("predict", "--database-url", db_url, "--schema", "wine", "--csv",
                         str(tmp_path / "wine.csv"), "--into", "pred_csv")  # fmt: skip
    assert code == 0 and "wrote 178 rows into wine.pred_csv (wine, label, probability," in out, err
    piped = CliRunner().invoke(main, ["predict", "--database-url", db_url, "--schema", "wine", "--csv", "-",
                                      "--into", "pred_stdin"], input=(tmp_path / "wine.csv").read_text())  # fmt: skip
    assert piped.exit_code == 0, piped.stderr
    sqlnet.export(db_url, schema="wine", view="wine_view", table="raw")
    created = sqlnet.export(db_url, schema="wine", function="wine_kind")
    assert created.created == "wine.wine_kind, wine.wine_kind_probabilities"

    classes = ["class_0", "class_1", "class_2"]
    by_sample = dict(conn.execute("SELECT sampleid, wine FROM wine.raw"))
    for table in ("pred", "pred_csv", "pred_stdin", "wine_view"):
        got = {r[0]: r[1:] for r in conn.execute(sql.SQL("SELECT wine, label, probability, p_class_0, p_class_1, "
                                                         "p_class_2 FROM {}").format(sql.Identifier("wine", table)))}  # fmt: skip
        assert len(got) == 178, table
        for n in range(178):
            label, top, *probabilities = got[f"w{n + 1:03d}"]
            assert probabilities == pytest.approx(list(want[n]), rel=1e-9, abs=1e-12), (table, n)
            assert label == classes[int(want[n].argmax())] and top == pytest.approx(want[n].max(), rel=1e-9)
    # the network's own samples give the same predictions as the raw rows: one standardisation, not two
    for sample, *probabilities in conn.execute("SELECT sampleid, p_class_0, p_class_1, p_class_2 FROM wine.pred_inputs"):
        n = int(by_sample[sample][1:]) - 1
        assert probabilities == pytest.approx(list(want[n]), rel=1e-9, abs=1e-12)
    for n in (0, 77, 177):
        label, probabilities = conn.execute(
            "SELECT wine.wine_kind(%s::float8[]), wine.wine_kind_probabilities(%s::float8[])", (rows[n], rows[n])
        ).fetchone()
        assert label == classes[int(want[n].argmax())]
        assert probabilities == pytest.approx(list(want[n]), rel=1e-9, abs=1e-12)
    accuracy = conn.execute("SELECT avg((p.label = r.kind)::int) FROM wine.pred AS p JOIN wine.raw AS r USING (wine)")
    assert p.score["accuracy"] == pytest.approx(float(accuracy.fetchone()[0]), abs=1e-12) and p.score["accuracy"] > 0.9
    assert own.score is None  # the long table of the network's own samples holds no target columns


def test_a_regressor_predicts_its_target_by_name_in_its_units(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    text = "rooms,area,price\n" + "".join(f"{r},{a},{100 + 3 * a + 10 * r}\n" for r, a in
                                            [(2, 50), (3, 70), (4, 95), (3, 60), (5, 120), (1, 30)])  # fmt: skip
    (tmp_path / "houses.csv").write_text(text)
    sqlnet.load(db_url, schema="houses", file=str(tmp_path / "houses.csv"), targets=["price"], standardize=True)
    sqlnet.init(db_url, schema="houses", layers=[2, 4, 1], seed=3, bias="node")
    sqlnet.train(db_url, schema="houses", epochs=5, learning_rate=0.01)
    p = sqlnet.predict(db_url, schema="houses", table="raw", into="priced")
    assert p.columns == ["sampleid", "price"]
    pairs = conn.execute("SELECT p.price, r.price FROM houses.priced p JOIN houses.raw r USING (sampleid)").fetchall()
    rmse = (sum((a - b) ** 2 for a, b in pairs) / len(pairs)) ** 0.5
    assert p.score is not None and p.score["rows"] == 6 and p.score["rmse"]["price"] == pytest.approx(rmse, rel=1e-9)
    sqlnet.export(db_url, schema="houses", function="price_of")
    net = sqlnet.Network((2, 4, 1), bias="node")
    params = table_params(conn, net, "houses")
    means, stds = sqlnet.network(db_url, schema="houses").scaling
    for _sample, rooms, area, price in conn.execute(
        "SELECT r.sampleid, r.rooms, r.area, p.price FROM houses.raw r JOIN houses.priced p USING (sampleid)"
    ):
        x = tuple((v - m) / s for v, m, s in zip((rooms, area), means, stds))
        (want,) = reference.forward(net, params, x).output
        assert price == pytest.approx(want, rel=1e-9)
        (called,) = conn.execute("SELECT houses.price_of(ARRAY[%s, %s]::float8[])", (rooms, area)).fetchone()
        assert isinstance(called, float) and called == pytest.approx(want, rel=1e-9)


def test_replace_never_destroys_what_sqlnet_did_not_make(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """A user's table, view or function under the name of an --into, --view or --function (or of inputs,
    outputs, raw, weights) is refused with --replace, named, and left as it was; what sqlnet made is replaced."""
    sqlnet.init(db_url, example="post")
    conn.execute("CREATE TABLE mine (note text)")
    conn.execute("INSERT INTO mine VALUES ('keep me')")
    conn.execute("CREATE VIEW their_view AS SELECT 1 AS one")
    conn.execute("CREATE FUNCTION their_f(x double precision[]) RETURNS int LANGUAGE sql AS 'SELECT 1'")
    (me,) = conn.execute("SELECT current_user").fetchone()  # the owner of what the test made
    before = database_snapshot(conn)
    for args, name in (
        (["predict", "--table", "inputs", "--into", "mine"], "table public.mine"),
        (["export", "--view", "mine", "--table", "inputs"], "table public.mine"),
        (["export", "--view", "their_view", "--table", "inputs"], "view public.their_view"),
        (["export", "--function", "their_f"], "function public.their_f(x double precision[])"),
    ):
        code, _, err = run(*args, "--replace", "--database-url", db_url)
        assert code == 1 and f"{name} (owner {me}) already exists and sqlnet did not make it" in err, err
        assert "sqlnet never replaces it, even with --replace" in err
        assert database_snapshot(conn) == before
    # a table sqlnet made for another network is not this one's either
    sqlnet.init(db_url, schema="other", example="post")
    sqlnet.predict(db_url, schema="other", table="inputs", into="shared", into_schema="public")
    code, _, err = run("predict", "--table", "inputs", "--into", "shared", "--replace", "--database-url", db_url)
    assert code == 1 and "sqlnet made it for another network" in err
    # the post's tables made by hand (not by sqlnet): init --replace refuses them, load too
    conn.execute("CREATE SCHEMA hand")
    conn.execute("CREATE TABLE hand.weights1 (weight1InputNodeNumber int, weight1OutputNodeNumber int, "
                 "weight1Value float8, weight1Bias float8)")  # fmt: skip
    conn.execute("CREATE TABLE hand.inputs (sampleId int, inputNode int, inputValue float8)")
    conn.execute("INSERT INTO hand.inputs VALUES (1, 1, 0.5)")
    code, _, err = run("init", "--schema", "hand", "--layers", "2,2", "--replace", "--database-url", db_url)
    assert code == 1 and f"table hand.weights1 (owner {me}) already exists and sqlnet did not make it" in err
    (tmp_path / "a.csv").write_text("a,y\n1,2\n")
    code, _, err = run("load", str(tmp_path / "a.csv"), "--schema", "hand", "--target", "y", "--replace",
                       "--database-url", db_url)  # fmt: skip
    assert code == 1 and f"table hand.inputs (owner {me}) already exists and sqlnet did not make it" in err
    assert conn.execute("SELECT * FROM hand.inputs").fetchall() == [(1, 1, 0.5)]
    # what sqlnet made for this network is replaced with --replace (and said when it exists)
    sqlnet.predict(db_url, table="inputs", into="mine_too")
    assert sqlnet.predict(db_url, table="inputs", into="mine_too", replace=True).rows == 1


def test_a_long_table_that_is_not_the_networks_own_says_raw_or_standardised(
    db_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,10,0\n2,20,1\n3,40,1\n")
    sqlnet.load(db_url, file=str(tmp_path / "d.csv"), targets=["y"], standardize=True)
    sqlnet.init(db_url, layers=[2, 1], seed=1)
    conn.execute("CREATE TABLE copy_of_inputs AS SELECT * FROM inputs")
    with pytest.raises(sqlnet.InputError, match=r"say whether its values are raw .* or already standardised"):
        sqlnet.predict(db_url, table="copy_of_inputs", into="p")
    same = sqlnet.predict(db_url, table="copy_of_inputs", into="p", standardized=True)
    own = sqlnet.predict(db_url, table="inputs", into="q")
    assert same.rows == own.rows == 3
    assert conn.execute("SELECT * FROM p ORDER BY 1").fetchall() == conn.execute("SELECT * FROM q ORDER BY 1").fetchall()
    with pytest.raises(sqlnet.InputError, match="they are not raw values"):
        sqlnet.predict(db_url, table="inputs", into="r", standardized=False)


def test_sqlnet_schema_names_the_network_for_a_shell(
    db_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlnet.init(db_url, schema="mine", example="post")
    monkeypatch.setenv("SQLNET_SCHEMA", "mine")
    code, out, err = run("predict", "--table", "inputs", "--into", "p", "--database-url", db_url)
    assert code == 0 and "into mine.p" in out and "network 'mine'" in out, err
    assert conn.execute("SELECT to_regclass('mine.p') IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("a,b,y\n1,x,0\n", ["line 2, column 'b': 'x' is not a number"]),
        ("a,b,y\n1,,0\n", ["line 2, column 'b': the value is missing"]),
        ("a,b,y\n1,2\n", ["line 2: 2 fields where the header has 3"]),
        ("a,y\n1,0\n", ["has no column 'b'", "a feature of the network"]),
        ("a,b,y\n1,1e999,0\n", ["'1e999' is not a finite number"]),
        ("", ["is empty"]),
    ],
    ids=["text", "missing", "ragged", "no such feature", "overflow", "empty"],
)
def test_a_bad_csv_to_predict_is_refused_naming_the_line(
    db_url: str, conn: psycopg.Connection, tmp_path: Path, content: str, words: list[str]
) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,10,0\n2,20,1\n3,40,1\n")
    sqlnet.load(db_url, file=str(tmp_path / "d.csv"), targets=["y"], standardize=True)
    sqlnet.init(db_url, layers=[2, 1], seed=1)
    (tmp_path / "bad.csv").write_text(content)
    before = database_snapshot(conn)
    code, _, err = run("predict", "--csv", str(tmp_path / "bad.csv"), "--into", "p", "--database-url", db_url)
    assert code == 1 and str(tmp_path / "bad.csv") in err, err
    for word in words:
        assert word in err, err
    assert database_snapshot(conn) == before


def test_prediction_columns_are_named_from_the_record() -> None:
    """Class names too long for a column name are numbered (and said so), never cut; a regressor's
    targets keep their names; a network without names gets output_1.."""
    from sqlnet.compile.predict import outputs_of

    net = sqlnet.Network((2, 2), "relu", "softmax", "cross-entropy", "node")
    long_names = ["x" * 70, "y"]
    out = outputs_of(net, "id", long_names, ["label"])
    assert out.nodes == ("p_1", "p_2") and out.classes == tuple(long_names) and out.probabilities
    assert not out.targets and out.note and "p_k is the k-th class" in out.note
    assert outputs_of(net, "id", ["a", "b"], ["label"]).columns == ["id", "label", "probability", "p_a", "p_b"]
    linear = sqlnet.Network((2, 2), "relu", "linear", "half-se", "node")
    assert outputs_of(linear, "id", ["a", "b"], ["label"]).columns == ["id", "label", "output_a", "output_b"]
    assert outputs_of(linear, "sampleid", None, ["price", "rent"]).columns == ["sampleid", "price", "rent"]
    assert outputs_of(linear, "sampleid", None, None).columns == ["sampleid", "output_1", "output_2"]
    with pytest.raises(sqlnet.InputError, match="two columns named 'price'"):
        outputs_of(linear, "price", None, ["price", "rent"])


def test_load_predict_and_export_speak_json_for_scripts(db_url: str, tmp_path: Path) -> None:
    import json

    (tmp_path / "d.csv").write_text("n,a,b,kind\nx1,1,10,no\nx2,2,20,yes\nx3,3,40,yes\nx4,4,30,no\n")
    code, out, err = run("load", str(tmp_path / "d.csv"), "--target", "kind", "--classes", "--id", "n", "--json",
                         "--database-url", db_url)  # fmt: skip
    loaded = json.loads(out)
    assert code == 0 and loaded["samples"] == 4 and loaded["classes"] == ["no", "yes"] and loaded["id_column"] == "n"
    sqlnet.init(db_url, layers=[2, 2], seed=1)
    sqlnet.train(db_url, epochs=2, learning_rate=0.01, output_activation="softmax", loss="cross-entropy")
    code, out, err = run("predict", "--table", "raw", "--into", "p", "--json", "--database-url", db_url)
    written = json.loads(out)
    assert code == 0 and written["rows"] == 4 and written["created"] == "public.p", err
    assert written["columns"] == ["n", "label", "probability", "p_no", "p_yes"] and written["network"] == "public"
    code, out, err = run("export", "--function", "kind_of", "--json", "--database-url", db_url)
    assert code == 0 and json.loads(out)["created"] == "public.kind_of, public.kind_of_probabilities", err


def test_replace_only_replaces_an_object_of_the_same_kind(db_url: str, conn: psycopg.Connection) -> None:
    """--into inputs --replace would drop the network's own samples (sqlnet made them, for this network, but
    as samples, not predictions): refused, and the samples stay."""
    sqlnet.init(db_url, example="post")
    before = database_snapshot(conn)
    for args in (["predict", "--table", "inputs", "--into", "inputs"], ["export", "--view", "weights1", "--table", "inputs"]):
        code, _, err = run(*args, "--replace", "--database-url", db_url)
        assert code == 1 and "sqlnet made it for network 'public', but not as" in err, err
        assert database_snapshot(conn) == before
