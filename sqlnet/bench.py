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
import contextlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sqlnet import reference
from sqlnet.db import Database
from sqlnet.network import Dataset, Network, Params, Sample
from sqlnet.tables import create_tables


@dataclass(frozen=True)
class Workload:
    name: str
    samples: int
    sizes: tuple[int, ...]
    hidden: str
    epochs: int
    learning_rate: float
    description: str
    competitors: tuple[str, ...]
    runs: int = 3
    output: str = "linear"
    loss: str = "half-se"
    batch_size: int = 0  # 0: full batch


WORKLOADS = [
    Workload(
        "post",
        1,
        (3, 2, 3),
        "relu",
        1,
        0.1,
        "the post's network, one step",
        ("sqlnet", "long", "numpy", "reference", "post-sql", "sklearn"),
    ),
    Workload(
        "regression-1k",
        1000,
        (8, 16, 1),
        "relu",
        100,
        0.05,
        "1000 samples, 8-16-1 ReLU, 100 epochs",
        ("sqlnet", "long", "numpy", "reference", "sklearn"),
        runs=3,
    ),
    Workload(
        "post-style-1k",
        1000,
        (8, 16, 1),
        "relu",
        3,
        0.05,
        "1000 samples, 8-16-1 ReLU, 3 epochs: against the post's approach generalised",
        ("sqlnet", "long", "numpy", "post-sql"),
    ),
    Workload(
        "tanh-5k",
        5000,
        (12, 24, 2),
        "tanh",
        30,
        0.05,
        "5000 samples, 12-24-2 tanh, 30 epochs",
        ("sqlnet", "numpy", "sklearn"),
    ),
    Workload(
        "samples-1k",
        1000,
        (8, 16, 1),
        "relu",
        5,
        0.05,
        "scaling in samples: 1k, 8-16-1, 5 epochs",
        ("sqlnet", "numpy"),
    ),
    Workload(
        "samples-10k", 10_000, (8, 16, 1), "relu", 5, 0.05, "scaling in samples: 10k", ("sqlnet", "numpy")
    ),
    Workload(
        "samples-100k",
        100_000,
        (8, 16, 1),
        "relu",
        5,
        0.05,
        "scaling in samples: 100k",
        ("sqlnet", "numpy"),
        runs=1,
    ),
    Workload(
        "width-64",
        1000,
        (8, 64, 1),
        "relu",
        5,
        0.05,
        "scaling in width: 8-64-1, 1k samples",
        ("sqlnet", "numpy"),
    ),
    Workload(
        "width-256", 1000, (8, 256, 1), "relu", 5, 0.05, "scaling in width: 8-256-1", ("sqlnet", "numpy")
    ),
    Workload(
        "width-1024",
        1000,
        (8, 1024, 1),
        "relu",
        2,
        0.05,
        "scaling in width: 8-1024-1 (too wide for the wide layout: long)",
        ("sqlnet", "numpy"),
        runs=1,
    ),
    Workload(
        "epochs-10",
        10_000,
        (8, 16, 1),
        "relu",
        10,
        0.05,
        "temp files against epochs: 10k, 10 epochs",
        ("sqlnet",),
        runs=1,
    ),
    Workload(
        "epochs-100",
        10_000,
        (8, 16, 1),
        "relu",
        100,
        0.05,
        "temp files against epochs: 10k, 100 epochs",
        ("sqlnet",),
        runs=1,
    ),
    Workload(
        "digits",
        1797,
        (64, 32, 10),
        "relu",
        5,
        0.1,
        "scikit-learn's digits (8x8 images, 10 classes), 64-32-10 softmax + cross-entropy, batches of 64, 5 epochs",
        ("sqlnet", "numpy", "sklearn"),
        output="softmax",
        loss="cross-entropy",
        batch_size=64,
    ),
]


def make_data(w: Workload) -> tuple[Network, Params, Dataset]:
    rng = random.Random(w.name)
    net = Network(w.sizes, w.hidden, w.output, w.loss, "node")
    params = Params(
        [
            [
                [rng.gauss(0, math.sqrt(2 / net.sizes[k - 1])) for _ in range(net.sizes[k])]
                for _ in range(net.sizes[k - 1])
            ]
            for k in range(1, net.depth + 1)
        ],
        [[[0.1] * net.sizes[k]] for k in range(1, net.depth + 1)],
    )
    if w.name == "digits":  # a data set that ships inside scikit-learn
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (
            net,
            params,
            Dataset(
                [
                    Sample(
                        s + 1, tuple(float(v) / 16 for v in x), tuple(float(c == label) for c in range(10))
                    )
                    for s, (x, label) in enumerate(zip(digits.data, digits.target))
                ]
            ),
        )
    coeffs = [[rng.uniform(-1, 1) for _ in range(w.sizes[0])] for _ in range(w.sizes[-1])]
    samples = []
    for s in range(1, w.samples + 1):
        x = tuple(rng.uniform(-1, 1) for _ in range(w.sizes[0]))
        t = tuple(math.sin(sum(c * v for c, v in zip(cs, x))) for cs in coeffs)
        samples.append(Sample(s, x, t))
    return net, params, Dataset(samples)


