"""A network's tables on Apache Spark: one folder of Parquet files per table, under one directory.

The tables are the PostgreSQL ones, with the same names and columns: ``inputs``, ``outputs``,
``weights1..K`` (and ``biases1..K`` for node biases). sqlnet registers each as a temporary view of
the same name, so the statements read them by name; the parameters (a few thousand numbers at most)
are read into Python and checked there.

Writing back is atomic for a reader: a table sqlnet writes is a symbolic link to one version folder
(``.sqlnet/weights1-v00003``); a new version is written beside it and the link is switched with one
rename, so ``spark.read.parquet(DIR/weights1)`` sees the old version or the new one, never a mix.
(A folder a user made is moved into ``.sqlnet`` the first time: that one switch is not atomic.)
Runs and their losses are Parquet tables beside the network's (``runs``, ``run_losses``), appended to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlnet.compile.dialect import SPARK
from sqlnet.compile.tables import Table, TableMap, _bias_columns, _input_columns, _weight_columns
from sqlnet.compile.training import TRACE_SCHEMA
from sqlnet.errors import DatabaseError, InputError
from sqlnet.model.network import Network, Params

VERSIONS = ".sqlnet"
DEFINITION = "network.json"  # in VERSIONS: what the network is beyond its weights
STATE = "optimizer_state.json"  # in VERSIONS: the optimizer's state the last training ended with
CHECKPOINTS = "checkpoints.json"  # in VERSIONS: run id -> the last checkpoint of a run not yet finished
# the tables of a network (beside weightsK and biasesK) and its records: a name a user gives for a table
# sqlnet writes (predict's --into, export's --view, load's --raw-table) may not be one of them
NETWORK_TABLES = ("inputs", "outputs", "runs", "run_losses", "run_validation")
INTEGER_TYPES = ("byte", "short", "integer", "long")
NUMBER_TYPES = (*INTEGER_TYPES, "float", "double", "decimal")


def session(master: str = "local[*]", conf: dict[str, str] | None = None, log: Path | None = None) -> Any:
    """A SparkSession (the one running, or a new one): UI off and few shuffle partitions unless
    `conf` says otherwise; a clear error where pyspark or Java is missing. A new JVM writes its own
    output (start-up notices, Spark's log) to `log` instead of the terminal sqlnet prints to."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "the Spark engine needs pyspark: python -m pip install 'sqlnet[spark]' (and Java 17 or newer)"
        ) from None
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # sqlnet shows its own progress
        "spark.sql.shuffle.partitions": "4",
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName("sqlnet")
    for key, value in settings.items():
        builder = builder.config(key, value)
    running = SparkSession.getActiveSession()
    try:
        with _stderr_to(log if running is None else None):  # only a JVM that starts now
            spark = builder.getOrCreate()
    except Exception as exc:  # pyspark raises a bare runtime error when the JVM cannot start
        raise DatabaseError(
            f"could not start Spark ({master}): {str(exc).splitlines()[0]}. Spark needs Java 17 or newer "
            f"(JAVA_HOME, or java on the PATH)"
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextlib.contextmanager
def _stderr_to(log: Path | None) -> Iterator[None]:
    """File descriptor 2 pointed at `log` while the JVM starts: it keeps the stderr it was started with."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


class ParquetTables:
    """The tables of one network: DIR/<table> folders of Parquet files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.where = str(self.root)

    def read(self, spark: Any, name: str) -> Any:
        return spark.read.parquet(str(self.path(name)))

    def source(self, name: str) -> str:
        """How a printed script makes the table a view (a path in SQL text: refused if it could break out)."""
        path = str(self.path(name))
        if "'" in path or "\\" in path:
            raise InputError(f"the path {path!r} cannot be written into a printed script: move the tables")
        return f"USING parquet OPTIONS (path '{path}')"

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def register(self, spark: Any, name: str) -> dict[str, tuple[str, str]]:
        """Make the table a temporary view of its name; returns its columns, lower-cased name ->
        (name, Spark type name)."""
        if not self.exists(name):
            raise InputError(
                f"table {name!r} not found in {self.where}: a network needs a folder of Parquet files per table "
                f"(`sqlnet init --engine spark --parquet {self.root}` makes the post's)"
            )
        df = self.read(spark, name)
        df.createOrReplaceTempView(name)
        columns: dict[str, tuple[str, str]] = {}
        for field in df.schema.fields:
            if field.name.lower() in columns:
                raise InputError(
                    f"table {name!r} has both columns {columns[field.name.lower()][0]!r} and {field.name!r}, "
                    f"which differ only in case: rename one"
                )
            columns[field.name.lower()] = (field.name, field.dataType.typeName())
        return columns

    def write(self, spark: Any, name: str, rows: list[tuple], schema: str) -> None:
        """Write a new version of a table and switch to it with one rename (see the module's doc)."""
        self.write_frame(name, spark.createDataFrame(rows, schema).coalesce(1))

    def write_frame(self, name: str, frame: Any) -> None:
        """Write a DataFrame as a new version of a table and switch to it with one rename."""
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        link = self.path(name)
        numbers = [int(m.group(1)) for p in versions.glob(f"{name}-v*") if (m := re.fullmatch(rf"{name}-v(\d+)", p.name))]
        target = versions / f"{name}-v{max(numbers, default=0) + 1:05d}"
        frame.write.mode("error").parquet(str(target))
        if link.exists() and not link.is_symlink():  # a folder the user made: kept as version 0
            os.rename(link, versions / f"{name}-v00000")
        temp = link.with_name(f".{name}.switch")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        temp.symlink_to(os.path.relpath(target, link.parent))
        os.replace(temp, link)  # atomic: the link names the old version or the new one
        for old in sorted(versions.glob(f"{name}-v*"))[:-2]:  # the previous version stays, for undo
            shutil.rmtree(old, ignore_errors=True)

    def append(self, spark: Any, name: str, rows: list[tuple], schema: str) -> None:
        spark.createDataFrame(rows, schema).coalesce(1).write.mode("append").parquet(str(self.path(name)))

    # --- the network's definition ------------------------------------------------------------------

    def read_definition(self) -> dict[str, Any] | None:
        return self._read(DEFINITION)

    def save_definition(self, definition: dict[str, Any]) -> None:
        self._save(DEFINITION, definition)

    def read_state(self) -> dict[str, Any] | None:
        """The optimizer state kept for the network: {"optimizer", "t", "arrays": {name: values}}."""
        return self._read(STATE)

    def save_state(self, state: dict[str, Any] | None) -> None:
        if state is None:
            with contextlib.suppress(FileNotFoundError):
                (self.root / VERSIONS / STATE).unlink()
            return
        self._save(STATE, state)

    def checkpoints(self) -> dict[int, dict[str, Any]]:
        """The last checkpoint of every checkpointed run that has not finished, by run id."""
        return {int(run): doc for run, doc in (self._read(CHECKPOINTS) or {}).items()}

    def save_checkpoint(self, run_id: int, doc: dict[str, Any] | None) -> None:
        """Keep a run's checkpoint (replacing its last), or with None drop it (the run has finished)."""
        docs = self.checkpoints()
        if doc is None:
            docs.pop(run_id, None)
        else:
            docs[run_id] = doc
        self._save(CHECKPOINTS, {str(run): d for run, d in docs.items()})

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self.root / VERSIONS / name
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, name: str, doc: dict[str, Any]) -> None:
        """Written whole, then renamed over the old one: a reader sees one or the other."""
        path = self.root / VERSIONS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(doc))  # repr of every float: the doubles come back exactly
        os.replace(temp, path)


