"""Loading data: a CSV file or a table with one row per example and one column per feature becomes
`inputs(sampleId, inputNode, inputValue)` and `outputs(sampleId, outputNode, outputValue)`.

Input node k is the k-th feature in load order. `classes` turns a label column into one-hot outputs
and remembers the class names; `standardize` stores each feature's mean and standard deviation,
which `predict` applies again to raw values. What was loaded is part of the network's definition (`sqlnet.networks`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TextIO, TypeVar

from psycopg import sql
from psycopg.rows import dict_row

from sqlnet.compile.tables import MAX_NAME_BYTES
from sqlnet.db import marks
from sqlnet.db.connection import Session
from sqlnet.db.networks import read_definition, save_definition
from sqlnet.db.store import ensure_schema, has_schema
from sqlnet.errors import InputError

T = TypeVar("T")

RAW_TABLE = "raw"  # where load keeps the rows it read, in the network's schema


@dataclass
class Loaded:
    schema: str
    samples: int
    features: list[str]
    targets: list[str]
    classes: list[str] | None
    replaced: int  # samples that were in the tables before
    raw_table: str = RAW_TABLE
    id_column: str | None = None
    standardized: bool = False
    held_out: int = 0  # samples the network's validation split holds out
    validation: tuple[float, int] = (0.0, 0)  # the split: fraction, seed


def _number(value: str, where: str) -> float:
    """A field as a finite number, or a message that says where it is (file, line, column)."""
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: {value!r} is not a finite number")
    return x


def csv_rows(path: Path) -> tuple[list[str], Callable[[], Iterator[tuple[int, dict[str, str]]]]]:
    """The header, and a way to read the rows from the start (loading reads the file in passes).

    UTF-8 text (a byte-order mark is skipped); every row has as many fields as the header, whose
    names are unique."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    with _open(path) as handle:
        header, _ = read_csv(handle, str(path))

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with _open(path) as handle:
            yield from read_csv(handle, str(path))[1]

    return header, rows


