"""Fuzzing: generated networks, data and options, then broken (or not) at random.

Whatever hypothesis generates, a training either succeeds and equals the reference on what the
tables held, or fails with one of sqlnet's own errors (a message for a person) and leaves every
table as it was. An unhandled exception of any other kind is a bug.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

import sqlnet
from sqlnet import TrainOptions
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from tests.helpers import (
    POST_DATA,
    POST_NET,
    POST_PARAMS,
    database_snapshot,
    random_data,
    random_network,
    random_params,
    table_data,
    table_params,
)
from tests.test_reference import assert_close

counter = itertools.count()

# (table kind, what to do): each breaks one row or column of one table, or changes a value
MUTATIONS = [
    "none", "null", "nan", "infinity", "-infinity", "huge", "finite", "delete row", "duplicate row",
    "renumber node", "drop column", "text column", "text value", "empty table", "orphan sample",
]  # fmt: skip


# options that must be refused, one per example at most: (option, invalid value)
BAD_OPTIONS = [
    ("learning_rate", 0.0), ("learning_rate", -1.0), ("learning_rate", math.nan), ("learning_rate", math.inf),
    ("epochs", 0), ("epochs", -1), ("batch_size", 7), ("batch_size", -1), ("optimizer", "bogus"),
    ("hidden_activation", "swish"), ("layout", "diagonal"), ("updates_per_statement", 0),
    ("checkpoint_every", 0), ("loss", "hinge"), ("bias", "row"),
]  # fmt: skip
# mutations after which the tables cannot be trained: each must be refused
MUST_FAIL = {
    "null", "nan", "infinity", "-infinity", "delete row", "duplicate row", "text column", "text value",
    "empty table", "orphan sample",
}  # fmt: skip

inputs_options = st.fixed_dictionaries(
    {
        "depth": st.integers(1, 3),
        "bias": st.sampled_from(["edge", "node", "none"]),
        "samples": st.integers(1, 5),
        "seed": st.integers(0, 10**6),
        # at most one fault: nothing (often), one bad option, or one broken or changed table
        "fault": st.sampled_from([None] * 12)
        | st.sampled_from(BAD_OPTIONS)
        | st.tuples(st.sampled_from(MUTATIONS), st.sampled_from(["inputs", "outputs", "weights", "biases"])),
        "learning_rate": st.sampled_from([0.05, 0.1, 0.01]),
        "epochs": st.integers(1, 3),
        "batch_size": st.integers(0, 2),
        "optimizer": st.sampled_from(["gd", "momentum", "adam"]),
        "hidden_activation": st.sampled_from(["relu", "tanh", "sigmoid"]),
        "layout": st.sampled_from(["auto", "long", "wide"]),
        "updates_per_statement": st.sampled_from([1, 2, 500]),
        "checkpoint_every": st.sampled_from([None, None, 1]),
    }
)


def columns_of(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    )
    return [r[0] for r in rows]


def mutate(conn: psycopg.Connection, schema: str, table: str, mutation: str, rng: random.Random) -> bool:
    """Break (or change) one thing in schema.table; False if there was nothing to break."""
    t = sql.Identifier(schema, table)
    cols = columns_of(conn, schema, table)
    if not cols or mutation == "none":
        return False
    keys = [c for c in cols if "node" in c or c == "sampleid"]
    values = [c for c in cols if c not in keys]
    col = sql.Identifier(rng.choice(values or cols))
    one_row = sql.SQL("ctid = (SELECT ctid FROM {} ORDER BY random() LIMIT 1)").format(t)
    conn.execute("SELECT setseed(%s)", (rng.random(),))
    if mutation in ("null", "nan", "infinity", "-infinity", "huge", "finite"):
        value = {
            "null": None,
            "nan": math.nan,
            "infinity": math.inf,
            "-infinity": -math.inf,
            "huge": 1e300,
        }.get(mutation, rng.uniform(-2, 2))
        conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(t, col, one_row), (value,))
    elif mutation == "delete row":
        conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(t, one_row))
    elif mutation == "duplicate row":
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE {}").format(t, t, one_row))
    elif mutation == "renumber node" and keys:
        key = sql.Identifier(rng.choice(keys))
        conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(t, key, one_row), (rng.randint(-2, 9),))
    elif mutation == "drop column":
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(t, sql.Identifier(rng.choice(cols))))
    elif mutation in ("text column", "text value"):
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE text").format(t, col))
        if mutation == "text value":
            conn.execute(sql.SQL("UPDATE {} SET {} = 'n/a' WHERE {}").format(t, col, one_row))
    elif mutation == "empty table":
        conn.execute(sql.SQL("DELETE FROM {}").format(t))
    elif mutation == "orphan sample" and "sampleid" in cols:
        conn.execute(sql.SQL("UPDATE {} SET sampleid = -sampleid WHERE {}").format(t, one_row))
    else:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(o=inputs_options)
def test_whatever_is_generated_trains_correctly_or_fails_cleanly(db_url: str, o: dict[str, Any]) -> None:
    rng = random.Random(o["seed"])
    net = random_network(rng, o["depth"], o["bias"], "relu", "linear", "half-se")
    schema = f"f{next(counter)}"
    options = {k: o[k] for k in ("learning_rate", "epochs", "batch_size", "optimizer", "hidden_activation",
                                 "layout", "updates_per_statement", "checkpoint_every")}  # fmt: skip
    options["batch_size"] = min(options["batch_size"], o["samples"])
    fault, must_fail = o["fault"], False
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        create_tables(
            conn, net, random_params(rng, net), random_data(rng, net, o["samples"]), schema, samples=True
        )
        if fault and fault[0] in MUTATIONS:
            mutation, kind = fault
            k = rng.randint(1, net.depth)  # a network without bias tables has its biases in weightsK
            table = {
                "weights": f"weights{k}",
                "biases": f"biases{k}" if net.bias == "node" else f"weights{k}",
            }
            applied = mutate(conn, schema, table.get(kind, kind), mutation, rng)
            must_fail = applied and mutation in MUST_FAIL
        elif fault:
            options[fault[0]] = fault[1]
            must_fail = True
        watched = [schema, "sqlnet", "sqlnet_trace"]
        before = database_snapshot(conn, watched)
        try:
            result = sqlnet.train(db_url, schema=schema, **options)
        except sqlnet.SqlnetError as exc:
            event(f"refused: {type(exc).__name__} ({fault[0] if fault else 'no fault'})")
            assert str(exc), "an error without a message"
            after = database_snapshot(conn, watched)
            if options["checkpoint_every"] and isinstance(exc, sqlnet.Diverged):
                return  # a checkpointed run keeps its checkpoints: test_divergence checks them
            if isinstance(exc, sqlnet.Diverged):  # the run is on record as diverged, nothing else changed
                (status,) = conn.execute("SELECT status FROM sqlnet.runs ORDER BY run_id DESC LIMIT 1").fetchone()
                assert status == "diverged"
            if options["checkpoint_every"] or isinstance(exc, sqlnet.Diverged):
                # the run is on record as failed or diverged; the network's tables are untouched
                after = {k: v for k, v in after.items() if not k.startswith("sqlnet.")}
                before = {k: v for k, v in before.items() if not k.startswith("sqlnet.")}
            assert after == before, exc
            return
        assert not must_fail, f"{fault} was not refused"
        # it trained: exactly as the reference does on what the tables held
        event(f"trained ({fault if fault else 'no fault'}, bias {net.bias})")
        net = result.network
        hyper = {
            k: v
            for k, v in options.items()
            if k not in ("layout", "updates_per_statement", "checkpoint_every")
        }
        opts = TrainOptions(**hyper)
        want = reference.train(
            net, result.initial, table_data(conn, net, schema), opts.learning_rate, opts.epochs,
            batch_size=opts.batch_size, optimizer=opts.make_optimizer(),
        )  # fmt: skip
        assert result.losses == pytest.approx(want.losses, rel=1e-9, abs=1e-12)
        stored = table_params(conn, net, schema=schema)
        assert_close(stored.weights, want.params.weights)
        if net.bias != "none":
            assert_close(stored.biases, want.params.biases)


POST_LOSSES = reference.train(POST_NET, POST_PARAMS, POST_DATA, 0.001, 2).losses


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=80))
@example(name="\x00")
@example(name="x" * 64)  # one byte too long: PostgreSQL would cut it
@example(name="é" * 32)  # 32 characters, 64 bytes
@example(name="é" * 31 + "x")  # 63 bytes: fits
def test_any_schema_name_is_only_a_name(db_url: str, name: str) -> None:
    """Any text as --schema: the network in it trains, or the name is refused with a message;
    nothing outside that schema changes either way."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        outside = database_snapshot(conn, ["public"])
        try:
            sqlnet.init(db_url, schema=name, example="post", replace=True)
            result = sqlnet.train(db_url, schema=name, epochs=2, learning_rate=0.001)
        except sqlnet.SqlnetError as exc:
            event("refused")
            assert "\x00" in name or len(name.encode()) > 63, exc
            assert "is not a name PostgreSQL can hold" in str(exc) or "cuts names at 63 bytes" in str(exc)
        else:
            event("trained")
            assert "\x00" not in name and len(name.encode()) <= 63
            assert result.losses == pytest.approx(POST_LOSSES, rel=1e-12)
        assert database_snapshot(conn, ["public"]) == outside
