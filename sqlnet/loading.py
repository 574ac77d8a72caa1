"""Loading data: a CSV file or a table with one row per example and one column per feature becomes
`inputs(sampleId, inputNode, inputValue)` and `outputs(sampleId, outputNode, outputValue)`.

Input node k is the k-th feature in load order. `classes` turns a label column into one-hot outputs
and remembers the class names; `standardize` stores each feature's mean and standard deviation,
which `predict` applies again to raw values. What was loaded is kept in `sqlnet.datasets`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import JSONB

from sqlnet.db import Session
from sqlnet.errors import InputError
from sqlnet.store import SCHEMA, metadata

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("network", sa.Text, primary_key=True, comment="the schema the data was loaded into"),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("features", JSONB, nullable=False, comment="feature names; input node k is the k-th"),
    sa.Column("targets", JSONB, nullable=False, comment="target columns (or the label column with classes)"),
    sa.Column("classes", JSONB, comment="class names; output node k is the k-th class"),
    sa.Column("means", JSONB, comment="per feature, when standardised"),
    sa.Column("stds", JSONB, comment="per feature, when standardised"),
    sa.Column("samples", sa.Integer, nullable=False),
    comment="what `sqlnet load` put into a network's inputs and outputs",
)


@dataclass
class Loaded:
    schema: str
    samples: int
    features: list[str]
    targets: list[str]
    classes: list[str] | None
    replaced: int  # samples that were in the tables before


def _number(value: str, where: Callable[[], str]) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"{where()}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where()}: {value!r} is not a finite number")
    return x


def rows_from_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    handle = path.open(newline="")
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        handle.close()
        raise InputError(f"{path} is empty: it needs a header line and at least one row")
    return list(reader.fieldnames), ((reader.line_num, row) for row in reader)


def load(
    s: Session,
    schema: str,
    header: list[str],
    rows: Iterable[tuple[int, dict[str, Any]]],
    source: str,
    targets: list[str],
    features: list[str] | None,
    classes: bool,
    standardize: bool,
) -> Loaded:
    if not targets:
        raise InputError("name the target column(s) with --target")
    missing = [c for c in [*targets, *(features or [])] if c not in header]
    if missing:
        raise InputError(f"{source} has no column {missing[0]!r} (it has {', '.join(header)})")
    if classes and len(targets) != 1:
        raise InputError("--classes takes one label column as --target")
    features = features or [c for c in header if c not in targets]
    if not features:
        raise InputError(f"{source} has no feature columns besides the targets")
    xs: list[list[float]] = []
    ts: list[list[float] | str] = []
    for line, row in rows:

        def where(column: str, line: int = line) -> Callable[[], str]:
            return lambda: f"{source}, line {line}, column {column!r}"

        xs.append(
            [
                _number(str(row[f]), where(f)) if row[f] not in (None, "") else _missing(where(f))
                for f in features
            ]
        )
        if classes:
            label = row[targets[0]]
            if label in (None, ""):
                _missing(where(targets[0]))
            ts.append(str(label))
        else:
            ts.append(
                [
                    _number(str(row[t]), where(t)) if row[t] not in (None, "") else _missing(where(t))
                    for t in targets
                ]
            )
    if not xs:
        raise InputError(f"{source} has a header but no rows")
    names = sorted({str(t) for t in ts}) if classes else None
    means = stds = None
    if standardize:
        n = len(xs)
        means = [sum(x[k] for x in xs) / n for k in range(len(features))]
        stds = [math.sqrt(sum((x[k] - means[k]) ** 2 for x in xs) / n) or 1.0 for k in range(len(features))]
        xs = [[(v - means[k]) / stds[k] for k, v in enumerate(x)] for x in xs]
    outputs = (
        [[float(t == c) for c in names] for t in ts] if names is not None else ts  # type: ignore[misc]
    )
    return _write(s, schema, source, features, targets, names, means, stds, xs, outputs)  # type: ignore[arg-type]


def _missing(where: Callable[[], str]) -> float:
    raise InputError(f"{where()}: the value is missing")


def _write(
    s: Session,
    schema: str,
    source: str,
    features: list[str],
    targets: list[str],
    classes: list[str] | None,
    means: list[float] | None,
    stds: list[float] | None,
    xs: list[list[float]],
    ts: list[list[float]],
) -> Loaded:
    s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    replaced = 0
    for name, prefix, values in (("inputs", "input", xs), ("outputs", "output", ts)):
        ident = sql.Identifier(schema, name)
        exists = s.pg.execute("SELECT to_regclass(%s) IS NOT NULL", (ident.as_string(s.pg),)).fetchone()[0]  # type: ignore[index]
        if exists:
            if name == "inputs":
                columns = {
                    r[0]
                    for r in s.pg.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                        (schema, name),
                    )
                }
                if "sampleid" in columns:
                    replaced = s.pg.execute(
                        sql.SQL("SELECT count(DISTINCT sampleid) FROM {}").format(ident)
                    ).fetchone()[0]  # type: ignore[index]
                else:
                    replaced = 1
            s.pg.execute(sql.SQL("DROP TABLE {}").format(ident))
        s.pg.execute(
            sql.SQL(
                "CREATE TABLE {t} (sampleId bigint NOT NULL, {n} integer NOT NULL, {v} double precision NOT NULL, "
                "PRIMARY KEY (sampleId, {n}))"
            ).format(t=ident, n=sql.Identifier(f"{prefix}node"), v=sql.Identifier(f"{prefix}value"))
        )
        with s.pg.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
            for sample, row in enumerate(values, start=1):
                for node, v in enumerate(row, start=1):
                    copy.write_row((sample, node, v))
    s.sa.execute(sa.schema.CreateSchema(SCHEMA, if_not_exists=True))
    metadata.create_all(s.sa, tables=[datasets])
    s.sa.execute(datasets.delete().where(datasets.c.network == schema))
    s.sa.execute(
        datasets.insert().values(
            network=schema,
            source=source,
            features=features,
            targets=targets,
            classes=classes,
            means=means,
            stds=stds,
            samples=len(xs),
        )
    )
    return Loaded(schema, len(xs), features, targets, classes, int(replaced))


def dataset(s: Session, schema: str) -> dict[str, Any] | None:
    """What was loaded into a network's schema, if sqlnet loaded it."""
    if not sa.inspect(s.sa).has_table("datasets", schema=SCHEMA):
        return None
    row = s.sa.execute(sa.select(datasets).where(datasets.c.network == schema)).mappings().first()
    return dict(row) if row else None
