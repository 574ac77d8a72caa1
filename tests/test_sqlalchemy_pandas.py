"""SQLAlchemy and pandas users: an Engine or a Connection as the database (sqlnet's guarantees hold on a
connection it was given, and it is left as it was found), a trained network inside their own Core and ORM
queries equal to `sqlnet predict`, Table objects, and DataFrames in and out."""

from __future__ import annotations

import math

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column

import sqlnet
import sqlnet.sqlalchemy as sqa
from sqlnet.db.connection import sqlalchemy_url
from sqlnet.errors import InputError, Unsupported

N = 60


def points() -> pd.DataFrame:
    """60 points, 3 features, 3 classes (one named '50%': a '%' must survive SQLAlchemy's paramstyle)."""
    rows = []
    for n in range(1, N + 1):
        a, b, c = ((n * k * 0.618034) % 1 * 2 - 1 for k in (1, 2, 3))
        rows.append({"id": f"p{n}", "a": a, "b": b, "c": c,
                     "kind": "high" if a + b > 0.3 else "50%" if a + b < -0.3 else "mid"})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    e = sa.create_engine(sqlalchemy_url(db_url))
    yield e
    e.dispose()


def trained(engine: sa.Engine) -> None:
    """The user's whole path through SQLAlchemy: a DataFrame in, a training, all through the Engine."""
    df = points()
    loaded = sqlnet.load(df, target="kind", classes=True, standardize=True, id_column="id", schema="pts",
                         database=engine)  # fmt: skip
    assert (loaded.samples, loaded.classes) == (N, ["50%", "high", "mid"])
    sqlnet.init(engine, schema="pts", layers=[3, 5, 3], seed=2, bias="node")
    sqlnet.train(engine, schema="pts", epochs=30, learning_rate=0.3, hidden_activation="tanh",
                 output_activation="softmax", loss="cross-entropy")  # fmt: skip
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE public.customers (id text PRIMARY KEY, a float8, b float8, c float8)")
        c.execute(sa.text("INSERT INTO public.customers VALUES (:id, :a, :b, :c)"),
                  df[["id", "a", "b", "c"]].to_dict("records"))  # fmt: skip


def test_prediction_inline_equals_sqlnet_predict_in_core_and_orm(engine: sa.Engine, db_url: str) -> None:
    trained(engine)
    sqlnet.predict(engine, schema="pts", table="customers", table_schema="public", into="pred", id_column="id")
    with psycopg.connect(db_url) as c:
        want = {r[0]: r[1:] for r in c.execute('SELECT id, label, probability, "p_50%", p_high, p_mid FROM pts.pred')}
    md = sa.MetaData()
    customers = sa.Table("customers", md, autoload_with=engine, schema="public")
    net = sqa.network(engine, schema="pts")
    assert net.features == ["a", "b", "c"] and net.columns == ["label", "probability", "p_50%", "p_high", "p_mid"]
    p = sqa.prediction(net, customers)
    core = sa.select(customers.c.id, p.c.label, p.c.probability, p.c["p_50%"], p.c.p_high, p.c.p_mid)
    with engine.connect() as c:
        got = {r[0]: r[1:] for r in c.execute(core)}
        # and as any other subquery: filtered, ordered, counted by label
        by_label = dict(c.execute(sa.select(p.c.label, sa.func.count()).select_from(customers).group_by(p.c.label)).all())
    assert got.keys() == want.keys() and len(got) == N
    for key, (label, *probabilities) in want.items():
        assert got[key][0] == label
        assert all(math.isclose(x, y, rel_tol=0, abs_tol=1e-12) for x, y in zip(got[key][1:], probabilities))
    assert sum(by_label.values()) == N and set(by_label) <= {"50%", "high", "mid"} and "50%" in {g[0] for g in got.values()}

    class Base(DeclarativeBase):
        pass

    class Customer(Base):
        __tablename__ = "customers"
        __table_args__ = ({"schema": "public"},)
        id: Mapped[str] = mapped_column(primary_key=True)
        a: Mapped[float]
        b: Mapped[float]
        c: Mapped[float]

    q = sqa.prediction(net, Customer, name="q")
    with Session(engine) as session:
        orm = {r.id: r.label for r in session.execute(sa.select(Customer.id, q.c.label).where(Customer.a > 0))}
        best = aliased(Customer)
        r = sqa.prediction(net, best, features={"a": "a", "b": best.b, "c": "c"})
        aliased_rows = session.execute(sa.select(best.id, r.c.probability).order_by(best.id)).all()
    assert orm and all(orm[k] == want[k][0] for k in orm)
    assert len(aliased_rows) == N and all(math.isclose(p_, want[k][1], abs_tol=1e-12) for k, p_ in aliased_rows)
    with pytest.raises(InputError, match="no column 'a'"):
        sqa.prediction(net, sa.table("other", sa.column("x")))