@dataclass
class Result:
    competitor: str
    process: list[float] = field(default_factory=list)  # whole-process seconds per run
    inner: list[float] = field(default_factory=list)  # training seconds per run
    max_diff: float | None = None  # largest |weight - sqlnet's weight|
    extra: dict[str, Any] = field(default_factory=dict)

    def median(self, which: str) -> float | None:
        values = getattr(self, which)
        return statistics.median(values) if values else None


def flat(p: Params) -> list[float]:
    return [v for m in p.weights + p.biases for row in m for v in row]


# --- sqlnet -------------------------------------------------------------------------------------


def run_sqlnet(
    url: str, schema: str, w: Workload, layout: str, params: Params, net: Network
) -> tuple[float, float, Params, dict]:
    """One whole `sqlnet train` process (restoring the initial weights first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute("DELETE FROM sqlnet.optimizer_state") if _has_state(conn) else None
    with psycopg.connect(url, autocommit=True) as conn:
        create_tables(conn, net, params, _data_cache[w.name], schema=schema, samples=True)
        (temp_before,) = conn.execute(
            "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    cmd = [
        sys.executable,
        "-m",
        "sqlnet.cli",
        "train",
        "--database-url",
        url,
        "--schema",
        schema,
        "--epochs",
        str(w.epochs),
        "--lr",
        str(w.learning_rate),
        "--hidden-activation",
        w.hidden,
        "--layout",
        layout,
        "--output-activation",
        w.output,
        "--loss",
        w.loss,
        "--batch-size",
        str(w.batch_size),
        "--json",
    ]
    started = time.perf_counter()
    with PeakMemory() as peak:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    process = time.perf_counter() - started
    doc = json.loads(out.stdout)
    trained = Params(
        [layer["weights"] for layer in doc["params"]], [layer["biases"] for layer in doc["params"]]
    )
    with psycopg.connect(url, autocommit=True) as conn:
        (temp_after,) = conn.execute(
            "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return (
        process,
        doc["sql_seconds"],
        trained,
        {
            "temp_bytes": temp_after - temp_before,
            "layout": doc["layout"],
            "statements": doc["statements"],
            "peak_backend_mb": peak.mb,
        },
    )


class PeakMemory:
    """The largest resident memory of any PostgreSQL backend while a block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakMemory:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
                info = proc.info
                if info["name"] == "postgres" and info["memory_info"] and "-D" not in (info["cmdline"] or []):
                    self.peak = max(self.peak, info["memory_info"].rss)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)


