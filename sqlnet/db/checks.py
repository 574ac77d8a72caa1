"""Checking the rows of the network's tables before anything runs: shape, values, keys, targets.

Each check names the table, column and row at fault and what to do; none changes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from sqlnet.compile.tables import (
    Table,
    TableMap,
)
from sqlnet.errors import InputError


def _one(conn: psycopg.Connection, query: sql.SQL | sql.Composed, params: Sequence[object] = ()) -> tuple:
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


def _not_finite(col: sql.Composable) -> sql.Composable:
    """The condition of a value no check lets pass: NULL, NaN or infinite."""
    return sql.SQL("{c} IS NULL OR {c}::float8 IN ('NaN', 'Infinity', '-Infinity')").format(c=col)


def _fractional(col: sql.Composable) -> sql.Composable:
    """The condition of a key (node number, sample id) that is not a whole number."""
    return sql.SQL("{c} <> trunc({c})").format(c=col)


def not_finite(conn: psycopg.Connection, t: Table, role: str) -> tuple[str, str] | None:
    """The first row whose `role` column is NULL, NaN or infinite: (its description, the value)."""
    bad = conn.execute(
        sql.SQL("SELECT {keys}, {col}::text FROM {table} WHERE {bad} LIMIT 1").format(
            keys=key_columns(t), col=t.col(role), table=t.ident, bad=_not_finite(t.col(role))
        )
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
                sql.SQL("SELECT {keys}, {col}::text FROM {table} WHERE {bad} LIMIT 1").format(
                    keys=key_columns(t), col=t.col(role), table=t.ident, bad=_fractional(t.col(role))
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


def unique_keys(conn: psycopg.Connection, t: Table) -> bool:
    """Whether a unique index, enforced at once, holds exactly the table's keys (sample and node; node alone
    without samples): then no sample names a node twice (`sqlnet load` makes them its primary key), and
    counting each sample's distinct nodes -- a sort of every row, ~0.26 of the 0.33 s a check of 1.6
    million rows took -- proves nothing more. (An index's operators are pg_catalog's: check_network
    refuses any other before the samples are read.)"""
    keys = sorted(t.columns[r] for r in ("sample", "node") if t.has(r))
    (found,) = _one(conn, sql.SQL(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index AS i\n"
        "  WHERE i.indrelid = %s::pg_catalog.regclass AND i.indisunique AND i.indimmediate AND i.indisvalid\n"
        "    AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnatts = %s AND i.indnkeyatts = %s\n"
        "    AND (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname::text COLLATE \"C\")\n"
        "         FROM pg_catalog.pg_attribute AS a\n"
        "         WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::pg_catalog.int2[])) = %s::text[])"
    ), (t.ident.as_string(conn), len(keys), len(keys), keys))  # fmt: skip
    return bool(found)


def _sample_grid(t: Table, unique: bool) -> sql.Composable:
    """Each sample of a long table with its rows, distinct nodes (its rows, where a unique index holds the
    keys), lowest and highest node and how many of its rows hold something no check lets pass (NULL, NaN,
    infinity, a fractional key)."""
    bad = [_not_finite(t.col(r)) for r in t.columns] + [_fractional(t.col(r)) for r in KEY_ROLES if t.has(r)]
    return sql.SQL(
        "SELECT {s} AS sample, count(*) AS rows, {nodes} AS nodes, min({node}) AS lo, "
        "max({node}) AS hi, count(*) FILTER (WHERE {bad}) AS bad FROM {t} GROUP BY 1"
    ).format(
        s=t.col("sample") if t.has("sample") else sql.SQL("1"), node=t.col("node"),
        nodes=sql.SQL("count(*)") if unique else sql.SQL("count(DISTINCT {})").format(t.col("node")),
        bad=sql.SQL(" OR ").join(sql.SQL("({})").format(b) for b in bad), t=t.ident,
    )  # fmt: skip


def sample_sizes(conn: psycopg.Connection, tables: TableMap) -> tuple[int, int] | None:
    """The input and output nodes, if the inputs and outputs pass every check of check_and_size's (finite values, whole keys,
    each sample with every node 1..n once, the same samples in both), proven by one scan of each: a
    table of 1.6 million rows was scanned eight times, one check at a time. None: the checks run one by one
    to name the row at fault."""
    grid = sql.SQL(
        "SELECT CASE WHEN bool_and(bad = 0 AND lo = 1 AND rows = nodes AND hi = rows) AND min(hi) = max(hi) "
        "THEN max(rows) END FROM {}"
    )
    n_in, n_out, orphans = _one(conn, sql.SQL(
        "WITH i AS MATERIALIZED ({i}), o AS MATERIALIZED ({o})\n"
        "SELECT ({gi}), ({go}), EXISTS (SELECT FROM i FULL JOIN o USING (sample) WHERE i.sample IS NULL OR o.sample IS NULL)"
    ).format(
        i=_sample_grid(tables.inputs, unique_keys(conn, tables.inputs)),
        o=_sample_grid(tables.outputs, unique_keys(conn, tables.outputs)), gi=grid.format(sql.Identifier("i")),
        go=grid.format(sql.Identifier("o")),
    ))  # fmt: skip
    return None if n_in is None or n_out is None or orphans else (int(n_in), int(n_out))


def check_and_size(conn: psycopg.Connection, tables: TableMap) -> tuple[int, ...]:
    """Validate every table's rows and return the layer sizes; raises InputError naming the problem."""
    passed = sample_sizes(conn, tables)
    for t in (tables.inputs, tables.outputs, *tables.weights, *tables.biases):
        if passed is None or t not in (tables.inputs, tables.outputs):
            check_values(conn, t)
    sizes = [_node_range(conn, tables.inputs, "node") if passed is None else passed[0]]
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
    n_out = _node_range(conn, tables.outputs, "node") if passed is None else passed[1]
    if n_out != sizes[-1]:
        raise InputError(
            f"{tables.outputs.label('node')} has nodes 1..{n_out} but the last layer "
            f"({tables.weights[-1].label('out')}) has 1..{sizes[-1]}"
        )
    if passed is None:
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
    """A wide table of samples to predict (role "sample" = its id, if it has one; the other roles its
    features): each id once and not NULL, every feature a finite number."""
    wrong = [(t.columns[r], types[r]) for r in t.columns if r != "sample" and types[r]]
    keys = {"sample": t.columns["sample"]} if t.has("sample") else {}
    if wrong:
        raise InputError(not_a_number(conn, Table(t.schema, t.name, keys, home=t.home), *wrong[0]))
    dup = None if not t.has("sample") else conn.execute(
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


def count_samples(conn: psycopg.Connection, tables: TableMap, n_out: int) -> int:
    """The samples of tables that passed check_and_size: the output rows over the output nodes (every sample
    has each output node once), not a count of distinct ids over every input row."""
    if not tables.has_samples:
        return 1
    (rows,) = _one(conn, sql.SQL("SELECT count(*) FROM {t}").format(t=tables.outputs.ident))
    return int(rows) // n_out


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
