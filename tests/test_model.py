"""A network is a model: its definition and optimizer state travel with it, so no command gives other
numbers because an option was left out. Every case is checked against the reference."""

from __future__ import annotations

import csv
import json
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
from sqlnet.model.network import Network
from sqlnet.model.optimizers import Optimizer
from tests.helpers import random_data, random_params, table_params
from tests.test_reference import assert_close

NET = Network((3, 4, 2), "tanh", "softmax", "cross-entropy", "node")
OPTIMIZERS = {
    "gd": {},
    "momentum": {"optimizer": "momentum", "momentum": 0.8},
    "nesterov": {"optimizer": "momentum", "momentum": 0.8, "nesterov": True},
    "adam": {"optimizer": "adam"},
}
FUNCTIONS = {"hidden_activation": "tanh", "output_activation": "softmax", "loss": "cross-entropy"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


def setup(conn: psycopg.Connection, seed: int = 1) -> tuple[sqlnet.Params, sqlnet.Dataset]:
    rng = random.Random(seed)
    params, data = random_params(rng, NET), random_data(rng, NET, 8)
    create_tables(conn, NET, params, data, samples=True)
    return params, data


def optimizer(options: dict) -> Optimizer:
    return Optimizer(options.get("optimizer", "gd"), options.get("momentum", 0.9), options.get("nesterov", False))


def test_a_training_without_options_uses_the_networks_own(db_url: str, conn: psycopg.Connection) -> None:
    params, data = setup(conn)
    sqlnet.train(db_url, epochs=2, learning_rate=0.1, **FUNCTIONS)
    again = sqlnet.train(db_url, epochs=2, learning_rate=0.1)  # no functions given: the stored ones
    assert (again.network.hidden_activation, again.network.output_activation, again.network.loss) == (
        "tanh", "softmax", "cross-entropy",
    )  # fmt: skip
    want = reference.train(NET, params, data, 0.1, 4).params
    got = table_params(conn, NET)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
    assert sqlnet.check(db_url, epochs=2, learning_rate=0.1).ok  # check, too, trains the stored network
    assert sqlnet.gradcheck(db_url).ok
    definition = sqlnet.network(db_url)
    assert definition.last_run == again.run_id and definition.sizes == (3, 4, 2) and definition.bias == "node"


def test_a_contradicting_option_is_refused_and_redefine_changes_it(db_url: str, conn: psycopg.Connection) -> None:
    setup(conn)
    sqlnet.train(db_url, learning_rate=0.1, **FUNCTIONS)
    for command in (["train"], ["check"], ["gradcheck"], ["sql"], ["predict", "--table", "inputs", "--into", "p"]):
        code, output = run(*command, "--hidden-activation", "relu", "--database-url", db_url)
        assert code == 1, (command, output)
        assert "hidden activation tanh" in output and "--hidden-activation relu contradicts it" in output, output
    code, output = run("train", "--hidden-activation", "sigmoid", "--redefine", "--database-url", db_url)
    assert code == 0 and "redefined: hidden activation tanh -> sigmoid" in output, output
    code, output = run("network", "--json", "--database-url", db_url)
    assert code == 0 and json.loads(output)["hidden_activation"] == "sigmoid"


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_restore_then_train_repeats_the_run_bit_for_bit(db_url: str, conn: psycopg.Connection, name: str) -> None:
    """restore RUN puts back the weights and the optimizer state they went with: training again from
    there gives exactly the run's numbers, with every optimizer."""
    setup(conn)
    options = {"epochs": 2, "learning_rate": 0.05, **OPTIMIZERS[name], **FUNCTIONS}
    sqlnet.train(db_url, **options)  # run 1: the optimizer now has a state
    second = sqlnet.train(db_url, **options)  # run 2 continues it
    after_second = table_params(conn, NET)
    sqlnet.train(db_url, **options)  # run 3 moves on
    sqlnet.restore(db_url, second.run_id)  # weights and state from before run 2
    again = sqlnet.train(db_url, **options)
    assert table_params(conn, NET) == after_second
    assert again.losses == second.losses


def test_init_replace_then_train_equals_a_fresh_network(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, layers=[3, 4, 2], seed=5, bias="node")
    conn.execute("INSERT INTO inputs VALUES (1, 1, 0.5), (1, 2, -0.2), (1, 3, 0.1), (2, 1, 0.3), (2, 2, 0.8), (2, 3, -0.5)")
    conn.execute("INSERT INTO outputs VALUES (1, 1, 1), (1, 2, 0), (2, 1, 0), (2, 2, 1)")
    fresh = sqlnet.train(db_url, epochs=3, learning_rate=0.05, optimizer="adam", **FUNCTIONS)
    sqlnet.train(db_url, epochs=3, learning_rate=0.05, optimizer="adam")  # Adam's moments kept
    sqlnet.init(db_url, layers=[3, 4, 2], seed=5, bias="node", replace=True)
    assert sqlnet.network(db_url).hidden_activation is None  # chosen again by the next training
    again = sqlnet.train(db_url, epochs=3, learning_rate=0.05, optimizer="adam", **FUNCTIONS)
    assert again.losses == fresh.losses
    assert again.params.weights == fresh.params.weights


def test_switching_optimizer_starts_a_fresh_state(db_url: str, conn: psycopg.Connection) -> None:
    params, data = setup(conn)
    sqlnet.train(db_url, epochs=2, learning_rate=0.05, optimizer="momentum", **FUNCTIONS)
    start = table_params(conn, NET)
    report = sqlnet.check(db_url, epochs=2, learning_rate=0.05, optimizer="adam")  # what train would do
    assert report.ok
    result = sqlnet.train(db_url, epochs=2, learning_rate=0.05, optimizer="adam")
    assert result.notes == ["the network's optimizer state was momentum's: adam starts a fresh one"]
    want = reference.train(NET, start, data, 0.05, 2, optimizer=Optimizer("adam")).params
    got = table_params(conn, NET)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)