def test_a_connection_is_used_as_given_and_left_as_found(engine: sa.Engine, db_url: str) -> None:
    trained(engine)
    with engine.connect() as c:
        c.exec_driver_sql("SET search_path = public")
        c.exec_driver_sql("SET work_mem = '1MB'")
        c.exec_driver_sql("SET application_name = 'my app'")
        c.commit()
        before = c.exec_driver_sql("SELECT current_setting('search_path'), current_setting('work_mem'), "
                                   "current_setting('application_name')").one()  # fmt: skip
        c.commit()
        assert not c.in_transaction()
        # not in a transaction: sqlnet's own, committed
        run = sqlnet.train(c, schema="pts", epochs=2, learning_rate=0.1)
        assert c.exec_driver_sql("SELECT current_setting('search_path'), current_setting('work_mem'), "
                                 "current_setting('application_name')").one() == before  # fmt: skip
        c.rollback()
        # in the caller's transaction: joined (a savepoint), kept or undone with it
        c.exec_driver_sql("SELECT 1")
        joined = sqlnet.train(c, schema="pts", epochs=2, learning_rate=0.1)
        assert c.in_transaction()
        assert c.exec_driver_sql("SELECT current_setting('search_path'), current_setting('work_mem'), "
                                 "current_setting('application_name')").one() == before  # fmt: skip
        c.rollback()
        assert not c.closed
    with psycopg.connect(db_url) as p:
        statuses = dict(p.execute("SELECT run_id, status FROM sqlnet.runs").fetchall())
    assert statuses.get(run.run_id) == "finished" and joined.run_id not in statuses  # the rollback undid it
    with engine.connect() as c:
        with pytest.raises(Unsupported, match="checkpoints"):
            sqlnet.train(c, schema="pts", epochs=2, learning_rate=0.1, checkpoint_every=1)
        with pytest.raises(InputError, match="cannot use a dict"):
            sqlnet.runs({"url": db_url})


def test_a_trap_on_the_callers_search_path_never_runs(engine: sa.Engine, db_url: str) -> None:
    """The caller's connection resolves names in a schema where an operator and a function wait: sqlnet
    pins its own search path on that connection, so none of them runs, and the caller's path comes back."""
    trained(engine)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE SCHEMA trap")
        c.exec_driver_sql("CREATE TABLE trap.ran (what text)")
        c.exec_driver_sql(
            "CREATE FUNCTION trap.exp(x float8) RETURNS float8 LANGUAGE sql AS "
            "$$ INSERT INTO trap.ran VALUES ('exp') RETURNING 1.0::float8 $$"
        )
        c.exec_driver_sql(
            "CREATE FUNCTION trap.plus(a float8, b float8) RETURNS float8 LANGUAGE sql AS "
            "$$ INSERT INTO trap.ran VALUES ('+') RETURNING 0.0::float8 $$"
        )
        c.exec_driver_sql("CREATE OPERATOR trap.+ (LEFTARG = float8, RIGHTARG = float8, FUNCTION = trap.plus)")
    with engine.connect() as c:
        c.exec_driver_sql("SET search_path = trap, pg_catalog, public")  # the trap's operator before the real one
        c.commit()
        assert c.exec_driver_sql("SELECT 1.0::float8 + 2.0::float8").scalar() == 0.0  # the trap works...
        c.rollback()
        sqlnet.train(c, schema="pts", epochs=3, learning_rate=0.1)
        sqlnet.predict(c, schema="pts", table="customers", table_schema="public", into="pred2", id_column="id")
        assert c.exec_driver_sql("SELECT current_setting('search_path')").scalar() == "trap, pg_catalog, public"
        c.commit()
    with psycopg.connect(db_url) as p:
        assert p.execute("SELECT count(*) FROM trap.ran").fetchone() == (0,)  # ...and never ran in sqlnet's work


