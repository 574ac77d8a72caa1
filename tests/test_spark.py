"""The Spark engine against the reference: the same network, phases and numbers as on PostgreSQL.

A real SparkSession (local[2], UI off, two shuffle partitions) trains tiny networks from Parquet
tables; every result is compared with sqlnet.model.reference. Skipped, saying why, where pyspark or
Java is missing.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlnet.errors import InputError
from sqlnet.model import reference
from sqlnet.model.network import Dataset, Network, Params
from sqlnet.model.optimizers import Optimizer
from tests.helpers import POST_BIASES_AFTER, POST_WEIGHTS_AFTER, random_data, random_params
from tests.test_reference import assert_close

pytestmark = pytest.mark.spark


def write_network(spark, folder: Path, net: Network, params: Params, data: Dataset) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.db.spark import ParquetTables, write_parameters

    tables = ParquetTables(folder)
    tables.write(
        spark, "inputs", [(s.id, i + 1, x) for s in data.samples for i, x in enumerate(s.x)],
        "sampleId bigint, inputNode int, inputValue double",
    )  # fmt: skip
    tables.write(
        spark, "outputs", [(s.id, j + 1, t) for s in data.samples for j, t in enumerate(s.t)],
        "sampleId bigint, outputNode int, outputValue double",
    )  # fmt: skip
    write_parameters(spark, tables, net, params)


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    """Every file under the folder with its size and modification time (and where each link points)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = (os.readlink(p) if p.is_symlink() else p.stat().st_size, p.lstat().st_mtime)
    return out