def test_resume_refuses_tables_that_no_longer_hold_the_checkpoint(db_url: str, conn: psycopg.Connection) -> None:
    setup(conn)
    code, output = run("train", "--epochs", "200000", "--learning-rate", "0.001", "--checkpoint-every", "1",
                       "--timeout", "2", "--hidden-activation", "tanh", "--output-activation", "softmax",
                       "--loss", "cross-entropy", "--optimizer", "adam", "--database-url", db_url)  # fmt: skip
    assert code == 1 and "the tables hold the checkpoint after epoch" in output, output
    run_id = int(output.split("sqlnet train --resume ")[1].split()[0].strip("`"))
    conn.execute("UPDATE weights2 SET weight2value = weight2value + 1 WHERE weight2inputnodenumber = 1")
    code, output = run("train", "--resume", str(run_id), "--database-url", db_url)
    assert code == 1 and "is no longer what the tables hold" in output and "weights" in output, output
    conn.execute("UPDATE weights2 SET weight2value = weight2value - 1 WHERE weight2inputnodenumber = 1")
    conn.execute("UPDATE sqlnet.optimizer_state SET m = m + 1 WHERE quantity = 'weight'")
    code, output = run("train", "--resume", str(run_id), "--database-url", db_url)
    assert code == 1 and "the optimizer state changed since" in output, output


OUTPUTS = [
    ("linear", "se", None),
    ("sigmoid", "cross-entropy", None),
    ("tanh", "se", None),
    ("relu", "half-se", None),
    ("softmax", "cross-entropy", ["setosa", "versicolor", "virginica"]),
]