def _has_state(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('sqlnet.optimizer_state') IS NOT NULL").fetchone()[0]


def statement_facts(url: str, schema: str, w: Workload, layout: str) -> dict[str, Any]:
    """Planning time and size of the first training statement (EXPLAIN without running it)."""
    from sqlnet.api import TrainOptions, load_network
    from sqlnet.layouts import LAYOUTS
    from sqlnet.statement import training_statement

    db = Database(url)
    options = TrainOptions(
        epochs=w.epochs,
        learning_rate=w.learning_rate,
        hidden_activation=w.hidden,
        output_activation=w.output,
        loss=w.loss,
        batch_size=w.batch_size,
        layout=layout,
    )
    with db.transaction(commit=False) as s:
        tr = load_network(s, schema, options).trainings()[0]
        text = training_statement(tr).as_string(s.pg)
        s.pg.execute("SET LOCAL enable_nestloop = off")
        for statement in LAYOUTS[tr.layout].preparation(tr):  # mini-batches: the temp tables it reads
            s.pg.execute(statement)
        plan = s.pg.execute(
            sql.SQL("EXPLAIN (SUMMARY, FORMAT JSON) {}").format(sql.SQL(text.rstrip().rstrip(";")))
        )
        (doc,) = plan.fetchone()
    return {"planning_ms": round(doc[0]["Planning Time"], 1), "statement_kb": round(len(text) / 1024, 1)}


# --- NumPy --------------------------------------------------------------------------------------

NUMPY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    d = np.load(sys.argv[1])
    x, t = d["x"], d["t"]
    ws = [d[f"w{k}"] for k in range(int(d["depth"]))]
    bs = [d[f"b{k}"] for k in range(int(d["depth"]))]
    hidden, rate, epochs = str(d["hidden"]), float(d["rate"]), int(d["epochs"])
    output, batch = str(d["output"]), int(d["batch"]) or len(x)
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[hidden]
    dact = {"relu": lambda z, a: (z > 0).astype(z.dtype), "tanh": lambda z, a: 1 - a * a}[hidden]
    def softmax(z):
        e = np.exp(np.maximum(z - z.max(axis=1, keepdims=True), -700))
        return e / e.sum(axis=1, keepdims=True)
    started = time.perf_counter()
    for _, start in ((e, s) for e in range(epochs) for s in range(0, len(x), batch)):
        xb, tb = x[start:start + batch], t[start:start + batch]
        n = len(xb)
        a, zs = [xb], []
        for k, (w, b) in enumerate(zip(ws, bs)):
            z = a[-1] @ w + b
            zs.append(z)
            a.append((softmax(z) if output == "softmax" else z) if k == len(ws) - 1 else act(z))
        d = a[-1] - tb  # half squared error with a linear output, or cross-entropy with softmax
        grads = []
        for k in range(len(ws) - 1, -1, -1):
            grads.append((a[k].T @ d / n, d.sum(axis=0) / n))
            if k:
                d = (d @ ws[k].T) * dact(zs[k - 1], a[k])
        for k, (gw, gb) in zip(range(len(ws) - 1, -1, -1), grads):
            ws[k] = ws[k] - rate * gw
            bs[k] = bs[k] - rate * gb
    inner = time.perf_counter() - started
    print(json.dumps({"inner": inner, "w": [w.tolist() for w in ws], "b": [b.tolist() for b in bs]}))
    """
)


def run_numpy(
    w: Workload, net: Network, params: Params, data: Dataset, folder: Path
) -> tuple[float, float, Params]:
    import numpy as np

    path = folder / f"{w.name}.npz"
    if not path.exists():
        arrays: dict[str, Any] = {
            "x": np.array([s.x for s in data.samples]),
            "t": np.array([s.t for s in data.samples]),
            "depth": net.depth,
            "hidden": w.hidden,
            "output": w.output,
            "batch": w.batch_size,
            "rate": w.learning_rate,
            "epochs": w.epochs,
        }
        for k in range(net.depth):
            arrays[f"w{k}"] = np.array(params.weights[k])
            arrays[f"b{k}"] = np.array(params.biases[k][0])
        np.savez(path, **arrays)
    return run_script(NUMPY_SCRIPT, path)


def run_script(script: str, data: Path) -> tuple[float, float, Params]:
    """A competitor as a whole process: its wall time, the training time it reports, its weights."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, str(data)], capture_output=True, text=True, check=True
    )
    process = time.perf_counter() - started
    doc = json.loads(out.stdout)
    return process, doc["inner"], Params(doc["w"], [[b] for b in doc["b"]])


# --- scikit-learn ---------------------------------------------------------------------------------

