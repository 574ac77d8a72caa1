"""What differs between SQL engines, as classes in the manner of sqlglot's dialects: one ``Dialect``
subclass per engine, whose methods write every construct that differs (casts, array elements, arrays,
series, integer division, literals, identifiers, a hash order) and whose ``render`` turns a statement
composed with ``psycopg.sql`` into the engine's own text.

The layouts and the statement assembly ask the training's dialect for these pieces instead of writing
them out, so a second engine is a new subclass (and the few structural functions it needs), not a
second copy of the layouts. Names and values are always composed as ``sql.Identifier`` and
``sql.Literal``: each dialect quotes them its own way (PostgreSQL through psycopg, Spark with backticks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from psycopg import sql


class Dialect:
    name = "sql"
    float_type = "double precision"  # the type of float mode's values
    exact_type = "numeric"  # the type of exact mode's values
    materialized = "AS"  # how a CTE is asked to be computed once ("AS MATERIALIZED"), or plain "AS"
    # what keeps a subquery from being merged into the query that reads it, so that its expressions are
    # computed once per row without storing the rows (None: materialise instead)
    fence: str | None = None
    # PostgreSQL's planner compares every aggregate of a query with every other: a mini-batch's many
    # gradient sums are planned in groups (each its own query over the last phase)
    group_sums = False
    pin: sql.Composable | None = None  # resolve every name in the engine's catalog only
    settings: tuple[sql.Composable, ...] = ()  # what a training sets before its statements

    def number_type(self, exact: bool) -> str:
        return self.exact_type if exact else self.float_type

    @property
    def session(self) -> tuple[sql.Composable, ...]:
        """What a training sets before its statements: the pin (where the engine has one), then the settings."""
        return (*([self.pin] if self.pin is not None else []), *self.settings)

    # --- expressions ---------------------------------------------------------------------------------

    def cast(self, expr: sql.Composable, type_name: str) -> sql.Composable:
        return sql.SQL("CAST({} AS {})").format(expr, sql.SQL(type_name))

    def element_of(self, array: sql.Composable, index: int) -> sql.Composable:
        """An array's element, counted from 1."""
        raise NotImplementedError

    def array_of(self, items: Sequence[sql.Composable]) -> sql.Composable:
        raise NotImplementedError

    def concat_of(self, arrays: Sequence[sql.Composable]) -> sql.Composable:
        raise NotImplementedError

    def text_array(self, values: Sequence[str]) -> sql.Composable:
        """An array of text constants (a classifier's class names)."""
        raise NotImplementedError

    def pick(self, array: sql.Composable, index: sql.Composable) -> sql.Composable:
        """An array's element at a computed position, counted from 1."""
        raise NotImplementedError

    def ordered_array(
        self, value: sql.Composable, order: Sequence[sql.Composable], source: sql.Composable
    ) -> sql.Composable:
        """A scalar subquery: the doubles `value` of the rows of `source` as one array, in the order of the
        integer keys `order` (a weights table as the state row's flat array)."""
        raise NotImplementedError

    def series(self, first: sql.Composable, last: sql.Composable, alias: str, column: str) -> sql.Composable:
        """A FROM item: the integers first..last, as the column `column` of the table `alias`."""
        raise NotImplementedError

    def int_div(self, a: sql.Composable, b: sql.Composable) -> sql.Composable:
        """Integer division of two integers, truncated."""
        raise NotImplementedError

    def hash_order(self, seed: str, *parts: sql.Composable) -> sql.Composable:
        """An ORDER BY key: the md5 of 'seed:part:...' in hex, compared byte by byte (as the reference
        orders the samples, whatever the database's collation)."""
        raise NotImplementedError

    # --- names, values and text ----------------------------------------------------------------------

    def literal(self, value: object) -> sql.Composable:
        return sql.Literal(value)

    def render(self, statement: sql.Composable) -> str:
        """The statement's text for this engine."""
        raise NotImplementedError


