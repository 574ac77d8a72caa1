"""A network that stalls: the connection stays open but nothing comes through (a proxy that stopped
forwarding, a half-open connection). With --timeout the client ends within that time and a few seconds
more, with a clear message, and the server rolls the training back: every table is as it was."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

import sqlnet
from sqlnet.db.guard import GRACE, TrainingTimeout
from tests.helpers import database_snapshot, url_with


class Proxy:
    """A TCP proxy to the test's server that forwards until told to stall (then holds every connection open
    and silent)."""

    def __init__(self, url: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(url)
        host, port = str(info.get("host") or "localhost"), int(info.get("port") or 5432)
        self.upstream = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (socket.AF_INET, (host, port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.sockets: list[socket.socket] = []
        self.url = url_with(
            f"postgresql://{info.get('user') or ''}@127.0.0.1:{self.port}/{info['dbname']}",
            password=str(info["password"]) if info.get("password") else None, query={"sslmode": "disable"},
        )
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            family, address = self.upstream
            server = socket.socket(family, socket.SOCK_STREAM)
            server.connect(address)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.stalled.is_set() and not self.closing.is_set():
                    time.sleep(0.05)  # holds what came, forwards nothing
                if self.closing.is_set():
                    return
                sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def proxy(db_url: str) -> Iterator[Proxy]:
    p = Proxy(db_url)
    yield p
    p.close()


def test_a_stalled_network_ends_the_training_within_the_timeout(
    db_url: str, conn: psycopg.Connection, proxy: Proxy
) -> None:
    sqlnet.init(db_url, schema="s", layers=[8, 64, 64, 1], seed=1, bias="node")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO s.inputs SELECT s, n, random() FROM generate_series(1, 2000) s, generate_series(1, 8) n")
        cur.execute("INSERT INTO s.outputs SELECT s, 1, random() FROM generate_series(1, 2000) s")
    before = database_snapshot(conn, ["s"])
    outcome: dict[str, object] = {}

    def train() -> None:
        began = time.monotonic()
        try:
            sqlnet.train(proxy.url, schema="s", epochs=100_000, learning_rate=0.001, timeout=3, kernels="sql")
        except BaseException as exc:  # the outcome is checked below
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - began

    worker = threading.Thread(target=train)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'sqlnet train s: run 1' AND state = 'active'"
    ).fetchone():
        time.sleep(0.02)
    proxy.stalled.set()  # from now on nothing reaches the client: not even the server's cancel
    worker.join(timeout=60)
    assert not worker.is_alive(), "the client never gave up on the stalled connection"
    error = outcome.get("error")
    assert isinstance(error, TrainingTimeout), error
    assert float(outcome["seconds"]) < 3 + GRACE + 5  # type: ignore[arg-type]
    message = str(error)
    assert "did not answer within --timeout 3 s" in message and "as it was before" in message, message
    proxy.close()
    # the server rolled the training back once its client was gone
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'sqlnet train s%'"
    ).fetchone():
        time.sleep(0.1)
    assert database_snapshot(conn, ["s"]) == before
    assert conn.execute("SELECT to_regclass('sqlnet.runs')").fetchone() == (None,) or conn.execute(
        "SELECT count(*) FROM sqlnet.runs WHERE status = 'finished'"
    ).fetchone() == (0,)
