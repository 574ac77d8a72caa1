"""Samples in, whatever the engine: a CSV file's (or a table's) rows checked, with each feature's mean and spread
and a label's classes, as the passes that write inputs, outputs and the raw rows read them.

Input node k is the k-th feature in load order. `classes` turns a label column into one-hot outputs and
remembers the class names; `standardize` keeps each feature's mean and standard deviation, which `predict`
applies again to raw values. An engine writes what `prepare` gives (PostgreSQL: `sqlnet.db.loading`, with COPY;
Spark: `sqlnet.db.spark_loading`, as Parquet); the checks and the numbers are this module's, once.
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

from sqlnet.compile.tables import MAX_NAME_BYTES
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


def csv_rows(
    path: Path, delimiter: str = ","
) -> tuple[list[str], Callable[[], Iterator[tuple[int, dict[str, str]]]]]:
    """The header, and a way to read the rows from the start (loading reads the file in passes).

    UTF-8 text (a byte-order mark is skipped); fields split at `delimiter`; every row has as many fields as
    the header, whose names are unique and not empty."""
    check_delimiter(delimiter)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    with _open(path) as handle:
        header, _ = read_csv(handle, str(path), delimiter)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with _open(path) as handle:
            yield from read_csv(handle, str(path), delimiter)[1]

    return header, rows


def check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in "\r\n\"" or delimiter.isalnum():
        raise InputError(
            f"--delimiter must be one character that is not a letter, digit, quote or line end (such as ';' or "
            f"'\\t'), got {delimiter!r}"
        )


def read_csv(
    handle: TextIO, name: str, delimiter: str = ","
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of a CSV text stream (checked: present, names unique and not empty) and its rows as they are
    read, each (line number, {column: field}) with as many fields as the header."""
    reader = csv.reader(handle, delimiter=delimiter)
    header = _decoded(name, lambda: next(reader, None), reader)
    if not header:
        raise InputError(f"{name} is empty: it needs a header line and at least one row")
    if header and header[0].startswith("\ufeff"):  # a byte-order mark that the encoding did not take
        header[0] = header[0][1:]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(f"{name}: the header names column {repeated[0]!r} more than once: rename one of them")
    unnamed = [k for k, c in enumerate(header, start=1) if not c.strip()]
    if unnamed:
        raise InputError(
            f"{name}: column {unnamed[0]} of the header has no name: name it"
            + (f" (or is {delimiter!r} the wrong delimiter? --delimiter names another)" if len(header) == 2 else "")
        )

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while (fields := _decoded(name, lambda: next(reader, None), reader)) is not None:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise InputError(
                    f"{name}, line {reader.line_num}: {len(fields)} fields where the header has "
                    f"{len(header)}: check the {'commas' if delimiter == ',' else repr(delimiter) + 's'} and quotes "
                    f"of that line"
                )
            yield reader.line_num, dict(zip(header, fields))

    return header, rows()


def _open(path: Path) -> TextIO:
    return path.open(newline="", encoding="utf-8-sig")


def _decoded(name: str, read: Callable[[], T], reader: Any = None) -> T:
    """Read, turning what is not UTF-8 into a message that says where (the line, for a file)."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        line = _bad_line(Path(name)) if Path(name).is_file() else None
        where = f", line {line}" if line else ""
        raise InputError(
            f"{name}{where} is not UTF-8 text (it holds the byte 0x{exc.object[exc.start]:02x}): save it as UTF-8"
        ) from None
    except csv.Error as exc:
        at = f", line {reader.line_num}" if reader is not None and reader.line_num else ""
        raise InputError(f"{name}{at}: {exc}") from None


def _bad_line(path: Path) -> int | None:
    """The first line of a file that is not UTF-8 (read again as bytes, a line at a time)."""
    with path.open("rb") as raw:
        for n, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return None


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


Rows = Callable[[], Iterable[tuple[int, dict[str, Any]]]]  # (line, {column: field}), read from the start each time


@dataclass(frozen=True)
class Prepared:
    """Checked rows, ready to write: the passes below read the source again each time, never holding it."""

    source: str
    spec: LoadSpec
    features: list[str]
    classes: list[str] | None  # a label's class names, sorted; None for numeric targets
    means: list[float] | None  # kept when standardising
    stds: list[float] | None
    count: int
    rows: Rows
    on_rows: Callable[[int], None] | None = None

    @property
    def kept(self) -> list[str]:
        """The raw table's columns after sampleid: the id, the features, the targets."""
        return [*([self.spec.id_column] if self.spec.id_column else []), *self.features, *self.spec.targets]

    def _numbers(self, line: int, row: dict[str, Any], columns: list[str]) -> list[float]:
        values = []
        for c in columns:
            where = f"{self.source}, line {line}, column {c!r}"
            if row[c] in (None, ""):
                raise InputError(f"{where}: the value is missing")
            values.append(_number(str(row[c]), where))
        return values

    def _label(self, line: int, row: dict[str, Any]) -> str:
        target = self.spec.targets[0]
        if row[target] in (None, ""):
            raise InputError(f"{self.source}, line {line}, column {target!r}: the value is missing")
        return str(row[target])

    def _identity(self, line: int, row: dict[str, Any]) -> list[str]:
        column = self.spec.id_column
        if column is None:
            return []
        if row[column] in (None, ""):
            raise InputError(f"{self.source}, line {line}, column {column!r}: the id is missing")
        return [str(row[column])]

    def inputs(self) -> Iterator[tuple[int, list[float]]]:
        """(sample, features), standardised when asked."""
        for sample, (line, row) in enumerate(self.rows(), start=1):
            x = self._numbers(line, row, self.features)
            if self.means is not None and self.stds is not None:
                x = [(v - self.means[k]) / self.stds[k] for k, v in enumerate(x)]
            yield sample, x
            if self.on_rows and sample % 10_000 == 0:
                self.on_rows(sample)

    def outputs(self) -> Iterator[tuple[int, list[float]]]:
        """(sample, targets): a label one-hot over the classes."""
        for sample, (line, row) in enumerate(self.rows(), start=1):
            if self.classes is not None:
                name = self._label(line, row)
                yield sample, [float(name == c) for c in self.classes]
            else:
                yield sample, self._numbers(line, row, self.spec.targets)

    def raw(self) -> Iterator[tuple[Any, ...]]:
        """(sample, id, features, targets) as read."""
        for sample, (line, row) in enumerate(self.rows(), start=1):
            ys: list[Any] = (
                [self._label(line, row)] if self.classes is not None else self._numbers(line, row, self.spec.targets)
            )
            yield (sample, *self._identity(line, row), *self._numbers(line, row, self.features), *ys)


