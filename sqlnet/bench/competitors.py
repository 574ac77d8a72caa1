"""Each competitor trains a workload and reports its times and final weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sqlnet.bench.workloads import Workload, _data_cache
from sqlnet.db.connection import Database
from sqlnet.db.tables import create_tables
from sqlnet.model import reference
from sqlnet.model.network import Dataset, Network, Params


def run_sqlnet(
    url: str, schema: str, w: Workload, layout: str, params: Params, net: Network, code: Path | None = None,
    kernels: str | None = None,
) -> tuple[float, float, Params, dict]:
    """One whole `sqlnet train` process (restoring the initial weights first); with `code`, the sqlnet
    package found there (round 1's) instead of this one."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute("DELETE FROM sqlnet.optimizer_state") if _has_state(conn) else None
    with psycopg.connect(url, autocommit=True) as conn:
        create_tables(conn, net, params, _data_cache[w.name], schema=schema, samples=True)
        (temp_before,) = conn.execute(  # type: ignore[misc]
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
        *w.train_options(),
        "--layout",
        layout,
        # every workload trains schema `bench` anew, with every function named: the stored definition of
        # the workload before is not this one's
        "--redefine",
        "--json",
        *(["--kernels", kernels] if kernels else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    if code:  # the process must find round 1's package, nothing else
        check = subprocess.run(
            [sys.executable, "-c", "import sqlnet; print(sqlnet.__file__)"], env=env, cwd=code,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert check.stdout.strip().startswith(str(code)), check.stdout
    started = time.perf_counter()
    with PeakMemory() as peak:
        # python -m puts the working directory first on the path: run where only `code` is found
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=code)
    process = time.perf_counter() - started
    doc = json.loads(out.stdout)
    trained = Params(
        [layer["weights"] for layer in doc["params"]], [layer["biases"] for layer in doc["params"]]
    )
    with psycopg.connect(url, autocommit=True) as conn:
        (temp_after,) = conn.execute(  # type: ignore[misc]
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


# --- round 1 and the floor ---------------------------------------------------------------------------

# the last commit before performance round 2 (issue 16): its sqlnet is the "round1" competitor
ROUND1_COMMIT = "b9fcf8e"


def round1_code(folder: Path) -> Path:
    """Round 1's sqlnet package, extracted from this checkout's git history into `folder` (once)."""
    target = folder / "round1"
    if not (target / "sqlnet").exists():
        target.mkdir(parents=True, exist_ok=True)
        repo = Path(__file__).resolve().parents[2]
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", ROUND1_COMMIT, "sqlnet"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run_floor(url: str, schema: str, w: Workload, params: Params, net: Network) -> float:
    """The floor of interpreted SQL for a full-batch workload: one update's phases and gradient sums,
    as the wide layout writes them, run as a plain prepared SELECT (planned once) over the samples in
    a temp table, once per epoch; no recursion, no update, nothing stored between phases."""
    from sqlnet.compile.wide import WIDE_TABLE, WideLayout
    from sqlnet.ops.common import TrainOptions, load_network

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        create_tables(conn, net, params, _data_cache[w.name], schema=schema, samples=True)
    options = TrainOptions(
        epochs=w.epochs, learning_rate=w.learning_rate, hidden_activation=w.hidden,
        output_activation=w.output, loss=w.loss, layout="wide",
    )  # fmt: skip
    layout = WideLayout()
    with Database(url).transaction(commit=False) as s:
        tr = next(iter(load_network(s, schema, options, redefine=True).trainings()))
        for statement in (*tr.dialect.session, *layout.settings(tr)):
            s.pg.execute(sql.Composed([statement]))
        s.pg.execute(sql.SQL("CREATE TEMP TABLE sqlnet_wide AS {}").format(layout._pivot(tr)))
        s.pg.execute(sql.SQL("ANALYZE {}").format(WIDE_TABLE))
        floor = layout.floor(tr, sql.SQL("SELECT * FROM {}").format(WIDE_TABLE))
        s.pg.execute(sql.SQL("PREPARE sqlnet_floor AS {}").format(floor))
        s.pg.execute("EXECUTE sqlnet_floor").fetchall()  # planned and warmed, not timed
        started = time.perf_counter()
        for _ in range(w.epochs):
            s.pg.execute("EXECUTE sqlnet_floor").fetchall()
        return time.perf_counter() - started


def cli_times(url: str, runs: int = 5) -> dict[str, float]:
    """Whole processes of commands that do little: their time is sqlnet's start and connection."""
    commands = {"sqlnet --help": ["--help"], "sqlnet runs": ["runs", "--database-url", url]}
    out = {}
    for name, args in commands.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sqlnet.cli", *args], capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        out[name] = sorted(times)[len(times) // 2]
    return out


def _has_state(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('sqlnet.optimizer_state') IS NOT NULL").fetchone()[0]  # type: ignore[index]


def statement_facts(url: str, schema: str, w: Workload, layout: str) -> dict[str, Any]:
    """Planning time and size of the first training statement (EXPLAIN without running it)."""
    from sqlnet.compile.statement import LAYOUTS, training_statement
    from sqlnet.ops.common import TrainOptions, load_network

    db = Database(url)
    options = TrainOptions(
        epochs=w.epochs,
        learning_rate=w.learning_rate,
        hidden_activation=w.hidden,
        output_activation=w.output,
        loss=w.loss,
        batch_size=w.batch_size,
        optimizer=w.optimizer,
        shuffle=w.shuffle,
        validation_fraction=w.validation,
        seed=1,
        layout=layout,
    )
    with db.transaction(commit=False) as s:
        tr = next(iter(load_network(s, schema, options, redefine=True).trainings()))
        text = training_statement(tr).as_string(s.pg)
        s.pg.execute("SET LOCAL enable_nestloop = off")
        for statement in LAYOUTS[tr.layout].preparation(tr):  # mini-batches: the temp tables it reads
            s.pg.execute(sql.Composed([statement]))
        plan = s.pg.execute(
            sql.SQL("EXPLAIN (SUMMARY, FORMAT JSON) {}").format(sql.SQL(text.rstrip().rstrip(";")))
        )
        (doc,) = plan.fetchone()  # type: ignore[misc]
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
    # single-threaded BLAS, as sqlnet's one backend is one core; OPENBLAS_CORETYPE (set on some machines here
    # to a core type that is not this CPU's) is left out for this command only
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, str(data)], capture_output=True, text=True, check=True, env=env
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
