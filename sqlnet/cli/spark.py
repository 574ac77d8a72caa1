"""What the command line shows of the Spark engine (imported only when --engine spark is asked for)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from sqlnet.cli.base import _fmt, out


def print_runs(spark: dict[str, Any], as_json: bool) -> None:
    from sqlnet.ops import spark as on_spark

    found = on_spark.runs(**spark)
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    if not found:
        out.print("no runs yet: `sqlnet train --engine spark` records one")
        return
    table = Table()
    for name in ("run", "started", "status", "network", "epochs", "rate", "final loss"):
        table.add_column(name, overflow="fold")
    for r in found:
        table.add_row(
            str(r["run_id"]), r["started_at"].strftime("%Y-%m-%d %H:%M:%S"), r["status"],
            "-".join(map(str, r["network"]["sizes"])), str(r["epochs"]), str(r["learning_rate"]),
            _fmt(r["final_loss"]) if r["final_loss"] is not None else "",
        )  # fmt: skip
    out.print(table)
