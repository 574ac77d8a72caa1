"""Issue 5 pieces: one trainer per network (advisory lock), --timeout, the loss curve of a run."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.db.guard import NetworkBusy, TrainingTimeout
from tests.helpers import snapshot
from tests.test_reference import assert_close


class Background:
    """A training in a thread, with an event set by its first update (reported while the SQL runs)."""

    def __init__(self, **kwargs: object) -> None:
        self.started = threading.Event()
        self.result: sqlnet.TrainResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=kwargs)
        self.thread.start()
        assert self.started.wait(30), f"the first training never started: {self.error!r}"

    def _run(self, **kwargs: object) -> None:
        try:
            self.result = sqlnet.train(on_update=lambda p: self.started.set(), **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            self.error = exc
            self.started.set()

    def join(self) -> None:
        self.thread.join()


def test_a_second_trainer_fails_at_once_naming_the_first(post_db: str) -> None:
    first = Background(database=post_db, epochs=10_000_000, learning_rate=1e-12, timeout=4)
    try:
        started = time.monotonic()
        with pytest.raises(
            NetworkBusy, match=r"schema 'public' is being trained: sqlnet train public: run \d+"
        ):
            sqlnet.train(post_db)
        assert time.monotonic() - started < 3  # at once, not after the first
    finally:
        first.join()
    assert isinstance(first.error, TrainingTimeout)


def test_wait_queues_behind_the_first(post_db: str) -> None:
    first = Background(database=post_db, epochs=30_000, learning_rate=1e-9)
    second = sqlnet.train(post_db, epochs=1, learning_rate=1e-9, wait=True)
    first.join()
    assert first.error is None and first.result is not None
    # the second started from the weights the first wrote: it waited for the commit
    assert_close(second.initial.weights, first.result.params.weights)  # NUMERIC keeps 15 digits


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


def _twin_networks(conn: psycopg.Connection, samples: int = 40) -> None:
    """The same network and data in schemas a and b, in float8 columns (exact when written back)."""
    import random

    from sqlnet.db.tables import create_tables
    from tests.helpers import random_data, random_network, random_params

    rng = random.Random(11)
    net = random_network(rng, 2, "node", "tanh", "linear", "half-se")
    params, data = random_params(rng, net), random_data(rng, net, samples)
    for schema in ("a", "b"):
        create_tables(conn, net, params, data, schema=schema, samples=True)


def _wait_for_checkpoints(conn: psycopg.Connection, epochs: int) -> None:
    """Until the running training has committed `epochs` epochs (its checkpoints), for a minute at most."""
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < epochs:
        time.sleep(0.1)
        if conn.execute("SELECT to_regclass('sqlnet.run_losses')").fetchone()[0]:
            (done,) = conn.execute("SELECT count(*) FROM sqlnet.run_losses").fetchone()
    assert done >= epochs, "no checkpoint within a minute"


def _weights(conn: psycopg.Connection, schema: str) -> list[tuple]:
    return conn.execute(
        f"SELECT weight1inputnodenumber, weight1outputnodenumber, weight1value FROM {schema}.weights1 ORDER BY 1, 2"
    ).fetchall()


def test_checkpoints_give_the_same_weights_as_one_transaction(db_url: str, conn: psycopg.Connection) -> None:
    _twin_networks(conn)
    options = dict(
        epochs=7, learning_rate=0.05, hidden_activation="tanh", batch_size=8, shuffle=3, optimizer="adam"
    )
    plain = sqlnet.train(db_url, schema="a", **options)
    checkpointed = sqlnet.train(db_url, schema="b", checkpoint_every=3, **options)
    assert _weights(conn, "a") == _weights(conn, "b")
    assert checkpointed.losses == plain.losses
    (status,) = conn.execute(
        "SELECT status FROM sqlnet.runs WHERE run_id = %s", (checkpointed.run_id,)
    ).fetchone()
    assert status == "finished"


def test_timeout_keeps_the_last_checkpoint(db_url: str, conn: psycopg.Connection) -> None:
    _twin_networks(conn, samples=200)
    options = dict(learning_rate=0.05, hidden_activation="tanh", layout="long")
    with pytest.raises(TrainingTimeout, match=r"checkpoint after epoch (\d+) of run (\d+)") as info:
        sqlnet.train(db_url, schema="a", epochs=100_000, checkpoint_every=1, timeout=3, **options)
    import re

    epoch, run_id = map(int, re.search(r"epoch (\d+) of run (\d+)", str(info.value)).groups())
    assert epoch >= 1
    (status,) = conn.execute("SELECT status FROM sqlnet.runs WHERE run_id = %s", (run_id,)).fetchone()
    assert status == "cancelled"
    # schema b trained exactly `epoch` epochs in one go holds a's checkpoint (the long layout's hash
    # aggregates may add in another order: equal to the last bits or so)
    sqlnet.train(db_url, schema="b", epochs=epoch, **options)
    for (i, j, got), (_, _, want) in zip(_weights(conn, "a"), _weights(conn, "b")):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (i, j)


def test_killed_client_resumes_to_the_uninterrupted_result(db_url: str, conn: psycopg.Connection) -> None:
    import os
    import signal
    import subprocess
    import sys

    _twin_networks(conn, samples=5000)
    # the wide layout adds in a fixed order, so the resumed weights can equal the others to the bit
    args = [
        "--epochs",
        "30",
        "--lr",
        "0.05",
        "--hidden-activation",
        "tanh",
        "--batch-size",
        "10",
        "--checkpoint-every",
        "2",
        "--layout",
        "wide",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlnet.cli", "train", "--database-url", db_url, "--schema", "a", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for_checkpoints(conn, 4)
    os.kill(proc.pid, signal.SIGKILL)  # a crash: nobody rolls back or marks the run
    proc.wait()
    (run_id, status) = conn.execute("SELECT run_id, status FROM sqlnet.runs").fetchone()
    assert status == "running"
    # once the dead client's backend is gone (it ends when it next writes to the closed socket), nobody
    # holds the network: the run shows as interrupted, with how to resume it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sqlnet.runs(db_url)[0].status == "running":
        time.sleep(0.2)
    (shown,) = sqlnet.runs(db_url)
    assert shown.status == "interrupted" and f"`sqlnet train --resume {run_id}` continues it" in (shown.error or "")
    resumed = sqlnet.train(db_url, resume=run_id, wait=True)
    assert resumed.run_id == run_id and len(resumed.losses) == 30
    uninterrupted = subprocess.run(
        [sys.executable, "-m", "sqlnet.cli", "train", "--database-url", db_url, "--schema", "b", *args],
        capture_output=True,
        text=True,
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert _weights(conn, "a") == _weights(conn, "b")
    losses = conn.execute(
        "SELECT run_id, epoch, loss FROM sqlnet.run_losses ORDER BY epoch, run_id"
    ).fetchall()
    by_run: dict[int, list[float]] = {}
    for r, _, loss in losses:
        by_run.setdefault(r, []).append(loss)
    first_run, second_run = by_run.values()
    assert first_run == second_run


def test_the_next_training_records_a_dead_run_as_interrupted(post_db: str, conn: psycopg.Connection) -> None:
    """A run left as running (its client died before sqlnet could say so) is shown as interrupted while
    nobody holds its network, and the network's next training writes that down."""
    dead = sqlnet.train(post_db, learning_rate=1e-5, checkpoint_every=1)
    conn.execute("UPDATE sqlnet.runs SET status = 'running', error = NULL WHERE run_id = %s", (dead.run_id,))
    (shown,) = sqlnet.runs(post_db)
    assert shown.status == "interrupted" and "`sqlnet train --resume" in (shown.error or "")
    sqlnet.train(post_db, learning_rate=1e-5)
    (status, error) = conn.execute("SELECT status, error FROM sqlnet.runs WHERE run_id = %s", (dead.run_id,)).fetchone()
    assert status == "interrupted" and "the client or the server died" in error


