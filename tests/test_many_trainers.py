"""Many trainers at once: eight networks in one database, trained at the same time by eight roles, each granted
only its own network (`sqlnet grants ROLE --schema S --apply`). Every result equals the reference, none waits
for another network's lock, no record of one network is touched by another's trainer, and a ninth trainer of
a busy network is refused at once, naming who holds it."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

import sqlnet
from sqlnet.db.guard import NetworkBusy
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import random_data, random_network, random_params, table_params
from tests.test_attacks import PASSWORD, with_user
from tests.test_reference import assert_close

TRAINERS = 8


def test_eight_roles_train_eight_networks_at_once(db_url: str, conn: psycopg.Connection) -> None:
    (superuser,) = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()  # type: ignore[misc]
    if not superuser:
        pytest.skip("needs a superuser to create the roles")
    (database,) = conn.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
    networks: list[dict[str, Any]] = []
    roles = []
    try:
        for n in range(TRAINERS):
            rng = random.Random(f"trainer {n}")
            net = random_network(rng, rng.randint(1, 2), rng.choice(["node", "edge"]), "tanh", "linear")
            params, data = random_params(rng, net), random_data(rng, net, rng.randint(6, 10))
            schema, role = f"net{n}", f"trainer{n}_{uuid.uuid4().hex[:6]}"
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            create_tables(conn, net, params, data, schema=schema, samples=True)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD)))
            roles.append(role)
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(role)))
            sqlnet.grants(db_url, role=role, schema=schema, apply=True)
            # network 0 trains longest: the ninth trainer asks while it surely runs
            options = {"epochs": 1200 if n == 0 else 600, "learning_rate": 0.05, "loss": net.loss, "hidden_activation": "tanh",
                       "batch_size": 3 if n % 2 else 0, "optimizer": "adam" if n in (3, 6) else "gd"}  # fmt: skip
            networks.append({"schema": schema, "role": role, "net": net, "params": params, "data": data, "options": options})
        start = threading.Barrier(TRAINERS + 1)
        results: dict[str, Any] = {}
        spans: dict[str, tuple[float, float]] = {}

        def train(n: dict[str, Any]) -> None:
            url = with_user(db_url, n["role"])
            start.wait()
            began = time.monotonic()
            try:
                results[n["schema"]] = sqlnet.train(url, schema=n["schema"], **n["options"])
            except BaseException as exc:  # reported below, with the network
                results[n["schema"]] = exc
            spans[n["schema"]] = (began, time.monotonic())

        threads = [threading.Thread(target=train, args=(n,)) for n in networks]
        for t in threads:
            t.start()
        start.wait()
        # a ninth trainer (network 0's own role) while network 0 trains: refused at once, naming the holder
        first = networks[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE %s", (f"%{first['schema']}%run%",)
        ).fetchone():
            time.sleep(0.01)
        asked = time.monotonic()
        with pytest.raises(NetworkBusy, match=r"is being trained: .*net0.*backend pid"):
            sqlnet.train(with_user(db_url, first["role"]), schema=first["schema"], epochs=1, learning_rate=0.1)
        assert time.monotonic() - asked < 5  # at once, not after the first training
        for t in threads:
            t.join(timeout=600)
        assert not any(t.is_alive() for t in threads)
        # they ran at once (most had started before the first finished), and none was held by another's lock:
        # without --wait a trainer that met a held lock would have failed at once, as the ninth did
        first_end = min(e for _, e in spans.values())
        assert sum(b < first_end for b, _ in spans.values()) >= TRAINERS - 2, spans
        for n in networks:
            result = results[n["schema"]]
            assert isinstance(result, sqlnet.TrainResult), (n["schema"], result)
            opts = sqlnet.TrainOptions(**n["options"])
            want = reference.train(n["net"], n["params"], n["data"], opts.learning_rate, opts.epochs,
                                   batch_size=opts.batch_size, optimizer=opts.make_optimizer())  # fmt: skip
            assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-12), n["schema"]
            stored = table_params(conn, n["net"], schema=n["schema"])
            assert_close(stored.weights, want.params.weights)
            assert_close(stored.biases, want.params.biases)
        # each run is recorded for its own network, by its own role, and each role sees its network's only
        recorded = dict(conn.execute("SELECT run_id, schema_name FROM sqlnet.runs").fetchall())
        assert {recorded[results[n["schema"]].run_id] for n in networks} == {n["schema"] for n in networks}
        assert len(recorded) == TRAINERS
        for n in networks:
            with psycopg.connect(with_user(db_url, n["role"])) as c:
                assert c.execute("SELECT DISTINCT schema_name FROM sqlnet.runs").fetchall() == [(n["schema"],)]
                assert c.execute(
                    "SELECT count(*) FROM sqlnet.optimizer_state WHERE network <> %s", (n["schema"],)
                ).fetchone() == (0,)
        # how it scales on this machine's cores: one of them again, alone
        alone = time.monotonic()
        sqlnet.train(with_user(db_url, networks[1]["role"]), schema=networks[1]["schema"], **networks[1]["options"])
        alone = time.monotonic() - alone
        wall = max(e for _, e in spans.values()) - min(b for b, _ in spans.values())
        print(f"8 trainings at once: {wall:.2f} s wall, each {sorted(round(e - b, 2) for b, e in spans.values())} s; "
              f"network 1 alone {alone:.2f} s (at once: {spans[networks[1]['schema']][1] - spans[networks[1]['schema']][0]:.2f} s)")
    finally:
        for role in roles:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