class Postgres(Dialect):
    # PostgreSQL cannot estimate how many rows a recursive CTE's steps hold, guesses "few", and then
    # joins per-sample rows with nested loops: quadratic in the samples (measured: 300 samples,
    # 8-16-1, 10 epochs took 50.6 s with nested loops and 1.3 s without). Hash joins are right here.
    # work_mem: each update's materialised stages hold a batch; the default 4 MB spills to temp files
    # from ~5000 samples on (measured: 10k samples, 8-16-1, 5 epochs wrote 27 MB of temp files).
    # jit: the recursive plan's cost passes jit_above_cost, and compiling its hundreds of expressions
    # takes seconds per statement that then runs in milliseconds (measured on PostgreSQL 15 with LLVM,
    # the Debian default: the post's network, 3000 updates, 20.0 s with JIT, 0.16 s without).
    name = "postgresql"
    float_type = "float8"
    exact_type = "numeric"
    materialized = "AS MATERIALIZED"
    # a chained phase read once by the next is not stored: OFFSET 0 keeps the planner from inlining its
    # expressions into the next phase (it does no common-subexpression elimination), and the rows stream
    fence = "OFFSET 0"
    group_sums = True
    # CVE-2018-1058: with pg_catalog first and no schema another role can write to, no user-defined
    # operator or function (a float8 * integer in public, say) can be picked over the built-in one
    pin = sql.SQL("SET LOCAL search_path = pg_catalog, pg_temp")
    settings = (
        sql.SQL("SET LOCAL enable_nestloop = off"),
        sql.SQL("SET LOCAL work_mem = '64MB'"),
        sql.SQL("SET LOCAL jit = off"),
    )

    def cast(self, expr: sql.Composable, type_name: str) -> sql.Composable:
        return sql.SQL("{}::{}").format(expr, sql.SQL(type_name))

    def element_of(self, array: sql.Composable, index: int) -> sql.Composable:
        return sql.SQL("{}[{}]").format(array, sql.Literal(index))

    def array_of(self, items: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(items))

    def concat_of(self, arrays: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL(" || ").join(arrays)

    def text_array(self, values: Sequence[str]) -> sql.Composable:
        return sql.SQL("{}::text[]").format(sql.Literal(list(values)))

    def pick(self, array: sql.Composable, index: sql.Composable) -> sql.Composable:
        return sql.SQL("({})[{}]").format(array, index)

    def ordered_array(
        self, value: sql.Composable, order: Sequence[sql.Composable], source: sql.Composable
    ) -> sql.Composable:
        return sql.SQL("(SELECT array_agg({v} ORDER BY {o}) FROM {t})").format(
            v=self.cast(value, self.float_type), o=sql.SQL(", ").join(order), t=source
        )

    def series(self, first: sql.Composable, last: sql.Composable, alias: str, column: str) -> sql.Composable:
        return sql.SQL("generate_series({}, {}) AS {} ({})").format(first, last, sql.SQL(alias), sql.SQL(column))

    def int_div(self, a: sql.Composable, b: sql.Composable) -> sql.Composable:
        return sql.SQL("{} / {}").format(a, b)

    def hash_order(self, seed: str, *parts: sql.Composable) -> sql.Composable:
        text = sql.SQL(" || ':' || ").join([sql.Literal(seed), *parts])
        return sql.SQL('md5({}) COLLATE "C"').format(text)

    def render(self, statement: sql.Composable) -> str:
        return statement.as_string(None)


class Spark(Dialect):
    """Apache Spark SQL (4.x): no MATERIALIZED and no fence (its optimiser keeps a projection whose costly
    expressions a later one reads twice); arrays counted from 0 by [], from 1 by element_at; names in
    backticks; ANSI mode, so that an overflow is an error, as in PostgreSQL, not a silent NULL."""

    name = "spark"
    float_type = "double"
    exact_type = "decimal(38, 18)"
    settings = (sql.SQL("SET spark.sql.ansi.enabled = true"),)

    def element_of(self, array: sql.Composable, index: int) -> sql.Composable:
        return sql.SQL("element_at({}, {})").format(array, sql.Literal(index))

    def array_of(self, items: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("array({})").format(sql.SQL(", ").join(items))

    def concat_of(self, arrays: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL("concat({})").format(sql.SQL(", ").join(arrays))

    def text_array(self, values: Sequence[str]) -> sql.Composable:
        return self.array_of([sql.Literal(v) for v in values])

    def pick(self, array: sql.Composable, index: sql.Composable) -> sql.Composable:
        return sql.SQL("element_at({}, {})").format(array, self.cast(index, "INT"))

    def ordered_array(
        self, value: sql.Composable, order: Sequence[sql.Composable], source: sql.Composable
    ) -> sql.Composable:
        # no ORDER BY in Spark's aggregates: structs of (keys, value) collected, sorted (by their fields in
        # order), then the values taken out
        fields = [sql.SQL("'k{}', {}").format(sql.SQL(str(n)), self.cast(o, "BIGINT")) for n, o in enumerate(order)]
        fields.append(sql.SQL("'v', {}").format(self.cast(value, self.float_type)))
        return sql.SQL("(SELECT transform(array_sort(collect_list(named_struct({f}))), e -> e.v) FROM {t})").format(
            f=sql.SQL(", ").join(fields), t=source
        )

    def series(self, first: sql.Composable, last: sql.Composable, alias: str, column: str) -> sql.Composable:
        return sql.SQL("(SELECT explode(sequence({}, {})) AS {}) AS {}").format(first, last, sql.SQL(column), sql.SQL(alias))

    def int_div(self, a: sql.Composable, b: sql.Composable) -> sql.Composable:
        return sql.SQL("{} DIV {}").format(a, b)  # Spark's / divides as doubles

    def hash_order(self, seed: str, *parts: sql.Composable) -> sql.Composable:
        text: list[sql.Composable] = [sql.Literal(seed)]
        for part in parts:
            text += [sql.Literal(":"), self.cast(part, "STRING")]
        return sql.SQL("md5(concat({}))").format(sql.SQL(", ").join(text))  # hex digits: byte order is text order

    def literal(self, value: object) -> sql.Composable:
        return sql.SQL(self._literal(value))

    def render(self, statement: sql.Composable) -> str:
        if isinstance(statement, sql.Composed):
            return "".join(self.render(part) for part in statement)
        if isinstance(statement, sql.Identifier):
            return ".".join(self.quote(name) for name in statement._obj)
        if isinstance(statement, sql.Literal):
            return self._literal(statement._obj)
        if isinstance(statement, sql.SQL):
            return statement.as_string(None)
        raise TypeError(f"{type(statement).__name__} has no Spark SQL text")

    @staticmethod
    def quote(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    @staticmethod
    def _literal(value: object) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"{value}L" if abs(value) >= 2**31 else str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return f"{value!r}D"  # a double, not a decimal: repr gives back the same double
            return f"CAST('{'NaN' if math.isnan(value) else ('-' if value < 0 else '') + 'Infinity'}' AS DOUBLE)"
        if isinstance(value, Decimal):
            return f"{value}BD"
        if isinstance(value, str):
            # Spark's string literals read backslash escapes: both the backslash and the quote are escaped
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        raise TypeError(f"no Spark SQL literal for {type(value).__name__}")


POSTGRES = Postgres()
SPARK = Spark()
