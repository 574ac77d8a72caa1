"""The engine interface, written once and run on both engines: PostgreSQL always (the embedded server or
$SQLNET_TEST_DATABASE_URL), Spark under its marker (a real local[2] SparkSession over Parquet folders).

Every test reaches the network only through `sqlnet.engines.open_engine(...)` and the methods of the
`Engine` protocol; only writing the starting tables and reading a created table back differ per engine
(the `Place` below), and every result is compared with the pure-Python reference.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
import pytest
from click.testing import CliRunner

from sqlnet.engines import Engine, open_engine
from sqlnet.errors import InputError, Unsupported
from sqlnet.model import reference
from sqlnet.model.network import Dataset, Network, Params
from sqlnet.model.optimizers import Optimizer
from sqlnet.ops.engines import CAPABILITIES, LACKS
from tests.helpers import POST_BIASES_AFTER, POST_WEIGHTS_AFTER, random_data, random_params
from tests.test_reference import assert_close


@dataclass
class Place:
    """One engine over an empty place for a network, and the two things done there without the engine:
    writing a network's starting tables, reading a table the engine made (id -> values)."""

    engine: Engine
    write: Callable[[Network, Params, Dataset], None]
    read: Callable[[str], dict[int, list[float]]]
    cli: list[str]  # the command line's options that name the same place
    rows: Callable[[str], list[dict[str, Any]]]  # a table the engine made, as {column: value} rows


def _postgresql(db_url: str) -> Place:
    from sqlnet.db.tables import create_tables

    def write(net: Network, params: Params, data: Dataset) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            create_tables(conn, net, params, data, samples=True)

    def read(table: str) -> dict[int, list[float]]:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(psycopg.sql.SQL("SELECT * FROM {}").format(psycopg.sql.Identifier(table))).fetchall()
        return {int(r[0]): [float(v) for v in r[1:]] for r in rows}

    def rows(table: str) -> list[dict[str, Any]]:
        with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(psycopg.sql.SQL("SELECT * FROM {}").format(psycopg.sql.Identifier(table))).fetchall()

    return Place(open_engine("postgresql", database_url=db_url), write, read, ["--database-url", db_url], rows)


def _spark(session: Any, folder: Path) -> Place:
    from tests.test_spark import write_network

    def read(table: str) -> dict[int, list[float]]:
        return {int(r[0]): [float(v) for v in r[1:]] for r in session.read.parquet(str(folder / table)).collect()}

    return Place(
        open_engine("spark", parquet=str(folder)),
        lambda net, params, data: write_network(session, folder, net, params, data),
        read,
        ["--engine", "spark", "--parquet", str(folder)],
        lambda table: [r.asDict() for r in session.read.parquet(str(folder / table)).collect()],
    )