# in a catalog database, the documents kept in DIR/.sqlnet are one-row tables of JSON
CATALOG_DOCUMENTS = {DEFINITION: "sqlnet_network", STATE: "sqlnet_state", CHECKPOINTS: "sqlnet_checkpoints"}


class CatalogTables(ParquetTables):
    """The tables of one network in a database of Spark's catalog (`--spark-database NAME`): read with
    spark.table, replaced with INSERT OVERWRITE (Spark writes the new files, then swaps them in; the
    catalog's own guarantees apply), runs appended. The network's definition and optimizer state are
    one-row tables of JSON beside them (sqlnet_network, sqlnet_state). A catalog that outlives the
    process needs a metastore (e.g. --spark-conf spark.sql.catalogImplementation=hive)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.root = Path(database)
        self.where = f"Spark database {database!r}"
        self.spark: Any = None

    def bind(self, spark: Any) -> CatalogTables:
        self.spark = spark
        return self

    def qualified(self, name: str) -> str:
        return f"{quote(self.database)}.{quote(name)}"

    def exists(self, name: str) -> bool:
        return bool(self.spark.catalog.tableExists(f"{self.database}.{name}"))

    def path(self, name: str) -> Path:
        raise InputError(f"{name} is a table of {self.where}, not a folder")

    def read(self, spark: Any, name: str) -> Any:
        return spark.table(self.qualified(name))

    def source(self, name: str) -> str:
        return f"AS SELECT * FROM {self.qualified(name)}"

    def register(self, spark: Any, name: str) -> dict[str, tuple[str, str]]:
        if not spark.catalog.databaseExists(self.database):
            raise InputError(f"Spark database {self.database!r} does not exist: create it, or use --parquet DIR")
        if not self.exists(name):
            raise InputError(
                f"table {name!r} not found in {self.where}: `sqlnet init --engine spark --spark-database "
                f"{self.database}` makes the post's"
            )
        return super().register(spark, name)

    def write_frame(self, name: str, frame: Any) -> None:
        if self.exists(name):
            frame.write.insertInto(self.qualified(name), overwrite=True)
        else:
            frame.write.saveAsTable(self.qualified(name))

    def append(self, spark: Any, name: str, rows: list[tuple], schema: str) -> None:
        spark.createDataFrame(rows, schema).write.mode("append").saveAsTable(self.qualified(name))

    def _read(self, name: str) -> dict[str, Any] | None:
        table = CATALOG_DOCUMENTS[name]
        if not self.exists(table):
            return None
        rows = self.spark.table(self.qualified(table)).collect()
        return json.loads(rows[0][0]) if rows else None

    def _save(self, name: str, doc: dict[str, Any]) -> None:
        table = CATALOG_DOCUMENTS[name]
        frame = self.spark.createDataFrame([(json.dumps(doc),)], "doc string")
        frame.write.mode("overwrite").saveAsTable(self.qualified(table))

    def save_state(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.spark.sql(f"DROP TABLE IF EXISTS {self.qualified(CATALOG_DOCUMENTS[STATE])}")
            return
        self._save(STATE, state)


def refuse_own_name(name: str, option: str, where: str, also: tuple[str, ...] = ()) -> None:
    """Refuse a table name a user gave for something sqlnet writes (`option` says which) where it is not a
    plain folder name, or would take the place of the network's own tables (or of `also`)."""
    if not name or "/" in name or name.startswith((".", "sqlnet_")):
        raise InputError(f"{name!r} is not a table name sqlnet can use in {where}: a plain folder name")
    if name in NETWORK_TABLES or name.startswith(("weights", "biases")) or name in also:
        raise InputError(f"{option} {name} would overwrite one of the network's own tables or the samples: "
                         f"name another")  # fmt: skip


