"""Records that grow: every run keeps its weights before and after (a 784-128-10 network: ~200k values a
run). `prune` removes old runs' records -- never one a training or a network still needs, saying which
and why -- and `sizes` says how much space the records take."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from psycopg import sql

from sqlnet.compile.training import TRACE_SCHEMA
from sqlnet.db import store
from sqlnet.db.connection import Session
from sqlnet.db.networks import read_definition
from sqlnet.db.records import SCHEMA, TABLES
from sqlnet.db.tables import relations, schema_exists


@dataclass
class Pruned:
    removed: list[int] = field(default_factory=list)  # the runs whose records went (or would go: dry_run)
    kept: dict[int, str] = field(default_factory=dict)  # runs that would have gone, and why they stay
    values: int = 0  # the weights and biases kept with the removed runs (rows of run_params)
    bytes: int = 0  # what the records took before (DELETE frees the space for reuse; VACUUM FULL returns it)
    dry_run: bool = False


def sizes(s: Session) -> dict[str, int]:
    """The bytes each of sqlnet's record tables takes (with its indexes and TOAST), by name."""
    if not store.has_schema(s):
        return {}
    return {
        name: int(size)
        for name, size in s.pg.execute(
            "SELECT c.relname, pg_catalog.pg_total_relation_size(c.oid) FROM pg_catalog.pg_class AS c "
            "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname = ANY (%s)",
            (SCHEMA, [t.name for t in TABLES]),
        )
    }


def prune(
    s: Session, keep: int | None, older_than: datetime | None, schema: str | None = None, dry_run: bool = False
) -> Pruned:
    """Remove the records of runs beyond the `keep` latest of each network and (with `older_than`) started
    before it; only a network's (`schema`), if given. Kept whatever they are: a running run, a run that can
    be resumed from its checkpoint, and the run a network's weights came from (its definition's last run)."""
    found = store.list_runs(s)
    out = Pruned(bytes=sum(sizes(s).values()), dry_run=dry_run)
    by_network: dict[str | None, list[store.RunInfo]] = {}
    for r in found:
        if schema is None or r.schema_name == schema:
            by_network.setdefault(r.schema_name, []).append(r)
    last_runs: dict[str | None, int | None] = {
        n: d.last_run for n in by_network if n is not None and (d := read_definition(s, n)) is not None
    }
    for network, runs in by_network.items():
        newest_first = sorted(runs, key=lambda r: r.run_id, reverse=True)
        for position, r in enumerate(newest_first):
            if keep is not None and position < keep:
                continue
            if older_than is not None and r.started_at >= older_than:
                continue
            why = (
                "it is running" if r.status == "running"
                else f"it can be resumed from its checkpoint (sqlnet train --resume {r.run_id})"
                if r.status != "finished" and r.checkpoint
                else f"network {network}'s weights came from it (restore and predict name it)"
                if last_runs.get(network) == r.run_id
                else None
            )  # fmt: skip
            if why:
                out.kept[r.run_id] = why
            else:
                out.removed.append(r.run_id)
    out.removed.sort()
    if out.removed:
        (values,) = s.pg.execute(
            "SELECT count(*) FROM sqlnet.run_params WHERE run_id = ANY (%s)", (out.removed,)
        ).fetchone()  # type: ignore[misc]
        out.values = int(values)
    if out.removed and not dry_run:
        # the trace's rows first (no foreign key leads there), then the runs: their losses, weights and states go
        # with them (ON DELETE CASCADE)
        if schema_exists(s.pg, TRACE_SCHEMA):
            for table in relations(s.pg, TRACE_SCHEMA):
                s.pg.execute(
                    sql.SQL("DELETE FROM {} WHERE run_id = ANY (%s)").format(sql.Identifier(TRACE_SCHEMA, table)),
                    (out.removed,),
                )
        s.pg.execute("DELETE FROM sqlnet.runs WHERE run_id = ANY (%s)", (out.removed,))
    return out
