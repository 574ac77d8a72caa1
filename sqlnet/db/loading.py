"""Loading data: a CSV file or a table with one row per example and one column per feature becomes
`inputs(sampleId, inputNode, inputValue)` and `outputs(sampleId, outputNode, outputValue)`.

Input node k is the k-th feature in load order. `classes` turns a label column into one-hot outputs
and remembers the class names; `standardize` stores each feature's mean and standard deviation,
which `predict` applies again to raw values. What was loaded is part of the network's definition (`sqlnet.networks`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from psycopg import sql
from psycopg.rows import dict_row

from sqlnet.db.connection import Session
from sqlnet.db.networks import read_definition, save_definition
from sqlnet.db.store import ensure_schema, has_schema
from sqlnet.errors import InputError

T = TypeVar("T")

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


def csv_rows(path: Path) -> tuple[list[str], Callable[[], Iterator[tuple[int, dict[str, str]]]]]:
    """The header, and a way to read the rows from the start (loading reads the file in passes).

    UTF-8 text (a byte-order mark is skipped); every row has as many fields as the header, whose
    names are unique."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    with _open(path) as handle:
        header = _decoded(path, lambda: next(csv.reader(handle), None))
    if not header:
        raise InputError(f"{path} is empty: it needs a header line and at least one row")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(
            f"{path}: the header names column {repeated[0]!r} more than once: rename one of them"
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with _open(path) as handle:
            reader = csv.reader(handle)
            _decoded(path, lambda: next(reader, None))  # the header
            while (fields := _decoded(path, lambda: next(reader, None))) is not None:
                if not fields:
                    continue  # a blank line
                if len(fields) != len(header):
                    raise InputError(
                        f"{path}, line {reader.line_num}: {len(fields)} fields where the header has "
                        f"{len(header)}: check the commas and quotes of that line"
                    )
                yield reader.line_num, dict(zip(header, fields))

    return header, rows


def _open(path: Path) -> TextIO:
    return path.open(newline="", encoding="utf-8-sig")


def _decoded(path: Path, read: Callable[[], T]) -> T:
    """Read, turning what is not UTF-8 into a message that says where."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text (it holds the byte 0x{exc.object[exc.start]:02x}): save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: {exc}") from None


def load(
    s: Session,
    schema: str,
    header: list[str],
    rows: Callable[[], Iterable[tuple[int, dict[str, Any]]]],
    source: str,
    targets: list[str],
    features: list[str] | None,
    classes: bool,
    standardize: bool,
    on_rows: Callable[[int], None] | None = None,
) -> Loaded:
    """Check every row, then stream inputs and outputs into the tables with COPY.

    The data is read in passes (check and statistics; inputs; outputs), never held in memory."""
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

    def numbers(line: int, row: dict[str, Any], columns: list[str]) -> list[float]:
        values = []
        for c in columns:
            where = f"{source}, line {line}, column {c!r}"
            if row[c] in (None, ""):
                raise InputError(f"{where}: the value is missing")
            values.append(_number(str(row[c]), lambda where=where: where))
        return values

    def label(line: int, row: dict[str, Any]) -> str:
        if row[targets[0]] in (None, ""):
            raise InputError(f"{source}, line {line}, column {targets[0]!r}: the value is missing")
        return str(row[targets[0]])

    # pass 1: every value checked; each feature's mean and spread (Welford); the class names
    count, means, m2, names = 0, [0.0] * len(features), [0.0] * len(features), set()
    for line, row in rows():
        x = numbers(line, row, features)
        if classes:
            names.add(label(line, row))
        else:
            numbers(line, row, targets)
        count += 1
        for k, v in enumerate(x):
            delta = v - means[k]
            means[k] += delta / count
            m2[k] += delta * (v - means[k])
    if not count:
        raise InputError(f"{source} has a header but no rows")
    stds = [math.sqrt(m / count) or 1.0 for m in m2]
    class_names = sorted(names) if classes else None

    def inputs() -> Iterator[tuple[int, list[float]]]:
        for sample, (line, row) in enumerate(rows(), start=1):
            x = numbers(line, row, features)
            yield sample, [(v - means[k]) / stds[k] for k, v in enumerate(x)] if standardize else x
            if on_rows and sample % 10_000 == 0:
                on_rows(sample)

    def outputs() -> Iterator[tuple[int, list[float]]]:
        for sample, (line, row) in enumerate(rows(), start=1):
            if class_names is not None:
                name = label(line, row)
                yield sample, [float(name == c) for c in class_names]
            else:
                yield sample, numbers(line, row, targets)

    loaded = _write(
        s,
        schema,
        source,
        features,
        targets,
        class_names,
        means if standardize else None,
        stds if standardize else None,
        count,
        inputs(),
        outputs(),
    )
    if on_rows:
        on_rows(count)
    return loaded


def _write(
    s: Session,
    schema: str,
    source: str,
    features: list[str],
    targets: list[str],
    classes: list[str] | None,
    means: list[float] | None,
    stds: list[float] | None,
    count: int,
    xs: Iterator[tuple[int, list[float]]],
    ts: Iterator[tuple[int, list[float]]],
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
        written = 0
        with s.pg.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
            for sample, row in values:
                for node, v in enumerate(row, start=1):
                    copy.write_row((sample, node, v))
                    written += 1
        # the table is new and no other session sees it before the commit, so nothing can be attached to
        # it; counting its rows proves the copy arrived whole all the same
        (held,) = s.pg.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()  # type: ignore[misc]
        if held != written:
            raise InputError(f"{schema}.{name} holds {held} rows after loading {written}: the load was rolled back")
    # what the samples are is part of the network: predict and export apply the same standardisation
    ensure_schema(s)
    save_definition(
        s, schema, source=source, features=features, targets=targets, classes=classes, means=means, stds=stds,
        samples=count,
    )
    return Loaded(schema, count, features, targets, classes, int(replaced))


def dataset(s: Session, schema: str) -> dict[str, Any] | None:
    """What was loaded into a network's schema, if sqlnet loaded it: from the network's definition, or
    from the table an older sqlnet kept it in."""
    definition = read_definition(s, schema)
    if definition is not None and definition.features is not None:
        return definition.as_json()
    if not has_schema(s, "datasets"):
        return None
    return s.pg.cursor(row_factory=dict_row).execute(
        "SELECT * FROM sqlnet.datasets WHERE network = %s", (schema,)
    ).fetchone()
