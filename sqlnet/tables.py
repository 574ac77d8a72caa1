"""Finding the network in the user's tables, checking it, reading it and writing it back.

SQLAlchemy reflects the tables (names, columns, types); every statement that touches their rows
is composed with ``psycopg.sql`` so that no table or column name is ever pasted into SQL text.
Table and column names match case-insensitively, as PostgreSQL folds the post's unquoted names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from sqlnet.errors import InputError
from sqlnet.network import Dataset, Network, Params, Sample

NUMBER_TYPES = (sa.Numeric, sa.Float, sa.Integer)
MAX_LAYERS = 64


@dataclass(frozen=True)
class Table:
    """One user table and the actual names of the columns sqlnet uses, by role."""

    schema: str | None
    name: str
    columns: dict[str, str]  # role -> actual column name, e.g. "node" -> "inputnode"
    integer_columns: frozenset[str] = frozenset()  # roles whose column is an integer type

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def col(self, role: str) -> sql.Identifier:
        return sql.Identifier(self.columns[role])

    def has(self, role: str) -> bool:
        return role in self.columns

    def label(self, role: str | None = None) -> str:
        """How messages name it: schema.table or table.column."""
        table = f"{self.schema}.{self.name}" if self.schema else self.name
        return table if role is None else f"{table}.{self.columns[role]}"


@dataclass(frozen=True)
class TableMap:
    """Where every part of the network lives: inputs, outputs, weights1..K and biases1..K (node layout)."""

    schema: str | None
    inputs: Table
    outputs: Table
    weights: tuple[Table, ...]
    biases: tuple[Table, ...]  # empty unless the bias layout is "node"
    bias: str
    resolved_schema: str = "public"  # the schema the tables are in, even when found on the search path

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def has_samples(self) -> bool:
        return self.inputs.has("sample")

    def parameter_tables(self) -> tuple[Table, ...]:
        return self.weights + self.biases


# The columns of each table, by role, as the post (and sqlnet's many-sample layout) names them.
def _input_columns(prefix: str) -> dict[str, str]:
    return {"node": f"{prefix}node", "value": f"{prefix}value"}


def _weight_columns(k: int) -> dict[str, str]:
    return {
        "in": f"weight{k}inputnodenumber",
        "out": f"weight{k}outputnodenumber",
        "value": f"weight{k}value",
        "bias": f"weight{k}bias",
    }


def _bias_columns(k: int) -> dict[str, str]:
    return {"node": f"bias{k}nodenumber", "value": f"bias{k}value"}


# PostgreSQL keeps at most 63 bytes of a name (NAMEDATALEN - 1) and cuts the rest without an error:
# a longer name would create one object and then look for another
MAX_NAME_BYTES = 63


def check_names(**names: str | Sequence[str] | None) -> None:
    """Names given by a person (option -> name): each must be one PostgreSQL can hold as it is."""
    for option, value in names.items():
        for name in [value] if isinstance(value, str) else value or []:
            flag = "--" + option.replace("_", "-")
            if not name or "\x00" in name:
                raise InputError(
                    f"{flag} {name!r} is not a name PostgreSQL can hold (empty, or a NUL character)"
                )
            if len(name.encode()) > MAX_NAME_BYTES:
                raise InputError(
                    f"{flag} {name!r} is {len(name.encode())} bytes long: PostgreSQL cuts names at "
                    f"{MAX_NAME_BYTES} bytes; choose a shorter one"
                )


def require_schema(inspector: sa.Inspector, schema: str | None, option: str = "--schema") -> None:
    if schema is not None and schema not in inspector.get_schema_names():
        raise InputError(f"schema {schema!r} does not exist: create it, or leave out {option}")


def where_table(table: str, schema: str | None) -> str:
    """How messages name a table a user gave: 'inputs' or 'inputs' in schema 'x'."""
    return f"{table!r} in schema {schema!r}" if schema else repr(table)


def discover(conn: sa.Connection, schema: str | None = None, bias: str | None = None) -> TableMap:
    """Reflect the network's tables in `schema` (default: the current schema) and map their columns."""
    check_names(schema=schema)
    inspector = sa.inspect(conn)
    require_schema(inspector, schema)
    if schema is None and conn.exec_driver_sql("SELECT current_schema()").scalar() is None:
        path, role = conn.exec_driver_sql("SELECT current_setting('search_path'), current_user").one()
        raise InputError(
            f"role {role} may use no schema on its search_path ({path}), so no table can be found: the owner "
            f"can GRANT USAGE ON SCHEMA public TO {role} (`sqlnet grants {role}` prints every grant), or "
            f"name the schema with --schema"
        )
    # inputs and outputs may be views; the parameter tables must be tables, as training updates them
    names = {n.lower(): n for n in inspector.get_view_names(schema=schema)}
    names.update({n.lower(): n for n in inspector.get_table_names(schema=schema)})
    where = f"schema {schema!r}" if schema else "the current schema"

    def table(name: str, roles: dict[str, str], optional: Sequence[str] = ()) -> Table:
        if name not in names:
            raise InputError(
                f"table {name!r} not found in {where}: create it (`sqlnet init` makes the post's tables)"
            )
        actual = names[name]
        columns = {c["name"].lower(): c for c in inspector.get_columns(actual, schema=schema)}
        mapped: dict[str, str] = {}
        integers: set[str] = set()
        wrong: list[tuple[str, str]] = []  # (column, type) of columns that are not numbers
        for role, column in roles.items():
            if column not in columns:
                if role in optional:
                    continue
                raise InputError(
                    f"table {actual!r} has no column {column!r} (it has {', '.join(c['name'] for c in columns.values())})"
                )
            col = columns[column]
            if not isinstance(col["type"], NUMBER_TYPES):
                wrong.append((col["name"], str(col["type"]).lower()))
                continue
            mapped[role] = col["name"]
            if isinstance(col["type"], sa.Integer):
                integers.add(role)
        found = Table(schema, actual, mapped, frozenset(integers))
        if wrong:
            pg = conn.connection.driver_connection
            raise InputError(not_a_number(pg, found, *wrong[0]))  # type: ignore[arg-type]
        return found

    inputs = table("inputs", {"sample": "sampleid", **_input_columns("input")}, optional=("sample",))
    outputs = table("outputs", {"sample": "sampleid", **_input_columns("output")}, optional=("sample",))
    if inputs.has("sample") != outputs.has("sample"):
        with_id, without = (inputs, outputs) if inputs.has("sample") else (outputs, inputs)
        raise InputError(
            f"{with_id.label()} has a sampleId column but {without.label()} has none: "
            f"add sampleId to {without.label()} or drop it from {with_id.label()}"
        )

    depth = 0
    while f"weights{depth + 1}" in names and depth < MAX_LAYERS:
        depth += 1
    if depth == 0:
        raise InputError(f"table 'weights1' not found in {where}: a network needs at least weights1")

    weights = tuple(table(f"weights{k}", _weight_columns(k), optional=("bias",)) for k in range(1, depth + 1))
    has_bias_tables = all(f"biases{k}" in names for k in range(1, depth + 1))
    if bias is None:
        bias = "node" if has_bias_tables else "edge" if all(w.has("bias") for w in weights) else "none"
    biases: tuple[Table, ...] = ()
    if bias == "edge":
        for k, w in enumerate(weights, start=1):
            if not w.has("bias"):
                raise InputError(
                    f"bias per edge needs the column {_weight_columns(k)['bias']!r} in {w.label()}: "
                    f"add it, or choose --bias none"
                )
    elif bias == "node":
        biases = tuple(table(f"biases{k}", _bias_columns(k)) for k in range(1, depth + 1))
    elif bias != "none":
        raise InputError(f"unknown bias layout {bias!r}: choose edge, node or none")
    return TableMap(
        schema, inputs, outputs, weights, biases, bias, schema or inspector.default_schema_name or "public"
    )


