"""docker-compose for real: the compose file comes up, its init scripts create the post's tables, and
`sqlnet train` against it gives the reference's numbers. Runs with --containers (a Docker engine)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from sqlnet.cli import main
from sqlnet.model.reference import train as reference_train
from tests.conftest import container_image
from tests.helpers import POST_DATA, POST_NET, POST_PARAMS, table_params
from tests.test_reference import assert_close

pytestmark = pytest.mark.containers

COMPOSE_FILE = Path(__file__).parent.parent / "docker-compose.yml"


def compose() -> list[str]:
    """`docker compose` (v2) where the plugin is there, else Debian's docker-compose."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (Debian: apt install docker-compose)", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compose_up_serves_the_posts_network_and_trains_to_the_reference() -> None:
    image, port = container_image(), free_port()
    project = f"sqlnet_test_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SQLNET_POSTGRES_IMAGE": image, "SQLNET_POSTGRES_PORT": str(port)}
    command = [*compose(), "-f", str(COMPOSE_FILE), "-p", project]
    up = subprocess.run([*command, "up", "-d"], env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    url = f"postgresql://sqlnet:sqlnet@127.0.0.1:{port}/sqlnet"
    try:
        deadline, last = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(url, connect_timeout=3) as conn:
                    if conn.execute("SELECT to_regclass('public.weights2')").fetchone()[0] is not None:
                        break
            except psycopg.OperationalError as exc:
                last = exc
            time.sleep(1)
        else:
            logs = subprocess.run([*command, "logs"], env=env, capture_output=True, text=True).stdout
            pytest.fail(f"the compose service never served the post's tables ({last}):\n{logs[-3000:]}")
        result = CliRunner().invoke(main, ["train", "--epochs", "1", "--learning-rate", "0.1", "--database-url", url])
        assert result.exit_code == 0, result.output
        with psycopg.connect(url) as conn:
            got = table_params(conn, POST_NET)
            (version,) = conn.execute("SHOW server_version_num").fetchone()
        want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.1, 1).params
        assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
        assert int(version) >= 150000
    finally:
        subprocess.run([*command, "down", "-v"], env=env, capture_output=True, timeout=300)
