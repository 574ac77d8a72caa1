"""--validation-fraction: held-out samples are left out of training and scored after every epoch."""

from __future__ import annotations

import hashlib
import random
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

import sqlnet
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Dataset
from tests.helpers import random_data, random_network, random_params, table_params
from tests.test_reference import assert_close


def split(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """The reference's split: the first round(fraction * n) samples by md5('seed:sampleId')."""
    held = int((Decimal(str(fraction)) * len(data)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    order = sorted(data.samples, key=lambda s: (hashlib.md5(f"{seed}:{s.id}".encode()).hexdigest(), s.id))
    out = {s.id for s in order[:held]}
    return (
        Dataset([s for s in data.samples if s.id not in out]),
        Dataset([s for s in data.samples if s.id in out]),
    )


@pytest.mark.parametrize(("output", "batch_size"), [("softmax", 3), ("linear", 0)])
def test_validation_matches_the_reference(
    db_url: str, conn: psycopg.Connection, output: str, batch_size: int
) -> None:
    rng = random.Random(output)
    net = random_network(
        rng, 2, "node", "tanh", output, "cross-entropy" if output == "softmax" else "half-se"
    )
    params, data = random_params(rng, net), random_data(rng, net, 20)
    create_tables(conn, net, params, data, samples=True)
    result = sqlnet.train(
        db_url,
        epochs=4,
        learning_rate=0.2,
        hidden_activation="tanh",
        output_activation=output,
        loss=net.loss,
        batch_size=batch_size,
        validation_fraction=0.25,
        seed=7,
    )
    training, held = split(data, 0.25, 7)
    assert len(held) == 5
    current = params
    for epoch in range(4):
        step = reference.train(net, current, training, 0.2, 1, batch_size=batch_size)
        current = step.params
        # (the reference's one-epoch trainings number their epoch 1: fine without shuffling)
        want_loss = (
            sum(reference.sample_loss(net, reference.forward(net, current, s.x), s.t) for s in held.samples)
            / 5
        )
        val_loss, val_accuracy = result.validation[epoch]
        assert val_loss == pytest.approx(want_loss, rel=1e-9)
        if output == "softmax":
            hits = sum(
                max(range(3), key=lambda j: reference.forward(net, current, s.x).output[j])
                == s.t.index(max(s.t))
                for s in held.samples
            )
            assert val_accuracy == pytest.approx(hits / 5)
        else:
            assert val_accuracy is None
        assert result.losses[epoch] == pytest.approx(step.losses[0], rel=1e-9)
    assert_close(table_params(conn, net).weights, current.weights)
    (recorded,) = conn.execute(
        "SELECT count(val_loss) FROM sqlnet.run_losses WHERE run_id = %s", (result.run_id,)
    ).fetchone()
    assert recorded == 4


def test_validation_refuses_what_it_cannot_do(db_url: str, conn: psycopg.Connection, post_db: str) -> None:
    with pytest.raises(sqlnet.InputError, match="needs many samples"):
        sqlnet.train(post_db, validation_fraction=0.5)
    rng = random.Random(1)
    net = random_network(rng, 1, "node")
    create_tables(conn, net, random_params(rng, net), random_data(rng, net, 4), schema="v", samples=True)
    with pytest.raises(sqlnet.InputError, match="at least one for validation"):
        sqlnet.train(db_url, schema="v", validation_fraction=0.05, loss=net.loss)
    with pytest.raises(sqlnet.InputError, match="evaluated by the wide layout only"):
        sqlnet.train(db_url, schema="v", validation_fraction=0.5, trace=True, loss=net.loss)
    with pytest.raises(sqlnet.InputError, match="below 1"):
        sqlnet.train(db_url, schema="v", validation_fraction=1.0, loss=net.loss)


def test_the_split_is_part_of_the_network(db_url: str, conn: psycopg.Connection) -> None:
    """The first training that asks for a split stores it; later trainings and check hold out the same
    samples without being told (equal to the reference on the same training samples); 0 uses every sample,
    saying so, and is kept too."""
    rng = random.Random("kept split")
    net = random_network(rng, 2, "node", "tanh", "linear", "half-se")
    params, data = random_params(rng, net), random_data(rng, net, 16)
    create_tables(conn, net, params, data, samples=True)
    functions = {"hidden_activation": "tanh", "output_activation": "linear", "loss": "half-se"}
    first = sqlnet.train(db_url, epochs=2, learning_rate=0.1, validation_fraction=0.25, seed=4, **functions)
    definition = sqlnet.network(db_url)
    assert (definition.validation_fraction, definition.validation_seed) == (0.25, 4)
    training, held = split(data, 0.25, 4)
    second = sqlnet.train(db_url, epochs=2, learning_rate=0.1)  # no split given: the network's own
    assert len(second.validation) == 2 and second.options.validation_fraction == 0.25 and second.options.seed == 4
    want = reference.train(net, first.params, training, 0.1, 2)
    assert_close(second.params.weights + second.params.biases, want.params.weights + want.params.biases, 1e-9)
    report = sqlnet.check(db_url, epochs=3, learning_rate=0.1)  # the reference trains on the same samples
    assert report.ok, report.differences
    assert sqlnet.gradcheck(db_url).ok  # the gradient over every sample, on both sides
    everything = sqlnet.train(db_url, epochs=1, learning_rate=0.1, validation_fraction=0)
    assert any("uses every sample, including those held out until now (fraction 0.25, seed 4)" in n
               for n in everything.notes)  # fmt: skip
    assert not everything.validation
    later = sqlnet.train(db_url, epochs=1, learning_rate=0.1)
    assert not later.validation and sqlnet.network(db_url).validation_fraction == 0
    assert len(held) == 4 and len(training) == 12


def test_a_split_stored_at_load_is_kept_by_training(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(1, 21)))
    loaded = sqlnet.load(db_url, file=str(path), targets=["y"], validation_fraction=0.2, seed=1)
    assert loaded.held_out == 4 and loaded.validation == (0.2, 1)
    sqlnet.init(db_url, layers=[2, 3, 1], seed=1)
    result = sqlnet.train(db_url, epochs=2, learning_rate=0.01)
    assert len(result.validation) == 2 and result.options.validation_fraction == 0.2


def test_a_checkpointed_training_reports_its_validation_too(db_url: str, conn: psycopg.Connection) -> None:
    rng = random.Random("checkpointed validation")
    net = random_network(rng, 2, "node", "tanh", "softmax", "cross-entropy")
    create_tables(conn, net, random_params(rng, net), random_data(rng, net, 12), samples=True)
    functions = {"hidden_activation": "tanh", "output_activation": "softmax", "loss": "cross-entropy"}
    once = sqlnet.train(db_url, epochs=3, learning_rate=0.1, validation_fraction=0.25, seed=2, **functions)
    sqlnet.restore(db_url, once.run_id)
    checkpointed = sqlnet.train(db_url, epochs=3, learning_rate=0.1, checkpoint_every=1)
    assert len(once.validation) == 3 and len(checkpointed.validation) == 3
    flat = [v for pair in once.validation for v in pair]
    assert [v for pair in checkpointed.validation for v in pair] == pytest.approx(flat, rel=1e-12)
    assert checkpointed.losses == pytest.approx(once.losses, rel=1e-12)
