"""pandas (and plain Python rows) at the edges of the operations: rows to predict written as the CSV that
`predict` streams with COPY, and results as DataFrames. pandas is imported only where a DataFrame is made
(it is an optional extra, and the command line never loads it)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from sqlnet.errors import InputError

# how messages name a DataFrame's rows: as the lines of its CSV, the header being line 1
FRAME = "the DataFrame (line 2 is its first row)"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], name: str) -> io.StringIO:
    """Rows as CSV text (floats written exactly, with repr) that `predict`'s CSV path reads by header; its
    `name` is how messages name it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else repr(float(v)) if isinstance(v, float) else v for v in row])
    out.seek(0)
    out.name = name  # type: ignore[misc]
    return out


def frame_csv(frame: Any) -> io.StringIO:
    """A DataFrame's rows to predict, as CSV text by its column names (missing values left empty)."""
    header = [str(c) for c in frame.columns]
    if len(set(header)) != len(header):
        raise InputError("the DataFrame has two columns of one name: rename one")
    values = frame.astype(object).where(frame.notna(), None)
    return csv_text(header, values.itertuples(index=False, name=None), FRAME)


def to_frame(columns: list[str], rows: list[tuple[Any, ...]], index: Any = None) -> Any:
    """A DataFrame of result rows; with `index` (the frame predicted, row for row), its index."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=columns)
    if index is not None:
        df.index = index
    return df
