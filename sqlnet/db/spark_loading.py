"""Loading data on Spark: what `sqlnet.db.samples` checked and prepared becomes the Parquet tables
`inputs(sampleId, inputNode, inputValue)`, `outputs(sampleId, outputNode, outputValue)` and the rows as read
(`raw`), as PostgreSQL's load makes them, and the network's definition records what was loaded.

The rows go through a temporary CSV file that Spark reads with the tables' exact schema: the client holds
one row at a time (never the file), and Python's repr of a double reads back as the same double. Every row
is checked before the first table is written; each table is then a new version switched in atomically (the
old one kept in ``.sqlnet``), one after the other.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlnet.db.samples import Loaded, Prepared, held_out_count
from sqlnet.db.spark import VERSIONS, ParquetTables, refuse_own_name
from sqlnet.errors import InputError


def _write_csv(path: Path, rows: Iterable[tuple[Any, ...]]) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for row in rows:
            writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
            count += 1
    return count


def _read_csv(spark: Any, path: Path, fields: list[tuple[str, Any]]) -> Any:
    """The file as a DataFrame of exactly these columns and types (names are data here, never SQL text)."""
    from pyspark.sql.types import StructField, StructType

    schema = StructType([StructField(name, kind, nullable=False) for name, kind in fields])
    return (
        spark.read.schema(schema)
        .option("header", False)
        .option("multiLine", True)  # a label or id may hold a newline, quoted
        .option("escape", '"')
        .option("mode", "FAILFAST")
        .csv(str(path))
    )


def _unique_ids(p: Prepared) -> bool:
    """Check an id column names each row once; whether every id is a whole number (kept as bigint)."""
    seen: dict[str, int] = {}
    whole = True
    for sample, *rest in p.raw():
        key = str(rest[0])
        if key in seen:
            raise InputError(f"{p.source}, column {p.spec.id_column!r}: the id {key!r} is in more than one row "
                             f"(samples {seen[key]} and {sample}); an id must be unique")  # fmt: skip
        seen[key] = sample
        whole = whole and key.lstrip("-").isdigit() and len(key.lstrip("-")) <= 18
    return whole


def _long(rows: Iterator[tuple[int, list[float]]]) -> Iterator[tuple[int, int, float]]:
    return ((sample, node, v) for sample, values in rows for node, v in enumerate(values, start=1))


def write(spark: Any, tables: ParquetTables, p: Prepared) -> Loaded:
    """Write inputs, outputs and the raw rows (refusing to take the place of tables that exist unless the
    spec says replace), and record what was loaded in the network's definition."""
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType

    spec = p.spec
    refuse_own_name(spec.raw_table, "--raw-table", tables.where)
    lowered = [c.lower() for c in p.kept]
    clash = next((c for c in p.kept if lowered.count(c.lower()) > 1), None)
    if clash is not None:  # Spark's columns are found without regard to case
        raise InputError(f"{p.source}: two columns are named {clash!r} but for case, which Spark cannot tell apart: "
                         f"rename one")  # fmt: skip
    names = ["inputs", "outputs", spec.raw_table]
    present = [n for n in names if tables.exists(n)]
    replaced = 0
    if present and not spec.replace:
        raise InputError(
            f"{', '.join(present)} already exist{'s' if len(present) == 1 else ''} in {tables.where}: add --replace "
            f"to load new samples in their place (the old version is kept in {VERSIONS})"
        )
    if tables.exists("inputs"):
        columns = {c.lower() for c in tables.read(spark, "inputs").columns}
        inputs = tables.read(spark, "inputs")
        replaced = inputs.select("sampleid").distinct().count() if "sampleid" in columns else int(inputs.count() > 0)
    whole_ids = _unique_ids(p) if spec.id_column else False
    id_type: list[tuple[str, Any]] = (
        [(spec.id_column, LongType() if whole_ids else StringType())] if spec.id_column else []
    )
    target_type = StringType() if p.classes is not None else DoubleType()
    raw_fields = [("sampleid", LongType()), *id_type, *((f, DoubleType()) for f in p.features),
                  *((t, target_type) for t in spec.targets)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sqlnet-load-") as temp:
        folder = Path(temp)
        written = {
            "inputs": _write_csv(folder / "inputs.csv", _long(p.inputs())),
            "outputs": _write_csv(folder / "outputs.csv", _long(p.outputs())),
        }
        _write_csv(folder / "raw.csv", p.raw())
        for name, prefix in (("inputs", "input"), ("outputs", "output")):
            frame = _read_csv(spark, folder / f"{name}.csv",
                              [("sampleId", LongType()), (f"{prefix}Node", IntegerType()), (f"{prefix}Value", DoubleType())])  # fmt: skip
            tables.write_frame(name, frame.coalesce(1))
            held = tables.read(spark, name).count()
            if held != written[name]:
                raise InputError(f"{name} in {tables.where} holds {held} rows after loading {written[name]}")
        tables.write_frame(spec.raw_table, _read_csv(spark, folder / "raw.csv", raw_fields).coalesce(1))
    definition = dict(tables.read_definition() or {"network": tables.where})
    definition.update(
        source=p.source, features=p.features, targets=spec.targets, classes=p.classes, means=p.means, stds=p.stds,
        samples=p.count, id_column=spec.id_column, raw_table=spec.raw_table,
    )  # fmt: skip
    if spec.validation is not None:
        definition["validation_fraction"], definition["validation_seed"] = spec.validation
    tables.save_definition(definition)
    fraction = float(definition.get("validation_fraction") or 0.0)
    seed = int(definition.get("validation_seed") or 0)
    if p.on_rows:
        p.on_rows(p.count)
    return Loaded(
        schema=tables.where, samples=p.count, features=p.features, targets=spec.targets, classes=p.classes,
        replaced=int(replaced), raw_table=spec.raw_table, id_column=spec.id_column, standardized=p.means is not None,
        held_out=held_out_count(fraction, p.count) if fraction else 0, validation=(fraction, seed),
    )  # fmt: skip