def test_resume_refuses_finished_or_uncheckpointed_runs(post_db: str) -> None:
    done = sqlnet.train(post_db, checkpoint_every=1)
    with pytest.raises(sqlnet.InputError, match="finished: there is nothing to resume"):
        sqlnet.train(post_db, resume=done.run_id)


def test_five_thousand_epochs_with_bounded_temp_files(post_db: str, conn: psycopg.Connection) -> None:
    def temp_bytes() -> int:
        (n,) = conn.execute(
            "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(n)

    before = temp_bytes()
    result = sqlnet.train(post_db, epochs=5000, learning_rate=1e-6, checkpoint_every=1000)
    assert len(result.losses) == 5000
    assert temp_bytes() - before < 1_000_000


def test_runs_show_draws_a_png(post_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = sqlnet.train(post_db, epochs=20, learning_rate=0.00001)
    target = tmp_path / "loss.png"
    result = CliRunner().invoke(
        main, ["runs", "show", str(run.run_id), "--database-url", post_db, "--plot", str(target)]
    )
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 5000


def test_a_terminated_backend_ends_the_training_clearly_and_it_resumes(db_url: str, conn: psycopg.Connection) -> None:
    """pg_terminate_backend of the trainer during a checkpointed training (an administrator's, or a
    failover's): the client says so within seconds, nothing past the last checkpoint is lost, the run shows
    as interrupted, and --resume ends bit for bit where the uninterrupted run does."""
    import subprocess
    import sys

    _twin_networks(conn, samples=5000)
    args = ["--epochs", "30", "--lr", "0.05", "--hidden-activation", "tanh", "--batch-size", "10",
            "--checkpoint-every", "2", "--layout", "wide"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlnet.cli", "train", "--database-url", db_url, "--schema", "a", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_checkpoints(conn, 4)
    (killed,) = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'sqlnet train a: run %'"
    ).fetchone()
    assert killed == 1
    terminated = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - terminated < 15
    assert proc.returncode == 1, err
    message = " ".join(err.split())
    assert "Traceback" not in err and "connection to the server was lost" in message, message
    assert "checkpoint" in message, message
    (run_id, kept) = conn.execute("SELECT run_id, count(*) FROM sqlnet.run_losses GROUP BY run_id").fetchone()
    assert kept >= 4 and kept % 2 == 0  # whole checkpoints only
    (shown,) = sqlnet.runs(db_url)
    assert shown.status == "interrupted"
    resumed = sqlnet.train(db_url, resume=run_id)
    assert len(resumed.losses) == 30
    uninterrupted = subprocess.run(
        [sys.executable, "-m", "sqlnet.cli", "train", "--database-url", db_url, "--schema", "b", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert _weights(conn, "a") == _weights(conn, "b")


def test_a_refusal_after_a_checkpoint_says_the_checkpoint_holds_and_resumes(
    db_url: str, conn: psycopg.Connection
) -> None:
    """The server refuses a later block (another session adds a CHECK the next write-back breaks, once
    the first checkpoint commits): the message says the tables hold that checkpoint and --resume
    continues -- not "no table changed" -- and the resumed run ends where one transaction would."""
    import threading

    _twin_networks(conn)
    options = dict(learning_rate=0.05, hidden_activation="tanh", kernels="sql")
    sqlnet.train(db_url, schema="b", epochs=1, **options)
    after_one = _weights(conn, "b")
    adders: list[threading.Thread] = []

    def add_constraint() -> None:
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("ALTER TABLE a.weights1 ADD CONSTRAINT frozen CHECK (false) NOT VALID")

    def freeze(epoch: int, loss: float) -> None:
        if epoch == 1:  # queued behind the training's locks: it lands when checkpoint 1 commits
            adders.append(threading.Thread(target=add_constraint))
            adders[0].start()
            time.sleep(0.2)

    with pytest.raises(sqlnet.DatabaseError) as info:
        sqlnet.train(db_url, schema="a", epochs=3, checkpoint_every=1, on_block=freeze, **options)
    adders[0].join()
    message = str(info.value)
    assert 'the database refused: new row for relation "weights1" violates check constraint "frozen" (SQLSTATE 23514)' in message
    run_id = int(message.split("after epoch 1 of run ")[1].split(";")[0])
    assert message.endswith(f"the tables hold the checkpoint after epoch 1 of run {run_id}; `sqlnet train --resume {run_id}` continues it")
    assert _weights(conn, "a") == after_one
    assert conn.execute("SELECT status, error FROM sqlnet.runs WHERE run_id = %s", (run_id,)).fetchone() == (
        "failed", message
    )
    conn.execute("ALTER TABLE a.weights1 DROP CONSTRAINT frozen")
    resumed = CliRunner().invoke(main, ["train", "--resume", str(run_id), "--database-url", db_url, "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    sqlnet.train(db_url, schema="b", epochs=2, **options)
    assert _weights(conn, "a") == _weights(conn, "b")


def test_a_server_short_of_temp_space_is_named_with_what_to_do(db_url: str, conn: psycopg.Connection) -> None:
    _twin_networks(conn, samples=30_000)
    conn.execute(psycopg.sql.SQL("ALTER DATABASE {} SET temp_file_limit = '64kB'").format(
        psycopg.sql.Identifier(conn.info.dbname)
    ))  # fmt: skip
    before = snapshot(conn, "a")
    result = CliRunner().invoke(main, ["train", "--schema", "a", "--database-url", db_url, "--kernels", "sql"])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    # PostgreSQL 18 quotes the setting's name, 15 does not
    assert re.search(r'database error: temporary file size exceeds "?temp_file_limit"? \(64kB\) \(SQLSTATE 53400\): '
                     r"the server ran short", message), message
    assert "--batch-size" in message and "no table changed" in message and "Traceback" not in message
    assert snapshot(conn, "a") == before
