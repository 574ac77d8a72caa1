"""The native kernels (sqlnet_kernels, a C extension built here with the test server's own pg_config):
every mode trains to the reference's numbers and to pure SQL's, the choice is said and recorded, an
attacker's objects in the kernels' schema are refused before anything runs, and hostile arrays get an
ERROR, never a crashed server."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

import sqlnet
from sqlnet.db.tables import create_tables
from sqlnet.errors import InputError
from sqlnet.model import reference
from sqlnet.model.network import Network
from sqlnet.model.optimizers import Optimizer
from sqlnet.ops import kernels as ops_kernels
from tests.helpers import SATURATED_NET, random_data, random_params, saturated_softmax, table_params, url_with
from tests.test_reference import assert_close

pytestmark = pytest.mark.db


@pytest.fixture(scope="session")
def kernel_server(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test server with the kernels available: the container's image has them built in (for its
    PostgreSQL 15); the embedded server is told where the kernels built here for it are (once a session).
    Skipped, saying why, where neither holds."""
    with psycopg.connect(server_url) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        there = conn.execute(
            "SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'sqlnet_kernels'"
        ).fetchone()
    if there is not None:
        return server_url
    config = ops_kernels.embedded_pg_config()
    if config is None or ops_kernels.major_of(config) != major or major < 18:
        pytest.skip(f"the kernels are not on this PostgreSQL {major} server, and no pg_config for it is here")
    home = tmp_path_factory.mktemp("kernels")
    ops_kernels.install(server_url, home=home, create=False)
    return server_url


@pytest.fixture
def kdb(kernel_server: str, db_url: str) -> Iterator[str]:
    """A fresh database with the kernels created in it."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION sqlnet_kernels")
    yield db_url


MODES = [
    (("tanh", "linear", "half-se", "node"), dict()),
    (("relu", "linear", "se", "edge"), dict(optimizer="momentum", batch_size=3)),
    (("sigmoid", "softmax", "cross-entropy", "node"), dict(optimizer="adam", batch_size=4, shuffle=7)),
    (("tanh", "sigmoid", "cross-entropy", "none"), dict(l2=0.01)),
    (("relu", "sigmoid", "half-se", "node"), dict(optimizer="adam", weight_decay=0.05)),
    (("sigmoid", "tanh", "se", "edge"), dict(optimizer="momentum", nesterov=True, batch_size=5, shuffle=2)),
]


@pytest.mark.parametrize("functions, options", MODES)
def test_every_mode_trains_to_the_reference_and_to_pure_sql(
    kdb: str, functions: tuple[str, str, str, str], options: dict[str, Any]
) -> None:
    net = Network((4, 6, 5, 3), *functions)
    rng = random.Random(hash(functions) % 1000)
    params, data = random_params(rng, net), random_data(rng, net, 11)
    if functions[2] == "cross-entropy":  # targets in [0, 1]; one-hot for a softmax
        from sqlnet.model.network import Dataset, Sample

        data = Dataset([
            Sample(s.id, s.x, tuple(float(j == s.id % 3) for j in range(3)) if functions[1] == "softmax"
                   else tuple(rng.random() for _ in range(3)))
            for s in data.samples
        ])  # fmt: skip
    given = dict(epochs=3, learning_rate=0.05, hidden_activation=functions[0], output_activation=functions[1],
                 loss=functions[2], **options)  # fmt: skip
    with psycopg.connect(kdb, autocommit=True) as conn:
        create_tables(conn, net, params, data, samples=True)
        native = sqlnet.train(kdb, kernels="native", **given)
        assert native.layout == "native" and native.computed.startswith("the phases run in the native kernels")
        got = table_params(conn, net)
        conn.execute(sql.SQL("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        conn.execute("DROP SCHEMA sqlnet CASCADE")
        create_tables(conn, net, params, data, samples=True)
        pure = sqlnet.train(kdb, kernels="sql", **given)
        assert pure.layout == "wide"
    opt = Optimizer(options.get("optimizer", "gd"), l2=options.get("l2", 0.0),
                    weight_decay=options.get("weight_decay", 0.0), nesterov=options.get("nesterov", False))  # fmt: skip
    want = reference.train(net, params, data, 0.05, 3, batch_size=options.get("batch_size", 0),
                           shuffle=options.get("shuffle"), optimizer=opt)  # fmt: skip
    largest = max(abs(v) for m in want.params.weights for row in m for v in row)
    for trained in (got, native.params, pure.params):
        for m_got, m_want in zip(trained.weights + trained.biases, want.params.weights + want.params.biases):
            for r_got, r_want in zip(m_got, m_want):
                assert all(abs(a - b) <= 1e-12 * largest for a, b in zip(r_got, r_want))
    assert native.losses == pytest.approx(want.losses, rel=1e-12)
    assert native.losses == pytest.approx(pure.losses, rel=1e-13)


def test_adam_on_gradients_too_small_to_square_agrees_with_the_reference(kdb: str) -> None:
    """The kernels count a square under float8's range as 0 as the SQL and the reference do (1.4)."""
    params, data = saturated_softmax()
    with psycopg.connect(kdb, autocommit=True) as conn:
        create_tables(conn, SATURATED_NET, params, data, samples=True)
        result = sqlnet.train(
            kdb, epochs=3, learning_rate=0.01, hidden_activation="tanh", output_activation="softmax",
            loss="cross-entropy", optimizer="adam", batch_size=1, kernels="native",
        )  # fmt: skip
        got = table_params(conn, SATURATED_NET)
    want = reference.train(SATURATED_NET, params, data, 0.01, 3, batch_size=1, optimizer=Optimizer("adam"))
    assert result.layout == "native"
    assert_close(got.weights + got.biases, want.params.weights + want.params.biases, 1e-12)
    assert result.losses == pytest.approx(want.losses, rel=1e-12)