SKLEARN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np
    from sklearn.neural_network import MLPRegressor
    d = np.load(sys.argv[1])
    x, t = d["x"], d["t"]
    depth = int(d["depth"])
    # sklearn reports the loss averaged over outputs too, but its gradient is a.T (y - t) / n, as ours
    rate = float(d["rate"])
    from sklearn.neural_network import MLPClassifier
    classify = str(d["output"]) == "softmax"
    Model = MLPClassifier if classify else MLPRegressor
    m = Model(hidden_layer_sizes=[d[f"w{k}"].shape[1] for k in range(depth - 1)], activation=str(d["hidden"]),
                     solver="sgd", batch_size=int(d["batch"]) or len(x), learning_rate_init=rate, momentum=0.0, nesterovs_momentum=False,
                     alpha=0.0, max_iter=int(d["epochs"]), shuffle=False, tol=0.0, n_iter_no_change=10**9,
                     warm_start=True)
    warnings.simplefilter("ignore")
    y = t.argmax(axis=1) if classify else t if t.shape[1] > 1 else t[:, 0]
    if classify:
        m.partial_fit(x[:20], y[:20], classes=np.arange(t.shape[1]))  # builds the layers; weights replaced next
    else:
        m.partial_fit(x[:1], y[:1])  # builds the layers; the weights are replaced next
    m.coefs_ = [d[f"w{k}"].copy() for k in range(depth)]
    m.intercepts_ = [d[f"b{k}"].copy() for k in range(depth)]
    m.n_iter_ = 0
    m._no_improvement_count = 0
    started = time.perf_counter()
    m.fit(x, y)
    inner = time.perf_counter() - started
    print(json.dumps({"inner": inner, "w": [c.tolist() for c in m.coefs_], "b": [b.tolist() for b in m.intercepts_]}))
    """
)


def run_sklearn(
    w: Workload, net: Network, params: Params, data: Dataset, folder: Path
) -> tuple[float, float, Params]:
    data_file = folder / f"{w.name}.npz"  # written by run_numpy
    assert data_file.exists()
    return run_script(SKLEARN_SCRIPT, data_file)


# --- the post's approach, generalised -------------------------------------------------------------


def post_sql(net: Network, epochs: int, rate: float, schema: str) -> sql.Composed:
    """The post's layout made correct for a 2-layer network with node biases and many samples.

    Every row is one path (sample, input i, hidden h, output o) through the network and carries
    every quantity in its own column; each recursive step is one phase (1 hidden input, 2 ReLU,
    3 output, 4 error, 5 hidden delta, 6 update); sums are window functions over the paths,
    divided by how often the cross join repeats each term (the post's `/ 3`, generalised; in the
    update, the count of the partition, which also makes it the mean over the samples). Kept here
    only, as the baseline sqlnet's layouts are measured against.
    """
    assert net.depth == 2
    n_in, _, n_out = net.sizes

    def t(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name)

    text = sql.SQL(
        """
WITH RECURSIVE paths AS (
  SELECT 1 AS epoch, 0 AS phase, x.sampleid::bigint AS s, x.inputnode::int AS i, w1.weight1outputnodenumber::int AS h,
         w2.weight2outputnodenumber::int AS o, x.inputvalue::float8 AS xv, w1.weight1value::float8 AS w1,
         b1.bias1value::float8 AS b1, w2.weight2value::float8 AS w2, b2.bias2value::float8 AS b2,
         t.outputvalue::float8 AS tv, NULL::float8 AS z1, NULL::float8 AS a1, NULL::float8 AS y,
         NULL::float8 AS d2, NULL::float8 AS d1
  FROM {inputs} x JOIN {w1t} w1 ON w1.weight1inputnodenumber = x.inputnode
  JOIN {b1t} b1 ON b1.bias1nodenumber = w1.weight1outputnodenumber
  JOIN {w2t} w2 ON w2.weight2inputnodenumber = w1.weight1outputnodenumber
  JOIN {b2t} b2 ON b2.bias2nodenumber = w2.weight2outputnodenumber
  JOIN {outputs} t ON t.sampleid = x.sampleid AND t.outputnode = w2.weight2outputnodenumber
  UNION ALL
  SELECT CASE WHEN phase = 6 THEN epoch + 1 ELSE epoch END, CASE WHEN phase = 6 THEN 1 ELSE phase + 1 END,
         s, i, h, o, xv,
         CASE WHEN phase = 5 THEN w1 - {rate} * sum(xv * d1) OVER (PARTITION BY i, h) / count(*) OVER (PARTITION BY i, h) ELSE w1 END,
         CASE WHEN phase = 5 THEN b1 - {rate} * sum(d1) OVER (PARTITION BY h) / count(*) OVER (PARTITION BY h) ELSE b1 END,
         CASE WHEN phase = 5 THEN w2 - {rate} * sum(a1 * d2) OVER (PARTITION BY h, o) / count(*) OVER (PARTITION BY h, o) ELSE w2 END,
         CASE WHEN phase = 5 THEN b2 - {rate} * sum(d2) OVER (PARTITION BY o) / count(*) OVER (PARTITION BY o) ELSE b2 END,
         tv,
         CASE WHEN phase IN (0, 6) THEN sum(w1 * xv) OVER (PARTITION BY s, h) / {n_out} + b1 ELSE z1 END,
         CASE WHEN phase = 1 THEN {act} ELSE a1 END,
         CASE WHEN phase = 2 THEN sum(w2 * a1) OVER (PARTITION BY s, o) / {n_in} + b2 ELSE y END,
         CASE WHEN phase = 3 THEN y - tv ELSE d2 END,
         CASE WHEN phase = 4 THEN sum(w2 * d2) OVER (PARTITION BY s, h) / {n_in} * {dact} ELSE d1 END
  FROM paths WHERE NOT (epoch = {epochs} AND phase = 6)
)
SELECT DISTINCT 'w1', i, h, w1 FROM paths WHERE epoch = {epochs} AND phase = 6
UNION ALL SELECT DISTINCT 'b1', NULL::int, h, b1 FROM paths WHERE epoch = {epochs} AND phase = 6
UNION ALL SELECT DISTINCT 'w2', h, o, w2 FROM paths WHERE epoch = {epochs} AND phase = 6
UNION ALL SELECT DISTINCT 'b2', NULL::int, o, b2 FROM paths WHERE epoch = {epochs} AND phase = 6
"""
    )
    act = {"relu": "greatest(z1, 0)", "tanh": "tanh(z1)", "linear": "z1"}[net.hidden_activation]
    dact = {"relu": "CASE WHEN z1 > 0 THEN 1 ELSE 0 END", "tanh": "(1 - a1 * a1)", "linear": "1"}[
        net.hidden_activation
    ]
    return text.format(
        inputs=t("inputs"),
        outputs=t("outputs"),
        w1t=t("weights1"),
        w2t=t("weights2"),
        b1t=t("biases1"),
        b2t=t("biases2"),
        rate=sql.Literal(rate),
        act=sql.SQL(act),
        dact=sql.SQL(dact),
        epochs=sql.Literal(epochs),
        n_in=sql.Literal(n_in),
        n_out=sql.Literal(n_out),
    )


def run_post_sql(
    url: str, schema: str, w: Workload, net: Network, params: Params
) -> tuple[float, float, Params]:
    """Each sum in the update is over paths: dividing by the number of paths in the partition and
    multiplying back by the paths per sample (n_in*n_out and friends) gives the mean over samples."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        create_tables(conn, net, params, _data_cache[w.name], schema=schema, samples=True)
    statement = post_sql(net, w.epochs, w.learning_rate, schema)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL enable_nestloop = off")
        inner_started = time.perf_counter()
        rows = conn.execute(statement).fetchall()
        inner = time.perf_counter() - inner_started
    process = time.perf_counter() - started
    n_in, n_hidden, n_out = net.sizes
    trained = reference.zeros_like(net)
    for q, i, j, v in rows:
        if q == "w1":
            trained.weights[0][i - 1][j - 1] = v
        elif q == "w2":
            trained.weights[1][i - 1][j - 1] = v
        elif q == "b1":
            trained.biases[0][0][j - 1] = v
        else:
            trained.biases[1][0][j - 1] = v
    return process, inner, trained


