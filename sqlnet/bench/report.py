"""Running every competitor on the workloads, and BENCHMARKS.md with its targets."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from sqlnet.bench.competitors import (
    ROUND1_COMMIT,
    cli_times,
    round1_code,
    run_floor,
    run_numpy,
    run_post_sql,
    run_sklearn,
    run_sqlnet,
    statement_facts,
)
from sqlnet.bench.workloads import WORKLOADS, Result, _data_cache, flat, make_data
from sqlnet.db.connection import Database
from sqlnet.model import reference
from sqlnet.model.network import Params


def machine() -> dict[str, Any]:
    import numpy

    cpu = ""
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cores": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
    }


@contextlib.contextmanager
def own_database(url: str | None) -> Iterator[str]:
    """Where the benchmark writes (schemas bench and bench_post, runs): the database --database-url names, or
    else a database of its own on the default server, created here and dropped at the end, so that it never
    writes into the user's default database."""
    if url is not None:
        yield url
        return
    server = Database(None).url
    name = f"sqlnet_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"the benchmark runs in database {name}, made for it and dropped at the end", file=sys.stderr)
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


_KERNELS_BUILT: list[str] = []


def _with_kernels(url: str) -> None:
    """The native kernels, built from this checkout's sources, in the benchmark's database (once a run)."""
    from sqlnet.ops import kernels

    if url not in _KERNELS_BUILT:  # built anew: the checkout's sources, whatever the server had
        kernels.install(url, rebuild=True)
        _KERNELS_BUILT.append(url)


