"""Property-based: generated networks, data and options train in SQL exactly as the reference says."""

from __future__ import annotations

import itertools
import random

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sqlnet
from sqlnet.db.tables import create_tables
from sqlnet.errors import Diverged
from sqlnet.model import reference
from sqlnet.ops.common import TrainOptions
from tests.helpers import random_data, random_network, random_params

counter = itertools.count()

network_options = st.fixed_dictionaries(
    {
        "depth": st.integers(1, 4),
        "bias": st.sampled_from(["edge", "node", "none"]),
        "hidden": st.sampled_from(["relu", "sigmoid", "tanh", "linear"]),
        "head": st.sampled_from(
            [
                ("linear", "half-se"),
                ("linear", "se"),
                ("sigmoid", "half-se"),
                ("tanh", "se"),
                ("sigmoid", "cross-entropy"),
                ("softmax", "cross-entropy"),
            ]
        ),
        "samples": st.integers(1, 6),
        "epochs": st.integers(1, 3),
        "batch_size": st.integers(0, 6),
        "shuffle": st.none() | st.integers(0, 3),
        "optimizer": st.sampled_from(["gd", "momentum", "adam"]),
        "l2": st.sampled_from([0.0, 0.01]),
        "rate": st.sampled_from([0.01, 0.1, 0.5]),
        "per_statement": st.integers(1, 5),
        "seed": st.integers(0, 10**6),
        "layout": st.sampled_from(["long", "wide"]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(o=network_options)
# found by CI: epoch 3 at 4.7e5 times epoch 1's loss, called diverged against epoch 1's first batch (fixed)
@example(o={"depth": 1, "bias": "edge", "hidden": "relu", "head": ("linear", "se"), "samples": 3, "epochs": 3,
            "batch_size": 1, "shuffle": None, "optimizer": "gd", "l2": 0.0, "rate": 0.5, "per_statement": 1,
            "seed": 0, "layout": "long"})  # fmt: skip
def test_generated_trainings_match_the_reference(db_url: str, o: dict) -> None:
    rng = random.Random(o["seed"])
    output, loss = o["head"]
    net = random_network(rng, o["depth"], o["bias"], o["hidden"], output, loss)
    batch = min(o["batch_size"], o["samples"])
    schema = f"p{next(counter)}"
    params, data = random_params(rng, net), random_data(rng, net, o["samples"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_tables(conn, net, params, data, schema=schema, samples=True)
    options = dict(
        epochs=o["epochs"], learning_rate=o["rate"], hidden_activation=o["hidden"], output_activation=output,
        loss=net.loss, batch_size=batch, shuffle=o["shuffle"], optimizer=o["optimizer"], l2=o["l2"],
    )  # fmt: skip
    try:
        report = sqlnet.check(db_url, schema=schema, updates_per_statement=o["per_statement"], **options)
    except Diverged as exc:
        # a generated rate that really diverges (rate 0.5, squared error, ...) is refused, not compared: the
        # losses it measured before stopping are the reference's, and the last is past the bound
        want = reference.train(
            net, params, data, o["rate"], o["epochs"], batch_size=batch, shuffle=o["shuffle"],
            optimizer=TrainOptions(**options).make_optimizer(),
        )  # fmt: skip
        complete = exc.losses[:-1]  # the epoch it stopped in may not have ended
        assert complete == pytest.approx(want.losses[: len(complete)], rel=1e-9)
        if "the loss grew from" in str(exc):  # else a value left float8's range, which the server raised
            assert not exc.losses[-1] <= 1e6 * max(exc.losses[0], 1e-9)
        return
    assert report.network == net
    assert report.ok, report.differences