# --- running it all -----------------------------------------------------------------------------

_data_cache: dict[str, Dataset] = {}


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


def bench(url: str, names: list[str] | None, runs: int | None) -> dict[str, Any]:
    db = Database(url)
    with psycopg.connect(db.url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
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
                        process, inner, trained, extra = run_sqlnet(db.url, "bench", w, layout, params, net)
                        r.extra = extra
                        r.extra.update(statement_facts(db.url, "bench", w, layout))
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
                    r.process.append(process)
                    r.inner.append(inner)
                if competitor == "sqlnet":
                    sqlnet_params = trained
                if sqlnet_params is not None:
                    r.max_diff = max(abs(a - b) for a, b in zip(flat(trained), flat(sqlnet_params)))
            except Exception as exc:  # a competitor that fails is reported, not fatal
                r.extra["error"] = f"{type(exc).__name__}: {exc}"[:300]
            print(
                f"  {competitor}: process {r.median('process')}, inner {r.median('inner')}, diff {r.max_diff}",
                file=sys.stderr,
            )
            entries.append(r)
        results["workloads"].append({"workload": w.__dict__, "results": [e.__dict__ for e in entries]})
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
        "SQL statements). Ratios are against NumPy's whole process.",
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
    return "\n".join(lines + targets(results))


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
    return [*rows, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sqlnet.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url", help="default: $SQLNET_DATABASE_URL, $DATABASE_URL, or the embedded server"
    )
    parser.add_argument(
        "--workload",
        action="append",
        help="run only these (repeatable): " + ", ".join(w.name for w in WORKLOADS),
    )
    parser.add_argument("--runs", type=int, help="runs per competitor (default: per workload)")
    parser.add_argument("--output", default=".", help="folder for BENCHMARKS.md and benchmarks.json")
    args = parser.parse_args(argv)
    results = bench(args.database_url, args.workload, args.runs)
    out = Path(args.output)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "BENCHMARKS.md").write_text(markdown(results))
    print(f"wrote {out / 'BENCHMARKS.md'} and {out / 'benchmarks.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
