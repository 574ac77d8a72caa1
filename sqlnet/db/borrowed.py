"""A database reached through a connection the caller already holds: an SQLAlchemy ``Engine`` or
``Connection``, or a psycopg ``Connection`` (``adopt`` tells them apart without importing SQLAlchemy).

An Engine is a URL (and sqlnet opens connections of its own, as for a URL). A Connection is used as it is,
and sqlnet's guarantees hold on it: the search path is pinned, every training is one transaction, and the
connection is left as it was found -- the settings sqlnet changes (search_path, application_name, the
planner's and time limits, client_encoding) are set back, and its cursor factory. If the caller's
transaction is open (SQLAlchemy's ``in_transaction()``, or psycopg's status), sqlnet's work joins it inside
a SAVEPOINT and commits nothing: it is kept or undone with the caller's transaction. Otherwise it is a
transaction of its own, committed at the end. Checkpoints (which commit several times) and reading a table
while writing (a second connection) need connections of sqlnet's own: an Engine or a URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from sqlnet.db.connection import SAFE_SEARCH_PATH, Cursor, Database, Session, libpq_url
from sqlnet.errors import InputError, Unsupported

# every setting sqlnet may change on a connection, as a session or a transaction (SET LOCAL)
SETTINGS = (
    "search_path", "application_name", "statement_timeout", "lock_timeout", "work_mem", "jit",
    "enable_nestloop", "enable_material", "client_encoding",
)  # fmt: skip


def _sqlalchemy_kind(obj: object) -> str | None:
    """'engine', 'connection' or None, by the class's module and name (SQLAlchemy is never imported here)."""
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("sqlalchemy."):
            if cls.__name__ == "Engine":
                return "engine"
            if cls.__name__ == "Connection":
                return "connection"
    return None


def engine_url(engine: Any) -> str:
    """An SQLAlchemy Engine's URL with its password, as libpq reads it (the driver part dropped)."""
    return libpq_url(engine.url.render_as_string(hide_password=False))


def adopt(database: object) -> Database:
    """The Database for an SQLAlchemy Engine or Connection, or a psycopg Connection; else an error."""
    kind = _sqlalchemy_kind(database)
    if kind == "engine":
        return Database(engine_url(database))
    if kind == "connection":
        raw = database.connection.dbapi_connection  # type: ignore[attr-defined]
        if not isinstance(raw, psycopg.Connection):
            raise Unsupported(
                "sqlnet works through psycopg 3: make the engine with a URL postgresql+psycopg://... "
                f"(this connection's driver is {type(raw).__module__.split('.')[0]})"
            )
        joined = bool(database.in_transaction())  # type: ignore[attr-defined]
        return Borrowed(raw, joined, engine_url(database.engine))  # type: ignore[attr-defined]
    if isinstance(database, psycopg.Connection):
        return Borrowed(database, database.info.transaction_status != psycopg.pq.TransactionStatus.IDLE, None)
    raise InputError(
        f"sqlnet cannot use a {type(database).__name__} as the database: give a URL, an SQLAlchemy Engine or "
        f"Connection, or a psycopg Connection"
    )


class Borrowed(Database):
    """A connection sqlnet did not open: used, never closed, left as it was found."""

    def __init__(self, conn: psycopg.Connection, joined: bool, url: str | None) -> None:
        self.conn = conn
        self.joined = joined  # the caller's transaction is open: sqlnet's work joins it
        self.embedded = False
        self.url = url or conn.info.dsn  # for messages (and a second connection, when the URL is known)
        self.given_url = url
        self.args = {"cursor_factory": Cursor, "client_encoding": "utf8"}

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Session]:
        conn = self.conn
        if conn.closed:
            raise InputError("the connection given to sqlnet is closed")
        if self.joined and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute("SELECT")  # SQLAlchemy has begun the caller's transaction, the server not yet
        factory = conn.cursor_factory
        try:
            with conn.transaction(force_rollback=not commit):  # a savepoint inside the caller's transaction
                saved = conn.execute(
                    "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.unnest(%s::text[]) AS s (name)",
                    (list(SETTINGS),),
                ).fetchall()
                (home,) = conn.execute("SELECT pg_catalog.current_schema()").fetchone()  # type: ignore[misc]
                conn.execute(
                    "SELECT pg_catalog.set_config('search_path', %s, true), "
                    "pg_catalog.set_config('client_encoding', 'UTF8', true)",
                    (SAFE_SEARCH_PATH,),
                )
                conn.cursor_factory = Cursor
                yield _BorrowedSession(conn, home)
                # as found: what sqlnet set, locally or for the session, set back (a rollback undoes it too)
                conn.execute(
                    "SELECT pg_catalog.set_config(name, setting, false) "
                    "FROM ROWS FROM (pg_catalog.unnest(%s::text[]), pg_catalog.unnest(%s::text[])) AS s (name, setting)",
                    ([n for n, _ in saved], [v for _, v in saved]),
                )
        finally:
            conn.cursor_factory = factory

    @contextmanager
    def connection(self) -> Iterator[Session]:
        raise Unsupported(
            "checkpoints commit several times: give sqlnet an SQLAlchemy Engine or a URL, not a connection"
        )
        yield  # pragma: no cover

    @contextmanager
    def snapshot_reader(self) -> Iterator[psycopg.Connection]:
        if self.given_url is None:
            raise Unsupported(
                "loading from a table reads it on a second connection: give sqlnet a URL or an SQLAlchemy "
                "Engine or Connection, not a psycopg connection"
            )
        with Database(self.given_url).snapshot_reader() as reader:
            yield reader


class _BorrowedSession(Session):
    def commit(self) -> None:
        raise Unsupported("checkpoints commit several times: give sqlnet an SQLAlchemy Engine or a URL")

    def rollback(self) -> None:
        raise Unsupported("sqlnet does not roll back a connection it was given: the error rolls back its work")
