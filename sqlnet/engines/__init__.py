"""The engine interface: what an engine that trains sqlnet's networks must do, and the two that do it.

A command asks `open_engine(name, ...)` for the engine where the network lives and makes one call on it,
whatever the engine: ``init``, ``train``, ``training_sql``, ``check``, ``predict``, ``runs``, ``run``. Each
engine refuses, in one place (``refuse``, by the capabilities of ``sqlnet.ops.engines``), an option it
cannot honour, naming the capability, before anything runs.

- ``PostgreSQL`` (``sqlnet.engines.postgresql``): the tables of a schema, one recursive CTE per block of
  updates; every capability.
- ``Spark`` (``sqlnet.engines.spark``): Parquet folders or a database of Spark's catalog, one statement
  per update; imported only when asked for (pyspark is an optional extra).
"""

from __future__ import annotations

from sqlnet.engines.base import Engine, Epoch, lacks, refuse
from sqlnet.errors import Unsupported
from sqlnet.ops.engines import ENGINE_NAMES, RESTORE

__all__ = ["ENGINE_NAMES", "RESTORE", "Engine", "Epoch", "lacks", "open_engine", "refuse"]


def open_engine(
    name: str = "postgresql",
    *,
    database_url: str | None = None,
    schema: str | None = None,
    parquet: str | None = None,
    database: str | None = None,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> Engine:
    """The engine `name` over the network at the place given: PostgreSQL's `database_url` and `schema`, or
    Spark's `parquet` folder (or catalog `database`), `master` and `conf`. A place of the other engine is
    refused, naming the option; nothing is connected to before a method is called."""
    if name not in ENGINE_NAMES:
        raise Unsupported(f"unknown engine {name!r}: one of {', '.join(ENGINE_NAMES)}")
    if name == "spark":
        refuse("spark", {"database_url": database_url, "schema": schema})
        from sqlnet.engines.spark import Spark

        return Spark(parquet=parquet, database=database, master=master, conf=dict(conf or {}))
    spark_given = {"parquet": parquet, "spark_database": database, "spark_master": master, "spark_conf": conf}
    for option, value in spark_given.items():
        if value:
            raise Unsupported(f"--{option.replace('_', '-')} is the Spark engine's: add --engine spark")
    from sqlnet.engines.postgresql import PostgreSQL

    return PostgreSQL(database_url=database_url, schema=schema)