@pytest.mark.parametrize(("output", "loss", "classes"), OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_export_predict_and_the_reference_agree_on_raw_rows(
    db_url: str, conn: psycopg.Connection, tmp_path: Path, output: str, loss: str, classes: list[str] | None
) -> None:
    """Load standardises the features; predict, the exported view and the exported function all take the
    raw features and give the reference's outputs (to 1e-9) and, with classes, the same class."""
    rng = random.Random(output)
    rows = [[round(rng.uniform(10, 200), 3), round(rng.uniform(-5, 5), 3), round(rng.uniform(0, 1), 3)] for _ in range(12)]
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "size", "tilt", "shade", "label" if classes else "y"])
        for n, r in enumerate(rows, start=1):
            target = classes[n % 3] if classes else round(rng.uniform(0, 1), 3)
            w.writerow([n, *r, target])
    if classes:
        sqlnet.load(db_url, file=str(path), targets=["label"], features=["size", "tilt", "shade"], classes=True, standardize=True)
    else:
        sqlnet.load(db_url, file=str(path), targets=["y"], features=["size", "tilt", "shade"], standardize=True)
    n_out = 3 if classes else 1
    sqlnet.init(db_url, layers=[3, 4, n_out], seed=2, bias="node")
    sqlnet.train(db_url, epochs=3, learning_rate=0.05, hidden_activation="tanh", output_activation=output, loss=loss)
    definition = sqlnet.network(db_url)
    assert definition.scaling is not None and definition.features == ["size", "tilt", "shade"]
    net = Network((3, 4, n_out), "tanh", output, loss, "node")
    params = table_params(conn, net)
    means, stds = definition.scaling

    def want(raw: list[float]) -> list[float]:
        return reference.forward(net, params, tuple((x - m) / s for x, m, s in zip(raw, means, stds))).output

    # load kept the rows as read in table raw; predict and the view find its columns by the stored names
    sqlnet.predict(db_url, table="raw", into="predicted")
    sqlnet.export(db_url, view="exported", table="raw")
    sqlnet.export(db_url, function="classify")
    nodes = [f"p_{c}" for c in classes] if classes else ["y"]
    picked = sql.SQL(", ").join(map(sql.Identifier, nodes))
    for n, r in enumerate(rows, start=1):
        expected = want(r)
        predicted = list(conn.execute(sql.SQL("SELECT {} FROM predicted WHERE sampleid = %s").format(picked), (n,)).fetchone())
        viewed = list(conn.execute(sql.SQL("SELECT {} FROM exported WHERE sampleid = %s").format(picked), (n,)).fetchone())
        if classes:
            (called,) = conn.execute("SELECT public.classify_probabilities(%s::float8[])", (r,)).fetchone()
        else:
            called = list(conn.execute("SELECT public.classify(%s::float8[])", (r,)).fetchone())  # one target: a number
        for got in (predicted, viewed, called):
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
        if classes:
            best = classes[max(range(3), key=lambda j: (expected[j], -j))]
            p_class, p_top = conn.execute("SELECT label, probability FROM predicted WHERE sampleid = %s", (n,)).fetchone()
            v_class, v_top = conn.execute("SELECT label, probability FROM exported WHERE sampleid = %s", (n,)).fetchone()
            (f_class,) = conn.execute("SELECT public.classify(%s::float8[])", (r,)).fetchone()
            assert p_class == v_class == f_class == best
            assert p_top == pytest.approx(max(expected), rel=1e-9) and v_top == pytest.approx(max(expected), rel=1e-9)
    (comment,) = conn.execute("SELECT obj_description('public.exported'::regclass)").fetchone()
    assert comment.startswith('sqlnet: exported view of network "public"') and "run " in comment
    assert "standardised" in comment
    core = "classify_probabilities" if classes else "classify"
    for bad in ("ARRAY[1, 2]::float8[]", "ARRAY[1, NULL, 3]::float8[]", "NULL::float8[]", "ARRAY[1, 2, 3, 4]::float8[]"):
        with pytest.raises(psycopg.errors.RaiseException, match=rf"public\.{core} takes 3 numbers"):
            conn.execute(f"SELECT public.classify({bad})")


def test_network_command_shows_the_definition(db_url: str, conn: psycopg.Connection) -> None:
    setup(conn)
    code, output = run("network", "--database-url", db_url)
    assert code == 1 and "no network is recorded" in output
    sqlnet.train(db_url, learning_rate=0.1, **FUNCTIONS)
    code, output = run("network", "--database-url", db_url)
    assert code == 0 and "tanh" in output and "softmax" in output and "cross-entropy" in output and "run 1" in output