def bench(
    url: str, names: list[str] | None, runs: int | None, spark_recursive: Path | None = None
) -> dict[str, Any]:
    db = Database(url)
    with psycopg.connect(db.url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    results: dict[str, Any] = {"machine": machine(), "postgres": version, "workloads": []}
    folder = Path(tempfile.mkdtemp(prefix="sqlnet-bench-"))
    for w in WORKLOADS:
        if names and w.name not in names:
            continue
        net, params, data = make_data(w)
        _data_cache[w.name] = data
        n_runs = runs or w.runs
        print(f"{w.name}: {w.description}", file=sys.stderr)
        entries: list[Result] = []
        sqlnet_params: Params | None = None
        for competitor in w.competitors:
            r = Result(competitor)
            try:
                for _ in range(n_runs if competitor not in ("reference", "post-sql", "long") else 1):
                    if competitor in ("sqlnet", "long"):
                        layout = "auto" if competitor == "sqlnet" else "long"
                        # pure SQL: what sqlnet does without its kernels (the native competitor has them)
                        process, inner, trained, extra = run_sqlnet(db.url, "bench", w, layout, params, net,
                                                                    kernels="sql")  # fmt: skip
                        r.extra = extra
                        r.extra.update(statement_facts(db.url, "bench", w, layout))
                    elif competitor == "native":
                        _with_kernels(db.url)
                        process, inner, trained, extra = run_sqlnet(db.url, "bench", w, "auto", params, net,
                                                                    kernels="native")  # fmt: skip
                        r.extra = extra
                    elif competitor == "round1":
                        code = round1_code(folder)
                        process, inner, trained, extra = run_sqlnet(db.url, "bench", w, "auto", params, net, code)
                        r.extra = {"code": ROUND1_COMMIT, "statements": extra["statements"]}
                    elif competitor == "spark":
                        from sqlnet.bench.spark import run_spark

                        process, inner, trained, r.extra = run_spark(w, net, params, data, folder)
                    elif competitor == "spark-recursive":
                        from sqlnet.bench.spark import run_spark_recursive

                        if spark_recursive is None:
                            raise RuntimeError("not run: give the statement with --spark-recursive FILE")
                        process, inner, trained = run_spark_recursive(w, net, params, data, folder, spark_recursive)
                    elif competitor == "floor":
                        process, inner, trained = None, run_floor(db.url, "bench", w, params, net), None
                    elif competitor == "numpy":
                        process, inner, trained = run_numpy(w, net, params, data, folder)
                    elif competitor == "sklearn":
                        run_numpy(w, net, params, data, folder) if not (
                            folder / f"{w.name}.npz"
                        ).exists() else None
                        process, inner, trained = run_sklearn(w, net, params, data, folder)
                    elif competitor == "reference":
                        started = time.perf_counter()
                        trained = reference.train(net, params, data, w.learning_rate, w.epochs).params
                        inner = process = time.perf_counter() - started
                    else:
                        process, inner, trained = run_post_sql(db.url, "bench_post", w, net, params)
                    if process is not None:
                        r.process.append(process)
                    r.inner.append(inner)
                if competitor == "sqlnet" or (competitor in ("spark", "native") and "sqlnet" not in w.competitors):
                    sqlnet_params = trained
                if sqlnet_params is not None and trained is not None:
                    r.max_diff = max(abs(a - b) for a, b in zip(flat(trained), flat(sqlnet_params)))
            except Exception as exc:  # a competitor that fails is reported, not fatal
                r.extra["error"] = f"{type(exc).__name__}: {exc}"[:300]
            print(
                f"  {competitor}: process {r.median('process')}, inner {r.median('inner')}, diff {r.max_diff}",
                file=sys.stderr,
            )
            entries.append(r)
        results["workloads"].append({"workload": w.__dict__, "results": [e.__dict__ for e in entries]})
    if not names or "cli" in names:
        results["cli"] = cli_times(db.url)
    return results


def _fmt(v: float | None, unit: str = "s") -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# sqlnet benchmarks",
        "",
        "Written by `python -m sqlnet.bench` (do not edit by hand). Every competitor trains the same network from",
        "the same initial weights on the same data: full-batch gradient descent, node biases, half squared error;",
        '"max diff" is the largest difference of its final weights from sqlnet\'s. Times are medians; "process"',
        'is a whole process (start-up, imports, connection, checks), "training" the training alone (for sqlnet: its',
        "SQL statements). Ratios are against NumPy's whole process. \"round1\" is sqlnet as it was before",
        f"performance round 2 (commit {ROUND1_COMMIT}, extracted from git and run the same way); \"floor\" is the",
        "same arithmetic as one update's phases and gradient sums run as a plain prepared SELECT over the samples,",
        "once per epoch (no recursion, no update): the floor of interpreted SQL. Workloads with other options",
        "(Adam, shuffling, held-out samples) are run by sqlnet's competitors only.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, NumPy {m['numpy']}; "
        f"PostgreSQL {results['postgres']} (embedded, default settings).",
        "",
    ]
    for entry in results["workloads"]:
        w = entry["workload"]
        rows = {r["competitor"]: r for r in entry["results"]}
        numpy = rows.get("numpy")
        base = statistics.median(numpy["process"]) if numpy and numpy["process"] else None
        lines += [
            f"## {w['name']}: {w['description']}",
            "",
            "| competitor | process | training | vs NumPy (process) | max diff | notes |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            proc = statistics.median(r["process"]) if r["process"] else None
            inner = statistics.median(r["inner"]) if r["inner"] else None
            ratio = f"{proc / base:.1f}x" if proc and base else "–"
            diff = f"{r['max_diff']:.1e}" if r["max_diff"] is not None else "–"
            notes = ", ".join(f"{k} {v}" for k, v in r["extra"].items())
            lines.append(f"| {name} | {_fmt(proc)} | {_fmt(inner)} | {ratio} | {diff} | {notes} |")
        lines.append("")
    from sqlnet.bench.spark import crossing

    return "\n".join(lines + cli_section(results) + crossing(results) + targets(results))


def cli_section(results: dict[str, Any]) -> list[str]:
    cli = results.get("cli")
    if not cli:
        return []
    rows = ["## Commands that do little (whole processes, medians of 5)", "", "| command | time |", "|---|---|"]
    return [*rows, *(f"| `{name}` | {_fmt(seconds)} |" for name, seconds in cli.items()), ""]


def targets(results: dict[str, Any]) -> list[str]:
    """The performance targets of issue 4, checked against this run's numbers."""

    def med(workload: str, competitor: str, which: str) -> float | None:
        for entry in results["workloads"]:
            if entry["workload"]["name"] == workload:
                for r in entry["results"]:
                    if r["competitor"] == competitor and r[which]:
                        return statistics.median(r[which])
        return None

    def check(label: str, value: float | None, limit: float, fmt: str, ok: Callable[[float], bool]) -> str:
        if value is None:
            return f"| {label} | not measured | {fmt.format(limit)} | – |"
        return f"| {label} | {fmt.format(value)} | {fmt.format(limit)} | {'yes' if ok(value) else 'NO'} |"

    rows = ["## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    sq, npy = med("tanh-5k", "sqlnet", "process"), med("tanh-5k", "numpy", "process")
    rows.append(
        check(
            "tanh-5k: sqlnet / NumPy, whole processes",
            sq / npy if sq and npy else None,
            30,
            "{:.1f}x",
            lambda v: v <= 30,
        )
    )
    post, ours = med("post-style-1k", "post-sql", "inner"), med("post-style-1k", "sqlnet", "inner")
    rows.append(
        check(
            "1k samples: post-style SQL / sqlnet, in the database",
            post / ours if post and ours else None,
            100,
            "{:.0f}x",
            lambda v: v >= 100,
        )
    )
    for small, big in (("samples-1k", "samples-10k"), ("samples-10k", "samples-100k")):
        a, b = med(small, "sqlnet", "inner"), med(big, "sqlnet", "inner")
        rows.append(
            check(
                f"{big} / {small} time (10x the samples)",
                b / a if a and b else None,
                12,
                "{:.1f}x",
                lambda v: v <= 12,
            )
        )

    def extra(workload: str, key: str) -> float | None:
        for entry in results["workloads"]:
            if entry["workload"]["name"] == workload:
                for r in entry["results"]:
                    if r["competitor"] == "sqlnet" and key in r["extra"]:
                        return float(r["extra"][key])
        return None

    t10, t100 = extra("epochs-10", "temp_bytes"), extra("epochs-100", "temp_bytes")
    rows.append(
        check(
            "temp-file bytes: 100 epochs minus 10 epochs (10k samples)",
            None if t10 is None or t100 is None else t100 - t10,
            0,
            "{:.0f} B",
            lambda v: v <= 0,
        )
    )
    m10, m100 = extra("epochs-10", "peak_backend_mb"), extra("epochs-100", "peak_backend_mb")
    rows.append(
        check(
            "peak backend memory, 100 epochs / 10 epochs",
            m100 / m10 if m10 and m100 else None,
            1.25,
            "{:.2f}x",
            lambda v: v <= 1.25,
        )
    )
    worst = None
    for entry in results["workloads"]:
        for r in entry["results"]:
            if r["competitor"] in ("sqlnet", "long") and r["inner"] and "planning_ms" in r["extra"]:
                share = (
                    r["extra"]["planning_ms"]
                    * r["extra"].get("statements", 1)
                    / 1000
                    / statistics.median(r["inner"])
                )
                worst = share if worst is None else max(worst, share)
    worst_process = None
    for entry in results["workloads"]:
        for r in entry["results"]:
            if r["competitor"] in ("sqlnet", "long") and r["process"] and "planning_ms" in r["extra"]:
                share = (
                    r["extra"]["planning_ms"]
                    * r["extra"].get("statements", 1)
                    / 1000
                    / statistics.median(r["process"])
                )
                worst_process = share if worst_process is None else max(worst_process, share)
    rows.append(
        check(
            "planning share of the whole process, worst workload",
            worst_process,
            0.10,
            "{:.1%}",
            lambda v: v <= 0.10,
        )
    )
    rows.append(
        check(
            "planning share of the SQL time alone, worst workload (stricter)",
            worst,
            0.10,
            "{:.1%}",
            lambda v: v <= 0.10,
        )
    )
    rows += round2_targets(results, med, check)
    return [*rows, ""]


def round2_targets(results: dict[str, Any], med: Callable, check: Callable) -> list[str]:
    """The targets of issue 16 (performance round 2)."""
    rows = []

    def ratio(workload: str, a: str, b: str, which: str) -> float | None:
        x, y = med(workload, a, which), med(workload, b, which)
        return x / y if x and y else None

    rows.append(
        check("tanh-5k training: round 1 / now", ratio("tanh-5k-floor", "round1", "sqlnet", "inner"), 1.5,
              "{:.2f}x", lambda v: v >= 1.5)
    )  # fmt: skip
    rows.append(
        check("tanh-5k training: now / the floor (the same arithmetic as plain SELECTs)",
              ratio("tanh-5k-floor", "sqlnet", "floor", "inner"), 1.2, "{:.2f}x", lambda v: v <= 1.2)
    )  # fmt: skip
    rows.append(
        check("digits training: round 1 / now", ratio("digits-round1", "round1", "sqlnet", "inner"), 1.6,
              "{:.2f}x", lambda v: v >= 1.6)
    )  # fmt: skip
    rows.append(
        check("the README's digits example, whole process: round 1 / now",
              ratio("digits-readme", "round1", "sqlnet", "process"), 2.0, "{:.2f}x", lambda v: v >= 2.0)
    )  # fmt: skip
    rows.append(
        check("the post's network, whole `sqlnet train` process", med("post", "sqlnet", "process"), 0.4,
              "{:.2f} s", lambda v: v <= 0.4)
    )  # fmt: skip
    per_update = next(
        (r["extra"].get("per_update_s") for e in results["workloads"] if e["workload"]["name"] == "spark-5k"
         for r in e["results"] if r["competitor"] == "spark"), None,
    )  # fmt: skip
    rows.append(
        check("spark-5k: one Spark update once planned (issue 22)", per_update, 0.5, "{:.2f} s", lambda v: v <= 0.5)
    )
    for name, seconds in results.get("cli", {}).items():
        rows.append(check(f"`{name}`, whole process", seconds, 0.3, "{:.2f} s", lambda v: v <= 0.3))
    # issue 23: the native kernels against single-threaded NumPy, whole processes and training alone
    for workload, limit in (("tanh-5k", 1.0), ("digits", 1.5), ("wide-784", 3.0)):
        for which, what in (("process", "whole processes"), ("inner", "training alone")):
            rows.append(
                check(f"{workload}: native kernels / NumPy, {what} (issue 23)", ratio(workload, "native", "numpy", which),
                      limit, "{:.1f}x", lambda v, limit=limit: v <= limit)
            )  # fmt: skip
    for entry in results["workloads"]:
        name = entry["workload"]["name"]
        if any(r["competitor"] == "sklearn" for r in entry["results"]):
            rows.append(
                check(f"{name}: sqlnet / scikit-learn, whole processes", ratio(name, "sqlnet", "sklearn", "process"),
                      1.0, "{:.2f}x", lambda v: v <= 1.0)
            )  # fmt: skip
    return rows