def test_the_post_network_trains_to_the_posts_numbers(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.ops import spark as engine

    engine.init(str(tmp_path), example="post")
    result = engine.train(str(tmp_path), epochs=1, learning_rate=0.1)
    assert_close(result.params.weights, POST_WEIGHTS_AFTER)
    assert_close(result.params.biases, POST_BIASES_AFTER)
    # written back, as a new version a plain Parquet reader sees
    again = engine.train(str(tmp_path), epochs=1, learning_rate=0.1)
    assert_close(again.initial.weights, POST_WEIGHTS_AFTER)
    runs = engine.runs(str(tmp_path))
    assert [r.run_id for r in runs] == [1, 2] and runs[0].status == "finished"
    assert spark.read.parquet(str(tmp_path / "runs")).count() == 2


CASES = [
    # (sizes, hidden, output, loss, bias, batch, shuffle, optimizer)
    ((3, 4, 2), "tanh", "linear", "half-se", "node", 0, None, Optimizer()),
    ((3, 4, 2), "relu", "linear", "se", "edge", 0, None, Optimizer()),
    ((2, 3, 3, 1), "sigmoid", "sigmoid", "cross-entropy", "node", 0, None, Optimizer()),
    ((4, 5, 3), "tanh", "softmax", "cross-entropy", "node", 0, None, Optimizer()),
    ((3, 4, 2), "linear", "linear", "half-se", "none", 0, None, Optimizer()),
    ((3, 4, 2), "tanh", "linear", "half-se", "node", 3, None, Optimizer()),
    ((3, 4, 2), "relu", "linear", "half-se", "node", 2, 7, Optimizer("momentum", l2=0.01)),
    ((3, 4, 2), "tanh", "linear", "half-se", "edge", 3, 1, Optimizer("momentum", nesterov=True)),
    ((3, 4, 2), "tanh", "softmax", "cross-entropy", "node", 4, 3, Optimizer("adam", weight_decay=0.01)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'-'.join(map(str, c[0]))}-{c[1]}-{c[2]}-{c[4]}-b{c[5]}-s{c[6]}-{c[7].name}")
def test_every_mode_equals_the_reference(spark, tmp_path: Path, case) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.ops import spark as engine

    sizes, hidden, output, loss, bias, batch, shuffle, opt = case
    rng = random.Random(str(case))
    net = Network(sizes, hidden, output, loss, bias)
    params, data = random_params(rng, net), random_data(rng, net, 7)
    if output == "softmax":  # one-hot targets
        data = Dataset([type(s)(s.id, s.x, tuple(float(j == s.id % sizes[-1]) for j in range(sizes[-1]))) for s in data.samples])
    elif output == "sigmoid":
        data = Dataset([type(s)(s.id, s.x, tuple(float(s.id % 2) for _ in s.t)) for s in data.samples])
    write_network(spark, tmp_path, net, params, data)
    options = dict(
        epochs=2, learning_rate=0.05, hidden_activation=hidden, output_activation=output, loss=loss,
        batch_size=batch, shuffle=shuffle, optimizer=opt.name, nesterov=opt.nesterov, l2=opt.l2,
        weight_decay=opt.weight_decay,
    )  # fmt: skip
    result = engine.train(str(tmp_path), **options)
    want = reference.train(net, params, data, 0.05, 2, batch_size=batch, shuffle=shuffle, optimizer=opt)
    assert_close(result.params.weights, want.params.weights)
    assert_close(result.params.biases, want.params.biases)
    assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-12)
    assert result.statements == 2 * (-(-7 // batch) if batch else 1)
    assert not any("Spark parsed the statement anew" in n for n in result.notes)  # the kept plan ran


def _repeated(spark, tmp_path: Path, local: bool | None = None):  # type: ignore[no-untyped-def]
    """A statement of the shapes whose results a physical plan keeps (a broadcast cross join, a
    shuffled aggregate) over the state row: x becomes 4950 * x, and the batch moves on."""
    from sqlnet.db.spark_plan import Repeated, StateRow

    state = StateRow(spark, "epoch int, batch int, x double", ["epoch", "batch", "x"], local)
    state.register({"epoch": 1, "batch": 0, "x": 1.0})
    text = (
        "WITH prev AS (SELECT * FROM sqlnet_prev),\n"
        "s AS (SELECT sum(r.id * p.x) AS total FROM range(100) AS r CROSS JOIN prev AS p GROUP BY r.id % 2)\n"
        "SELECT p.epoch, p.batch + 1 AS batch, (SELECT sum(total) FROM s) AS x FROM prev AS p"
    )
    return state, Repeated(spark, state, text)


def test_an_update_plan_is_made_once_and_runs_over_each_new_state_row(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state, repeated = _repeated(spark, tmp_path)
    try:
        assert repeated.plan is not None  # this Spark can make a new physical plan of a kept plan
        row = {"epoch": 1, "batch": 0, "x": 1.0}
        for batch in range(1, 4):
            row = repeated.run(row, (1, batch))
            assert row["x"] == 4950.0**batch
        assert repeated.reparsed == 0
    finally:
        state.close()
    assert not Path(state.folder).exists()


def test_a_physical_plan_run_twice_keeps_old_results_which_is_why_each_run_makes_a_new_one(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The trap the kept plan avoids: one Dataset collected again reads the new state row where it scans
    it directly, but keeps its aggregate's (shuffle and subquery) result from the first run."""
    state, repeated = _repeated(spark, tmp_path)
    try:
        from pyspark.sql import DataFrame

        once = DataFrame(repeated.of_rows(repeated.plan), spark)
        assert once.collect()[0]["x"] == 4950.0
        state.write({"epoch": 1, "batch": 1, "x": 4950.0})
        again = once.collect()[0]
        assert (again["batch"], again["x"]) == (2, 4950.0)  # the batch moved on, x did not: stale
        assert repeated.run({"epoch": 1, "batch": 1, "x": 4950.0}, (1, 2))["x"] == 4950.0**2  # a new plan
    finally:
        state.close()


def test_a_result_that_is_not_the_next_update_is_not_trusted(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Where a kept plan's result is not the update after the row written, the run parses the statement
    anew, returns that, and stays on the slower path."""
    state, repeated = _repeated(spark, tmp_path)
    try:
        repeated.of_rows = lambda plan: spark.sql("SELECT 1 AS epoch, 1 AS batch, 0.0D AS x")._jdf
        first = repeated.run({"epoch": 1, "batch": 0, "x": 1.0}, (1, 1))
        assert (first["batch"], first["x"], repeated.reparsed) == (1, 0.0, 0)  # it looked like update 1.1
        second = repeated.run(first | {"x": 2.0}, (1, 2))
        assert (second["batch"], second["x"], repeated.reparsed) == (2, 9900.0, 1)
        assert repeated.plan is None
        third = repeated.run(second, (1, 3))
        assert (third["x"], repeated.reparsed) == (9900.0 * 4950.0, 2)
    finally:
        state.close()


def test_a_spark_that_cannot_make_a_plan_anew_parses_each_update(spark, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Where the internal call is missing (py4j says so only when it is called), every run parses the
    statement: slower, with the same results."""
    from sqlnet.db import spark_plan

    def missing(plan):  # type: ignore[no-untyped-def]
        raise TypeError("'JavaPackage' object is not callable")

    monkeypatch.setattr(spark_plan, "_of_rows", lambda session: missing)
    state, repeated = _repeated(spark, tmp_path)
    try:
        assert repeated.plan is None
        row = repeated.run({"epoch": 1, "batch": 0, "x": 1.0}, (1, 1))
        row = repeated.run(row, (1, 2))
        assert (row["x"], repeated.reparsed) == (4950.0**2, 2)
    finally:
        state.close()
    from sqlnet.ops import spark as engine

    engine.init(str(tmp_path / "post"), example="post")
    done = engine.train(str(tmp_path / "post"), epochs=1, learning_rate=0.1)  # a training says so, and is right
    assert any("Spark parsed the statement anew for 1 run(s)" in n for n in done.notes), done.notes
    assert_close(done.params.weights, POST_WEIGHTS_AFTER)


def test_on_a_cluster_the_state_row_is_a_dataframe_and_each_update_parsed(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A cluster's executors cannot read the driver's temp file: there the state row is a one-row
    DataFrame made anew each update, and the statement is parsed each time (as before issue 22)."""
    state, repeated = _repeated(spark, tmp_path, local=False)
    try:
        assert repeated.plan is None
        row = {"epoch": 1, "batch": 0, "x": 1.0}
        for batch in range(1, 4):
            row = repeated.run(row, (1, batch))
        assert (row["x"], repeated.reparsed) == (4950.0**3, 3)
        assert not os.listdir(state.folder)  # nothing written where executors would have to read it
    finally:
        state.close()


def test_a_training_leaves_the_sessions_settings_as_they_were(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.db.spark_plan import SETTINGS
    from sqlnet.ops import spark as engine

    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.unset("spark.sql.codegen.maxFields")
    engine.init(str(tmp_path), example="post")
    engine.train(str(tmp_path), epochs=2, learning_rate=0.01)
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.conf.get("spark.sql.codegen.maxFields") != SETTINGS["spark.sql.codegen.maxFields"]
    assert "sqlnet_prev" not in [t.name for t in spark.catalog.listTables()]


def test_check_agrees_and_writes_nothing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.ops import spark as engine

    net = Network((3, 3, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(5)
    write_network(spark, tmp_path, net, random_params(rng, net), random_data(rng, net, 5))
    before = snapshot(tmp_path)
    report = engine.check(str(tmp_path), epochs=3, learning_rate=0.1, hidden_activation="tanh")
    assert report.ok and max(d.max_rel for d in report.differences) < 1e-12
    assert snapshot(tmp_path) == before


def test_the_printed_script_runs_as_printed(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`sqlnet sql --engine spark`: every statement of the script runs in Spark, and its last one gives
    the first update's state row, as the training's first update does."""
    from sqlnet.ops import spark as engine

    net = Network((2, 3, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(9)
    params, data = random_params(rng, net), random_data(rng, net, 4)
    write_network(spark, tmp_path, net, params, data)
    script = engine.training_sql(str(tmp_path), epochs=1, learning_rate=0.1, hidden_activation="tanh")
    statements = [s for s in script.split(";\n") if s.strip() and not all(
        line.startswith("--") for line in s.strip().splitlines())]  # fmt: skip
    row = None
    try:
        for statement in statements:
            result = spark.sql(statement)
        row = result.collect()[0].asDict()
    finally:
        from sqlnet.db.spark import drop

        drop(spark, "sqlnet_data")
    got = engine.params_of(engine.load(engine.SparkTarget(str(tmp_path)), engine.TrainOptions(
        hidden_activation="tanh")).training, row)  # fmt: skip
    want = reference.train(net, params, data, 0.1, 1)
    assert_close(got.weights, want.params.weights)


def test_the_printed_script_with_held_out_samples_runs_as_printed(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With --validation-fraction the script caches the held-out samples apart, its update trains on the
    others, and its last statement scores the held-out ones under the state row (here the first)."""
    from sqlnet.db.spark import drop
    from sqlnet.ops import spark as engine
    from tests.test_validation import split

    net = Network((2, 3, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(10)
    params, data = random_params(rng, net), random_data(rng, net, 8)
    write_network(spark, tmp_path, net, params, data)
    script = engine.training_sql(str(tmp_path), epochs=1, learning_rate=0.1, hidden_activation="tanh",
                                 validation_fraction=0.25, seed=3)  # fmt: skip
    statements = [s for s in script.split(";\n") if s.strip() and not all(
        line.startswith("--") for line in s.strip().splitlines())]  # fmt: skip
    results = []
    try:
        for statement in statements:
            results.append(spark.sql(statement))
        update, score = results[-2].collect()[0].asDict(), results[-1].collect()[0].asDict()
    finally:
        for name in ("sqlnet_data", "sqlnet_validation", "sqlnet_held"):
            drop(spark, name)
    training, held = split(data, 0.25, 3)
    got = engine.params_of(engine.load(engine.SparkTarget(str(tmp_path)), engine.TrainOptions(
        hidden_activation="tanh")).training, update)  # fmt: skip
    assert_close(got.weights, reference.train(net, params, training, 0.1, 1).params.weights)
    want = sum(reference.sample_loss(net, reference.forward(net, params, s.x), s.t) for s in held.samples) / 2
    assert (score["samples"], score["epoch"], score["batch"]) == (2, 1, 0)
    assert score["loss"] == pytest.approx(want, rel=1e-12)


def test_bad_tables_get_a_clear_error_and_nothing_is_written(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.db.spark import ParquetTables
    from sqlnet.ops import spark as engine

    net = Network((2, 3, 1), bias="node")
    rng = random.Random(3)
    write_network(spark, tmp_path, net, random_params(rng, net), random_data(rng, net, 4))
    tables = ParquetTables(tmp_path)
    # a NULL weight
    tables.write(spark, "weights2", [(1, 1, 0.5), (2, 1, None), (3, 1, 0.1)],
                 "weight2InputNodeNumber int, weight2OutputNodeNumber int, weight2Value double")  # fmt: skip
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=r"weights2 has a NULL in the row weight2InputNodeNumber = 2"):
        engine.train(str(tmp_path), epochs=1)
    assert snapshot(tmp_path) == before
    # layers that do not chain
    tables.write(spark, "weights2", [(i, 1, 0.5) for i in (1, 2)],
                 "weight2InputNodeNumber int, weight2OutputNodeNumber int, weight2Value double")  # fmt: skip
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="do not chain: weights1 has 3 output nodes but weights2 has 2 input nodes"):
        engine.train(str(tmp_path), epochs=1)
    assert snapshot(tmp_path) == before
    # a missing table
    os.unlink(tmp_path / "outputs")  # a link to its current version
    with pytest.raises(InputError, match="table 'outputs' not found"):
        engine.train(str(tmp_path), epochs=1)


def test_the_command_line_trains_on_spark(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["init", "--engine", "spark", "--parquet", str(tmp_path), "--example", "post"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["train", "--engine", "spark", "--parquet", str(tmp_path), "--lr", "0.1", "--json"])
    assert done.exit_code == 0, done.output
    import json

    doc = json.loads(done.stdout)
    assert_close([layer["weights"] for layer in doc["params"]], POST_WEIGHTS_AFTER)
    done = runner.invoke(main, ["runs", "--engine", "spark", "--parquet", str(tmp_path), "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)[0]["run_id"] == 1
    done = runner.invoke(main, ["train", "--engine", "spark"])
    assert done.exit_code != 0 and "--parquet" in done.output


def test_predict_writes_the_reference_outputs(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sqlnet.ops import spark as engine

    net = Network((3, 4, 3), "tanh", "softmax", "cross-entropy", "node")
    rng = random.Random(11)
    params, data = random_params(rng, net), random_data(rng, net, 5)
    write_network(spark, tmp_path, net, params, data)
    made = engine.predict(
        str(tmp_path), table="inputs", into="predictions", hidden_activation="tanh",
        output_activation="softmax", loss="cross-entropy",
    )  # fmt: skip
    assert made.rows == 5  # one row per sample: sampleid, output_1.., as PostgreSQL's predict writes them
    assert made.columns == ["sampleid", "output_1", "output_2", "output_3"]
    frame = spark.read.parquet(str(tmp_path / made.created))
    assert frame.columns == ["sampleid", "output_1", "output_2", "output_3"]
    got = {r[0]: list(r[1:]) for r in frame.collect()}
    for s in data.samples:
        want = reference.forward(net, params, s.x).output
        assert got[s.id] == pytest.approx(want, rel=1e-12, abs=1e-15)
    with pytest.raises(InputError, match="would overwrite one of the network's own tables"):
        engine.predict(str(tmp_path), table="inputs", into="weights1")
    with pytest.raises(InputError, match=r"predictions already exists in .*: add --replace"):
        engine.predict(str(tmp_path), table="inputs", into="predictions", hidden_activation="tanh")
    again = engine.predict(str(tmp_path), table="inputs", into="predictions", replace=True, hidden_activation="tanh")
    assert again.rows == 5 and len(list((tmp_path / ".sqlnet").glob("predictions-v*"))) == 2  # the old one kept


def test_the_optimizer_state_carries_over_from_one_training_to_the_next(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Adam trained 2 + 2 epochs on Spark equals 4 epochs of the reference; another optimizer starts
    afresh, saying so."""
    from sqlnet.ops import spark as engine

    net = Network((3, 4, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(21)
    params, data = random_params(rng, net), random_data(rng, net, 6)
    write_network(spark, tmp_path, net, params, data)
    options = dict(epochs=2, learning_rate=0.05, hidden_activation="tanh", batch_size=3, optimizer="adam")
    engine.train(str(tmp_path), **options)
    report = engine.check(str(tmp_path), epochs=1, learning_rate=0.05, batch_size=3, optimizer="adam")
    assert report.ok  # check continues from the same kept state as train
    second = engine.train(str(tmp_path), **options)
    want = reference.train(net, params, data, 0.05, 4, batch_size=3, optimizer=Optimizer("adam"))
    assert_close(second.params.weights, want.params.weights)
    assert_close(second.params.biases, want.params.biases)
    third = engine.train(str(tmp_path), epochs=1, learning_rate=0.05, batch_size=3, optimizer="momentum")
    assert third.notes == ["the network's optimizer state was adam's: momentum starts a fresh one"]


def test_tables_of_a_spark_catalog_database(spark) -> None:  # type: ignore[no-untyped-def]
    """--spark-database: the post's network as tables of a database in Spark's catalog, trained to the
    post's numbers and replaced with INSERT OVERWRITE; runs appended beside them."""
    from sqlnet.ops import spark as engine

    spark.sql("DROP DATABASE IF EXISTS sqlnet_post CASCADE")
    spark.sql("CREATE DATABASE sqlnet_post")
    try:
        assert engine.init(database="sqlnet_post", example="post") == ["inputs", "outputs", "weights1", "weights2"]
        result = engine.train(database="sqlnet_post", epochs=1, learning_rate=0.1)
        assert_close(result.params.weights, POST_WEIGHTS_AFTER)
        stored = sorted(tuple(r) for r in spark.table("sqlnet_post.weights2").collect())
        assert [r[2] for r in stored] == pytest.approx([w for row in POST_WEIGHTS_AFTER[1] for w in row])
        assert [r.run_id for r in engine.runs(database="sqlnet_post")] == [1]
        assert "AS SELECT * FROM `sqlnet_post`.`weights1`" in engine.training_sql(database="sqlnet_post")
        with pytest.raises(InputError, match=r"--parquet DIR .* or --spark-database NAME"):
            engine.train(epochs=1)
    finally:
        spark.sql("DROP DATABASE IF EXISTS sqlnet_post CASCADE")


def test_divergence_on_spark_writes_nothing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Spark does not raise on a float overflow as PostgreSQL does: sqlnet stops the training itself,
    names it, and writes nothing."""
    from sqlnet.errors import Diverged
    from sqlnet.ops import spark as engine

    engine.init(str(tmp_path), example="post")
    before = snapshot(tmp_path)
    with pytest.raises(Diverged, match="nothing was written"):
        engine.train(str(tmp_path), epochs=40, learning_rate=10.0, hidden_activation="linear")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("output", "batch_size"), [("softmax", 3), ("linear", 0)])
def test_validation_on_spark_equals_the_reference(spark, tmp_path: Path, output: str, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    """--validation-fraction on Spark: the held-out samples are PostgreSQL's (the first by
    md5('seed:sampleId')), never trained on, and scored after every epoch as the reference scores them;
    the split is kept with the network, so the next training holds out the same samples."""
    from sqlnet.ops import spark as engine
    from tests.test_validation import split

    rng = random.Random(output)
    loss = "cross-entropy" if output == "softmax" else "half-se"
    net = Network((3, 4, 3), "tanh", output, loss, "node")
    params, data = random_params(rng, net), random_data(rng, net, 20)
    if output == "softmax":
        data = Dataset([type(s)(s.id, s.x, tuple(float(j == s.id % 3) for j in range(3))) for s in data.samples])
    write_network(spark, tmp_path, net, params, data)
    options = dict(learning_rate=0.2, hidden_activation="tanh", output_activation=output, loss=loss, batch_size=batch_size)
    result = engine.train(str(tmp_path), epochs=4, validation_fraction=0.25, seed=7, **options)
    training, held = split(data, 0.25, 7)
    assert len(held) == 5 and len(result.validation) == 4
    assert result.statements == 4 * (-(-15 // batch_size) if batch_size else 1)  # 15 samples trained on
    current = params
    for epoch in range(4):
        step = reference.train(net, current, training, 0.2, 1, batch_size=batch_size)
        current = step.params
        assert result.losses[epoch] == pytest.approx(step.losses[0], rel=1e-9)
        outputs = [(reference.forward(net, current, s.x), s) for s in held.samples]
        want = sum(reference.sample_loss(net, f, s.t) for f, s in outputs) / 5
        loss_, accuracy = result.validation[epoch]
        assert loss_ == pytest.approx(want, rel=1e-9)
        if output == "softmax":
            hits = sum(max(range(3), key=lambda j: f.output[j]) == s.t.index(max(s.t)) for f, s in outputs)
            assert accuracy == pytest.approx(hits / 5)
        else:
            assert accuracy is None
    assert_close(result.params.weights, current.weights)
    recorded = spark.read.parquet(str(tmp_path / "run_validation")).orderBy("epoch").collect()
    assert [(r["run_id"], r["loss"]) for r in recorded] == [(1, v[0]) for v in result.validation]
    again = engine.train(str(tmp_path), epochs=1, **options)  # the kept split, without the option
    assert len(again.validation) == 1 and again.statements == (-(-15 // batch_size) if batch_size else 1)
    report = engine.check(str(tmp_path), epochs=2, **options)  # the reference trains on the same 15
    assert report.ok, report.differences
    if output == "linear":  # and from the command line, which says how the held-out samples did
        from sqlnet.cli import main

        done = CliRunner().invoke(main, ["train", "--engine", "spark", "--parquet", str(tmp_path), "--epochs", "1",
                                         "--lr", "0.2", "--validation-fraction", "0.25", "--seed", "7"])  # fmt: skip
        assert done.exit_code == 0, done.output
        assert "validation after epoch 1: loss" in done.output
        # runs show, as on PostgreSQL: the run, its options, each epoch's loss and the held-out samples'
        shown = CliRunner().invoke(main, ["runs", "show", "1", "--engine", "spark", "--parquet", str(tmp_path)])
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.output.split())  # however the terminal's width folded it
        assert "run 1 (finished): 3-4-3 network" in text and f"in {tmp_path}" in text
        assert "validation loss per epoch (the held-out samples after each epoch), 4 epochs" in text
        as_json = CliRunner().invoke(main, ["runs", "--engine", "spark", "--parquet", str(tmp_path), "show", "1", "--json"])
        epochs = json.loads(as_json.output)["epochs"]
        assert [(e["epoch"], e["loss"], e["val_loss"]) for e in epochs] == [
            (e, loss, v[0]) for e, (loss, v) in enumerate(zip(result.losses, result.validation), start=1)
        ]
        missing = CliRunner().invoke(main, ["runs", "show", "9", "--engine", "spark", "--parquet", str(tmp_path)])
        assert missing.exit_code == 1 and "run 9 not found" in missing.output


def test_a_timeout_on_spark_cancels_and_writes_nothing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--timeout on Spark: the training stops at the deadline (a running job is cancelled, or the next
    update is not begun), says so, writes nothing; the session is left fit for the next training."""
    from sqlnet.db.guard import TrainingTimeout
    from sqlnet.ops import spark as engine

    engine.init(str(tmp_path), example="post")
    before = snapshot(tmp_path)
    started = time.monotonic()
    with pytest.raises(TrainingTimeout, match=r"longer than --timeout 2 s .*nothing was written"):
        engine.train(str(tmp_path), epochs=100_000, learning_rate=0.001, timeout=2)
    assert time.monotonic() - started < 2 + 10  # it ends near the deadline, not after 100,000 updates
    assert snapshot(tmp_path) == before
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
    done = engine.train(str(tmp_path), epochs=2, learning_rate=0.001, timeout=600)  # well inside it
    assert done.run_id == 1 and len(done.losses) == 2
    with pytest.raises(InputError, match="--timeout must be a number of seconds above 0"):
        engine.train(str(tmp_path), epochs=1, learning_rate=0.001, timeout=0)


def test_a_running_spark_job_is_cancelled_at_the_deadline(spark) -> None:  # type: ignore[no-untyped-def]
    """The deadline's timer cancels the job that runs when it fires, not only the next update."""
    from sqlnet.db.spark_plan import Deadline

    deadline = Deadline(1.0).start(spark)
    started = time.monotonic()
    try:
        with pytest.raises(Exception, match=r"(?i)cancel"):  # Spark's own error for a cancelled job
            spark.sql("SELECT count(*) FROM range(1000000000000)").collect()  # minutes without the deadline
    finally:
        deadline.stop()
    assert deadline.passed and time.monotonic() - started < 30
    assert spark.sql("SELECT 1 AS one").collect()[0]["one"] == 1  # the session works on


def test_the_engines_options_stay_with_their_engine(tmp_path: Path) -> None:
    from sqlnet.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["train", "--parquet", str(tmp_path)])
    assert done.exit_code == 2 and "--parquet is the Spark engine's: add --engine spark" in done.output
    done = runner.invoke(main, ["train", "--engine", "spark", "--parquet", str(tmp_path), "--schema", "s"])
    assert done.exit_code == 2 and "--schema needs schemas, which the Spark engine does not have" in done.output


def test_one_trainer_per_spark_network(tmp_path: Path) -> None:
    """A second trainer of a Parquet network (or of a catalog database, on one machine) is refused at once,
    naming the process that holds it, before it reads or writes anything; the lock goes with its holder."""
    import os

    from sqlnet.db.spark_lock import SparkNetworkBusy, training_lock
    from sqlnet.ops import spark as engine

    with training_lock(tmp_path, None, str(tmp_path)):
        busy = pytest.raises(SparkNetworkBusy, match=rf"is being trained: process {os.getpid()}, started")
        with busy, training_lock(tmp_path, None, str(tmp_path)):
            pass
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(SparkNetworkBusy, match="Wait for it to finish"):
            engine.train(str(tmp_path), epochs=1)  # refused before a Spark session is even asked for
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        with (
            pytest.raises(SparkNetworkBusy),
            training_lock(tmp_path / "elsewhere", "db1", "Spark database 'db1'"),
            training_lock(tmp_path / "other", "db1", "Spark database 'db1'"),
        ):
            pass
    with training_lock(tmp_path, None, str(tmp_path)):  # released with its holder, and its file gone after
        pass
    assert not (tmp_path / ".sqlnet-train.lock").exists()


def test_a_checkpointed_spark_run_resumes_bit_for_bit(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--checkpoint-every on Spark: cancelled in epoch 4 of 5, the tables hold the checkpoint after epoch 2,
    `runs` shows the run interrupted, and --resume ends exactly where an uninterrupted run does (Adam,
    shuffled batches); a checkpoint whose tables were changed since is refused, one cut off while being
    written is completed from what it holds."""
    from sqlnet.ops import spark as engine
    from sqlnet.ops.train import TrainingInterrupted

    net = Network((3, 4, 2), "tanh", "linear", "half-se", "node")
    rng = random.Random(31)
    params, data = random_params(rng, net), random_data(rng, net, 6)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for folder in (whole, cut):
        write_network(spark, folder, net, params, data)
    options = dict(epochs=5, learning_rate=0.05, hidden_activation="tanh", batch_size=3, shuffle=4,
                   optimizer="adam", checkpoint_every=2)  # fmt: skip
    uninterrupted = engine.train(str(whole), **options)

    def cancel(p) -> None:  # type: ignore[no-untyped-def]
        if p.epoch == 4:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="the tables hold the checkpoint after epoch 2 of run 1"):
        engine.train(str(cut), on_update=cancel, **options)
    (run,) = engine.runs(str(cut))
    assert (run.run_id, run.status, run.checkpoint) == (1, "interrupted", "2")
    after_two = reference.train(net, params, data, 0.05, 2, batch_size=3, shuffle=4, optimizer=Optimizer("adam"))
    assert_close(engine.load(engine.SparkTarget(str(cut)), engine.TrainOptions()).params.weights,
                 after_two.params.weights)  # fmt: skip

    resumed = engine.train(str(cut), resume=1)
    assert resumed.run_id == 1 and resumed.params == uninterrupted.params  # bit for bit
    assert resumed.losses == uninterrupted.losses
    assert [(r.run_id, r.status) for r in engine.runs(str(cut))] == [(1, "finished")]
    with pytest.raises(InputError, match="run 1 finished: there is nothing to resume"):
        engine.train(str(cut), resume=1)

    # a second cut run: its checkpoint's tables changed since, then marked as cut off while being written
    with pytest.raises(TrainingInterrupted):
        engine.train(str(cut), on_update=cancel, **{**options, "epochs": 5})
    from sqlnet.db.spark import ParquetTables, write_parameters

    tables = ParquetTables(cut)
    write_parameters(spark, tables, net, random_params(random.Random(1), net))
    with pytest.raises(InputError, match="no longer hold run 2's checkpoint after epoch 2"):
        engine.train(str(cut), resume=2)
    doc = tables.checkpoints()[2]
    tables.save_checkpoint(2, {**doc, "writing": True})
    again = engine.train(str(cut), resume=2)
    assert again.run_id == 2 and len(again.losses) == 5 and not tables.checkpoints()


@pytest.mark.parametrize("bias, batch_size, optimizer", [("node", 2, "adam"), ("edge", 0, "gd")])
def test_a_spark_trace_holds_every_value_postgresql_traces(spark, db_url: str, tmp_path: Path, bias: str, batch_size: int, optimizer: str) -> None:  # type: ignore[no-untyped-def]
    """--trace on Spark: one Parquet table per phase (readable by Spark SQL by path), each holding the rows
    PostgreSQL's trace holds for the same training (every sample's every node, the weights each epoch
    starts from and each update ends with), equal to within rounding; PostgreSQL's trace is the one the
    reference proves (tests/test_model.py)."""
    import psycopg

    import sqlnet
    from sqlnet.db.tables import create_tables
    from sqlnet.engines import open_engine

    net = Network((3, 4, 2), "tanh", "softmax", "cross-entropy", bias)
    rng = random.Random(21)
    params, data = random_params(rng, net), random_data(rng, net, 5)
    options = dict(epochs=2, learning_rate=0.1, hidden_activation="tanh", output_activation="softmax",
                   loss="cross-entropy", batch_size=batch_size, optimizer=optimizer)  # fmt: skip
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_tables(conn, net, params, data, samples=True)
    pg_run = sqlnet.train(db_url, trace=True, **options).run_id
    folder = tmp_path / "net"
    write_network(spark, folder, net, params, data)
    spark_run = open_engine("spark", parquet=str(folder)).train(trace=True, **options).run_id
    with psycopg.connect(db_url) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlnet_trace' ORDER BY 1")]  # fmt: skip
        assert sorted(p.name for p in (folder / "sqlnet_trace").iterdir()) == tables
        for table in tables:
            pg = {tuple(r[:-1]): r[-1] for r in conn.execute(psycopg.sql.SQL(
                "SELECT epoch, batch, sample, layer, quantity, input_node, node, value FROM {} WHERE run_id = %s"
            ).format(psycopg.sql.Identifier("sqlnet_trace", table)), (pg_run,))}  # fmt: skip
            got = spark.sql(
                f"SELECT epoch, batch, sample, layer, quantity, input_node, node, value, run_id "
                f"FROM parquet.`{folder / 'sqlnet_trace' / table}`"
            ).collect()
            assert {r[-1] for r in got} == {spark_run}
            sp = {tuple(r[:7]): r[7] for r in got}
            assert len(sp) == len(got) and set(sp) == set(pg), (table, sorted(set(sp) ^ set(pg), key=str)[:5])
            for key, value in pg.items():
                assert sp[key] == pytest.approx(value, rel=1e-12, abs=1e-14), (table, key)


def test_a_catalog_network_loads_a_csv_and_exports_a_view(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--spark-database: a CSV loaded into the catalog's tables, trained, and exported as a view of the catalog
    with the weights as constants: the view's rows equal predict's and the reference's, and it keeps working
    when the weights tables change; --replace replaces only a view sqlnet exported."""
    from sqlnet.engines import open_engine
    from tests.test_engines import _labelled_csv

    samples = _labelled_csv(tmp_path / "data.csv", 30)
    spark.sql("DROP DATABASE IF EXISTS sqlnet_shop CASCADE")
    spark.sql("CREATE DATABASE sqlnet_shop")
    try:
        engine = open_engine("spark", database="sqlnet_shop")
        engine.init(example=None, layers=(2, 3, 2), seed=2, init="he", bias="node", replace=False)
        engine.load(file=str(tmp_path / "data.csv"), targets=["kind"], classes=True, standardize=True, id_column="id")
        result = engine.train(epochs=3, learning_rate=0.3, hidden_activation="tanh", output_activation="softmax",
                              loss="cross-entropy")  # fmt: skip
        made = engine.export(view="scored", table="raw")
        assert made.created == "`sqlnet_shop`.`scored`" and made.columns[:3] == ["id", "label", "probability"]
        predicted = engine.predict(table="raw", into="predicted")
        assert predicted.rows == 30
        view = {r["id"]: r.asDict() for r in spark.table("sqlnet_shop.scored").collect()}
        table = {r["id"]: r.asDict() for r in spark.table("sqlnet_shop.predicted").collect()}
        assert view == table and len(view) == 30
        n = len(samples)
        means = [sum(x[k] for _, x, _ in samples) / n for k in range(2)]
        stds = [(sum((x[k] - means[k]) ** 2 for _, x, _ in samples) / n) ** 0.5 for k in range(2)]
        net = Network((2, 3, 2), "tanh", "softmax", "cross-entropy", "node")
        for key, x, _ in samples:
            want = reference.forward(net, result.params, tuple((x[k] - means[k]) / stds[k] for k in range(2))).output
            assert [view[key]["p_no"], view[key]["p_yes, large"]] == pytest.approx(want, rel=1e-12)
        engine.train(epochs=1, learning_rate=0.3)  # new weights in the tables: the view keeps its constants
        assert {r["id"]: r.asDict() for r in spark.table("sqlnet_shop.scored").collect()} == view
        with pytest.raises(InputError, match="add --replace"):
            engine.export(view="scored", table="raw")
        engine.export(view="scored", table="raw", replace=True)
        spark.sql("CREATE VIEW sqlnet_shop.mine AS SELECT 1 AS x")
        with pytest.raises(InputError, match="sqlnet did not export it"):
            engine.export(view="mine", table="raw", replace=True)
        assert spark.table("sqlnet_shop.mine").collect()[0]["x"] == 1
    finally:
        spark.sql("DROP DATABASE IF EXISTS sqlnet_shop CASCADE")
    with pytest.raises(InputError, match="needs the network in a catalog database"):
        open_engine("spark", parquet=str(tmp_path / "net")).export(view="v", table="raw")


@pytest.mark.parametrize("bias", ["node", "edge"])
def test_the_weights_tables_as_arrays_through_sparks_dialect(spark, tmp_path: Path, bias: str) -> None:  # type: ignore[no-untyped-def]
    """The state row's arrays read from the weights tables by the statement PostgreSQL uses
    (WideLayout.param_arrays), rendered by the Spark dialect (ordered_array: Spark has no ORDER BY in an
    aggregate), equal to the arrays sqlnet reads into Python."""
    from sqlnet.compile.dialect import SPARK
    from sqlnet.compile.predict import table_arrays
    from sqlnet.ops.common import TrainOptions
    from sqlnet.ops.spark_loop import SparkTarget, load, start_row

    net = Network((3, 5, 2), "tanh", "linear", "half-se", bias)
    rng = random.Random(9)
    write_network(spark, tmp_path, net, random_params(rng, net), random_data(rng, net, 4))
    sn = load(SparkTarget(str(tmp_path), "local[2]"), TrainOptions())
    row = spark.sql(SPARK.render(table_arrays(sn.training))).collect()[0].asDict()
    want = start_row(sn.training, sn.params)
    assert set(row) == {"w1", "b1", "w2", "b2"}
    for name, values in row.items():
        assert values == want[name], name
