"""Finding the network in the user's tables, checking it, reading it and writing it back.

One catalog query finds the tables (names, columns, types); every statement that touches their
rows is composed with ``psycopg.sql`` so that no table or column name is ever pasted into SQL text.
Table and column names match case-insensitively, as PostgreSQL folds the post's unquoted names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from sqlnet.compile.tables import (
    MAX_LAYERS,
    Table,
    TableMap,
    _bias_columns,
    _input_columns,
    _weight_columns,
    check_names,
)
from sqlnet.db import arrays
from sqlnet.db.checks import not_a_number
from sqlnet.db.connection import Session
from sqlnet.errors import InputError
from sqlnet.model.network import Dataset, Network, Params, Sample

# the column types that hold numbers, by type oid: smallint, integer, bigint (whole), numeric, real, double
INTEGER_TYPES = {21, 23, 20}
NUMBER_TYPES = INTEGER_TYPES | {1700, 700, 701}
# how messages name a type: as one writes it in a CREATE TABLE
TYPE_NAMES = (("character varying", "varchar"), ("character", "char"))

RELATIONS = """
SELECT c.relname, a.attname, a.atttypid::int, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relkind = ANY (%s)
ORDER BY c.relname, a.attnum
"""


def schema_exists(pg: psycopg.Connection, schema: str) -> bool:
    return pg.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def require_schema(pg: psycopg.Connection, schema: str | None, option: str = "--schema") -> None:
    if schema is not None and not schema_exists(pg, schema):
        raise InputError(f"schema {schema!r} does not exist: create it, or leave out {option}")


def relations(
    pg: psycopg.Connection, schema: str, kinds: tuple[str, ...] = ("r", "p", "v")
) -> dict[str, list[tuple[str, int, str]]]:
    """The tables and views (relkinds `kinds`) of a schema, each with its columns (name, type oid, type
    as written), in one catalog query."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for table, column, type_oid, type_name in pg.execute(RELATIONS, (schema, list(kinds))):
        columns = out.setdefault(table, [])
        if column is not None:
            for long, short in TYPE_NAMES:
                if type_name.startswith(long):
                    type_name = short + type_name[len(long) :]
            columns.append((column, type_oid, type_name))
    return out


def where_table(table: str, schema: str | None) -> str:
    """How messages name a table a user gave: 'inputs' or 'inputs' in schema 'x'."""
    return f"{table!r} in schema {schema!r}" if schema else repr(table)


def discover(session: Session, schema: str | None = None, bias: str | None = None) -> TableMap:
    """Find the network's tables in `schema` (default: the user's own schema) and map their columns."""
    check_names(schema=schema)
    require_schema(session.pg, schema)
    home = session.schema(schema)  # the schema itself, never "whatever the search path finds"
    # inputs and outputs may be views; the parameter tables must be tables, as training updates them
    found = relations(session.pg, home)
    names: dict[str, str] = {}
    for n in found:
        if n.lower() in names:
            other = names[n.lower()]
            raise InputError(
                f"schema {home!r} holds both {other!r} and {n!r}, which differ only in case: sqlnet cannot tell "
                f"which is the network's; rename one (ALTER TABLE ... RENAME TO ...)"
            )
        names[n.lower()] = n
    where = f"schema {schema!r}" if schema else "the current schema"

    def table(name: str, roles: dict[str, str], optional: Sequence[str] = ()) -> Table:
        if name not in names:
            raise InputError(
                f"table {name!r} not found in {where}: create it (`sqlnet init` makes the post's tables)"
            )
        actual = names[name]
        columns: dict[str, tuple[str, int, str]] = {}
        for c in found[actual]:
            if c[0].lower() in columns:
                raise InputError(
                    f"table {actual!r} has both columns {columns[c[0].lower()][0]!r} and {c[0]!r}, "
                    f"which differ only in case: rename one (ALTER TABLE ... RENAME COLUMN ...)"
                )
            columns[c[0].lower()] = c
        mapped: dict[str, str] = {}
        integers: set[str] = set()
        wrong: list[tuple[str, str]] = []  # (column, type) of columns that are not numbers
        for role, column in roles.items():
            if column not in columns:
                if role in optional:
                    continue
                raise InputError(
                    f"table {actual!r} has no column {column!r} (it has {', '.join(c[0] for c in columns.values())})"
                )
            name, type_oid, type_name = columns[column]
            if type_oid not in NUMBER_TYPES:
                wrong.append((name, type_name))
                continue
            mapped[role] = name
            if type_oid in INTEGER_TYPES:
                integers.add(role)
        made = Table(schema, actual, mapped, frozenset(integers), home)
        if wrong:
            raise InputError(not_a_number(session.pg, made, *wrong[0]))
        return made

    inputs = table("inputs", {"sample": "sampleid", **_input_columns("input")}, optional=("sample",))
    outputs = table("outputs", {"sample": "sampleid", **_input_columns("output")}, optional=("sample",))
    if inputs.has("sample") != outputs.has("sample"):
        with_id, without = (inputs, outputs) if inputs.has("sample") else (outputs, inputs)
        raise InputError(
            f"{with_id.label()} has a sampleId column but {without.label()} has none: "
            f"add sampleId to {without.label()} or drop it from {with_id.label()}"
        )

    depth = 0
    while f"weights{depth + 1}" in names:
        depth += 1
    if depth == 0:
        raise InputError(f"table 'weights1' not found in {where}: a network needs at least weights1")
    if depth > MAX_LAYERS:
        raise InputError(
            f"{where} holds weights1..weights{depth}: sqlnet trains at most {MAX_LAYERS} layers (the statement "
            f"of a deeper network outgrows what PostgreSQL plans in reasonable time); drop the extra tables "
            f"or train a shallower network"
        )

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
    return TableMap(schema, inputs, outputs, weights, biases, bias, home)


