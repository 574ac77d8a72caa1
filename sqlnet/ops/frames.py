"""pandas (and plain Python rows) at the edges of the operations: rows to predict written as the CSV that
`predict` streams with COPY, and results as DataFrames. pandas is imported only where a DataFrame is made
(it is an optional extra, and the command line never loads it)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlnet.db.samples import Rows
from sqlnet.errors import InputError

# how messages name a DataFrame's rows: as the lines of its CSV, the header being line 1
FRAME = "the DataFrame (line 2 is its first row)"


@dataclass(frozen=True)
class Records:
    """Rows from Python code: the column names, the rows as (line, {column: value}) read from the start each
    time it is called (loading reads them in passes), and how messages name them."""

    header: list[str]
    rows: Rows
    source: str = "the rows"


def is_frame(obj: object) -> bool:
    """A pandas DataFrame (by its shape; pandas is not imported to ask)."""
    return all(hasattr(obj, a) for a in ("columns", "itertuples", "dtypes", "index"))


def _field(value: Any) -> Any:
    """A value as the CSV readers take it: floats exactly (repr), None for a missing one."""
    return None if value is None else repr(float(value)) if isinstance(value, float) else value


def _frame_rows(frame: Any) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """A DataFrame's column names (unique, as text) and its rows, missing values (NaN, None, NA) as None."""
    header = [str(c) for c in frame.columns]
    if len(set(header)) != len(header):
        twice = next(c for c in header if header.count(c) > 1)
        raise InputError(f"the DataFrame has two columns named {twice!r}: rename one")
    return header, frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)


def frame_records(frame: Any) -> Records:
    """A DataFrame's rows as Records, numbered as the lines of its CSV (the first row is line 2)."""
    header, _ = _frame_rows(frame)

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, values in enumerate(_frame_rows(frame)[1], start=2):
            yield line, {c: _field(v) for c, v in zip(header, values)}

    return Records(header, rows, FRAME)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], name: str) -> io.StringIO:
    """Rows as CSV text (floats written exactly, with repr) that `predict`'s CSV path reads by header; its
    `name` is how messages name it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else _field(v) for v in row])
    out.seek(0)
    out.name = name  # type: ignore[misc]
    return out


def frame_csv(frame: Any) -> io.StringIO:
    """A DataFrame's rows to predict, as CSV text by its column names (missing values left empty)."""
    return csv_text(*_frame_rows(frame), FRAME)


def to_frame(columns: list[str], rows: list[tuple[Any, ...]], index: Any = None) -> Any:
    """A DataFrame of result rows; with `index` (the frame predicted, row for row), its index."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=columns)
    if index is not None:
        df.index = index
    return df
