"""Every failure is a message and an exit code, never a traceback; a password is never shown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlnet.cli import main
from tests.helpers import url_password, url_with

SECRET = "s3cret-pa55word"


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, " ".join((result.stdout + result.stderr).split()), result.exception


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "is not a database URL sqlnet can read"),
        (f"postgresql://me:{SECRET}@localhost:abc/db", "is not a database URL sqlnet can read"),
        (f"postgresql://me:{SECRET}@localhost:1/db", "cannot connect to postgresql://me:***@localhost:1/db"),
        (f"postgresql://me@/db?host=/no/such/directory&password={SECRET}", "cannot connect to"),
        ("mysql://me@localhost/db", "sqlnet needs a PostgreSQL URL"),
    ],
)
@pytest.mark.parametrize("command", [["runs"], ["train"], ["check"], ["sql"], ["init", "--example", "post"]])
def test_a_bad_url_is_a_message_without_the_password(url: str, words: str, command: list[str]) -> None:
    code, output, exception = run(*command, "--database-url", url)
    assert code == 1, output
    assert isinstance(exception, SystemExit), exception  # handled, not a traceback
    assert words in output and output.startswith("error:"), output
    assert SECRET not in output


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--epochs", "3000000000"], "epochs must be at most 2147483647"),
        (["--batch-size", "3000000000"], "the batch size must be at most 2147483647"),
        (["--learning-rate", "nan"], "the learning rate must be a finite number above 0"),
        (["--learning-rate", "inf"], "the learning rate must be a finite number above 0"),
        (["--momentum", "nan", "--optimizer", "momentum"], "momentum must be in"),
        (["--beta2", "inf", "--optimizer", "adam"], "beta2 must be in"),
        (["--l2", "nan"], "--l2 must be a number >= 0"),
        (["--validation-fraction", "nan"], "--validation-fraction must be at least 0"),
    ],
)
def test_out_of_range_options_are_refused_before_anything_runs(post_db: str, option: list[str], words: str) -> None:
    code, output, _ = run("train", *option, "--database-url", post_db)
    assert code == 1 and words in output, output


def test_psql_gets_the_password_through_the_environment(post_db: str) -> None:
    """`ps` shows every process's command line: the password must not be on psql's."""
    # a server that checks passwords (a container) keeps its own; the embedded one trusts its socket
    secret = url_password(post_db) or SECRET
    url = url_with(post_db, password=secret)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlnet.cli", "psql", "--database-url", url, "-X", "-A", "-t", "-c",
         "SELECT pg_sleep(2)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline and seen is None:
            cmdline = Path(f"/proc/{proc.pid}/cmdline")
            if cmdline.exists():
                argv = cmdline.read_bytes().split(b"\0")
                if argv and argv[0].endswith(b"psql"):
                    seen = argv
                    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            time.sleep(0.05)
        assert seen is not None, "psql never started"
        assert not any(b"password" in a or f":{secret}@".encode() in a for a in seen), seen
        assert f"PGPASSWORD={secret}".encode() in environ
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f":{secret}@" not in out + err and "password=" not in out + err
    assert os.environ.get("PGPASSWORD") != secret


@pytest.mark.parametrize("checkpoints", [[], ["--checkpoint-every", "100000"]])
def test_timeout_bounds_a_huge_training(post_db: str, checkpoints: list[str]) -> None:
    """A billion epochs are never listed up front, and --timeout ends the command near its deadline
    (the bound here is loose: it proves the command does not run on, not how fast it stops)."""
    started = time.monotonic()
    code, output, _ = run("train", "--epochs", "1000000000", "--learning-rate", "1e-9", "--timeout", "2",
                          *checkpoints, "--database-url", post_db)  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 1 and "--timeout 2 s" in output, output
    assert elapsed < 15, elapsed


def test_timeout_bounds_waiting_for_another_sessions_lock(post_db: str) -> None:
    """Another session holds the weights table: the training gives up at its deadline, saying so."""
    import psycopg

    with psycopg.connect(post_db) as other:
        other.execute("LOCK TABLE public.weights1 IN ACCESS EXCLUSIVE MODE")
        for checkpoints in ([], ["--checkpoint-every", "1"]):
            started = time.monotonic()
            code, output, _ = run("train", "--timeout", "2", *checkpoints, "--database-url", post_db)
            elapsed = time.monotonic() - started
            assert code == 1 and "--timeout 2 s" in output, output
            assert elapsed < 15, elapsed
        other.rollback()


def test_a_read_only_database_is_a_message(post_db: str, tmp_path: Path) -> None:
    import psycopg

    from tests.helpers import database_snapshot

    name = psycopg.conninfo.conninfo_to_dict(post_db)["dbname"]
    with psycopg.connect(post_db, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        before = database_snapshot(admin)
    csv = tmp_path / "data.csv"
    csv.write_text("a,y\n1,2\n3,4\n")
    for command in (["train"], ["train", "--checkpoint-every", "1"], ["load", str(csv), "--target", "y"]):
        code, output, exception = run(*command, "--database-url", post_db)
        assert code == 1 and isinstance(exception, SystemExit), (command, output)
        assert "read-only transaction" in output, (command, output)
    with psycopg.connect(post_db, autocommit=True) as admin:
        assert database_snapshot(admin) == before


def test_a_sql_ascii_database_trains_like_any_other(server_url: str) -> None:
    """In a SQL_ASCII database psycopg hands out bytes unless the client encoding is set: sqlnet sets it."""
    import uuid

    import psycopg

    name = f"sqlnet_ascii_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    url = url_with(server_url, database=name)
    try:
        assert run("init", "--example", "post", "--database-url", url)[0] == 0
        code, output, _ = run("check", "--epochs", "3", "--learning-rate", "0.001", "--database-url", url)
        assert code == 0 and "agree" in output, output
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
