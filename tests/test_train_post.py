"""The post's network, in its NUMERIC tables, trained inside PostgreSQL."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import psycopg
import pytest

import sqlnet
from sqlnet.db import psql_binary
from tests.helpers import POST_BIASES_AFTER, POST_NET, POST_PARAMS, POST_WEIGHTS_AFTER, snapshot, table_params
from tests.test_reference import assert_close
from tests.test_statement import GOLDEN


def test_one_step_gives_the_correct_numbers(post_db: str, conn: psycopg.Connection) -> None:
    result = sqlnet.train(post_db, epochs=1, learning_rate=0.1)
    assert result.losses == [9.0]
    assert_close(result.params.weights, POST_WEIGHTS_AFTER)
    assert_close(result.params.biases, POST_BIASES_AFTER)
    # and what is in the tables now, read independently
    stored = table_params(conn, POST_NET)
    assert_close(stored.weights, POST_WEIGHTS_AFTER)
    assert_close(stored.biases, POST_BIASES_AFTER)


def test_numeric_columns_stay_numeric_and_exact(post_db: str, conn: psycopg.Connection) -> None:
    sqlnet.train(post_db, epochs=1, learning_rate=0.1)
    value, bias = conn.execute(
        "SELECT weight1value, weight1bias FROM weights1 WHERE weight1inputnodenumber = 1 AND weight1outputnodenumber = 2"
    ).fetchone()
    assert isinstance(value, Decimal)
    assert value == Decimal("-0.3") and bias == Decimal("-2.3")


def test_run_is_recorded_and_restore_undoes_and_redoes_it(post_db: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    result = sqlnet.train(post_db, epochs=3, learning_rate=0.0001)  # (at 0.01 the loss grows 9 -> 1.3e10: diverges)
    after = snapshot(conn)
    assert after != before
    (run,) = sqlnet.runs(post_db)
    assert run.run_id == result.run_id and run.status == "finished" and run.epochs == 3
    assert run.final_loss == pytest.approx(result.losses[-1])
    assert [loss for _, loss in sqlnet.run_losses(post_db, run.run_id)] == pytest.approx(result.losses)
    sqlnet.restore(post_db, run.run_id, stage="initial")
    assert snapshot(conn) == before
    sqlnet.restore(post_db, run.run_id, stage="final")
    assert_close(table_params(conn, POST_NET).weights, result.params.weights)


def test_several_statements_equal_one(post_db: str, server_url: str) -> None:
    """Epochs split over statements (bounded temp files) give the same weights as one statement."""
    one = sqlnet.check(post_db, epochs=7, learning_rate=0.0001, updates_per_statement=100)
    many = sqlnet.check(post_db, epochs=7, learning_rate=0.0001, updates_per_statement=2)
    assert one.ok and many.ok
    assert many.sql_losses == pytest.approx(one.sql_losses, rel=1e-12)


@pytest.mark.parametrize("golden", ["post_train.sql", "post_train_long.sql"])
def test_golden_statement_runs_as_printed_in_psql(
    post_db: str, conn: psycopg.Connection, golden: str
) -> None:
    out = subprocess.run(
        [str(psql_binary()), post_db, "-X", "-v", "ON_ERROR_STOP=1", "-f", str(GOLDEN / golden)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "loss" in out.stdout and "(25 rows)" in out.stdout
    stored = table_params(conn, POST_NET)
    assert_close(stored.weights, POST_WEIGHTS_AFTER)
    assert_close(stored.biases, POST_BIASES_AFTER)


def test_sql_prints_exactly_the_golden_statement(post_db: str) -> None:
    assert (
        sqlnet.training_sql(post_db, epochs=1, learning_rate=0.1) == (GOLDEN / "post_train.sql").read_text()
    )


def test_check_agrees_over_many_epochs(post_db: str) -> None:
    report = sqlnet.check(post_db, epochs=60, learning_rate=0.00005)
    assert report.ok, report.differences
    assert report.sql_losses[-1] < report.sql_losses[0]
    assert len(report.differences) == 5


def test_check_changes_nothing(post_db: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    sqlnet.check(post_db, epochs=3, learning_rate=0.001)
    assert snapshot(conn) == before
    assert conn.execute("SELECT to_regclass('sqlnet.runs')").fetchone()[0] is None


def test_initial_params_read_back(post_db: str) -> None:
    result = sqlnet.train(post_db, epochs=1, learning_rate=0.1)
    assert result.initial == POST_PARAMS or result.initial.weights == [
        [[float(v) for v in r] for r in m] for m in POST_PARAMS.weights
    ]
