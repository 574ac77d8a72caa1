"""One Spark statement run again and again over a state row that changes, analysed and optimised once.

Why: an update's statement has ~1000 generated expressions. Given as new text every update (the weights
as literals) Spark parsed, analysed and optimised it every time (~0.5 s), and a plan wider than
``spark.sql.codegen.maxFields`` was interpreted instead of compiled (~2.5 s of the rest): ~3.2 s per
update at 5,000 samples (../shared/notes/spark.md; BENCHMARKS.md has this machine's figures).

How: the statement's text is the same for every update; the state row before it is a one-line JSON
file in a private folder, which the statement reads as the view ``sqlnet_prev``. Each run writes the
file, then executes a new physical plan of the optimised plan kept from the first run: a physical plan
keeps what it computed once (broadcasts, shuffle outputs, subquery results), so it cannot be run
twice, but making one from an optimised plan costs ~0.1 s. Python's float repr and Spark's JSON
reader carry doubles exactly (tested bit for bit).

A fresh plan is made through Spark's ``Dataset.ofRows``, an internal call: where a Spark lacks it, the
statement is parsed anew every update instead (slower, never wrong). Each result is also checked to be
the update after the row written (its epoch and batch): that catches a wholly old result, not one
whose aggregates alone are old, which is why a plan is never run twice (a test shows the trap).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlnet.db import guard
from sqlnet.db.guard import TrainingTimeout
from sqlnet.errors import DatabaseError

PREV = "sqlnet_prev"
# a plan of the update's width compiles to Java instead of being interpreted row by row (the default,
# 100 fields, is passed by every update of a 12-24-2 network); adaptive execution re-plans each run's
# stages, which a plan run over and over does not need (measured: 0.55 s per update with both, 1.4 s
# without maxFields, 0.75 s with adaptive execution on)
SETTINGS = {"spark.sql.codegen.maxFields": "100000", "spark.sql.adaptive.enabled": "false"}


@contextlib.contextmanager
def settings(spark: Any) -> Iterator[None]:
    """SETTINGS for the training, and the session's own values back afterwards, whatever happens."""
    before = {key: spark.conf.get(key, None) for key in SETTINGS}
    for key, value in SETTINGS.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


class StateRow:
    """The state row as the view ``sqlnet_prev``: a one-line JSON file in a folder of its own, which a local
    Spark's executors read where the driver wrote it. On a cluster, whose executors cannot see the
    driver's files, it is a one-row DataFrame made anew each time (and the statement is parsed anew)."""

    def __init__(self, spark: Any, schema: str, columns: list[str], local: bool | None = None) -> None:
        self.spark, self.schema, self.columns = spark, schema, columns
        self.local = spark.sparkContext.master.startswith("local") if local is None else local
        self.folder = tempfile.mkdtemp(prefix="sqlnet-state-")
        self.file = os.path.join(self.folder, "state.json")

    def write(self, row: dict[str, Any]) -> None:
        if not self.local:
            values = [tuple(row[c] for c in self.columns)]
            self.spark.createDataFrame(values, self.schema).createOrReplaceTempView(PREV)
            return
        text = json.dumps({c: row[c] for c in self.columns}, allow_nan=False)
        part = os.path.join(self.folder, ".state.json.part")  # a dot file: Spark's reader skips it
        with open(part, "w") as f:
            f.write(text + "\n")
        os.replace(part, self.file)  # a run reads the row before or after, never half of one

    def register(self, row: dict[str, Any]) -> None:
        self.write(row)
        if self.local:
            self.spark.read.schema(self.schema).json(self.folder).createOrReplaceTempView(PREV)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.spark.catalog.dropTempView(PREV)
        shutil.rmtree(self.folder, ignore_errors=True)


def _of_rows(spark: Any) -> Callable[[Any], Any]:
    """Spark 4's internal maker of a Dataset from a logical plan. py4j resolves a missing class or method
    only when it is called, so whether this Spark has it is known by calling it (``Repeated`` does)."""
    of_rows = spark._jvm.org.apache.spark.sql.classic.Dataset.ofRows
    session = spark._jsparkSession
    return lambda plan: of_rows(session, plan)


class Repeated:
    """A statement over ``sqlnet_prev`` run once per state row, each run returning the next state row."""

    def __init__(self, spark: Any, state: StateRow, text: str) -> None:
        self.spark, self.state, self.text = spark, state, text
        self.plan: Any = None
        self.reparsed = 0  # runs that parsed the statement anew (a Spark without ofRows, or a stale plan)
        if state.local:  # a kept plan reads the state row's file, which a cluster's executors cannot see
            with contextlib.suppress(Exception):  # a Spark without the call: the statement anew each run
                of_rows = _of_rows(spark)
                plan = spark.sql(text)._jdf.queryExecution().optimizedPlan()
                of_rows(plan)  # a Dataset of it, not run: the call works in this Spark
                self.plan, self.of_rows = plan, of_rows

    def run(self, row: dict[str, Any], expect: tuple[int, int]) -> dict[str, Any]:
        """The state row after `row`, which must be update `expect` (epoch, batch)."""
        from pyspark.sql import DataFrame

        self.state.write(row)
        if self.plan is not None:
            out = DataFrame(self.of_rows(self.plan), self.spark).collect()[0].asDict()
            if (out["epoch"], out["batch"]) == expect:
                return out
            self.plan = None  # it read an old state row: from here on, the statement anew each time
        self.reparsed += 1
        out = self.spark.sql(self.text).collect()[0].asDict()
        if (out["epoch"], out["batch"]) != expect:
            raise DatabaseError(
                f"Spark returned update {out['epoch']}.{out['batch']} where {expect[0]}.{expect[1]} was due; nothing was written"
            )
        return out



class Deadline(guard.Deadline):
    """--timeout on Spark: the training's jobs run in a job group of their own, which a timer cancels at
    the deadline; `check` between updates and `expired` after a cancelled job say it was the deadline.
    Nothing is written before a training has ended, so a timed-out one leaves every table as it was.
    The seconds, their check and the deadline's moment are PostgreSQL's (``guard.Deadline``)."""

    def __init__(self, seconds: float | None) -> None:
        """Starts counting now: the deadline is for the whole command, reading the tables included."""
        super().__init__(seconds)
        self.group = f"sqlnet-{os.getpid()}-{id(self)}"
        self._timer: threading.Timer | None = None
        self.spark: Any = None

    def start(self, spark: Any) -> Deadline:
        """From here on, Spark's jobs of this thread are cancelled at the deadline."""
        self.spark = spark
        if self.end is not None:
            self.check()
            sc = spark.sparkContext
            sc.setJobGroup(self.group, "sqlnet train", interruptOnCancel=True)
            self._timer = threading.Timer(max(self.end - time.monotonic(), 0.0), sc.cancelJobGroup, (self.group,))
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Before the writes: no job is cancelled from here on (a table half written is worse than a
        deadline a little late); the caller checks the deadline once more before writing."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)

    @property
    def passed(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def check(self) -> None:
        if self.passed:
            raise self.expired()

    def expired(self) -> TrainingTimeout:
        return TrainingTimeout(
            f"the training ran longer than --timeout {self.seconds:g} s and was cancelled; nothing was written, "
            "so every table is as it was before"
        )
