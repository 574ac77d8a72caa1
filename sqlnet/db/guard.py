"""One trainer per network, and a deadline: the guards around a training transaction.

The lock is a transaction-level advisory lock keyed by the network's schema, so it is released
by commit, rollback, a crash or a killed client alike. The trainer names itself in
`application_name`, which is how a second trainer can say who holds the lock.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from sqlnet.errors import InputError, SqlnetError


class NetworkBusy(SqlnetError):
    """Another training holds this network's lock."""


class TrainingTimeout(SqlnetError):
    """The training ran past its --timeout and was cancelled; the transaction rolled back."""


def lock_key(schema: str) -> str:
    return f"sqlnet train {schema}"


# the pg_locks row (l) of a granted advisory lock taken on hashtextextended(k.key, 0): pg_locks shows the
# 64-bit key as two oids (pg_locks is readable by every role)
HOLDS = (
    "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid = ((pg_catalog.hashtextextended(k.key, 0) >> 32) & 4294967295)::oid "
    "AND l.objid = (pg_catalog.hashtextextended(k.key, 0) & 4294967295)::oid"
)


def held_networks(conn: psycopg.Connection, schemas: list[str]) -> set[str]:
    """The networks (schemas) some session is training now: a run recorded as running whose network nobody
    holds was interrupted."""
    if not schemas:
        return set()
    keys = {lock_key(schema): schema for schema in schemas}
    held = conn.execute(
        "SELECT k.key FROM pg_catalog.unnest(%s::text[]) AS k (key) "
        f"WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l WHERE {HOLDS})",
        (list(keys),),
    )
    return {keys[key] for (key,) in held}


def lock_network(conn: psycopg.Connection, schema: str, wait: bool) -> None:
    """Take the network's lock for this transaction, or fail at once naming who holds it."""
    key = lock_key(schema)
    conn.execute("SELECT set_config('application_name', %s, true)", (f"{key}: starting",))
    if wait:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        return
    (acquired,) = conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)).fetchone()  # type: ignore[misc]
    if acquired:
        return
    holder = conn.execute(
        "SELECT a.application_name, a.pid, to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS') "
        "FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid, (SELECT %s::text AS key) AS k "
        f"WHERE {HOLDS}",
        (key,),
    ).fetchone()
    who = f"{holder[0]} (backend pid {holder[1]}, started {holder[2]})" if holder else "another training"
    raise NetworkBusy(
        f"the network in schema {schema!r} is being trained: {who}. Wait for it to finish, "
        f"or use --wait to queue behind it"
    )


def lock_network_for_session(conn: psycopg.Connection, schema: str, wait: bool) -> None:
    """The same lock held across transactions (checkpointed runs); released by unlock or disconnect."""
    key = lock_key(schema)
    if wait:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        return
    (acquired,) = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()  # type: ignore[misc]
    if not acquired:
        lock_network(conn, schema, wait=False)  # fails, naming the holder


def unlock_network(conn: psycopg.Connection, schema: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key(schema),))


def name_run(conn: psycopg.Connection, schema: str, run_id: int) -> None:
    conn.execute("SELECT set_config('application_name', %s, false)", (f"{lock_key(schema)}: run {run_id}",))


# how long past the deadline the client waits for the server's own cancel before it stops listening: a server
# behind a stalled network (a proxy that stopped forwarding, a half-open connection) never sends it
GRACE = 5.0


class Deadline:
    """Gives each statement what is left of the time as its statement_timeout (Spark's deadline,
    ``sqlnet.db.spark_plan.Deadline``, is this one with a timer instead), and, should the server's cancel
    never arrive, closes the connection GRACE seconds later: the client ends within bounded time whatever
    the network does."""

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
            raise InputError(f"--timeout must be a number of seconds above 0, got {seconds!r}")
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds
        self.cut = False  # the watchdog closed a connection that stopped answering
        self._watched: dict[int, threading.Timer] = {}
        self._depth = 0

    def arm(self, conn: psycopg.Connection) -> None:
        """Before a statement: it may run for the time that is left, and no longer."""
        if self.end is None:
            return
        left_ms = int((self.end - time.monotonic()) * 1000)
        if left_ms <= 0:
            raise self.expired()
        self._watch(conn)
        # every statement, and every wait for another session's lock, ends by the deadline
        conn.execute(
            "SELECT pg_catalog.set_config('statement_timeout', %s, true), pg_catalog.set_config('lock_timeout', %s, true)",
            (f"{left_ms}ms", f"{left_ms}ms"),
        )

    def _watch(self, conn: psycopg.Connection) -> None:
        """At the deadline and GRACE seconds more, shut the connection's socket down: a read that waits for a
        server that cannot answer returns at once (shutdown from another thread is safe; closing is not)."""
        if self.end is None or id(conn) in self._watched:
            return
        fd = conn.pgconn.socket

        def cut() -> None:
            if conn.closed:  # its descriptor may belong to another socket by now
                return
            self.cut = True
            try:
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

        timer = threading.Timer(max(0.0, self.end - time.monotonic()) + GRACE, cut)
        timer.daemon = True
        timer.start()
        self._watched[id(conn)] = timer

    @contextmanager
    def bounds(self) -> Iterator[None]:
        """Inside, the server cancelling a statement or a lock wait at the deadline is the deadline's doing, and
        so is a connection the watchdog closed; the outermost bounds stops the watchdog."""
        self._depth += 1
        try:
            yield
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            if self.end is not None:
                raise self.expired() from exc
            raise
        except Exception as exc:
            if self.cut and not isinstance(exc, TrainingTimeout):
                raise TrainingTimeout(
                    f"the server did not answer within --timeout {self.seconds:g} s and {GRACE:g} s more (a stalled "
                    f"network?), so sqlnet closed the connection: {exc}"
                ) from exc
            raise
        finally:
            self._depth -= 1
            if self._depth == 0:
                for timer in self._watched.values():
                    timer.cancel()
                self._watched.clear()

    def expired(self) -> TrainingTimeout:
        return TrainingTimeout(
            f"the training ran longer than --timeout {self.seconds:g} s and was cancelled on the server; "
            f"the transaction rolled back, so every table is as it was before"
        )