@pytest.fixture(params=["postgresql", pytest.param("spark", marks=pytest.mark.spark)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    if request.param == "postgresql":
        yield _postgresql(request.getfixturevalue("db_url"))
    else:
        yield _spark(request.getfixturevalue("spark"), tmp_path / "net")


def test_the_posts_network_trains_to_the_posts_numbers_and_is_recorded(place: Place) -> None:
    made = place.engine.init(example="post", layers=None, seed=None, init="he", bias="edge", replace=False)
    assert {"inputs", "outputs", "weights1", "weights2"} <= set(made)
    with pytest.raises(InputError, match="--replace"):  # never over what is there without being asked
        place.engine.init(example="post", layers=None, seed=None, init="he", bias="edge", replace=False)
    result = place.engine.train(epochs=1, learning_rate=0.1)
    assert_close(result.params.weights, POST_WEIGHTS_AFTER)
    assert_close(result.params.biases, POST_BIASES_AFTER)
    (run,) = place.engine.runs()
    assert (run.run_id, run.status, run.epochs, run.network.sizes) == (result.run_id, "finished", 1, (3, 2, 3))
    info, epochs = place.engine.run(run.run_id)
    assert info.final_loss == pytest.approx(result.losses[-1]) and [e[0] for e in epochs] == [1]
    assert epochs[0][1] == pytest.approx(result.losses[0], rel=1e-12)
    with pytest.raises(InputError, match="run 99 not found"):
        place.engine.run(99)


@pytest.mark.parametrize(
    "functions, options",
    [
        (("tanh", "linear", "half-se", "node"), dict(optimizer="adam", batch_size=3, shuffle=5)),
        (("sigmoid", "softmax", "cross-entropy", "edge"), dict(optimizer="momentum", l2=0.01)),
        (("relu", "sigmoid", "se", "none"), dict(validation_fraction=0.25, seed=3)),
    ],
)
def test_a_training_equals_the_reference(place: Place, functions: tuple[str, ...], options: dict[str, Any]) -> None:
    net = Network((3, 4, 3), *functions)
    rng = random.Random(5)
    params, data = random_params(rng, net), random_data(rng, net, 8)
    place.write(net, params, data)
    given = dict(epochs=3, learning_rate=0.05, hidden_activation=functions[0], output_activation=functions[1],
                 loss=functions[2], **options)  # fmt: skip
    report = place.engine.check(tolerance=1e-9, **given)
    assert report.ok, report.as_json()
    result = place.engine.train(**given)
    if "validation_fraction" in options:  # the held-out samples: in neither training, scored after each epoch
        assert len(result.validation) == 3 and all(loss is not None for loss, _ in result.validation)
        return
    want = reference.train(
        net, params, data, 0.05, 3, batch_size=options.get("batch_size", 0), shuffle=options.get("shuffle"),
        optimizer=Optimizer(options.get("optimizer", "gd"), l2=options.get("l2", 0.0)),
    )  # fmt: skip
    assert_close(result.params.weights, want.params.weights)
    assert result.losses == pytest.approx(want.losses, rel=1e-9)


def test_predictions_are_the_reference_forward_pass(place: Place) -> None:
    net = Network((3, 4, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(8)
    params, data = random_params(rng, net), random_data(rng, net, 6)
    place.write(net, params, data)
    made = place.engine.predict(table="inputs", into="scored", hidden_activation="tanh")
    assert made.rows == 6
    got = place.read("scored")
    for s in data.samples:
        assert got[s.id] == pytest.approx(reference.forward(net, params, s.x).output, rel=1e-12, abs=1e-15)
    with pytest.raises(InputError, match="--replace"):  # a table that is there is never silently replaced
        place.engine.predict(table="inputs", into="scored", hidden_activation="tanh")


def _labelled_csv(path: Path, rows: int) -> list[tuple[int, list[float], str]]:
    """A CSV of an id, two features on different scales, and a label (with a comma in one class's name)."""
    rng = random.Random(12)
    samples = []
    for i in range(rows):
        a, b = rng.gauss(0.0, 1.0), rng.gauss(50.0, 20.0)
        samples.append((1000 + i, [a, b], "yes, large" if a + b / 25 > 2.0 else "no"))
    with path.open("w", encoding="utf-8") as f:
        f.write("id,a,b,kind\r\n")  # CRLF line ends, as a spreadsheet writes them
        for key, (a, b), kind in samples:
            f.write(f'{key},{a!r},{b!r},"{kind}"\r\n')
    return samples


def test_a_users_whole_path_load_train_predict(place: Place, tmp_path: Path) -> None:
    """A CSV loaded (classes, standardised, an id, a validation split), trained as the reference trains it,
    then the raw rows predicted by name: standardised once, labelled by class, equal to the reference."""
    samples = _labelled_csv(tmp_path / "data.csv", 40)
    place.engine.init(example=None, layers=(2, 5, 2), seed=4, init="he", bias="node", replace=False)
    loaded = place.engine.load(file=str(tmp_path / "data.csv"), targets=["kind"], classes=True, standardize=True,
                               id_column="id", validation_fraction=0.25, seed=1)  # fmt: skip
    assert (loaded.samples, loaded.classes, loaded.features, loaded.held_out) == (40, ["no", "yes, large"], ["a", "b"], 10)
    with pytest.raises(InputError, match="--replace"):  # loaded samples are replaced only when asked
        place.engine.load(file=str(tmp_path / "data.csv"), targets=["kind"], classes=True)
    given = dict(epochs=4, learning_rate=0.2, hidden_activation="tanh", output_activation="softmax",
                 loss="cross-entropy", optimizer="adam")  # fmt: skip
    report = place.engine.check(tolerance=1e-9, **given)  # SQL and the reference, on the stored split
    assert report.ok, report.as_json()
    result = place.engine.train(**given)
    assert len(result.validation) == 4  # the split load stored is kept by the training
    made = place.engine.predict(table="raw", into="scored")
    assert made.rows == 40 and made.columns == ["id", "label", "probability", "p_no", "p_yes, large"]
    n = len(samples)
    means = [sum(x[k] for _, x, _ in samples) / n for k in range(2)]
    stds = [(sum((x[k] - means[k]) ** 2 for _, x, _ in samples) / n) ** 0.5 for k in range(2)]
    got = {r["id"]: r for r in place.rows("scored")}
    net = Network((2, 5, 2), "tanh", "softmax", "cross-entropy", "node")
    for key, x, _ in samples:
        want = reference.forward(net, result.params, tuple((x[k] - means[k]) / stds[k] for k in range(2))).output
        row = got[key]
        assert [row["p_no"], row["p_yes, large"]] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert row["label"] == ("no" if want[0] >= want[1] else "yes, large")
        assert row["probability"] == pytest.approx(max(want), rel=1e-12)


def test_what_an_engine_lacks_is_refused_naming_the_capability(place: Place) -> None:
    """Each capability the engine lacks, asked for through its option, is refused before anything runs
    (Unsupported, exit 2 on the command line); one it has is not."""
    lacking = LACKS[place.engine.name]
    for capability in CAPABILITIES:
        for option in capability.options:
            value: object = {"numeric": "exact", "layout": "long", "kernels": "native"}.get(option, 1)
            if capability.name in lacking:
                expected = f"needs {re.escape(capability.name)}, which the Spark engine does not have"
                with pytest.raises(Unsupported, match=expected):
                    place.engine.refuse(**{option: value})
            else:
                place.engine.refuse(**{option: value})
    assert place.engine.name == "spark" or not lacking


def test_the_command_line_makes_the_same_calls(place: Place) -> None:
    """One call per command whatever the engine: init, train, runs and runs show through the CLI."""
    from sqlnet.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["init", *place.cli, "--example", "post"])
    assert done.exit_code == 0 and "created inputs" in done.output, done.output
    done = runner.invoke(main, ["train", *place.cli, "--lr", "0.1", "--json"])
    assert done.exit_code == 0, done.output
    import json

    assert_close([layer["weights"] for layer in json.loads(done.stdout)["params"]], POST_WEIGHTS_AFTER)
    done = runner.invoke(main, ["runs", *place.cli, "--json"])
    assert done.exit_code == 0 and [r["run_id"] for r in json.loads(done.stdout)] == [1], done.output
    done = runner.invoke(main, ["runs", "show", "1", *place.cli])
    assert done.exit_code == 0 and "run 1 (finished): 3-2-3 network" in done.output, done.output
    done = runner.invoke(main, ["train", *place.cli, "--lr", "0.1", "--epochs", "2", "--checkpoint-every", "1"])
    assert done.exit_code == 0 and "run 2: trained" in done.output, done.output
    done = runner.invoke(main, ["train", *place.cli, "--lr", "0.1", "--wait"])
    if place.engine.name == "spark":
        assert done.exit_code == 2 and "needs queueing behind another trainer" in done.output, done.output
    else:
        assert done.exit_code == 0, done.output