def map_table(tables: ParquetTables, spark: Any, name: str, roles: dict[str, str], optional: tuple[str, ...] = ()) -> Table:
    columns = tables.register(spark, name)
    mapped: dict[str, str] = {}
    integers: set[str] = set()
    for role, column in roles.items():
        if column not in columns:
            if role in optional:
                continue
            raise InputError(
                f"table {name!r} has no column {column!r} (it has {', '.join(c for c, _ in columns.values())})"
            )
        actual, kind = columns[column]
        if kind not in NUMBER_TYPES:
            raise InputError(f"{name}.{actual} is {kind}, not a number: write it as double")
        mapped[role] = actual
        if kind in INTEGER_TYPES:
            integers.add(role)
    return Table(None, name, mapped, frozenset(integers))


def discover(tables: ParquetTables, spark: Any, bias: str | None = None) -> TableMap:
    """The network's tables as temporary views, mapped like PostgreSQL's."""
    inputs = map_table(tables, spark, "inputs", {"sample": "sampleid", **_input_columns("input")}, ("sample",))
    outputs = map_table(tables, spark, "outputs", {"sample": "sampleid", **_input_columns("output")}, ("sample",))
    if inputs.has("sample") != outputs.has("sample"):
        raise InputError("inputs and outputs must both have a sampleId column, or neither")
    depth = 0
    while tables.exists(f"weights{depth + 1}"):
        depth += 1
    if depth == 0:
        raise InputError(f"table 'weights1' not found in {tables.where}: a network needs at least weights1")
    weights = tuple(map_table(tables, spark, f"weights{k}", _weight_columns(k), ("bias",)) for k in range(1, depth + 1))
    has_bias_tables = all(tables.exists(f"biases{k}") for k in range(1, depth + 1))
    if bias is None:
        bias = "node" if has_bias_tables else "edge" if all(w.has("bias") for w in weights) else "none"
    biases: tuple[Table, ...] = ()
    if bias == "node":
        biases = tuple(map_table(tables, spark, f"biases{k}", _bias_columns(k)) for k in range(1, depth + 1))
    elif bias == "edge" and not all(w.has("bias") for w in weights):
        missing = next(w for w in weights if not w.has("bias"))
        raise InputError(f"bias per edge needs a bias column in {missing.name}")
    return TableMap(None, inputs, outputs, weights, biases, bias, resolved_schema=tables.where)


