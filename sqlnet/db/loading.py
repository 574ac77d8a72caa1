"""Loading data into PostgreSQL: what `sqlnet.db.samples` checked and prepared becomes
`inputs(sampleId, inputNode, inputValue)` and `outputs(sampleId, outputNode, outputValue)`, streamed with COPY,
and the rows as read in a raw table beside them. What was loaded is part of the network's definition
(`sqlnet.networks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from psycopg import sql
from psycopg.rows import dict_row

from sqlnet.db import marks
from sqlnet.db.connection import Session
from sqlnet.db.networks import read_definition, save_definition
from sqlnet.db.samples import (
    RAW_TABLE,
    Loaded,
    LoadSpec,
    Prepared,
    Rows,
    _number,
    _open,
    csv_rows,
    held_out_count,
    prepare,
    read_csv,
)
from sqlnet.db.store import ensure_schema, has_schema
from sqlnet.errors import InputError

__all__ = ["RAW_TABLE", "LoadSpec", "Loaded", "copy_samples", "csv_rows", "dataset", "held_out_count", "load"]


def load(
    s: Session,
    schema: str,
    header: list[str],
    rows: Rows,
    source: str,
    spec: LoadSpec,
    on_rows: Callable[[int], None] | None = None,
) -> Loaded:
    """Check every row, then stream inputs and outputs (and the raw rows) into the tables with COPY.

    The data is read in passes (check and statistics; inputs; outputs; raw rows), never held in memory."""
    prepared = prepare(header, rows, source, spec, f"schema {schema!r}", on_rows)
    loaded = _write(s, schema, prepared)
    if on_rows:
        on_rows(prepared.count)
    return loaded


# a row of the raw table must fit in a page (8 kB, doubles are never moved out of the row): ~1,000 doubles, with
# room left for the sampleid, an id and a label (PostgreSQL's own limit, 1,600 columns, comes later)
MAX_RAW_NUMBERS = 990


def _write(s: Session, schema: str, p: Prepared) -> Loaded:
    source, spec, features, classes, means, count = p.source, p.spec, p.features, p.classes, p.means, p.count
    xs, ts, raw_rows = p.inputs(), p.outputs(), p.raw()
    numbers = len(features) + (0 if classes is not None else len(spec.targets))
    if numbers > MAX_RAW_NUMBERS:  # refused before anything is written
        raise InputError(
            f"{source} has {numbers} numeric columns to keep: one row of the table of the rows as read "
            f"({spec.raw_table}) holds at most {MAX_RAW_NUMBERS} doubles (8 bytes each in an 8 kB page), so pick at "
            f"most {MAX_RAW_NUMBERS - numbers + len(features)} features with --features"
        )
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
    kept = p.kept
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
        s, schema, source=source, features=features, targets=spec.targets, classes=classes, means=means, stds=p.stds,
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