def test_a_validation_split_and_check_with_the_kernels(kdb: str) -> None:
    net = Network((3, 5, 2), "tanh", "softmax", "cross-entropy", "node")
    rng = random.Random(4)
    params, data = random_params(rng, net), random_data(rng, net, 20)
    from sqlnet.model.network import Dataset, Sample

    data = Dataset([Sample(s.id, s.x, (float(s.id % 2), float(1 - s.id % 2))) for s in data.samples])
    with psycopg.connect(kdb, autocommit=True) as conn:
        create_tables(conn, net, params, data, samples=True)
    given = dict(epochs=4, learning_rate=0.1, hidden_activation="tanh", output_activation="softmax",
                 loss="cross-entropy", validation_fraction=0.25, seed=3)  # fmt: skip
    report = sqlnet.check(kdb, kernels="native", tolerance=1e-9, **given)
    assert report.ok, report.as_json()
    # the kernels against the reference, and against the same training in pure SQL from the same start
    against_sql = [d for d in report.differences if d.table.endswith("(kernels vs SQL)")]
    assert len(against_sql) == 5 and all(d.max_rel <= 1e-12 and d.values for d in against_sql)
    assert report.computed.startswith("the phases run in the native kernels")
    assert not any(d.table.endswith("(kernels vs SQL)") for d in sqlnet.check(kdb, kernels="sql", **given).differences)
    native = sqlnet.train(kdb, kernels="native", **given)
    assert native.layout == "native" and len(native.validation) == 4


def test_auto_uses_the_kernels_where_the_database_has_them_and_says_why_not(kernel_server: str, db_url: str) -> None:
    sqlnet.init(db_url, example="post")
    without = sqlnet.train(db_url, epochs=1, learning_rate=0.1)
    assert without.layout == "wide"
    assert without.computed == "pure SQL: the database has no native kernels (`sqlnet kernels install` adds them)"
    with pytest.raises(InputError, match="--kernels native: the extension sqlnet_kernels is not installed"):
        sqlnet.train(db_url, epochs=1, learning_rate=0.1, kernels="native")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION sqlnet_kernels")
        with_kernels = sqlnet.train(db_url, epochs=1, learning_rate=0.1)
        assert with_kernels.layout == "native"
        (recorded,) = conn.execute(
            "SELECT options->>'computed_by' FROM sqlnet.runs WHERE run_id = %s", (with_kernels.run_id,)
        ).fetchone()  # type: ignore[misc]
        assert recorded == "native kernels"
    traced = sqlnet.train(db_url, epochs=1, learning_rate=0.1, trace=True)  # the trace is SQL's to write
    assert traced.layout == "long" and "--trace keeps every phase as rows per node" in traced.computed
    with pytest.raises(InputError, match="--kernels native cannot run this: --numeric exact"):
        sqlnet.train(db_url, epochs=1, learning_rate=0.1, kernels="native", numeric="exact")