quote = SPARK.quote  # a name as Spark SQL quotes it (a backtick inside is doubled): never read as SQL


def _rows(spark: Any, t: Table, roles: list[str]) -> list[tuple]:
    cols = ", ".join(quote(t.columns[r]) for r in roles)
    return [tuple(r) for r in spark.sql(f"SELECT {cols} FROM {quote(t.name)}").collect()]


def _describe(t: Table, roles: list[str], row: tuple) -> str:
    return ", ".join(f"{t.columns[r]} = {'NULL' if v is None else v}" for r, v in zip(roles, row))


def _matrix(spark: Any, t: Table, row_role: str, col_role: str, value_roles: list[str]) -> dict[tuple[int, int], list[float]]:
    roles = [row_role, col_role, *value_roles]
    out: dict[tuple[int, int], list[float]] = {}
    for row in _check_nulls(spark, t, roles):
        i, j = row[0], row[1]
        if i != int(i) or j != int(j):
            raise InputError(f"{t.name} has a node number that is not whole in the row {_describe(t, roles, row)}")
        key = (int(i), int(j))
        if key in out:
            raise InputError(f"{t.name} has the row {_describe(t, roles[:2], row[:2])} twice")
        out[key] = [float(v) for v in row[2:]]
    return out


def _nodes(cells: dict[tuple[int, int], list[float]], t: Table, which: int) -> int:
    numbers = sorted({key[which] for key in cells})
    if numbers != list(range(1, len(numbers) + 1)):
        raise InputError(f"{t.name}'s nodes must be numbered 1..n, found {numbers[:5]}{'...' if len(numbers) > 5 else ''}")
    return len(numbers)


def read_network(spark: Any, tm: TableMap) -> tuple[tuple[int, ...], Params]:
    """The layer sizes and the parameters, checked: no NULLs, every (i, j) once, layers that chain."""
    sizes: list[int] = []
    weights, biases = [], []
    for k, w in enumerate(tm.weights, start=1):
        values = ["value", "bias"] if tm.bias == "edge" else ["value"]
        cells = _matrix(spark, w, "in", "out", values)
        if not cells:
            raise InputError(f"{w.name} is empty: a layer needs its weights")
        n_in, n_out = _nodes(cells, w, 0), _nodes(cells, w, 1)
        if len(cells) != n_in * n_out:
            raise InputError(f"{w.name} has {len(cells)} rows, but {n_in} x {n_out} nodes need {n_in * n_out}")
        if sizes and sizes[-1] != n_in:
            raise InputError(
                f"the layers do not chain: weights{k - 1} has {sizes[-1]} output nodes but {w.name} has {n_in} "
                f"input nodes"
            )
        sizes += [n_in, n_out] if not sizes else [n_out]
        weights.append([[cells[(i, j)][0] for j in range(1, n_out + 1)] for i in range(1, n_in + 1)])
        if tm.bias == "edge":
            biases.append([[cells[(i, j)][1] for j in range(1, n_out + 1)] for i in range(1, n_in + 1)])
        elif tm.bias == "node":
            b = tm.biases[k - 1]
            node_cells = {(1, int(r[0])): [r[1]] for r in _check_nulls(spark, b, ["node", "value"])}
            if sorted(j for _, j in node_cells) != list(range(1, n_out + 1)):
                raise InputError(f"{b.name} must have one row per node 1..{n_out} of layer {k}")
            biases.append([[float(node_cells[(1, j)][0]) for j in range(1, n_out + 1)]])
        else:
            biases.append([])
    return tuple(sizes), Params(weights, biases)


def _check_nulls(spark: Any, t: Table, roles: list[str]) -> list[tuple]:
    rows = _rows(spark, t, roles)
    for row in rows:
        if any(v is None for v in row):
            raise InputError(f"{t.name} has a NULL in the row {_describe(t, roles, row)}: every value is needed")
    return rows


