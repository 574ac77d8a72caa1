"""`sqlnet runs prune`: the records of old runs removed, never those a training or a network still needs."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import click

import sqlnet as api
from sqlnet.cli.base import database_option, handle_errors, human_bytes, out, schema_option
from sqlnet.cli.network import runs
from sqlnet.errors import InputError


def parse_age(value: str | None) -> datetime | timedelta | None:
    """--older-than: an age (30d, 12h, 90m) or a date (2026-11-30, or with a time)."""
    if value is None:
        return None
    age = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", value)
    if age:
        n, unit = int(age.group(1)), age.group(2)
        return timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: n})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--older-than {value!r} is neither an age (30d, 12h, 90m) nor a date (2026-11-30)") from None
    return when if when.tzinfo else when.astimezone()


@runs.command("prune")
@database_option
@schema_option
@click.option("--keep", type=click.IntRange(min=0), metavar="N", help="Keep the N latest runs of each network.")
@click.option("--older-than", metavar="AGE|DATE", help="Only runs started before: 30d, 12h, 90m or 2026-11-30.")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed and kept as JSON.")
@handle_errors
def runs_prune(
    database_url: str | None, schema: str | None, keep: int | None, older_than: str | None, dry_run: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Remove old runs' records: their losses, weights before and after, optimizer states and trace rows.

    Kept whatever you ask: a running run, one that can be resumed from its checkpoint, and the run a
    network's weights came from (each said, with the reason). One transaction: all or nothing.

    \b
    Examples:
      sqlnet runs prune --keep 5                the 5 latest runs of each network stay
      sqlnet runs prune --older-than 30d        runs started more than 30 days ago go
      sqlnet runs prune --keep 1 --schema wine --dry-run
    """
    pruned = api.prune_runs(database_url, keep=keep, older_than=parse_age(older_than), schema=schema, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"removed": pruned.removed, "kept": {str(k): v for k, v in pruned.kept.items()},
                               "values": pruned.values, "bytes_before": pruned.bytes, "dry_run": dry_run}, indent=2))  # fmt: skip
        return
    verb = "would remove" if dry_run else "removed"
    if pruned.removed:
        shown = ", ".join(map(str, pruned.removed[:20])) + (" ..." if len(pruned.removed) > 20 else "")
        out.print(f"{verb} the records of {len(pruned.removed)} run(s): {shown} ({pruned.values} weight values)")
    else:
        out.print("no run's records to remove")
    for run_id, why in sorted(pruned.kept.items()):
        out.print(f"kept run {run_id}: {why}")
    if pruned.removed and not dry_run:
        out.print(f"the records took {human_bytes(pruned.bytes)}; the space is reused by later runs (VACUUM FULL "
                  "sqlnet.run_params returns it to the system)")  # fmt: skip