def test_phase_0_of_every_epoch_holds_the_weights_it_started_from(post_db: str) -> None:
    from tests.helpers import POST_DATA, POST_NET, POST_PARAMS

    result = sqlnet.train(post_db, epochs=3, learning_rate=0.0001, trace=True)
    for epoch in (1, 2, 3):
        info, traces = sqlnet.phases(post_db, result.run_id, epoch)
        assert info.run_id == result.run_id
        start = {(layer, q, i, j): v for _, _, _, layer, q, i, j, v in traces[0].rows}
        want = POST_PARAMS if epoch == 1 else reference.train(POST_NET, POST_PARAMS, POST_DATA, 0.0001, epoch - 1).params
        got_w = [[[start[(k + 1, "weight", i + 1, j + 1)] for j in range(POST_NET.sizes[k + 1])]
                  for i in range(POST_NET.sizes[k])] for k in range(POST_NET.depth)]  # fmt: skip
        assert_close(got_w, want.weights, 1e-12)
        assert {e for e, *_ in traces[0].rows} == {epoch}
    code, output = run("phases", "--epoch", "2", "--database-url", post_db)
    assert code == 0 and output.startswith(f"run {result.run_id} (3-2-3 network") and "epoch 2" in output


def test_runs_show_has_the_validation_beside_the_training_loss(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    rng = random.Random(3)
    create_tables(conn, NET, random_params(rng, NET), random_data(rng, NET, 20), samples=True)
    result = sqlnet.train(db_url, epochs=4, learning_rate=0.1, validation_fraction=0.25, **FUNCTIONS)
    shown = CliRunner().invoke(main, ["runs", "show", str(result.run_id), "--json", "--database-url", db_url])
    assert shown.exit_code == 0, shown.output
    epochs = json.loads(shown.stdout)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert [e["val_loss"] for e in epochs] == pytest.approx([v[0] for v in result.validation], rel=1e-12)
    assert [e["val_accuracy"] for e in epochs] == [v[1] for v in result.validation]
    code, output = run("runs", "show", str(result.run_id), "--database-url", db_url, "--plot", str(tmp_path / "l.png"))
    assert code == 0 and "validation loss per epoch" in output and "accuracy" in output
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_a_checkpointed_runs_record_says_what_the_tables_hold(post_db: str, conn: psycopg.Connection) -> None:
    code, output = run("train", "--epochs", "200000", "--learning-rate", "1e-7", "--checkpoint-every", "1",
                       "--timeout", "2", "--database-url", post_db)  # fmt: skip
    assert code == 1 and "the tables hold the checkpoint after epoch" in output, output
    (status, error) = conn.execute("SELECT status, error FROM sqlnet.runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status == "cancelled" and "the tables hold the checkpoint after epoch" in error
    assert "every table is as it was before" not in error


@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("name", ["gd", "momentum", "adam"])
def test_decoupled_weight_decay_matches_the_reference(db_url: str, conn: psycopg.Connection, name: str, layout: str) -> None:
    """--weight-decay (AdamW with adam) in SQL against the reference, beside --l2 (coupled)."""
    params, data = setup(conn, seed=4)
    options = {"epochs": 3, "learning_rate": 0.05, "optimizer": name, "layout": layout, **FUNCTIONS}
    for extra in ({"weight_decay": 0.1}, {"l2": 0.1}, {"weight_decay": 0.1, "l2": 0.05}):
        assert sqlnet.check(db_url, **options, **extra).ok, extra
    result = sqlnet.train(db_url, **options, weight_decay=0.1)
    want = reference.train(NET, params, data, 0.05, 3, optimizer=Optimizer(name, weight_decay=0.1)).params
    assert_close(result.params.weights + result.params.biases, want.weights + want.biases, 1e-12)
    if name == "adam":  # decoupled is not coupled: AdamW differs from Adam with L2
        coupled = reference.train(NET, params, data, 0.05, 3, optimizer=Optimizer(name, l2=0.1)).params
        assert max(abs(a - b) for m, n in zip(coupled.weights, want.weights) for r, q in zip(m, n) for a, b in zip(r, q)) > 1e-6
    if name == "gd":  # with plain gradient descent both are the same update
        coupled = reference.train(NET, params, data, 0.05, 3, optimizer=Optimizer(name, l2=0.1)).params
        assert_close(coupled.weights, want.weights, 1e-12)