def check_data(spark: Any, tm: TableMap, sizes: tuple[int, ...]) -> int:
    """The samples: no NULLs, nodes 1..n of the network's first and last layers, every sample
    complete; returns how many samples there are."""
    counts = []
    for t, n, what in ((tm.inputs, sizes[0], "input"), (tm.outputs, sizes[-1], "output")):
        sample = quote(t.columns["sample"]) if t.has("sample") else "1"
        node, value, table = quote(t.columns["node"]), quote(t.columns["value"]), quote(t.name)
        bad = spark.sql(
            f"SELECT {sample} AS s, {node} AS n, {value} AS v FROM {table} "
            f"WHERE {sample} IS NULL OR {node} IS NULL OR {value} IS NULL OR {node} < 1 OR {node} > {n} LIMIT 1"
        ).collect()
        if bad:
            s, nd, v = bad[0]
            problem = "a NULL" if None in (s, nd, v) else f"node {nd}, but the network has {what} nodes 1..{n}"
            raise InputError(f"{t.name} has {problem} in the row sample = {s}, node = {nd}, value = {v}")
        incomplete = spark.sql(
            f"SELECT {sample} AS s, count(DISTINCT {node}) AS c, count(*) AS r FROM {table} GROUP BY 1 "
            f"HAVING count(DISTINCT {node}) <> {n} OR count(*) <> {n} LIMIT 1"
        ).collect()
        if incomplete:
            s, c, r = incomplete[0]
            raise InputError(f"{t.name}: sample {s} has {r} rows for {c} of the {n} {what} nodes; it needs one per node")
        counts.append(spark.sql(f"SELECT count(DISTINCT {sample}) FROM {table}").collect()[0][0])
    if counts[0] != counts[1]:
        raise InputError(f"inputs has {counts[0]} samples but outputs has {counts[1]}: each sample needs both")
    if not counts[0]:
        raise InputError("inputs is empty: there is nothing to train on")
    return int(counts[0])


def parameter_rows(net: Network, params: Params, k: int) -> tuple[list[tuple], str, list[tuple], str]:
    """Layer k's weights (and node biases) as rows and a Spark schema, with the PostgreSQL names."""
    edge = net.bias == "edge"
    schema = (
        f"weight{k}InputNodeNumber int, weight{k}OutputNodeNumber int, weight{k}Value double"
        + (f", weight{k}Bias double" if edge else "")
    )
    rows = [
        (i + 1, j + 1, w, *([params.biases[k - 1][i][j]] if edge else []))
        for i, row in enumerate(params.weights[k - 1])
        for j, w in enumerate(row)
    ]
    bias_rows = [(j + 1, b) for j, b in enumerate(params.biases[k - 1][0])] if net.bias == "node" else []
    return rows, schema, bias_rows, f"bias{k}NodeNumber int, bias{k}Value double"


@contextlib.contextmanager
def cached(spark: Any, names: list[str]) -> Iterator[None]:
    """Tables cached for a training (CACHE TABLE name AS ...: a cached temporary view) are dropped
    before and after it, whatever happens."""
    for name in reversed(names):
        drop(spark, name)
    try:
        yield
    finally:
        for name in reversed(names):
            drop(spark, name)


def drop(spark: Any, name: str) -> None:
    """Uncache and drop a cached temporary view; names read by later ones are dropped last (uncaching
    resolves the view's query again)."""
    with contextlib.suppress(Exception):
        spark.sql(f"UNCACHE TABLE IF EXISTS {quote(name)}")
    spark.catalog.dropTempView(name)


def write_parameters(spark: Any, tables: ParquetTables, net: Network, params: Params) -> None:
    """Every layer's weights (and node biases) as new versions of their tables."""
    for k in range(1, net.depth + 1):
        rows, schema, bias_rows, bias_schema = parameter_rows(net, params, k)
        tables.write(spark, f"weights{k}", rows, schema)
        if net.bias == "node":
            tables.write(spark, f"biases{k}", bias_rows, bias_schema)


def write_trace(spark: Any, tables: ParquetTables, phases: list[Any], run_id: int, rows: list[tuple[Any, ...]]) -> list[str]:
    """Append a run's traced values to one table per phase, as PostgreSQL's schema sqlnet_trace holds them:
    Parquet folders under DIR/sqlnet_trace/ (phase1_hidden_input, ...), or in a catalog database tables named
    sqlnet_trace_phase1_hidden_input, .... Returns where each went."""
    from sqlnet.compile.spark import TRACE_COLUMNS

    made = []
    for phase in phases:
        mine = [(run_id, *r[1:]) for r in rows if r[0] == phase.number]
        if isinstance(tables, CatalogTables):
            name = f"{TRACE_SCHEMA}_{phase.table}"
            tables.append(spark, name, mine, TRACE_COLUMNS)
            made.append(tables.qualified(name))
        else:
            folder = tables.root / TRACE_SCHEMA / phase.table
            spark.createDataFrame(mine, TRACE_COLUMNS).coalesce(1).write.mode("append").parquet(str(folder))
            made.append(str(folder))
    return made
