"""The benchmark: `python -m sqlnet.bench` runs named workloads against competitors and writes
BENCHMARKS.md and benchmarks.json.

Every competitor trains the same network from the same initial weights on the same data with
the same maths (full-batch gradient descent, node biases, half squared error), and its final
weights are compared with sqlnet's. Times are medians of several runs: the whole process
(interpreter start, imports, connection, checks) and the training itself (for sqlnet: the SQL
statements' execution). Competitors:

- sqlnet (layout auto: wide) and sqlnet's long layout;
- NumPy doing the same maths (the practical limit on this machine);
- the pure-Python reference (small workloads only);
- the blog post's approach generalised: a cross join of inputs x hidden x outputs per sample,
  window functions for the sums, one phase per recursive step (a baseline that lives here only);
- scikit-learn's MLPRegressor with equal settings (plain full-batch SGD, no momentum, no L2),
  started from the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlnet.bench.competitors import post_sql
from sqlnet.bench.report import bench, markdown, own_database, targets
from sqlnet.bench.workloads import WORKLOADS, Workload, make_data

__all__ = ["WORKLOADS", "Workload", "bench", "main", "make_data", "markdown", "post_sql", "targets"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sqlnet.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        help="the database to write into (schemas bench, bench_post and its runs); default: a database of its own "
        "on the default server ($SQLNET_DATABASE_URL, $DATABASE_URL, or the embedded one), dropped at the end",
    )
    parser.add_argument(
        "--workload",
        action="append",
        help="run only these (repeatable; cli: the commands that do little): "
        + ", ".join(w.name for w in WORKLOADS),
    )
    parser.add_argument("--runs", type=int, help="runs per competitor (default: per workload)")
    parser.add_argument(
        "--spark-recursive",
        type=Path,
        metavar="FILE",
        help="the recursive-CTE Spark statement to measure against the client loop (spark-recursive-5k)",
    )
    parser.add_argument("--output", default=".", help="folder for BENCHMARKS.md and benchmarks.json")
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)  # before the run, not after an hour of it
    with own_database(args.database_url) as url:
        results = bench(url, args.workload, args.runs, args.spark_recursive)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "BENCHMARKS.md").write_text(markdown(results))
    print(f"wrote {out / 'BENCHMARKS.md'} and {out / 'benchmarks.json'}", file=sys.stderr)