def test_the_cli_installs_reports_and_prints_the_choice(kernel_server: str, db_url: str, tmp_path: Path) -> None:
    from sqlnet.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["kernels", "status", "--database-url", db_url, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["installed"] is None
    done = runner.invoke(main, ["kernels", "install", "--database-url", db_url])
    assert done.exit_code == 0 and "created the extension" in done.output, done.output
    done = runner.invoke(main, ["kernels", "status", "--database-url", db_url, "--json"])
    assert json.loads(done.stdout)["usable"] is True
    runner.invoke(main, ["init", "--database-url", db_url, "--example", "post"])
    done = runner.invoke(main, ["train", "--database-url", db_url, "--lr", "0.1", "--kernels", "native"])
    assert done.exit_code == 0 and "the phases run in the native kernels" in done.output, done.output
    done = runner.invoke(main, ["sql", "--database-url", db_url, "--kernels", "native"])
    assert done.exit_code == 0 and '"sqlnet_kernels"."dense"(' in done.output and "layout native" in done.output


def test_an_attackers_function_in_the_kernels_schema_is_refused(kernel_server: str, db_url: str) -> None:
    """A role that may create schemas makes sqlnet_kernels first, with a function of its own beside where the
    kernels' go (an overload that would run with the trainer's privileges); the superuser then creates the
    extension there. sqlnet refuses the kernels before anything runs, naming the owner, and the trap never ran."""
    attacker = "kernel_attacker_" + db_url.rsplit("/", 1)[-1][-8:]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(attacker)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'trap'").format(sql.Identifier(attacker)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(attacker)))  # fmt: skip
        conn.execute("CREATE TABLE public.trap_ran (at timestamptz)")
        conn.execute(sql.SQL("GRANT INSERT ON public.trap_ran TO {}").format(sql.Identifier(attacker)))
    with psycopg.connect(url_with(db_url, username=attacker, password="trap"), autocommit=True) as evil:
        evil.execute("CREATE SCHEMA sqlnet_kernels")
        evil.execute(
            "CREATE FUNCTION sqlnet_kernels.dense(a float8[], w float8[], b float8[], n numeric) RETURNS float8[] "
            "LANGUAGE sql AS $$ INSERT INTO public.trap_ran VALUES (now()) RETURNING ARRAY[[0.0]]::float8[] $$"
        )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION sqlnet_kernels")  # into the attacker's schema, beside the trap
        sqlnet.init(db_url, example="post")
        before = table_params(conn, Network((3, 2, 3), bias="edge"))
        with pytest.raises(sqlnet.SqlnetError, match=f"(belong to role {attacker}|{attacker})"):
            sqlnet.train(db_url, epochs=1, learning_rate=0.1)
        assert conn.execute("SELECT count(*) FROM public.trap_ran").fetchone()[0] == 0  # type: ignore[index]
        assert table_params(conn, Network((3, 2, 3), bias="edge")) == before
        conn.execute("DROP EXTENSION IF EXISTS sqlnet_kernels")
        conn.execute("DROP SCHEMA sqlnet_kernels CASCADE")
        conn.execute("DROP TABLE public.trap_ran")
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(attacker)))  # fmt: skip


