"""The benchmark's own pieces: its post-style baseline is correct, its report renders."""

from __future__ import annotations

import random

import psycopg
import pytest

from sqlnet import bench
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Network
from tests.helpers import random_data, random_params
from tests.test_reference import assert_close


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_post_style_baseline_trains_correctly(db_url: str, conn: psycopg.Connection, hidden: str) -> None:
    """The baseline is only a fair competitor if it computes the same thing."""
    rng = random.Random(hidden)
    net = Network((3, 4, 2), hidden, "linear", "half-se", "node")
    params, data = random_params(rng, net), random_data(rng, net, 6)
    create_tables(conn, net, params, data, schema="b", samples=True)
    rows = conn.execute(bench.post_sql(net, 3, 0.1, "b")).fetchall()
    got = reference.zeros_like(net)
    for q, i, j, v in rows:
        target = {"w1": got.weights[0], "w2": got.weights[1], "b1": got.biases[0], "b2": got.biases[1]}[q]
        target[(i or 1) - 1][j - 1] = v
    want = reference.train(net, params, data, 0.1, 3)
    assert_close(got.weights, want.params.weights)
    assert_close(got.biases, want.params.biases)


def test_report_renders() -> None:
    results = {
        "machine": {"cpu": "test cpu", "cores": 2, "platform": "linux", "python": "3.11", "numpy": "2"},
        "postgres": "18",
        "workloads": [
            {
                "workload": {"name": "w", "description": "a workload"},
                "results": [
                    {
                        "competitor": "sqlnet",
                        "process": [1.0, 2.0, 3.0],
                        "inner": [0.5],
                        "max_diff": 0.0,
                        "extra": {"layout": "wide"},
                    },
                    {
                        "competitor": "numpy",
                        "process": [0.1],
                        "inner": [0.01],
                        "max_diff": 1e-16,
                        "extra": {},
                    },
                ],
            }
        ],
    }
    text = bench.markdown(results)
    assert "| sqlnet | 2.00 s | 500 ms | 20.0x | 0.0e+00 | layout wide |" in text
    assert "| numpy | 100 ms | 10 ms | 1.0x |" in text


def test_workloads_of_different_functions_run_one_after_another(db_url: str) -> None:
    """Every workload trains schema `bench` anew: the stored definition of the one before (relu, half-se)
    must not refuse the next (tanh, se). This broke once, when networks started keeping their definitions."""
    from sqlnet.bench.competitors import run_sqlnet
    from sqlnet.bench.workloads import Workload, _data_cache, make_data

    for w in (
        Workload("t-relu", 6, (3, 4, 2), "relu", 2, 0.1, "a relu network", ("sqlnet",)),
        Workload("t-tanh", 6, (3, 4, 2), "tanh", 2, 0.1, "a tanh network", ("sqlnet",), loss="se"),
    ):
        net, params, data = make_data(w)
        _data_cache[w.name] = data
        _, _, trained, facts = run_sqlnet(db_url, "bench", w, "auto", params, net)
        want = reference.train(net, params, data, w.learning_rate, w.epochs).params
        assert_close(trained.weights + trained.biases, want.weights + want.biases, 1e-12)
        assert facts["layout"] == "wide"


def test_the_benchmark_keeps_to_a_database_of_its_own(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --database-url it makes a database on the default server, works there and drops it: the
    default database (here the server's own) gets no schema bench, bench_post or sqlnet."""
    monkeypatch.setenv("SQLNET_DATABASE_URL", server_url)
    from sqlnet.bench.report import own_database

    def schemas(url: str) -> set[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}

    before = schemas(server_url)
    with own_database(None) as url:
        assert url != server_url and "/sqlnet_bench_" in url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA bench")
        name = url.split("?")[0].rsplit("/", 1)[1]
    assert schemas(server_url) == before
    with psycopg.connect(server_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)
    with own_database("postgresql://given") as url:  # an explicit URL is the user's choice
        assert url == "postgresql://given"
