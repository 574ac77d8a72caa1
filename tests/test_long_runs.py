"""Issue 5 pieces: one trainer per network (advisory lock), --timeout, the loss curve of a run."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.guard import NetworkBusy, TrainingTimeout
from tests.helpers import snapshot
from tests.test_reference import assert_close


def wait_for_training(conn: psycopg.Connection) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (active,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sqlnet train %%: run %%' "
            "AND state = 'active'"
        ).fetchone()
        if active:
            return
        time.sleep(0.05)
    raise AssertionError("the first training never started")


def test_a_second_trainer_fails_at_once_naming_the_first(post_db: str, conn: psycopg.Connection) -> None:
    first_error: list[BaseException] = []

    def first() -> None:
        try:
            sqlnet.train(post_db, epochs=10_000_000, learning_rate=1e-12, timeout=4)
        except BaseException as exc:  # the timeout ends it; anything else is a failure
            first_error.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        wait_for_training(conn)
        started = time.monotonic()
        with pytest.raises(
            NetworkBusy, match=r"schema 'public' is being trained: sqlnet train public: run \d+"
        ):
            sqlnet.train(post_db)
        assert time.monotonic() - started < 5  # at once, not after the first
    finally:
        thread.join()
    assert len(first_error) == 1 and isinstance(first_error[0], TrainingTimeout)


def test_wait_queues_behind_the_first(post_db: str, conn: psycopg.Connection) -> None:
    results: list[sqlnet.TrainResult] = []
    thread = threading.Thread(
        target=lambda: results.append(sqlnet.train(post_db, epochs=400, learning_rate=1e-9))
    )
    thread.start()
    wait_for_training(conn)
    second = sqlnet.train(post_db, epochs=1, learning_rate=1e-9, wait=True)
    thread.join()
    first = results[0]
    # the second started from the weights the first wrote: it waited for the commit
    assert_close(second.initial.weights, first.params.weights)  # NUMERIC keeps 15 digits


def test_timeout_cancels_and_changes_nothing(post_db: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    started = time.monotonic()
    with pytest.raises(TrainingTimeout, match="longer than --timeout 1 s"):
        sqlnet.train(
            post_db, epochs=1_000_000, learning_rate=1e-12, updates_per_statement=1_000_000, timeout=1
        )
    assert time.monotonic() - started < 15
    assert snapshot(conn) == before


def test_cli_timeout_exits_1(post_db: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--database-url",
            post_db,
            "--epochs",
            "1000000",
            "--lr",
            "1e-12",
            "--updates-per-statement",
            "1000000",
            "--timeout",
            "0.5",
        ],
    )
    assert result.exit_code == 1
    assert "timeout" in result.stderr and "as it was" in result.stderr


def test_runs_show_prints_the_loss_curve(post_db: str) -> None:
    run = sqlnet.train(post_db, epochs=30, learning_rate=0.00001)
    result = CliRunner().invoke(main, ["runs", "--database-url", post_db, "show", str(run.run_id)])
    assert result.exit_code == 0, result.stderr
    assert f"run {run.run_id}" in result.stdout and "learning_rate" in result.stdout
    assert "epoch 30" in result.stdout and "*" in result.stdout  # the plot
    listing = CliRunner().invoke(main, ["runs", "--database-url", post_db])
    assert str(run.run_id) in listing.stdout


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_progress_arrives_while_the_statement_runs(
    db_url: str, conn: psycopg.Connection, layout: str
) -> None:
    sqlnet.init(db_url, layers=[3, 4, 1], seed=1, bias="node")
    conn.execute(
        "INSERT INTO inputs SELECT s, i, sin(s + i) FROM generate_series(1, 10) s, generate_series(1, 3) i"
    )
    conn.execute("INSERT INTO outputs SELECT s, 1, cos(s) FROM generate_series(1, 10) s")
    seen: list[sqlnet.Progress] = []
    result = sqlnet.train(
        db_url,
        epochs=6,
        batch_size=4,
        learning_rate=0.01,
        layout=layout,
        updates_per_statement=1000,
        on_update=seen.append,
    )
    assert result.statements == 1  # so every report below came from inside one running statement
    assert [p.done for p in seen] == list(range(1, 19))  # 6 epochs x 3 batches, in order
    assert all(p.total == 18 for p in seen)
    assert (seen[-1].epoch, seen[-1].batch) == (6, 3)
    if layout == "wide":
        assert all(p.loss is not None and p.loss >= 0 for p in seen)
