"""Divergence: a training whose numbers leave double precision's range stops with advice and keeps
the tables at their state before it, or at its last checkpoint; one that merely grows is warned about."""

from __future__ import annotations

import math
import re

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.db.tables import create_tables
from sqlnet.model.optimizers import Optimizer
from sqlnet.model.reference import train as reference_train
from tests.helpers import (
    POST_DATA,
    POST_NET,
    POST_PARAMS,
    SATURATED_NET,
    database_snapshot,
    saturated_softmax,
    table_params,
)
from tests.test_reference import assert_close


def assert_only_the_run_recorded(conn: psycopg.Connection, before: dict[str, str]) -> None:
    """Nothing changed but sqlnet's record of one diverged run (its weights were not written back)."""
    after = database_snapshot(conn)
    mine = {k: v for k, v in after.items() if not k.startswith("sqlnet.")}
    assert mine == {k: v for k, v in before.items() if not k.startswith("sqlnet.")}
    (run, status, error) = conn.execute(
        "SELECT run_id, status, error FROM sqlnet.runs ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert status == "diverged" and "nothing was written back" in error
    assert conn.execute("SELECT count(*) FROM sqlnet.run_params WHERE run_id = %s", (run,)).fetchone() == (0,)


def test_overflow_rolls_everything_back_with_advice(post_db: str, conn: psycopg.Connection) -> None:
    before = database_snapshot(conn)
    result = CliRunner().invoke(
        main, ["train", "--epochs", "400", "--learning-rate", "10", "--database-url", post_db]
    )
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert re.search(r"the training diverged (in|between) epoch", message), message
    assert "value out of range: overflow" in message
    assert "smaller learning rate (this run: 10; try 1)" in message
    assert "--optimizer adam" in message
    assert "every table is as it was before" in message and "diverged)" in message
    assert_only_the_run_recorded(conn, before)


def test_large_data_is_named_in_the_advice(post_db: str, conn: psycopg.Connection) -> None:
    conn.execute("UPDATE inputs SET inputvalue = inputvalue * 1e150")
    before = database_snapshot(conn)
    with pytest.raises(
        sqlnet.Diverged, match=r"scaling public.inputs \(it holds values up to 5e\+150; `sqlnet load --standardize`"
    ):
        sqlnet.train(post_db, epochs=5, learning_rate=0.1)
    assert_only_the_run_recorded(conn, before)


def test_divergence_keeps_the_last_checkpoint(post_db: str, conn: psycopg.Connection) -> None:
    with pytest.raises(sqlnet.Diverged) as info:
        sqlnet.train(post_db, epochs=400, learning_rate=10, checkpoint_every=1)
    message = str(info.value)
    kept = int(re.search(r"the tables hold the checkpoint after epoch (\d+) of run (\d+)", message).group(1))
    assert 1 <= kept < 400 and "sqlnet restore" in message and "--resume" not in message
    # the tables are exactly the reference after the checkpointed epochs
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 10, kept).params
    got = table_params(conn, POST_NET)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-9)
    (run,) = sqlnet.runs(post_db)
    assert run.status == "diverged" and "past 1e+06 times" in run.error
    assert len(sqlnet.run_losses(post_db, run.run_id)) == kept
    # and the run's weights from before it can be put back
    sqlnet.restore(post_db, run.run_id)
    got = table_params(conn, POST_NET)
    assert_close(got.weights + got.biases, POST_PARAMS.weights + POST_PARAMS.biases, 0)


def test_underflow_of_a_saturated_network_is_reported_as_divergence(
    db_url: str, conn: psycopg.Connection
) -> None:
    """PostgreSQL raises on float8 underflow where Python rounds to 0: a saturated sigmoid gets there."""
    sqlnet.init(db_url, layers=[3, 4, 2], seed=1)
    conn.execute("DROP TABLE inputs, outputs")
    conn.execute("CREATE TABLE inputs (sampleId int, inputNode int, inputValue float8)")
    conn.execute("CREATE TABLE outputs (sampleId int, outputNode int, outputValue float8)")
    conn.execute(
        "INSERT INTO inputs SELECT s, n, (s * n) % 7 FROM generate_series(1, 5) s, generate_series(1, 3) n"
    )
    conn.execute(
        "INSERT INTO outputs SELECT s, n, CASE WHEN n = 1 + s % 2 THEN 1 ELSE 0 END "
        "FROM generate_series(1, 5) s, generate_series(1, 2) n"
    )
    before = database_snapshot(conn)
    with pytest.raises(sqlnet.Diverged, match="underflow; a number fell below float8's smallest.* Try a smaller "
                       r"learning rate \(this run: 1000; try 100\), or scaling the inputs \(`sqlnet load --standardize`"):
        sqlnet.train(
            db_url, epochs=100, learning_rate=1000, hidden_activation="sigmoid", output_activation="softmax",
            loss="cross-entropy", optimizer="momentum", layout="long",
        )  # fmt: skip
    assert_only_the_run_recorded(conn, before)


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_adam_on_gradients_too_small_to_square_trains_to_the_reference(
    db_url: str, conn: psycopg.Connection, layout: str
) -> None:
    """Not divergence: a saturated softmax's gradients (~1e-304) square to under float8's range, which
    PostgreSQL raises as underflow; sqlnet counts such a square as 0, as the reference does."""
    params, data = saturated_softmax()
    create_tables(conn, SATURATED_NET, params, data, samples=True)
    result = sqlnet.train(
        db_url, epochs=3, learning_rate=0.01, hidden_activation="tanh", output_activation="softmax",
        loss="cross-entropy", optimizer="adam", batch_size=1, layout=layout, kernels="sql",
    )  # fmt: skip
    want = reference_train(SATURATED_NET, params, data, 0.01, 3, batch_size=1, optimizer=Optimizer("adam"))
    assert result.layout == layout
    got = table_params(conn, SATURATED_NET)
    assert_close(got.weights + got.biases, want.params.weights + want.params.biases, 1e-12)
    assert result.losses == pytest.approx(want.losses, rel=1e-12)