# --- checking the rows --------------------------------------------------------------------------


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
            ),
            binary=True,  # doubles as they are: no text to parse (100k weights: ~40 ms less)
        ):
            wm[i - 1][j - 1] = v
            if tables.bias == "edge":
                bm[i - 1][j - 1] = b
        if tables.bias == "node":
            bt = tables.biases[k - 1]
            for j, b in conn.execute(
                sql.SQL("SELECT {j}::int, {v}::{num} FROM {t}").format(
                    j=bt.col("node"), v=bt.col("value"), t=bt.ident, num=sql.SQL(num)
                ),
                binary=True,
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
            ),
            binary=True,
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
    found: list[tuple[Table, str]] = []
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


class WriteNotVerified(InputError):
    """A parameter table does not hold what sqlnet just wrote into it."""


FLOAT4, FLOAT8, NUMERIC = 700, 701, 1700  # the type oids psycopg reports for a column


# what a double becomes when assigned to a column of each type (float8 -> numeric keeps 15 significant digits,
# DBL_DIG, as float8_numeric does; float8 -> real rounds to single precision): the comparison casts to it
STORED_AS = {FLOAT4: sql.SQL("real"), FLOAT8: sql.SQL("double precision"), NUMERIC: sql.SQL("numeric")}


def verify_params(conn: psycopg.Connection, tables: TableMap, params: Params) -> None:
    """Read the parameter tables back and refuse unless every row holds exactly what was written: a
    trigger that skipped or changed rows, a policy that hid them, a rule that redirected the write or a
    column that cannot hold the values (numeric(6,2), say) all show up here. Compared in the server: each
    table's values sent as one array in row-major order, the keys taken from the positions (100k weights
    compared in Python took 0.6 s; sent with their keys through psycopg's list dumper, 0.2 s)."""
    for k, w in enumerate(tables.weights, start=1):
        n_in, n_out = len(params.weights[k - 1]), len(params.weights[k - 1][0])
        values = [[v for row in params.weights[k - 1] for v in row]]
        if tables.bias == "edge":
            values.append([v for row in params.biases[k - 1] for v in row])
        _compare(conn, w, ["in", "out"], ["value", "bias"][: len(values)], (n_in, n_out), values)
    for k, b in enumerate(tables.biases, start=1):
        nodes = len(params.biases[k - 1][0])
        _compare(conn, b, ["node"], ["value"], (nodes,), [list(params.biases[k - 1][0])])