def read_csv(handle: TextIO, name: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of a CSV text stream (checked: present, names unique) and its rows as they are read,
    each (line number, {column: field}) with as many fields as the header."""
    reader = csv.reader(handle)
    header = _decoded(name, lambda: next(reader, None))
    if not header:
        raise InputError(f"{name} is empty: it needs a header line and at least one row")
    if header and header[0].startswith("\ufeff"):  # a byte-order mark that the encoding did not take
        header[0] = header[0][1:]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(f"{name}: the header names column {repeated[0]!r} more than once: rename one of them")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while (fields := _decoded(name, lambda: next(reader, None))) is not None:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise InputError(
                    f"{name}, line {reader.line_num}: {len(fields)} fields where the header has "
                    f"{len(header)}: check the commas and quotes of that line"
                )
            yield reader.line_num, dict(zip(header, fields))

    return header, rows()


def _open(path: Path) -> TextIO:
    return path.open(newline="", encoding="utf-8-sig")


def _decoded(name: str, read: Callable[[], T]) -> T:
    """Read, turning what is not UTF-8 into a message that says where."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not UTF-8 text (it holds the byte 0x{exc.object[exc.start]:02x}): save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class LoadSpec:
    """What to load: the target column(s), the features (default: every other column but the id), a
    label's classes, the standardisation, an id column kept beside, the raw table's name, the validation
    split stored with the network, and whether sqlnet's own tables of this network may be replaced."""

    targets: list[str]
    features: list[str] | None = None
    classes: bool = False
    standardize: bool = False
    id_column: str | None = None
    raw_table: str = RAW_TABLE
    validation: tuple[float, int] | None = None
    replace: bool = False


def load(
    s: Session,
    schema: str,
    header: list[str],
    rows: Callable[[], Iterable[tuple[int, dict[str, Any]]]],
    source: str,
    spec: LoadSpec,
    on_rows: Callable[[int], None] | None = None,
) -> Loaded:
    """Check every row, then stream inputs and outputs (and the raw rows) into the tables with COPY.

    The data is read in passes (check and statistics; inputs; outputs; raw rows), never held in memory."""
    targets = spec.targets
    if not targets:
        raise InputError("name the target column(s) with --target")
    if re.fullmatch(r"inputs|outputs|(weights|biases)[0-9]+", spec.raw_table):
        raise InputError(
            f"--raw-table {spec.raw_table} would take the place of one of the network's own tables in schema "
            f"{schema!r}: name another (the default is {RAW_TABLE})"
        )
    missing = [c for c in [*targets, *(spec.features or []), *([spec.id_column] if spec.id_column else [])] if c not in header]
    if missing:
        raise InputError(f"{source} has no column {missing[0]!r} (it has {', '.join(header)})")
    if spec.classes and len(targets) != 1:
        raise InputError("--classes takes one label column as --target")
    if spec.id_column in targets or spec.id_column in (spec.features or []):
        raise InputError(f"--id {spec.id_column} is also a target or a feature: an id column is neither")
    features = spec.features or [c for c in header if c not in targets and c != spec.id_column]
    if not features:
        raise InputError(f"{source} has no feature columns besides the targets")
    kept = [*([spec.id_column] if spec.id_column else []), *features, *targets]
    for c in kept:
        if c == "sampleid" or len(c.encode()) > MAX_NAME_BYTES or not c or "\x00" in c:
            raise InputError(
                f"{source}: column {c!r} cannot be a column of the raw table {schema}.{spec.raw_table} "
                + ("(sqlnet numbers the samples in sampleid)" if c == "sampleid" else "(PostgreSQL keeps names of 1 to 63 bytes)")
                + ": rename it"
            )

    def numbers(line: int, row: dict[str, Any], columns: list[str]) -> list[float]:
        values = []
        for c in columns:
            where = f"{source}, line {line}, column {c!r}"
            if row[c] in (None, ""):
                raise InputError(f"{where}: the value is missing")
            values.append(_number(str(row[c]), where))
        return values

    def label(line: int, row: dict[str, Any]) -> str:
        if row[targets[0]] in (None, ""):
            raise InputError(f"{source}, line {line}, column {targets[0]!r}: the value is missing")
        return str(row[targets[0]])

    def identity(line: int, row: dict[str, Any]) -> list[str]:
        if spec.id_column is None:
            return []
        if row[spec.id_column] in (None, ""):
            raise InputError(f"{source}, line {line}, column {spec.id_column!r}: the id is missing")
        return [str(row[spec.id_column])]

    # pass 1: every value checked; each feature's mean and spread (Welford); the class names
    count, means, m2, names = 0, [0.0] * len(features), [0.0] * len(features), set()
    for line, row in rows():
        x = numbers(line, row, features)
        identity(line, row)
        if spec.classes:
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
    class_names = sorted(names) if spec.classes else None

    def inputs() -> Iterator[tuple[int, list[float]]]:
        for sample, (line, row) in enumerate(rows(), start=1):
            x = numbers(line, row, features)
            yield sample, [(v - means[k]) / stds[k] for k, v in enumerate(x)] if spec.standardize else x
            if on_rows and sample % 10_000 == 0:
                on_rows(sample)

    def outputs() -> Iterator[tuple[int, list[float]]]:
        for sample, (line, row) in enumerate(rows(), start=1):
            if class_names is not None:
                name = label(line, row)
                yield sample, [float(name == c) for c in class_names]
            else:
                yield sample, numbers(line, row, targets)

    def raw() -> Iterator[tuple[Any, ...]]:
        for sample, (line, row) in enumerate(rows(), start=1):
            ys: list[Any] = [label(line, row)] if class_names is not None else numbers(line, row, targets)
            yield (sample, *identity(line, row), *numbers(line, row, features), *ys)

    loaded = _write(
        s, schema, source, spec, features, class_names, means if spec.standardize else None,
        stds if spec.standardize else None, count, inputs(), outputs(), raw(),
    )  # fmt: skip
    if on_rows:
        on_rows(count)
    return loaded


def held_out_count(fraction: float, samples: int) -> int:
    """How many samples a validation fraction holds out (as the training statement rounds it)."""
    return int((Decimal(str(fraction)) * samples).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _write(
    s: Session,
    schema: str,
    source: str,
    spec: LoadSpec,
    features: list[str],
    classes: list[str] | None,
    means: list[float] | None,
    stds: list[float] | None,
    count: int,
    xs: Iterator[tuple[int, list[float]]],
    ts: Iterator[tuple[int, list[float]]],
    raw_rows: Iterator[tuple[Any, ...]],
) -> Loaded:
    s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    inputs = sql.Identifier(schema, "inputs")
    replaced = 0
    if s.pg.execute("SELECT to_regclass(%s) IS NOT NULL", (inputs.as_string(s.pg),)).fetchone()[0]:  # type: ignore[index]
        columns = {c for (c,) in s.pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'inputs'",
            (schema,),
        )}  # fmt: skip
        if "sampleid" in columns:
            (replaced,) = s.pg.execute(sql.SQL("SELECT count(DISTINCT sampleid) FROM {}").format(inputs)).fetchone()  # type: ignore[misc]
        else:  # the post's layout: one sample, if it holds any rows
            (replaced,) = s.pg.execute(sql.SQL("SELECT count(*) > 0 FROM {}").format(inputs)).fetchone()  # type: ignore[misc]
    # only what sqlnet made for this network goes (with --replace, or when it is empty); a user's own
    # inputs, outputs or raw table stay, and the load is refused naming them
    marks.make_room(
        s.pg, schema, ["inputs", "outputs", spec.raw_table], schema, spec.replace, "--schema (or --raw-table)",
        ["samples", "targets", "raw rows"], replace_empty=True,
    )  # fmt: skip
    about = f"from {source}"
    for name, prefix, values in (("inputs", "input", xs), ("outputs", "output", ts)):
        ident = sql.Identifier(schema, name)
        s.pg.execute(
            sql.SQL(
                "CREATE TABLE {t} (sampleId bigint NOT NULL, {n} integer NOT NULL, {v} double precision NOT NULL, "
                "PRIMARY KEY (sampleId, {n}))"
            ).format(t=ident, n=sql.Identifier(f"{prefix}node"), v=sql.Identifier(f"{prefix}value"))
        )
        written = _copy(s, ident, ((sample, node, v) for sample, row in values for node, v in enumerate(row, start=1)))
        # the table is new and no other session sees it before the commit, so nothing can be attached to
        # it; counting its rows proves the copy arrived whole all the same
        (held,) = s.pg.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()  # type: ignore[misc]
        if held != written:
            raise InputError(f"{schema}.{name} holds {held} rows after loading {written}: the load was rolled back")
        what = "samples" if name == "inputs" else "targets"
        marks.comment(s.pg, "TABLE", ident, marks.mark(what, schema, about + (", standardised" if means and name == "inputs" else "")))
    raw = sql.Identifier(schema, spec.raw_table)
    kept = [*([spec.id_column] if spec.id_column else []), *features, *spec.targets]
    types = [*(["text"] if spec.id_column else []), *(["double precision"] * len(features)),
             *(["text" if classes is not None else "double precision"] * len(spec.targets))]  # fmt: skip
    s.pg.execute(
        sql.SQL("CREATE TABLE {t} (sampleid bigint PRIMARY KEY, {cols})").format(
            t=raw,
            cols=sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(kept, types)),
        )
    )
    _copy(s, raw, raw_rows)
    if spec.id_column:
        _unique_id(s, raw, spec.id_column, source)
    marks.comment(s.pg, "TABLE", raw, marks.mark("raw rows", schema, f"{about}, as read (sampleid = inputs.sampleId)"))
    # what the samples are is part of the network: predict and export apply the same standardisation
    ensure_schema(s)
    split: dict[str, Any] = {}
    if spec.validation is not None:
        split["validation_fraction"], split["validation_seed"] = spec.validation
    save_definition(
        s, schema, source=source, features=features, targets=spec.targets, classes=classes, means=means, stds=stds,
        samples=count, id_column=spec.id_column, raw_table=spec.raw_table, **split,
    )  # fmt: skip
    definition = read_definition(s, schema)
    fraction = (definition.validation_fraction or 0.0) if definition else 0.0
    return Loaded(
        schema, count, features, spec.targets, classes, int(replaced), spec.raw_table, spec.id_column,
        means is not None, held_out_count(fraction, count) if fraction else 0,
        (fraction, (definition.validation_seed or 0) if definition else 0),
    )  # fmt: skip