HOSTILE = [
    "sqlnet_kernels.dense(NULL, '{1}', '{}', 1)",
    "sqlnet_kernels.dense('{{1,2}}', '{1}', '{}', 1)",
    "sqlnet_kernels.dense('{{1,NULL}}', '{1,1}', '{}', 1)",
    "sqlnet_kernels.dense('{}', '{}', '{}', 1)",
    "sqlnet_kernels.dense('{{{1}}}', '{1}', '{}', 1)",
    "sqlnet_kernels.dense('{{1,2}}', '{1,2}', '{1,2,3}', 1)",
    "sqlnet_kernels.dense('{{1,2}}', '{1,2}', '{}', 0)",
    "sqlnet_kernels.dense('{{1,2}}', '{1,2}', '{}', NULL)",
    "sqlnet_kernels.dense('{{1,2}}', '{1,2}', '{}', 1048576)",
    "sqlnet_kernels.dense(array_fill(1.0::float8, ARRAY[2, 3]), '{1,2}', '{}', 1)",
    "sqlnet_kernels.dense('{{1e308,1e308}}', '{1e308,1e308}', '{}', 1)",
    "sqlnet_kernels.activate(NULL, 'tanh')",
    "sqlnet_kernels.activate('{{1}}', 'gelu')",
    "sqlnet_kernels.activate('{{1}}', NULL)",
    "sqlnet_kernels.activate('{}', 'relu')",
    "sqlnet_kernels.loss('{{1}}', '{{1,2}}', '{{1}}', 'se', 'linear')",
    "sqlnet_kernels.loss('{{1}}', '{{1}}', '{{1}}', 'cross-entropy', 'relu')",
    "sqlnet_kernels.loss('{{1}}', '{{1}}', NULL, 'se', 'linear')",
    "sqlnet_kernels.output_delta('{{1}}', '{{1}}', '{{1},{2}}', 'se', 'linear')",
    "sqlnet_kernels.output_delta('{{1}}', '{{1}}', '{{1}}', 'hinge', 'linear')",
    "sqlnet_kernels.backward('{{1,2}}', '{1,2,3}', '{{1}}', 'tanh')",
    "sqlnet_kernels.backward('{{1,2}}', '{1,2}', '{{1},{2}}', 'tanh')",
    "sqlnet_kernels.outer_product('{{1,2}}', '{{1},{2}}')",
    "sqlnet_kernels.outer_product(NULL, '{{1}}')",
    "sqlnet_kernels.colsum('{{1,2}}', 0)",
    "sqlnet_kernels.colsum('{{1,2}}', 2000000000)",
    "sqlnet_kernels.vsum_step('{1}', '{1}')",
    "(SELECT sqlnet_kernels.vsum(x) FROM (VALUES ('{1,2}'::float8[]), ('{1}')) AS v (x))",
    "(SELECT sqlnet_kernels.vsum(x) FROM (VALUES ('{1,2}'::float8[]), (NULL)) AS v (x))",
    "(SELECT sqlnet_kernels.vsum(x) FROM (VALUES ('{}'::float8[])) AS v (x))",
    "sqlnet_kernels.dense('{{1,2}}'::float8[], '{1,2}'::float8[], '{{1}}'::float8[], 1)",
    "sqlnet_kernels.step('{1,2}', '{1}', 1, '{}', '{}', 0, 0.1, 'gd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{1,2}', '{1,2}', 0, '{}', '{}', 0, 0.1, 'gd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{1,2}', '{1,2}', 1, '{1}', '{}', 0, 0.1, 'momentum', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{1,2}', '{1,2}', 1, '{1,2}', NULL, 1, 0.1, 'adam', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{1,2}', '{1,2}', 1, '{}', '{}', 0, 0.1, 'gd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'v')",
    "sqlnet_kernels.step('{1,2}', '{1,2}', 1, '{}', '{}', 0, 0.1, 'sgd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{}', '{}', 1, '{}', '{}', 0, 0.1, 'gd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.step('{1e308}', '{-1e308}', 1, '{}', '{}', 0, 10, 'gd', 0.9, false, 0.9, 0.999, 1e-8, 0, 0, 'w')",
    "sqlnet_kernels.place_step(NULL, 1, 1.0, 1)",
    "sqlnet_kernels.place_final(NULL)",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (1, 1.0::float8), (3, 2.0)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (0, 1.0::float8), (1, 2.0)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (1, 1.0::float8), (1, 2.0)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (2, 1.0::float8)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (1, NULL::float8)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2) FROM (VALUES (NULL::int, 1.0::float8)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, s) FROM (VALUES (1, 1.0::float8, 2), (2, 2.0, 3)) AS r (n, v, s))",
    "(SELECT sqlnet_kernels.place(n, v, 0) FROM (VALUES (1, 1.0::float8)) AS r (n, v))",
    "(SELECT sqlnet_kernels.place(n, v, 2000000000) FROM (VALUES (1, 1.0::float8)) AS r (n, v))",
]


