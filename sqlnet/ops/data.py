"""Data in: `load` (a CSV file, a table, a pandas DataFrame or rows from Python to inputs/outputs, and the raw
rows beside them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from psycopg import sql

from sqlnet.db import loading as loader
from sqlnet.db import trust
from sqlnet.db.tables import check_names, relations, require_schema, where_table
from sqlnet.errors import InputError
from sqlnet.ops.common import DatabaseLike, connect, load_spec
from sqlnet.ops.frames import Records, frame_records, is_frame


def load(
    source: Any = None,
    /,
    *,
    database: DatabaseLike = None,
    schema: str | None = None,
    file: str | None = None,
    from_table: str | None = None,
    from_schema: str | None = None,
    frame: Any = None,
    records: Records | None = None,
    targets: list[str] | None = None,
    target: str | list[str] | None = None,
    features: list[str] | None = None,
    classes: bool = False,
    standardize: bool = False,
    id_column: str | None = None,
    raw_table: str = loader.RAW_TABLE,
    validation_fraction: float | None = None,
    seed: int = 0,
    replace: bool = False,
    delimiter: str = ",",
    on_rows: Callable[[int], None] | None = None,
) -> loader.Loaded:
    """Fill inputs/outputs (with sampleId) from a CSV file or a table, one row per example, and keep the rows
    as read in `raw_table` beside them (sampleid, the id column, the features and targets).

    `features` picks the feature columns (default: all but the targets and `id_column`); `classes` makes the
    target a label (one-hot outputs, class names kept); `standardize` scales each feature to mean 0, std 1
    (kept, so that predict and export do it again to raw values); `validation_fraction` (with `seed`) is the
    share of samples later trainings hold out. Tables that exist are replaced only if sqlnet made them for this
    network, and (unless they are empty) only with `replace`.

    The first argument is the database (a URL, an SQLAlchemy Engine or Connection, ...) or a pandas DataFrame
    to load (then `database=` names the database): ``sqlnet.load(df, target="quality", classes=True)``.
    `target` is `targets` for one column; `delimiter` splits a CSV file's fields (',' unless told)."""
    if is_frame(source):
        if frame is not None:
            raise InputError("load takes one DataFrame: as its first argument or as frame=, not both")
        frame, source = source, None
    if source is not None and database is not None:
        raise InputError("load takes the database once: as its first argument or as database=, not both")
    database = source if source is not None else database
    if target is not None:
        if targets is not None:
            raise InputError("load takes target= or targets=, not both")
        targets = [target] if isinstance(target, str) else list(target)
    if targets is None:
        raise InputError("load needs the target column(s): target='y' (or targets=[...])")
    given = [name for name, v in (("file", file), ("from_table", from_table), ("frame", frame), ("records", records)) if v is not None]
    if len(given) != 1:
        raise InputError("load needs exactly one of file=, from_table=, a DataFrame (frame=) or records=")
    if frame is not None:
        records = frame_records(frame)
    check_names(schema=schema, from_table=from_table, from_schema=from_schema, id=id_column, raw_table=raw_table,
                features=features)  # fmt: skip
    spec = load_spec(
        file=file, from_table=from_table, targets=targets, features=features, classes=classes,
        standardize=standardize, id_column=id_column, raw_table=raw_table,
        validation_fraction=validation_fraction, seed=seed, replace=replace, rows=records is not None,
    )  # fmt: skip
    db = connect(database)
    with db.transaction() as s:
        target_schema = s.schema(schema)
        trust.check_sqlnet_schemas(s.pg, target_schema)
        if file is not None:
            header, rows = loader.csv_rows(Path(file), delimiter)
            return loader.load(s, target_schema, header, rows, file, spec, on_rows)
        if records is not None:
            return loader.load(s, target_schema, records.header, records.rows, records.source, spec, on_rows)
        assert from_table is not None
        require_schema(s.pg, from_schema, "--from-schema")
        source_schema = s.schema(from_schema)
        ident = sql.Identifier(source_schema, from_table)
        found = relations(s.pg, source_schema)
        if from_table not in found:
            raise InputError(f"table {where_table(from_table, from_schema)} not found: check --from-table")
        header = [c[0] for c in found[from_table]]
        # the passes stream the table from a second connection, in one snapshot, while this one copies
        with db.snapshot_reader() as reader:

            def table_rows() -> Iterator[tuple[int, dict[str, Any]]]:
                with reader.cursor(name="sqlnet_load") as cur:  # server-side: rows arrive in batches
                    cur.itersize = 5000
                    cur.execute(sql.SQL("SELECT * FROM {}").format(ident))
                    names = [d.name for d in cur.description or []]
                    for n, r in enumerate(cur, start=1):
                        yield n, dict(zip(names, r))

            return loader.load(s, target_schema, header, table_rows, f"table {source_schema}.{from_table}", spec, on_rows)