def _compare(
    conn: psycopg.Connection, t: Table, keys: list[str], roles: list[str], dims: tuple[int, ...],
    values: list[list[Any]],
) -> None:
    """The table's rows against the rows written: `values` (one list per role) in row-major order over
    `dims`, the extent of each key role (1..n each)."""
    kc = [sql.Identifier(f"k{n}") for n in range(len(keys))]
    vc = [sql.Identifier(f"v{n}") for n in range(len(roles))]
    total = math.prod(dims)
    types = [d.type_code for d in conn.execute(
        sql.SQL("SELECT {} FROM {} LIMIT 0").format(sql.SQL(", ").join(t.col(r) for r in roles), t.ident)
    ).description or []]  # fmt: skip
    exact = [any(isinstance(v, Decimal) for v in vs[:1]) for vs in values]
    # exact NUMERIC trainings write Decimals: sent and compared as numeric
    wanted = sql.SQL(", ").join(sql.SQL("%b::numeric[]" if e else "%b::float8[]") for e in exact)
    # key m of the element at position n (1-based): ((n - 1) / (the extents after m)) mod (its extent) + 1
    positions = [
        sql.SQL("mod((w.n - 1) / {after}, {extent}) + 1 AS {k}").format(
            after=sql.Literal(math.prod(dims[m + 1 :])), extent=sql.Literal(dims[m]), k=kc[m]
        )
        for m in range(len(dims))
    ]
    differ = [
        sql.SQL("t.{v} IS DISTINCT FROM w.{v}::{type}").format(v=v, type=STORED_AS.get(code, STORED_AS[FLOAT8]))
        for v, code in zip(vc, types)
    ]
    # one row always: how many rows the table shows, and the first row that is not as written (NULLs if none)
    row = arrays.cursor(conn).execute(
        sql.SQL(
            "WITH t AS MATERIALIZED (SELECT {tkeys}, {tvalues} FROM {t}),\n"
            "  w AS (SELECT {positions}, {wvalues} FROM unnest({wanted}) WITH ORDINALITY AS w({wcols}, n))\n"
            "SELECT c.seen, p.* FROM (SELECT count(*) AS seen FROM t) AS c LEFT JOIN LATERAL (\n"
            "  SELECT w.{k0} IS NULL AS extra, t.{k0} IS NULL AS missing, {keys}, {got}, {want}, {differ}\n"
            "  FROM t FULL JOIN w USING ({kcols})\n"
            "  WHERE w.{k0} IS NULL OR t.{k0} IS NULL OR {differs}\n"
            "  ORDER BY 1 DESC, 2, 3 LIMIT 1\n"
            ") AS p ON true"
        ).format(
            tkeys=sql.SQL(", ").join(sql.SQL("{}::int AS {}").format(t.col(r), k) for r, k in zip(keys, kc)),
            tvalues=sql.SQL(", ").join(sql.SQL("{} AS {}").format(t.col(r), v) for r, v in zip(roles, vc)),
            t=t.ident, wanted=wanted, wcols=sql.SQL(", ").join(vc), k0=kc[0],
            positions=sql.SQL(", ").join(positions), wvalues=sql.SQL(", ").join(sql.SQL("w.{}").format(v) for v in vc),
            keys=sql.SQL(", ").join(kc),
            got=sql.SQL(", ").join(sql.SQL("t.{} AS {}").format(v, sql.Identifier(f"got{n}")) for n, v in enumerate(vc)),
            want=sql.SQL(", ").join(sql.SQL("w.{} AS {}").format(v, sql.Identifier(f"want{n}")) for n, v in enumerate(vc)),
            differ=sql.SQL(", ").join(sql.SQL("{} AS {}").format(d, sql.Identifier(f"differs{n}")) for n, d in enumerate(differ)),
            kcols=sql.SQL(", ").join(kc), differs=sql.SQL(" OR ").join(differ),
        ),
        [vs if e else arrays.Doubles(vs) for vs, e in zip(values, exact)],
    ).fetchone()
    assert row is not None
    seen, extra, missing, rest = row[0], row[1], row[2], list(row[3:])
    if extra is None:  # every row as written: unless a key was written twice, the count says
        if seen == total:
            return
        extra, missing = False, True
    key, rest = rest[: len(keys)], rest[len(keys) :]
    got, want, differs = rest[: len(roles)], rest[len(roles) : 2 * len(roles)], rest[2 * len(roles) :]
    where = ", ".join(f"{t.columns[r]} = {v}" for r, v in zip(keys, key))
    if extra:
        raise WriteNotVerified(f"after the write-back {t.label()} has a row sqlnet did not write ({where})")
    if not missing:
        for role, value, wrote, differ in zip(roles, got, want, differs):
            if differ:
                raise WriteNotVerified(
                    f"after the write-back {t.label(role)} holds {value} in the row {where}, but sqlnet wrote "
                    f"{wrote}: the column's type rounds it, or something on {t.label()} changed the write; "
                    f"the write was rolled back. Use double precision or plain numeric columns"
                )
    raise WriteNotVerified(
        f"after the write-back {t.label()} shows {seen} of the {total} rows sqlnet wrote (a policy "
        f"or rule hides or redirects rows?); the write was rolled back"
    )