def test_dataframes_in_and_out(engine: sa.Engine, db_url: str) -> None:
    trained(engine)
    df = points()
    # predictions for a frame: computed in SQL, nothing written, the frame's index kept without an id
    got = sqlnet.predict(engine, schema="pts", frame=df[["c", "b", "a"]].set_index(df.index + 100))
    assert list(got.columns) == ["label", "probability", "p_50%", "p_high", "p_mid"]
    assert list(got.index) == list(df.index + 100)
    by_id = sqlnet.predict(engine, schema="pts", frame=df[["id", "a", "b", "c"]], id_column="id").set_index("id")
    sqlnet.predict(engine, schema="pts", table="customers", table_schema="public", into="pred", id_column="id")
    with psycopg.connect(db_url) as c:
        table = {r[0]: r[1:] for r in c.execute("SELECT id, label, probability FROM pts.pred")}
        assert c.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sqlnet_predict%'").fetchone() == (0,)
    for position, (key, (label, probability)) in enumerate(sorted(table.items(), key=lambda kv: int(kv[0][1:]))):
        assert got["label"].iloc[position] == label == by_id.loc[key, "label"]
        assert math.isclose(got["probability"].iloc[position], probability, abs_tol=1e-12)
    # runs and losses as frames
    runs = sqlnet.runs(engine, as_frame=True)
    assert list(runs.index) and runs.iloc[-1]["layers"] == "3-5-3" and runs.iloc[-1]["status"] == "finished"
    losses = sqlnet.run_losses(engine, int(runs.index[-1]), as_frame=True)
    assert list(losses.index) == list(range(1, 31)) and losses["loss"].iloc[-1] < losses["loss"].iloc[0]
    # a bad value is named by its line and column, and nothing is written
    bad = df.copy()
    bad.loc[7, "b"] = float("nan")
    with pytest.raises(InputError, match=r"line 2 is its first row\), line 9, column 'b'"):
        sqlnet.load(bad, target="kind", classes=True, id_column="id", schema="pts", replace=True, database=engine)
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(DISTINCT sampleid) FROM pts.inputs").fetchone() == (N,)
    with pytest.raises(InputError, match="instead of table="):
        sqlnet.predict(engine, schema="pts", frame=df, table="customers")


def test_table_objects_for_the_network_and_the_records(engine: sa.Engine) -> None:
    trained(engine)
    md = sa.MetaData()
    t = sqa.tables(md, schema="pts", bind=engine)
    assert [w.name for w in t.weights] == ["weights1", "weights2"] and [b.name for b in t.biases] == ["biases1", "biases2"]
    assert t.inputs is not None and t.raw is not None and t.raw.name == "raw"
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(t.inputs)).scalar() == 3 * N
        last = c.execute(sa.select(t.runs.c.run_id, t.runs.c.status).order_by(t.runs.c.run_id.desc())).first()
        assert last is not None and last.status == "finished"
        epochs = c.execute(sa.select(sa.func.count()).select_from(t.run_losses).where(t.run_losses.c.run_id == last.run_id)).scalar()
        assert epochs == 30
    assert set(t.records) >= {"runs", "run_losses", "run_params", "networks", "optimizer_state"}
