"""Concurrent load: several trainings at once on one server, each on its own network (schema).

They start together on a database where sqlnet's own schema does not exist yet, so they also race
to create it. Every one must finish with exactly what the reference computes for its network.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

import sqlnet
from sqlnet import TrainOptions
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import random_data, random_network, random_params, table_params
from tests.test_reference import assert_close

# each network trains differently: full batch, shuffled mini-batches, Adam, checkpoints, the trace
TRAININGS: list[dict[str, Any]] = [
    {"epochs": 60, "learning_rate": 0.05, "updates_per_statement": 20},
    {"epochs": 40, "learning_rate": 0.05, "batch_size": 3, "shuffle": 7},
    {"epochs": 50, "learning_rate": 0.01, "optimizer": "adam", "batch_size": 2},
    {"epochs": 60, "learning_rate": 0.05, "checkpoint_every": 10},
    {"epochs": 20, "learning_rate": 0.05, "trace": True},
    {"epochs": 30, "learning_rate": 0.02, "optimizer": "momentum", "momentum": 0.9, "layout": "long"},
]


@pytest.mark.parametrize("rounds", [2])
def test_trainings_at_once_on_separate_schemas_match_the_reference(
    db_url: str, conn: psycopg.Connection, rounds: int
) -> None:
    networks = []
    for n, options in enumerate(TRAININGS):
        rng = random.Random(f"concurrent {n}")
        net = random_network(rng, rng.randint(1, 3), rng.choice(["edge", "node", "none"]), "tanh", "linear")
        params, data = random_params(rng, net), random_data(rng, net, rng.randint(4, 8))
        schema = f"net{n}"
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        create_tables(conn, net, params, data, schema=schema, samples=True)
        networks.append(
            (schema, net, params, data, {**options, "loss": net.loss, "hidden_activation": "tanh"})
        )

    states: dict[str, Any] = {}  # the optimizer state each network carries into the next round
    # the same trainings again in a second round: the first round's runs, state and trace exist now
    for _ in range(rounds):
        start = threading.Barrier(len(networks))
        results: dict[str, Any] = {}
        spans: list[tuple[float, float]] = []  # when each training ran

        def train(
            schema: str,
            options: dict[str, Any],
            start: threading.Barrier,
            results: dict[str, Any],
            spans: list[tuple[float, float]],
        ) -> None:
            start.wait()
            began = time.monotonic()
            try:
                results[schema] = sqlnet.train(db_url, schema=schema, **options)
                spans.append((began, time.monotonic()))
            except BaseException as exc:  # reported below, with the schema
                results[schema] = exc

        threads = [threading.Thread(target=train, args=(n[0], n[4], start, results, spans)) for n in networks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        # they did run at once: at the moment the first one finished, at least 4 were running
        first_end = min(end for _, end in spans)
        assert sum(began < first_end for began, _ in spans) >= 4, spans

        for i, (schema, net, params, data, options) in enumerate(networks):
            result = results[schema]
            assert isinstance(result, sqlnet.TrainResult), (schema, result)
            hyper = {
                k: v
                for k, v in options.items()
                if k not in ("checkpoint_every", "trace", "layout", "updates_per_statement")
            }
            opts = TrainOptions(**hyper)
            state = states.get(schema)
            want = reference.train(
                net,
                params,
                data,
                opts.learning_rate,
                opts.epochs,
                batch_size=opts.batch_size,
                shuffle=opts.shuffle,
                optimizer=opts.make_optimizer(),
                state=state,
            )
            assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-12), schema
            stored = table_params(conn, net, schema=schema)
            assert_close(stored.weights, want.params.weights)
            if net.bias != "none":
                assert_close(stored.biases, want.params.biases)
            # the next round starts from what this one wrote, with the optimizer's state carried over
            networks[i] = (schema, net, want.params, data, options)
            states[schema] = want.state
    runs = sqlnet.runs(db_url)
    assert len(runs) == rounds * len(TRAININGS) and all(r.status == "finished" for r in runs)
