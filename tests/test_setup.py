"""The project's set-up files and database discovery (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sqlnet.db import configured_url, libpq_url, sqlalchemy_url
from sqlnet.errors import DatabaseError, InputError

ROOT = Path(__file__).parent.parent


def test_compose_file_serves_the_post_tables() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["postgres"]
    assert service["image"] == "${SQLNET_POSTGRES_IMAGE:-postgres:18}"  # the official image unless told otherwise
    assert "./sql:/docker-entrypoint-initdb.d:ro" in service["volumes"]
    assert any(v.startswith("pgdata:") for v in service["volumes"])
    assert "pgdata" in compose["volumes"]
    assert "pg_isready" in " ".join(service["healthcheck"]["test"])
    env = service["environment"]
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)
    # the init scripts create, then fill, the post's tables; golden files sit in a subfolder, not run
    scripts = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert scripts == ["01_tables.sql", "02_example_post.sql"]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = 'python -m pip install -e ".[test]" && python -m pytest'
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install . && sqlnet demo" in readme


def test_url_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://b/db")
    assert configured_url() == "postgresql://b/db"
    monkeypatch.setenv("SQLNET_DATABASE_URL", "postgresql://a/db")
    assert configured_url() == "postgresql://a/db"
    assert configured_url("postgresql://given/db") == "postgresql://given/db"
    monkeypatch.delenv("SQLNET_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL")
    assert configured_url() is None  # the embedded server


def test_url_drivers() -> None:
    assert libpq_url("postgresql+psycopg://u:p@h:5/d") == "postgresql://u:p@h:5/d"
    assert sqlalchemy_url("postgresql://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    with pytest.raises(DatabaseError, match="needs a PostgreSQL URL"):
        libpq_url("mysql://u@h/d")


def test_containers_asked_for_without_an_engine_fail_saying_why(tmp_path: Path) -> None:
    """--containers never falls back to the embedded server: no engine, no run, and the reason."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    env.pop("SQLNET_POSTGRES_IMAGE", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--containers",
         "tests/test_train_post.py::test_initial_params_read_back"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0, done.stdout
    assert "--containers needs a running Docker engine" in done.stdout, done.stdout[-2000:]
    assert "passed" not in done.stdout.splitlines()[-1]


def test_an_option_an_engine_cannot_honour_is_refused_once_naming_the_capability() -> None:
    from sqlnet.ops.engines import CAPABILITIES, refusal

    assert refusal("postgresql", {"trace": True, "numeric": "exact", "checkpoint_every": 5}) is None
    assert refusal("spark", {"numeric": "float", "layout": "auto", "validation_fraction": 0.0, "trace": False}) is None
    message = refusal("spark", {"wait": True})
    assert message == (
        "--wait needs queueing behind another trainer, which the Spark engine does not have: "
        "leave --wait out (PostgreSQL has it)"
    )
    assert (refusal("spark", {"numeric": "exact"}) or "").startswith("--numeric exact needs exact decimals")
    # what Spark has learnt (issue 22): a validation split, a deadline, checkpoints, the trace, wide tables
    assert refusal("spark", {"validation_fraction": 0.2, "timeout": 5.0, "checkpoint_every": 5, "resume": 1,
                             "trace": True, "features": ["a"], "id": "k"}) is None  # fmt: skip
    from sqlnet.ops.common import TrainOptions
    from sqlnet.ops.spark_loop import _refuse_unsupported

    with pytest.raises(InputError, match="--layout long needs the long layout, which the Spark engine"):
        _refuse_unsupported(TrainOptions(layout="long"))
    options = [o for c in CAPABILITIES for o in c.options]
    assert len(options) == len(set(options)), "an option needs one capability"
