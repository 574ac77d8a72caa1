"""A soak: 200 short trainings back to back leave nothing behind -- no connections, temporary files, locks or
growing memory, in the client or the server (marked slow; CI runs it)."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import psycopg
import pytest

import sqlnet

RUNS = 200


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status here")
    return 0  # not reached


def server_state(conn: psycopg.Connection) -> tuple[int, int, int, int]:
    """Other sessions on the database, advisory locks, temporary files written, and temporary tables alive."""
    (others,) = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()  # type: ignore[misc]
    (locks,) = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()  # type: ignore[misc]
    (temp_files,) = conn.execute(
        "SELECT temp_files FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()  # type: ignore[misc]
    (temp_tables,) = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'pg_temp%%'"
    ).fetchone()  # type: ignore[misc]
    return int(others), int(locks), int(temp_files), int(temp_tables)


def server_processes(conn: psycopg.Connection) -> psutil.Process | None:
    """The server's postmaster, when its processes are this machine's to see (the embedded server; not a
    container's, whose process ids are of another namespace): the parent of this session's backend, started
    when the server says it started."""
    (pid, started) = conn.execute(
        "SELECT pg_backend_pid(), extract(epoch FROM pg_postmaster_start_time())"
    ).fetchone()  # type: ignore[misc]
    try:
        postmaster = psutil.Process(pid).parent()
    except psutil.Error:
        return None
    if postmaster is None or abs(postmaster.create_time() - float(started)) > 2:
        return None
    return postmaster


def server_private_kb(postmaster: psutil.Process, skip: int) -> tuple[int, int]:
    """The memory only the server's own processes hold (unique set size: their shared buffers left out, which
    grow as pages are read and are not a leak), summed over the postmaster and its children except the backend
    `skip` (the test's own session); and how many processes there are."""
    procs = [postmaster] + [p for p in postmaster.children() if p.pid != skip]
    return sum(p.memory_full_info().uss for p in procs) // 1024, len(procs)


@pytest.mark.slow
def test_two_hundred_trainings_leave_nothing_behind(post_db: str, conn: psycopg.Connection) -> None:
    for _ in range(10):  # warm up: imports, caches, sqlnet's schema
        sqlnet.train(post_db, epochs=1, learning_rate=1e-4, updates_per_statement=1)
    gc.collect()
    conn.execute("SELECT pg_stat_clear_snapshot()")
    postmaster = server_processes(conn)
    (own,) = conn.execute("SELECT pg_backend_pid()").fetchone()  # type: ignore[misc]
    server_before = server_private_kb(postmaster, own) if postmaster else None
    before, client_before = server_state(conn), rss_kb()
    for n in range(RUNS):
        options = {"batch_size": 1, "shuffle": n} if n % 3 == 0 else {"checkpoint_every": 1} if n % 3 == 1 else {}
        sqlnet.train(post_db, epochs=2, learning_rate=1e-4, **options)
    gc.collect()
    conn.execute("SELECT pg_stat_clear_snapshot()")
    after, client_after = server_state(conn), rss_kb()
    assert after == before, (before, after)  # sessions, advisory locks, temp files, temp tables
    assert client_after - client_before < 20_000, (client_before, client_after)  # kB: no growth per training
    server_after = server_private_kb(postmaster, own) if postmaster else None
    if server_before and server_after:  # the same processes (no backend left over), their memory flat
        assert server_after[1] == server_before[1], (server_before, server_after)
        assert server_after[0] - server_before[0] < 20_000, (server_before, server_after)  # kB
    (runs,) = conn.execute("SELECT count(*) FROM sqlnet.runs WHERE status = 'finished'").fetchone()  # type: ignore[misc]
    assert runs == RUNS + 10
    print(f"client RSS {client_before} -> {client_after} kB over {RUNS} trainings; server {before} -> {after}; "
          f"server processes' private memory (kB, processes) {server_before} -> {server_after}")
