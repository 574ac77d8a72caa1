"""The command line, through click's runner and as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from sqlnet.cli import main
from sqlnet.db import stop_embedded
from tests.helpers import POST_WEIGHTS_AFTER, snapshot
from tests.test_statement import GOLDEN


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_examples(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "Examples:" in out
    assert "--database-url" in out


def test_init_train_json_runs_restore(db_url: str, conn: psycopg.Connection) -> None:
    assert run("init", "--database-url", db_url, "--example", "post")[0] == 0
    before = snapshot(conn)
    code, out, _ = run("train", "--database-url", db_url, "--epochs", "1", "--learning-rate", "0.1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["losses"] == [9.0] and doc["final_loss"] == 9.0
    assert doc["params"][0]["weights"][0][0] == pytest.approx(POST_WEIGHTS_AFTER[0][0][0])
    code, out, _ = run("runs", "--database-url", db_url, "--json")
    assert [r["run_id"] for r in json.loads(out)] == [doc["run_id"]]
    code, out, _ = run("restore", "--database-url", db_url, str(doc["run_id"]))
    assert code == 0 and "restored the initial weights" in out
    assert snapshot(conn)["weights1"] == before["weights1"]


def test_runs_shows_the_latest_and_says_how_many_it_left_out(post_db: str) -> None:
    for _ in range(3):
        assert run("train", "--database-url", post_db, "--quiet")[0] == 0
    code, out, _ = run("runs", "--database-url", post_db, "--last", "2")
    assert code == 0 and "(and 1 older runs: --all shows every run)" in out
    first_column = re.findall(r"^│ (\d+) ", out, re.M)  # the run ids (other columns hold numbers too)
    assert first_column == ["2", "3"]
    code, out, _ = run("runs", "--database-url", post_db, "--all")
    assert re.findall(r"^│ (\d+) ", out, re.M) == ["1", "2", "3"] and "older runs" not in out
    code, out, _ = run("runs", "--database-url", post_db, "--json", "--last", "1")
    assert [r["run_id"] for r in json.loads(out)] == [3]


def test_train_prints_a_summary(post_db: str) -> None:
    code, out, _ = run("train", "--database-url", post_db, "--trace")
    assert code == 0
    assert "loss 9 before the update" in out
    assert "sqlnet phases" in out and "sqlnet restore" in out


def test_sql_is_the_golden_statement(post_db: str) -> None:
    code, out, _ = run("sql", "--database-url", post_db)
    assert code == 0
    assert out == (GOLDEN / "post_train.sql").read_text()


def test_check_passes_and_can_fail(post_db: str) -> None:
    code, out, _ = run("check", "--database-url", post_db, "--epochs", "5", "--lr", "0.0001")
    assert code == 0 and "agree" in out
    code, out, _ = run(
        "check", "--database-url", post_db, "--epochs", "5", "--lr", "0.0001", "--tolerance", "-1"
    )
    assert code == 1 and "DISAGREE" in out
    code, out, _ = run("check", "--database-url", post_db, "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_phases_after_trace(post_db: str) -> None:
    assert run("train", "--database-url", post_db, "--trace")[0] == 0
    code, out, _ = run("phases", "--database-url", post_db)
    assert code == 0
    for table in ("phase1_hidden_input", "phase5_error", "phase7_update"):
        assert f"sqlnet_trace.{table}" in out
    assert "[s, j]" in out  # the comment is printed as text, not eaten as markup
    code, out, _ = run("phases", "--database-url", post_db, "--json")
    doc = json.loads(out)
    hidden = next(p for p in doc["phases"] if p["name"] == "hidden_input")
    assert sorted(r["value"] for r in hidden["rows"] if r["quantity"] == "input") == [50, 59]
    assert sorted(r["value"] for r in hidden["rows"] if r["layer"] == 0) == [1, 3, 5]  # the inputs, a0


def test_errors_exit_1_with_a_message(db_url: str) -> None:
    code, _, err = run("train", "--database-url", db_url)
    assert code == 1
    assert "table 'inputs' not found" in err
    code, _, err = run("init", "--database-url", db_url, "--example", "post")
    assert code == 0
    code, _, err = run("init", "--database-url", db_url, "--example", "post")
    assert code == 1 and "already exist" in err and "--replace" in err
    code, _, err = run("restore", "--database-url", db_url, "42")
    assert code == 1 and "run 42 not found" in err


def test_usage_errors_exit_2() -> None:
    assert run("train", "--epochs", "many")[0] == 2


def test_psql_opens_the_database(post_db: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlnet.cli",
            "psql",
            "--database-url",
            post_db,
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM weights1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "6"


def test_ctrl_c_cancels_and_changes_nothing(post_db: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sqlnet.cli",
            "train",
            "--database-url",
            post_db,
            "--epochs",
            "1000000",
            "--lr",
            "1e-12",
            "--updates-per-statement",
            "1000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until the training statement is running on the server, then press Ctrl-C
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (active,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%%WITH RECURSIVE%%' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
        if active:
            break
        time.sleep(0.1)
    assert active, "the training never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "as it was" in err
    assert snapshot(conn) == before
    (left,) = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%WITH RECURSIVE%%' AND pid <> pg_backend_pid()"
    ).fetchone()
    assert left == 0  # the server stopped the statement too


def test_demo_uses_the_embedded_server_by_default(tmp_path: Path) -> None:
    """No URL anywhere: the CLI starts its own PostgreSQL in $SQLNET_HOME, and psql finds the same one."""
    env = {k: v for k, v in os.environ.items() if k not in ("SQLNET_DATABASE_URL", "DATABASE_URL")}
    env["SQLNET_HOME"] = str(tmp_path / "home")
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "sqlnet.cli", "demo"], env=env, capture_output=True, text=True, timeout=120
        )
        assert demo.returncode == 0, demo.stderr
        assert "largest difference SQL vs reference: 0 (agree)" in demo.stdout or "(agree)" in demo.stdout
        assert "-17.6" in demo.stdout and "loss (phase error): SQL 9, reference 9" in demo.stdout
        psql = subprocess.run(
            [
                sys.executable,
                "-m",
                "sqlnet.cli",
                "psql",
                "-X",
                "-A",
                "-t",
                "-c",
                "SELECT value FROM sqlnet_trace.phase1_hidden_input WHERE quantity = 'input' ORDER BY node",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert psql.stdout.split() == ["50", "59"], psql.stderr
    finally:
        stop_embedded(tmp_path / "home" / "pgdata")


def test_trace_tables_of_an_older_version_get_the_new_columns(post_db: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA sqlnet_trace")
    conn.execute("CREATE TABLE sqlnet_trace.phase0_start (run_id int, epoch int, value float8)")
    code, _, err = run("train", "--database-url", post_db, "--trace")
    assert code == 0, err
    (rows,) = conn.execute("SELECT count(*) FROM sqlnet_trace.phase0_start WHERE batch = 0").fetchone()
    assert rows == 24


def test_unforeseen_database_errors_are_reported_not_thrown(post_db: str, conn: psycopg.Connection) -> None:
    # a trace table of the right name (and owner) but a column the trace cannot fill: the server refuses
    conn.execute("CREATE SCHEMA sqlnet_trace")
    conn.execute("CREATE TABLE sqlnet_trace.phase0_start (run_id int, epoch boolean)")
    code, _, err = run("train", "--database-url", post_db, "--trace")
    assert code == 1
    assert "database error" in err and "no table changed" in err