# --- checking the rows --------------------------------------------------------------------------


def _one(conn: psycopg.Connection, query: sql.Composable, params: Sequence[object] = ()) -> tuple:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


KEY_ROLES = ("sample", "node", "in", "out")  # the columns that say which row is which


def key_columns(t: Table) -> sql.Composable:
    """The key columns of a table as text, selected first so that a message can name the row."""
    keys = [sql.SQL("{}::text").format(t.col(r)) for r in KEY_ROLES if t.has(r)]
    return sql.SQL(", ").join(keys) if keys else sql.SQL("NULL")


def describe_row(t: Table, row: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """A row selected as (key_columns(t), rest...): its description, e.g. `weight1inputnodenumber = 2,
    weight1outputnodenumber = 1`, and the rest of its values."""
    roles = [r for r in KEY_ROLES if t.has(r)]
    described = ", ".join(f"{t.columns[r]} = {'NULL' if v is None else v}" for r, v in zip(roles, row))
    return described, row[max(1, len(roles)) :]


def not_finite(conn: psycopg.Connection, t: Table, role: str) -> tuple[str, str] | None:
    """The first row whose `role` column is NULL, NaN or infinite: (its description, the value)."""
    bad = conn.execute(
        sql.SQL(
            "SELECT {keys}, {col}::text FROM {table} "
            "WHERE {col} IS NULL OR {col}::float8 IN ('NaN', 'Infinity', '-Infinity') LIMIT 1"
        ).format(keys=key_columns(t), col=t.col(role), table=t.ident)
    ).fetchone()
    if bad is None:
        return None
    row, (value,) = describe_row(t, bad)
    return row, "NULL" if value is None else value


def check_values(conn: psycopg.Connection, t: Table) -> None:
    """No NULL, NaN or infinite value in any column sqlnet reads."""
    for role in t.columns:
        bad = not_finite(conn, t, role)
        if bad:
            row, value = bad
            raise InputError(
                f"{t.label(role)} is {value} in the row {row} of {t.label()}: "
                f"every value must be a finite number (UPDATE or DELETE that row)"
            )
    for role in KEY_ROLES:
        if t.has(role):
            bad = conn.execute(
                sql.SQL("SELECT {keys}, {col}::text FROM {table} WHERE {col} <> trunc({col}) LIMIT 1").format(
                    keys=key_columns(t), col=t.col(role), table=t.ident
                )
            ).fetchone()
            if bad:
                row, (value,) = describe_row(t, bad)
                raise InputError(
                    f"{t.label(role)} holds {value} in the row {row} of {t.label()}: node numbers and "
                    f"sample ids must be whole numbers"
                )


NUMBER_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


def not_a_number(conn: psycopg.Connection, t: Table, column: str, type_name: str) -> str:
    """The message for a column of text (or another non-numeric type) where numbers belong: which
    row holds something that is not a number, or, if every row holds one, how to convert it."""
    fix = f"ALTER TABLE {t.label()} ALTER COLUMN {column} TYPE double precision USING {column}::double precision"
    bad = conn.execute(
        sql.SQL("SELECT {keys}, {col}::text FROM {table} WHERE {col}::text !~ {pattern} LIMIT 1").format(
            keys=key_columns(t),
            col=sql.Identifier(column),
            table=t.ident,
            pattern=sql.Literal(NUMBER_PATTERN),
        )
    ).fetchone()
    head = f"{t.label()}.{column} is {type_name}, not a number"
    if bad:
        row, (value,) = describe_row(t, bad)
        where = f" in the row {row}" if row else ""
        return f"{head}: it holds {value!r}{where}. Fix that value, then change the column's type: {fix}"
    return f"{head}, though every row holds one: change its type ({fix})"


def _node_range(conn: psycopg.Connection, t: Table, role: str) -> int:
    """The number of distinct nodes in a column, after checking they are exactly 1..n."""
    lo, hi, n = _one(
        conn,
        sql.SQL("SELECT min({c})::bigint, max({c})::bigint, count(DISTINCT {c}) FROM {t}").format(
            c=t.col(role), t=t.ident
        ),
    )
    if n == 0:
        raise InputError(f"{t.label()} is empty: it needs a row for every node")
    if lo != 1 or hi != n:
        raise InputError(
            f"{t.label(role)} numbers its nodes {lo}..{hi} with {n} distinct values: nodes must be numbered 1..n "
            f"without gaps"
        )
    return int(n)


def _check_grid(
    conn: psycopg.Connection, t: Table, row_role: str, col_role: str, rows: int, cols: int, what: str
) -> None:
    """Every (row, col) pair appears exactly once: no duplicates, none missing."""
    a, b = t.columns[row_role], t.columns[col_role]
    dup = conn.execute(
        sql.SQL(
            "SELECT {a}::text, {b}::text, count(*) FROM {t} GROUP BY {a}, {b} HAVING count(*) > 1 LIMIT 1"
        ).format(a=t.col(row_role), b=t.col(col_role), t=t.ident)
    ).fetchone()
    if dup:
        raise InputError(
            f"{t.label()} has {dup[2]} rows for {what} {a} = {dup[0]}, {b} = {dup[1]}: keep exactly one "
            f"(DELETE the others)"
        )
    (count,) = _one(conn, sql.SQL("SELECT count(*) FROM {t}").format(t=t.ident))
    if count != rows * cols:
        missing = conn.execute(
            sql.SQL(
                "SELECT r, c FROM generate_series(1, %s) r, generate_series(1, %s) c "
                "EXCEPT SELECT {a}::int, {b}::int FROM {t} ORDER BY 1, 2 LIMIT 1"
            ).format(a=t.col(row_role), b=t.col(col_role), t=t.ident),
            (rows, cols),
        ).fetchone()
        raise InputError(
            f"{t.label()} has {count} rows but needs {rows} x {cols} = {rows * cols}"
            + (f"; the row for {what} {a} = {missing[0]}, {b} = {missing[1]} is missing" if missing else "")
            + ": every node must have a weight to every node of the next layer (INSERT it)"
        )


def check_and_size(conn: psycopg.Connection, tables: TableMap) -> tuple[int, ...]:
    """Validate every table's rows and return the layer sizes; raises InputError naming the problem."""
    for t in (tables.inputs, tables.outputs, *tables.weights, *tables.biases):
        check_values(conn, t)
    sizes = [_node_range(conn, tables.inputs, "node")]
    for k, w in enumerate(tables.weights, start=1):
        n_in = _node_range(conn, w, "in")
        if n_in != sizes[-1]:
            source = tables.inputs.label("node") if k == 1 else tables.weights[k - 2].label("out")
            raise InputError(
                f"the layers do not chain: {w.label('in')} has nodes 1..{n_in} but {source} has 1..{sizes[-1]}"
            )
        n_out = _node_range(conn, w, "out")
        _check_grid(conn, w, "in", "out", n_in, n_out, "the edge")
        sizes.append(n_out)
    for k, b in enumerate(tables.biases, start=1):
        n = _node_range(conn, b, "node")
        if n != sizes[k]:
            raise InputError(f"{b.label('node')} has nodes 1..{n} but layer {k} has {sizes[k]} nodes")
        _check_grid_single(conn, b, n)
    n_out = _node_range(conn, tables.outputs, "node")
    if n_out != sizes[-1]:
        raise InputError(
            f"{tables.outputs.label('node')} has nodes 1..{n_out} but the last layer "
            f"({tables.weights[-1].label('out')}) has 1..{sizes[-1]}"
        )
    _check_samples(conn, tables, sizes[0], sizes[-1])
    return tuple(sizes)


def _check_grid_single(conn: psycopg.Connection, t: Table, n: int) -> None:
    (count,) = _one(conn, sql.SQL("SELECT count(*) FROM {t}").format(t=t.ident))
    if count != n:
        raise InputError(f"{t.label()} has {count} rows for {n} nodes: keep exactly one row per node")


def _check_samples(conn: psycopg.Connection, tables: TableMap, n_in: int, n_out: int) -> None:
    """Each sample has every input node once and every output node once, in both tables."""
    for t, n, what in ((tables.inputs, n_in, "input"), (tables.outputs, n_out, "output")):
        check_sample_rows(conn, t, n, what)
    if tables.has_samples:
        orphan = conn.execute(
            sql.SQL(
                "(SELECT 'inputs', {si}::text FROM {ti} EXCEPT SELECT 'inputs', {so}::text FROM {to}) UNION ALL "
                "(SELECT 'outputs', {so}::text FROM {to} EXCEPT SELECT 'outputs', {si}::text FROM {ti}) LIMIT 1"
            ).format(
                si=tables.inputs.col("sample"),
                so=tables.outputs.col("sample"),
                ti=tables.inputs.ident,
                to=tables.outputs.ident,
            )
        ).fetchone()
        if orphan:
            has, lacks = (
                (tables.inputs, tables.outputs) if orphan[0] == "inputs" else (tables.outputs, tables.inputs)
            )
            raise InputError(
                f"sample {orphan[1]} is in {has.label()} but not in {lacks.label()}: every sample needs both "
                f"its inputs and its targets"
            )


def check_sample_rows(conn: psycopg.Connection, t: Table, n: int, what: str) -> None:
    """Each sample of a long table has every node 1..n exactly once."""
    sample = t.col("sample") if t.has("sample") else sql.SQL("1")
    bad = conn.execute(
        sql.SQL(
            "SELECT {s}::text, count(*), count(DISTINCT {node}) FROM {t} GROUP BY {s} "
            "HAVING count(*) <> %s OR count(DISTINCT {node}) <> %s LIMIT 1"
        ).format(s=sample, node=t.col("node"), t=t.ident),
        (n, n),
    ).fetchone()
    if bad:
        where = f"sample {bad[0]}" if t.has("sample") else "the sample"
        raise InputError(
            f"{t.label()} has {bad[1]} rows ({bad[2]} distinct nodes) for {where}, but the network has {n} "
            f"{what} nodes: give every {what} node exactly one row"
        )


def check_wide_samples(conn: psycopg.Connection, t: Table, types: dict[str, str]) -> None:
    """A wide table of samples to predict (role "sample" = its id, the other roles its features):
    each id once and not NULL, every feature a finite number."""
    wrong = [(t.columns[r], types[r]) for r in t.columns if r != "sample" and types[r]]
    if wrong:
        raise InputError(
            not_a_number(conn, Table(t.schema, t.name, {"sample": t.columns["sample"]}), *wrong[0])
        )
    dup = conn.execute(
        sql.SQL(
            "SELECT {s}::text, count(*) FROM {t} GROUP BY {s} HAVING count(*) > 1 OR {s} IS NULL LIMIT 1"
        ).format(s=t.col("sample"), t=t.ident)
    ).fetchone()
    if dup:
        raise InputError(
            f"{t.label('sample')} is NULL in {dup[1]} rows: every sample needs an id (--id names the column)"
            if dup[0] is None
            else f"{t.label('sample')} = {dup[0]} in {dup[1]} rows: each sample's id must be unique "
            f"(--id names the column)"
        )
    for role in t.columns:
        bad = not_finite(conn, t, role) if role != "sample" else None  # the id is named, not summed
        if bad:
            row, value = bad
            raise InputError(
                f"{t.label(role)} is {value} in the row {row} of {t.label()}: every feature must be a "
                f"finite number (UPDATE or DELETE that row)"
            )


def largest_values(conn: psycopg.Connection, tables: TableMap) -> dict[str, float]:
    """The largest |value| in each table sqlnet reads (by label), in one query: a training that
    diverges says which of them may need scaling."""
    read = [tables.inputs, tables.outputs, *tables.weights, *tables.biases]
    tops = []
    for t in read:
        roles = [r for r in ("value", "bias") if t.has(r) and (r == "value" or tables.bias == "edge")]
        largest = sql.SQL(", ").join(sql.SQL("max(abs({}::float8))").format(t.col(r)) for r in roles)
        tops.append(sql.SQL("(SELECT greatest({}) FROM {})").format(largest, t.ident))
    row = _one(conn, sql.SQL("SELECT {}").format(sql.SQL(", ").join(tops)))
    return {t.label(): float(top or 0.0) for t, top in zip(read, row)}


def count_samples(conn: psycopg.Connection, tables: TableMap) -> int:
    if not tables.has_samples:
        return 1
    (n,) = _one(
        conn,
        sql.SQL("SELECT count(DISTINCT {s}) FROM {t}").format(
            s=tables.inputs.col("sample"), t=tables.inputs.ident
        ),
    )
    return int(n)


def check_targets(conn: psycopg.Connection, tables: TableMap, lo: float, hi: float, why: str) -> None:
    """Every target in [lo, hi], e.g. probabilities for cross-entropy."""
    t = tables.outputs
    sample = t.col("sample") if t.has("sample") else sql.SQL("1")
    bad = conn.execute(
        sql.SQL("SELECT {s}::text, {n}::text, {v}::text FROM {t} WHERE {v} < %s OR {v} > %s LIMIT 1").format(
            s=sample, n=t.col("node"), v=t.col("value"), t=t.ident
        ),
        (lo, hi),
    ).fetchone()
    if bad:
        raise InputError(
            f"{t.label('value')} is {bad[2]} for sample {bad[0]}, output node {bad[1]}: {why} needs targets "
            f"between {lo:g} and {hi:g}"
        )


def check_distributions(conn: psycopg.Connection, tables: TableMap) -> None:
    """Each sample's targets sum to 1: softmax with cross-entropy has delta y - t only then."""
    t = tables.outputs
    sample = t.col("sample") if t.has("sample") else sql.SQL("1")
    bad = conn.execute(
        sql.SQL(
            "SELECT {s}::text, sum({v})::text FROM {t} GROUP BY {s} HAVING abs(sum({v}) - 1) > 1e-6 LIMIT 1"
        ).format(s=sample, v=t.col("value"), t=t.ident)
    ).fetchone()
    if bad:
        raise InputError(
            f"the targets of sample {bad[0]} in {t.label()} sum to {bad[1]}: a softmax output with cross-entropy "
            f"needs each sample's targets to sum to 1 (a distribution, e.g. one-hot); use sigmoid outputs for "
            f"independent labels"
        )


# --- reading and writing values -----------------------------------------------------------------


def read_params(conn: psycopg.Connection, tables: TableMap, net: Network, num: str = "float8") -> Params:
    weights, biases = [], []
    for k, w in enumerate(tables.weights, start=1):
        n_in, n_out = net.sizes[k - 1], net.sizes[k]
        wm = [[0.0] * n_out for _ in range(n_in)]
        bm = [[0.0] * n_out for _ in range(net.bias_rows(k))]
        bias = w.col("bias") if tables.bias == "edge" else sql.SQL("NULL")
        for i, j, v, b in conn.execute(
            sql.SQL("SELECT {i}::int, {j}::int, {v}::{num}, {b}::{num} FROM {t}").format(
                i=w.col("in"), j=w.col("out"), v=w.col("value"), b=bias, t=w.ident, num=sql.SQL(num)
            )
        ):
            wm[i - 1][j - 1] = v
            if tables.bias == "edge":
                bm[i - 1][j - 1] = b
        if tables.bias == "node":
            bt = tables.biases[k - 1]
            for j, b in conn.execute(
                sql.SQL("SELECT {j}::int, {v}::{num} FROM {t}").format(
                    j=bt.col("node"), v=bt.col("value"), t=bt.ident, num=sql.SQL(num)
                )
            ):
                bm[0][j - 1] = b
        weights.append(wm)
        biases.append(bm)
    return Params(weights, biases)


def read_data(conn: psycopg.Connection, tables: TableMap, net: Network, num: str = "float8") -> Dataset:
    """The samples in ascending sample id order (the post's single sample gets id 1)."""
    columns: dict[str, dict[int, list[float]]] = {}
    for key, t, n in (("x", tables.inputs, net.sizes[0]), ("t", tables.outputs, net.sizes[-1])):
        sample = t.col("sample") if t.has("sample") else sql.SQL("1")
        values: dict[int, list[float]] = {}
        for s, node, v in conn.execute(
            sql.SQL("SELECT {s}::bigint, {n}::int, {v}::{num} FROM {t}").format(
                s=sample, n=t.col("node"), v=t.col("value"), t=t.ident, num=sql.SQL(num)
            )
        ):
            values.setdefault(s, [0.0] * n)[node - 1] = v
        columns[key] = values
    return Dataset([Sample(s, tuple(columns["x"][s]), tuple(columns["t"][s])) for s in sorted(columns["x"])])


def write_params(conn: psycopg.Connection, tables: TableMap, params: Params) -> None:
    """Put parameter values into the tables (used by restore; training writes back in its own SQL)."""
    for k, w in enumerate(tables.weights, start=1):
        rows = [
            (i + 1, j + 1, v, params.biases[k - 1][i][j] if tables.bias == "edge" else None)
            for i, row in enumerate(params.weights[k - 1])
            for j, v in enumerate(row)
        ]
        bias_set = sql.SQL(", {b} = d.b").format(b=w.col("bias")) if tables.bias == "edge" else sql.SQL("")
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "UPDATE {t} AS w SET {v} = d.v{bias_set} FROM (SELECT %s::int AS i, %s::int AS j, "
                    "%s::float8 AS v, %s::float8 AS b) AS d WHERE w.{i} = d.i AND w.{j} = d.j"
                ).format(t=w.ident, v=w.col("value"), bias_set=bias_set, i=w.col("in"), j=w.col("out")),
                rows,
            )
    for k, bt in enumerate(tables.biases, start=1):
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("UPDATE {t} SET {v} = %s WHERE {n} = %s").format(
                    t=bt.ident, v=bt.col("value"), n=bt.col("node")
                ),
                [(b, j + 1) for j, b in enumerate(params.biases[k - 1][0])],
            )