def test_hostile_arrays_get_an_error_and_the_server_stays_up(kdb: str) -> None:
    """Every function, fed what it must refuse: an ERROR naming the problem, and the same connection (a
    crashed backend would take every connection with it) still answering afterwards."""
    with psycopg.connect(kdb, autocommit=True) as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[misc]
        for call in HOSTILE:
            with pytest.raises(psycopg.Error) as raised:
                conn.execute(f"SELECT {call}")
            assert raised.value.diag.message_primary, call
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, call  # type: ignore[index]
        # NaN and infinities in: numbers out (NaN), never a crash
        (z,) = conn.execute(
            "SELECT sqlnet_kernels.activate(sqlnet_kernels.dense('{{NaN,1}}', '{1,2}', '{}', 1), 'sigmoid')"
        ).fetchone()  # type: ignore[misc]
        assert z[0][0] != z[0][0]
        # place puts each value at its node, whatever order the rows come in, and makes nothing of no rows
        (placed,) = conn.execute(
            "SELECT sqlnet_kernels.place(n, v, 3) FROM (VALUES (3, 30.0::float8), (1, 10.0), (2, 20.0)) AS r (n, v)"
        ).fetchone()  # type: ignore[misc]
        assert placed == [10.0, 20.0, 30.0]
        assert conn.execute("SELECT sqlnet_kernels.place(1, 1.0, 1) WHERE false").fetchone() == (None,)
    rng = random.Random(1)
    with psycopg.connect(kdb, autocommit=True) as conn:  # random shapes: refused or computed, never a crash
        for _ in range(300):
            rows, n_in, n_out = rng.randint(0, 3), rng.randint(0, 3), rng.randint(-1, 3)
            a = [[rng.choice([1.0, -2.5, float("nan")]) for _ in range(n_in)] for _ in range(rows)]
            w = [rng.random() for _ in range(rng.randint(0, 10))]
            b = [rng.random() for _ in range(rng.choice([0, n_out, n_in * max(n_out, 0), 7]))]
            try:
                conn.execute("SELECT sqlnet_kernels.dense(%s::float8[], %s::float8[], %s::float8[], %s)", (a, w, b, n_out))
            except psycopg.Error as exc:
                assert exc.diag.message_primary
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_layer_too_wide_for_a_join_trains_both_ways(kdb: str) -> None:
    """A layer of 33,110 parameters would join more than PostgreSQL's 32,767 columns in the wide layout:
    pure SQL picks the long layout (and says the network is slow without the kernels), the kernels train
    it in the native layout, and both equal the reference."""
    net = Network((300, 110, 1), "tanh", "linear", "half-se", "node")
    rng = random.Random(3)
    params, data = random_params(rng, net), random_data(rng, net, 3)
    with psycopg.connect(kdb, autocommit=True) as conn:
        create_tables(conn, net, params, data, samples=True)
        native = sqlnet.train(kdb, epochs=1, learning_rate=0.01, hidden_activation="tanh")
        assert native.layout == "native"
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        conn.execute("DROP SCHEMA sqlnet CASCADE")
        create_tables(conn, net, params, data, samples=True)
        pure = sqlnet.train(kdb, epochs=1, learning_rate=0.01, hidden_activation="tanh", kernels="sql")
    assert pure.layout == "long"
    want = reference.train(net, params, data, 0.01, 1)
    for trained in (native.params, pure.params):
        for m_got, m_want in zip(trained.weights, want.params.weights):
            for r_got, r_want in zip(m_got, m_want):
                assert r_got == pytest.approx(r_want, rel=1e-12, abs=1e-14)