def test_a_growing_loss_is_warned_about(post_db: str) -> None:
    result = CliRunner().invoke(
        main, ["train", "--epochs", "5", "--learning-rate", "1", "--database-url", post_db]
    )
    assert result.exit_code == 0
    assert "warning: the loss grew from 9 in epoch 1 to" in " ".join(result.stderr.split())
    assert "diverging; try a smaller learning rate than 1" in " ".join(result.stderr.split())
    quiet = CliRunner().invoke(
        main, ["train", "--epochs", "5", "--learning-rate", "0.001", "--database-url", post_db]
    )
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_a_loss_past_a_million_times_the_first_is_an_error_and_writes_nothing(
    post_db: str, conn: psycopg.Connection
) -> None:
    """No overflow: the loss grows 9 -> 2e7 in four epochs (the reference says so) and the weights stay
    finite; that is still divergence. --quiet does not hide it; --allow-divergence keeps the weights."""
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 2, 6)
    assert want.losses[3] > 1e6 * want.losses[0] and all(map(math.isfinite, want.losses))
    before = database_snapshot(conn)
    result = CliRunner().invoke(main, ["train", "--epochs", "6", "--lr", "2", "--quiet", "--database-url", post_db])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "the loss grew from 9 in the first epoch to" in message and "past 1e+06 times" in message
    assert "--allow-divergence" in message and "every table is as it was before" in message
    assert_only_the_run_recorded(conn, before)
    (run,) = sqlnet.runs(post_db)
    assert [round(x, 1) for _, x in sqlnet.run_losses(post_db, run.run_id)[:4]] == [round(x, 1) for x in want.losses[:4]]
    kept = CliRunner().invoke(
        main, ["train", "--epochs", "6", "--lr", "2", "--quiet", "--allow-divergence", "--database-url", post_db]
    )
    assert kept.exit_code == 0 and "warning: the loss grew" in " ".join(kept.stderr.split())
    got = table_params(conn, POST_NET)
    assert_close(got.weights + got.biases, want.params.weights + want.params.biases, 1e-9)


def test_a_diverging_checkpointed_run_is_recorded_as_diverged(post_db: str) -> None:
    with pytest.raises(sqlnet.Diverged, match="past 1e\\+06 times"):
        sqlnet.train(post_db, epochs=6, learning_rate=2, checkpoint_every=2)
    (run,) = sqlnet.runs(post_db)
    assert run.status == "diverged"


def test_a_divergence_in_a_later_statement_records_every_epoch_before_it(post_db: str) -> None:
    """One update per statement: the growth is seen in the statement of epoch 4, and the diverged run's
    record holds the losses of epochs 1-4, each the reference's."""
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 2, 6)
    with pytest.raises(sqlnet.Diverged, match="in epoch 4"):
        sqlnet.train(post_db, epochs=6, learning_rate=2, updates_per_statement=1)
    (run,) = sqlnet.runs(post_db)
    got = [loss for _, loss in sqlnet.run_losses(post_db, run.run_id)]
    assert run.status == "diverged" and got == pytest.approx(want.losses[:4], rel=1e-9)


def test_the_divergence_baseline_is_the_whole_first_epoch() -> None:
    """With statements of fewer updates than an epoch, epoch 1's mean so far is its first batches' only:
    it becomes the baseline once epoch 1 is over (a first batch's 4.98 against epoch 1's 89.9 had called
    a 7.8e4-fold growth of the whole epoch a 1.4e6-fold one)."""
    from sqlnet.ops.execute import Growth

    growth, losses = Growth(), [4.977]
    growth.check(None, {1: 4.977}, None, lambda: losses)  # type: ignore[arg-type]
    assert growth.first is None
    losses[:] = [89.87, 6.97e6]
    growth.check(None, {2: 6.97e6}, None, lambda: losses)  # type: ignore[arg-type]
    assert growth.first == 89.87
    settled = Growth()
    settled.settle([3.0, 2.0])  # a checkpointed run's chunk that ended with epoch 1 and 2 over
    assert settled.first == 3.0