def prepare(
    header: list[str], rows: Rows, source: str, spec: LoadSpec, where: str,
    on_rows: Callable[[int], None] | None = None,
) -> Prepared:  # fmt: skip
    """Check the options against the header and every row (naming the line and column of a bad value), and
    find each feature's mean and spread (Welford) and the class names, in one pass. `where` is how messages
    name where the network lives ("schema 'wine'")."""
    targets = spec.targets
    if not targets:
        raise InputError("name the target column(s) with --target")
    if re.fullmatch(r"inputs|outputs|(weights|biases)[0-9]+", spec.raw_table):
        raise InputError(
            f"--raw-table {spec.raw_table} would take the place of one of the network's own tables in {where}: "
            f"name another (the default is {RAW_TABLE})"
        )
    missing = [c for c in [*targets, *(spec.features or []), *([spec.id_column] if spec.id_column else [])] if c not in header]
    if missing:
        hint = next((f": is {d!r} its delimiter? (--delimiter {d!r})" for d in (";", "\t", "|") if len(header) == 1 and d in header[0]), "")
        raise InputError(f"{source} has no column {missing[0]!r} (it has {', '.join(header)}){hint}")
    if spec.classes and len(targets) != 1:
        raise InputError("--classes takes one label column as --target")
    if spec.id_column in targets or spec.id_column in (spec.features or []):
        raise InputError(f"--id {spec.id_column} is also a target or a feature: an id column is neither")
    features = spec.features or [c for c in header if c not in targets and c != spec.id_column]
    if not features:
        raise InputError(f"{source} has no feature columns besides the targets")
    for c in [*([spec.id_column] if spec.id_column else []), *features, *targets]:
        if c == "sampleid" or len(c.encode()) > MAX_NAME_BYTES or not c or "\x00" in c:
            raise InputError(
                f"{source}: column {c!r} cannot be a column of the raw table {spec.raw_table} in {where} "
                + ("(sqlnet numbers the samples in sampleid)" if c == "sampleid" else "(names are kept of 1 to 63 bytes)")
                + ": rename it"
            )
    checking = Prepared(source, spec, features, None, None, None, 0, rows)
    count, means, m2, names = 0, [0.0] * len(features), [0.0] * len(features), set()
    for line, row in rows():
        x = checking._numbers(line, row, features)
        checking._identity(line, row)
        if spec.classes:
            names.add(checking._label(line, row))
        else:
            checking._numbers(line, row, targets)
        count += 1
        for k, v in enumerate(x):
            delta = v - means[k]
            means[k] += delta / count
            m2[k] += delta * (v - means[k])
    if not count:
        raise InputError(f"{source} has a header but no rows")
    stds = [math.sqrt(m / count) or 1.0 for m in m2]
    return Prepared(
        source, spec, features, sorted(names) if spec.classes else None, means if spec.standardize else None,
        stds if spec.standardize else None, count, rows, on_rows,
    )  # fmt: skip


def held_out_count(fraction: float, samples: int) -> int:
    """How many samples a validation fraction holds out (as the training statement rounds it)."""
    return int((Decimal(str(fraction)) * samples).quantize(Decimal(1), rounding=ROUND_HALF_UP))


