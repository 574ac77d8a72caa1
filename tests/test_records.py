"""Records that grow: `sqlnet runs prune` removes old runs' records (losses, weights before and after, optimizer
states, trace rows) and never one that a training or a network still needs; `sqlnet runs` says their size."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from click.testing import CliRunner

import sqlnet
from sqlnet.cli import main
from sqlnet.errors import InputError


def count(conn: psycopg.Connection, query: str, *args: object) -> int:
    return int(conn.execute(query, args).fetchone()[0])  # type: ignore[index]


def test_prune_keeps_what_is_needed_and_removes_the_rest(db_url: str, conn: psycopg.Connection) -> None:
    ids: dict[str, list[int]] = {"a": [], "b": []}
    for schema, n in (("a", 4), ("b", 2)):
        sqlnet.init(db_url, schema=schema, example="post")
        for _ in range(n):
            ids[schema].append(sqlnet.train(db_url, schema=schema, epochs=1, learning_rate=0.1, trace=schema == "a").run_id)
    a1, a2, a3, a4 = ids["a"]
    b1, b2 = ids["b"]
    # a2 stopped with a checkpoint: resumable, so its records stay
    conn.execute("UPDATE sqlnet.runs SET status = 'interrupted', checkpoint = '1:x:y' WHERE run_id = %s", (a2,))
    before = {r: count(conn, "SELECT count(*) FROM sqlnet.run_params WHERE run_id = %s", r) for r in (a3, a4, b2)}
    dry = sqlnet.prune_runs(db_url, keep=1, dry_run=True)
    assert dry.removed == [a1, a3, b1] and dry.kept == {a2: f"it can be resumed from its checkpoint (sqlnet train --resume {a2})"}
    assert count(conn, "SELECT count(*) FROM sqlnet.runs") == 6  # a dry run removes nothing
    pruned = sqlnet.prune_runs(db_url, keep=1)
    # the post's 3-2-3 network: 12 weights and 12 edge biases, kept before and after each run
    assert pruned.removed == [a1, a3, b1] and pruned.values == 3 * 2 * 24 and pruned.bytes > 0
    left = [r for (r,) in conn.execute("SELECT run_id FROM sqlnet.runs ORDER BY 1")]
    assert left == [a2, a4, b2]
    for table in ("run_params", "run_losses", "run_state"):
        assert count(conn, f"SELECT count(*) FROM sqlnet.{table} WHERE run_id = ANY (%s)", [a1, a3, b1]) == 0
    assert count(conn, "SELECT count(*) FROM sqlnet.run_params WHERE run_id = %s", a4) == before[a4]
    assert count(conn, "SELECT count(*) FROM sqlnet_trace.phase1_hidden_input WHERE run_id = ANY (%s)", [a1, a3]) == 0
    assert count(conn, "SELECT count(*) FROM sqlnet_trace.phase1_hidden_input WHERE run_id = %s", a4) > 0
    # what is left still works: the latest run is restored, the network keeps its weights
    sqlnet.restore(db_url, a4)
    # --keep 0: every run may go but the one each network's weights came from (and the resumable one)
    everything = sqlnet.prune_runs(db_url, keep=0, schema="b")
    assert everything.removed == [] and everything.kept == {b2: "network b's weights came from it (restore and predict name it)"}
    # --older-than: only runs started before; a future time takes every run not kept
    assert sqlnet.prune_runs(db_url, older_than=timedelta(days=1)).removed == []
    with pytest.raises(InputError, match="say which runs"):
        sqlnet.prune_runs(db_url)


def test_the_command_line_prunes_and_says_the_size(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, schema="c", example="post")
    first = sqlnet.train(db_url, schema="c", epochs=1, learning_rate=0.1).run_id
    sqlnet.train(db_url, schema="c", epochs=1, learning_rate=0.1)
    listed = CliRunner().invoke(main, ["runs", "--database-url", db_url])
    assert listed.exit_code == 0 and "records: " in listed.output and "runs prune --keep N" in listed.output
    dry = CliRunner().invoke(main, ["runs", "prune", "--keep", "1", "--dry-run", "--database-url", db_url])
    assert dry.exit_code == 0 and f"would remove the records of 1 run(s): {first}" in dry.output
    done = CliRunner().invoke(main, ["runs", "prune", "--keep", "1", "--json", "--database-url", db_url])
    assert done.exit_code == 0 and json.loads(done.output)["removed"] == [first]
    assert count(conn, "SELECT count(*) FROM sqlnet.runs") == 1
    bad = CliRunner().invoke(main, ["runs", "prune", "--older-than", "soon", "--database-url", db_url])
    assert bad.exit_code == 1 and "neither an age" in bad.stderr


def test_a_layer_too_large_for_one_value_is_refused_before_anything_runs() -> None:
    """A 12000 x 12000 layer is 1.1 GB as the native layout's one array: refused with the estimate and what
    to do; a layer that fits passes."""
    from sqlnet.db.kernels import VERSION, KernelStatus
    from sqlnet.model.network import Network
    from sqlnet.ops.common import Loaded, TrainOptions

    status = KernelStatus(VERSION, VERSION, VERSION)
    huge = Loaded(None, Network((10, 12000, 12000, 1)), 100, TrainOptions(), kernels=status)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"layer 2 has 12000 x 12000 = 144,000,000 weights.*1\.1 GB.*--layout long"):
        huge.refuse_too_large(trace=False)
    Loaded(None, Network((784, 128, 10)), 2000, TrainOptions(), kernels=status).refuse_too_large(trace=False)  # type: ignore[arg-type]
    wide_rows = Loaded(None, Network((200_000, 2, 1)), 5000, TrainOptions(), kernels=status)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"a chunk of 1000 samples of a 200000-node layer is 1\.5 GB"):
        wide_rows.refuse_too_large(trace=False)