def integer_parameter_columns(tables: TableMap) -> list[tuple[Table, str]]:
    """Parameter columns (table, role) of an integer type: trained values are fractional and would be rounded."""
    found = []
    for t in tables.parameter_tables():
        for role in ("value", "bias"):
            if t.has(role) and role in t.integer_columns and (role == "value" or tables.bias == "edge"):
                found.append((t, role))
    return found


# --- creating tables from a description -----------------------------------------------------------

COLUMN_TYPES = {"numeric": "numeric", "float8": "double precision", "integer": "integer"}


def create_tables(
    conn: psycopg.Connection,
    net: Network,
    params: Params,
    data: Dataset,
    schema: str | None = None,
    column_type: str = "double precision",
    samples: bool | None = None,
) -> None:
    """Create inputs, weightsK (biasesK), outputs holding a network, in the post's column names.

    `samples`: give inputs/outputs a sampleId column (default: when there is more than one sample).
    """
    create_data_tables(conn, data, schema, column_type, len(data) > 1 if samples is None else samples)
    create_parameter_tables(conn, net, params, schema, column_type)


def _creator(conn: psycopg.Connection, schema: str | None, column_type: str):  # type: ignore[no-untyped-def]
    if column_type not in COLUMN_TYPES.values():
        raise InputError(
            f"column type must be one of {', '.join(COLUMN_TYPES.values())}, got {column_type!r}"
        )
    if schema:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))

    def create(name: str, columns: list[str], rows: list[tuple[float, ...]]) -> None:
        ident = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(column_type)) for c in columns
        )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, cols))
        with conn.cursor().copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(ident, sql.SQL(", ").join(map(sql.Identifier, columns)))
        ) as copy:
            for row in rows:
                copy.write_row(row)

    return create