def _copy(s: Session, ident: sql.Identifier, rows: Iterable[tuple[Any, ...]]) -> int:
    written = 0
    with s.pg.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def _unique_id(s: Session, table: sql.Identifier, column: str, source: str) -> None:
    """An id column kept as text: each value once; whole numbers become bigint (they join and sort as such)."""
    col = sql.Identifier(column)
    dup = s.pg.execute(
        sql.SQL("SELECT {c}, count(*) FROM {t} GROUP BY {c} HAVING count(*) > 1 LIMIT 1").format(c=col, t=table)
    ).fetchone()
    if dup:
        raise InputError(f"{source}, column {column!r}: the id {dup[0]!r} is in {dup[1]} rows; an id must be unique")
    (whole,) = s.pg.execute(
        sql.SQL("SELECT bool_and({c} ~ '^-?[0-9]{{1,18}}$') FROM {t}").format(c=col, t=table)
    ).fetchone()  # type: ignore[misc]
    if whole:
        s.pg.execute(
            sql.SQL("ALTER TABLE {t} ALTER COLUMN {c} TYPE bigint USING {c}::bigint").format(t=table, c=col)
        )


@dataclass(frozen=True)
class Copied:
    ident: sql.Identifier  # a temporary table, dropped at commit
    id_name: str
    features: list[str]  # its columns, in input-node order
    rows: int


