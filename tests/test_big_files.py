"""Big files stream: `sqlnet load` of a CSV and `sqlnet predict` over its rows hold neither in the client, so
the client's peak memory stays well under 200 MB and does not grow with the file (ten times the rows, the
same memory). Marked slow; CI runs it with 200,000 rows. BENCHMARKS.md's 1,000,000-row figures are this test's
own, run with SQLNET_BIG_ROWS=1000000 (`pytest -m slow -s tests/test_big_files.py` prints the times and peaks)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

FEATURES = 19
BIG = int(os.environ.get("SQLNET_BIG_ROWS", "200000"))  # the big file's rows; the small one has a tenth

# runs one command and prints the peak resident memory of that command alone (its own children are the
# only ones this wrapper waits for): kB on Linux
PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def write_csv(path: Path, rows: int, seed: int) -> tuple[float, float]:
    """A file of `rows` rows: 19 features and a target y; returns the sums of y and of the first feature."""
    rng = random.Random(seed)
    y_sum = f1_sum = 0.0
    with path.open("w") as f:
        f.write(",".join([f"f{k}" for k in range(1, FEATURES + 1)] + ["y"]) + "\n")
        for _ in range(rows):
            values = [round(rng.uniform(-5, 5), 6) for _ in range(FEATURES + 1)]
            y_sum += values[-1]
            f1_sum += values[0]
            f.write(",".join(repr(v) for v in values) + "\n")
    return y_sum, f1_sum


def peak_kb(*args: str) -> tuple[int, float]:
    """Run `sqlnet ARGS` as its own process: its peak resident memory in kB (it must succeed), and seconds."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "sqlnet.cli", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    code, kb = out.stdout.split()
    assert code == "0", out.stderr
    return int(kb), round(time.perf_counter() - started, 1)


def one(conn: psycopg.Connection, query: sql.Composable) -> float:
    row = conn.execute(query).fetchone()
    assert row is not None
    return float(row[0])


@pytest.mark.slow
def test_load_and_predict_stream_in_memory_that_does_not_grow_with_the_file(db_url: str, tmp_path: Path) -> None:
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    write_csv(small, BIG // 10, seed=1)
    y_sum, f1_sum = write_csv(big, BIG, seed=2)
    loads, seconds = {}, {}
    for name, path in (("small", small), ("big", big)):
        loads[name], seconds[name] = peak_kb("load", str(path), "--target", "y", "--schema", name, "--database-url", db_url)
    init = ["init", "--schema", "big", "--layers", f"{FEATURES},8,1", "--seed", "1", "--database-url", db_url]
    subprocess.run([sys.executable, "-m", "sqlnet.cli", *init], capture_output=True, check=True)
    predict, seconds["predict"] = peak_kb(
        "predict", "--schema", "big", "--table", "raw", "--into", "preds", "--database-url", db_url
    )
    print(json.dumps({"rows": [BIG // 10, BIG], "peak_kb": {"load_small": loads["small"], "load_big": loads["big"],
                      "predict_big": predict}, "seconds": seconds}))  # fmt: skip

    assert loads["big"] < 200_000 and predict < 200_000  # kB: well under 200 MB
    assert loads["big"] - loads["small"] < 10_000  # ten times the rows, no more memory (kB)
    with psycopg.connect(db_url) as conn:  # every row arrived, with its values as written
        big_schema = sql.Identifier("big")
        assert one(conn, sql.SQL("SELECT count(*) FROM {}.outputs").format(big_schema)) == BIG
        assert one(conn, sql.SQL("SELECT count(*) FROM {}.inputs").format(big_schema)) == BIG * FEATURES
        got_y = one(conn, sql.SQL('SELECT sum(outputvalue) FROM {}.outputs').format(big_schema))
        got_f1 = one(conn, sql.SQL('SELECT sum(inputvalue) FROM {}.inputs WHERE inputnode = 1').format(big_schema))
        assert got_y == pytest.approx(y_sum, rel=1e-12) and got_f1 == pytest.approx(f1_sum, rel=1e-12)
        assert one(conn, sql.SQL("SELECT count(*) FROM {}.preds").format(big_schema)) == BIG