def create_data_tables(
    conn: psycopg.Connection, data: Dataset | None, schema: str | None, column_type: str, samples: bool
) -> None:
    """inputs and outputs, with a sampleId column when `samples`; empty when there is no data."""
    create = _creator(conn, schema, column_type)
    sample_col = ["sampleid"] if samples else []
    rows = data.samples if data else []
    for prefix, values, name in (("input", lambda s: s.x, "inputs"), ("output", lambda s: s.t, "outputs")):
        create(
            name,
            [*sample_col, f"{prefix}node", f"{prefix}value"],
            [(*([s.id] if samples else []), n, v) for s in rows for n, v in enumerate(values(s), start=1)],
        )


def create_parameter_tables(
    conn: psycopg.Connection, net: Network, params: Params, schema: str | None, column_type: str
) -> None:
    """weights1..K (with bias columns for edge biases) and biases1..K (node biases)."""
    params.check_shape(net)
    create = _creator(conn, schema, column_type)
    for k in range(1, net.depth + 1):
        cols = _weight_columns(k)
        columns = [cols["in"], cols["out"], cols["value"]] + ([cols["bias"]] if net.bias == "edge" else [])
        rows = [
            (i + 1, j + 1, w, *([params.biases[k - 1][i][j]] if net.bias == "edge" else []))
            for i, row in enumerate(params.weights[k - 1])
            for j, w in enumerate(row)
        ]
        create(f"weights{k}", columns, rows)
        if net.bias == "node":
            bcols = _bias_columns(k)
            create(
                f"biases{k}",
                [bcols["node"], bcols["value"]],
                [(j + 1, b) for j, b in enumerate(params.biases[k - 1][0])],
            )
