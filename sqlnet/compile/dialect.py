"""What differs between SQL engines, as data: one ``Dialect`` value per engine.

The layouts and the statement assembly ask the training's dialect for these pieces instead of
writing them out, so a second engine is a new ``Dialect`` (and the few structural functions it
needs), not a second copy of the layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Dialect:
    name: str
    float_type: str  # the type of float mode's values
    exact_type: str  # the type of exact mode's values
    materialized: str  # how a CTE is asked to be computed once ("AS MATERIALIZED"), or plain "AS"
    # what keeps a subquery from being merged into the query that reads it, so that its expressions are
    # computed once per row without storing the rows (None: materialise instead)
    fence: str | None
    pin: sql.Composed | sql.SQL  # resolve every name in the engine's catalog only: no other role's objects
    settings: tuple[sql.Composable, ...]  # what a training's transaction sets before its statements
    element: str = "{array}[{index}]"  # an array's element, counted from 1
    array: str = "ARRAY[{items}]"  # an array of these values
    concat: str = "{a} || {b}"  # two arrays, one after the other
    # PostgreSQL's planner compares every aggregate of a query with every other: a mini-batch's many
    # gradient sums are planned in groups (each its own query over the last phase)
    group_sums: bool = True

    def number_type(self, exact: bool) -> str:
        return self.exact_type if exact else self.float_type

    def element_of(self, array: sql.Composable, index: int) -> sql.Composable:
        return sql.SQL(self.element).format(array=array, index=sql.Literal(index))

    def array_of(self, items: Sequence[sql.Composable]) -> sql.Composable:
        return sql.SQL(self.array).format(items=sql.SQL(", ").join(items))

    def concat_of(self, arrays: Sequence[sql.Composable]) -> sql.Composable:
        out = arrays[0]
        for more in arrays[1:]:
            out = sql.SQL(self.concat).format(a=out, b=more)
        return out


# PostgreSQL cannot estimate how many rows a recursive CTE's steps hold, guesses "few", and then
# joins per-sample rows with nested loops: quadratic in the samples (measured: 300 samples,
# 8-16-1, 10 epochs took 50.6 s with nested loops and 1.3 s without). Hash joins are right here.
# work_mem: each update's materialised stages hold a batch; the default 4 MB spills to temp files
# from ~5000 samples on (measured: 10k samples, 8-16-1, 5 epochs wrote 27 MB of temp files).
# jit: the recursive plan's cost passes jit_above_cost, and compiling its hundreds of expressions
# takes seconds per statement that then runs in milliseconds (measured on PostgreSQL 15 with LLVM,
# the Debian default: the post's network, 3000 updates, 20.0 s with JIT, 0.16 s without).
POSTGRES = Dialect(
    name="postgresql",
    float_type="float8",
    exact_type="numeric",
    materialized="AS MATERIALIZED",
    # a chained phase read once by the next is not stored: OFFSET 0 keeps the planner from inlining its
    # expressions into the next phase (it does no common-subexpression elimination), and the rows stream
    fence="OFFSET 0",
    # CVE-2018-1058: with pg_catalog first and no schema another role can write to, no user-defined
    # operator or function (a float8 * integer in public, say) can be picked over the built-in one
    pin=sql.SQL("SET LOCAL search_path = pg_catalog, pg_temp"),
    settings=(
        sql.SQL("SET LOCAL enable_nestloop = off"),
        sql.SQL("SET LOCAL work_mem = '64MB'"),
        sql.SQL("SET LOCAL jit = off"),
    ),
)


# Apache Spark SQL (4.x): no MATERIALIZED and no fence (its optimiser keeps a projection whose costly
# expressions a later one reads twice); arrays counted from 0 by [], from 1 by element_at; double
# quotes name identifiers only with doubleQuotedIdentifiers on (the names psycopg.sql writes).
SPARK = Dialect(
    name="spark",
    float_type="double",
    exact_type="decimal(38, 18)",
    materialized="AS",
    fence=None,
    pin=sql.SQL("SET spark.sql.ansi.doubleQuotedIdentifiers = true"),
    settings=(sql.SQL("SET spark.sql.ansi.enabled = true"),),
    element="element_at({array}, {index})",
    array="array({items})",
    concat="concat({a}, {b})",
    group_sums=False,
)