def copy_samples(
    s: Session,
    handle: TextIO | Path | str,
    name: str,
    features: list[str],
    id_column: str | None,
    default_id: str | None = None,
) -> Copied:
    """Stream a CSV's rows to predict (its `features`, found by name, and its id: `id_column`, else
    `default_id` where the header has it, else the line number) into a temporary table with COPY, checking
    every value as it goes, naming the line and column."""
    if isinstance(handle, (str, Path)):
        path = Path(handle)
        if not path.exists():
            raise InputError(f"{path} does not exist")
        with _open(path) as opened:
            return copy_samples(s, opened, name, features, id_column, default_id)
    header, rows = read_csv(handle, name)
    if id_column is None and default_id in header:
        id_column = default_id
    columns = []
    for f in [*([id_column] if id_column else []), *features]:
        exact = f if f in header else next((h for h in header if h.lower() == f.lower()), None)
        if exact is None:
            how = "--id" if f == id_column else "a feature of the network; --features maps other names"
            raise InputError(f"{name} has no column {f!r} ({how}); it has {', '.join(header)}")
        columns.append(exact)
    id_name = columns[0] if id_column else "line"
    picked = columns[1:] if id_column else columns
    xs = [f"x{i}" for i in range(1, len(picked) + 1)]
    table = sql.Identifier("pg_temp", "sqlnet_predict_csv")
    s.pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    s.pg.execute(
        sql.SQL("CREATE TEMPORARY TABLE {t} ({id} {type}, {xs}) ON COMMIT DROP").format(
            t=sql.Identifier("sqlnet_predict_csv"),
            id=sql.Identifier(id_name),
            type=sql.SQL("text" if id_column else "bigint"),
            xs=sql.SQL(", ").join(sql.SQL("{} double precision").format(sql.Identifier(x)) for x in xs),
        )
    )

    def values() -> Iterator[tuple[Any, ...]]:
        for line, row in rows:
            key: Any = line
            if id_column:
                key = row[columns[0]]
                if key == "":
                    raise InputError(f"{name}, line {line}, column {columns[0]!r}: the id is missing")
            xs_ = []
            for c in picked:
                where = f"{name}, line {line}, column {c!r}"
                if row[c] == "":
                    raise InputError(f"{where}: the value is missing")
                xs_.append(_number(row[c], where))
            yield (key, *xs_)

    count = _copy(s, table, values())
    if not count:
        raise InputError(f"{name} has a header but no rows")
    if id_column:
        _unique_id(s, table, id_name, name)
    return Copied(table, id_name, xs, count)


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
