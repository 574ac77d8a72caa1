"""Least privilege: a role holding only what `sqlnet grants` prints trains; one lacking a grant is
told which, before anything changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from sqlnet.cli import main
from sqlnet.model.reference import train as reference_train
from tests.helpers import POST_DATA, POST_NET, POST_PARAMS, database_snapshot, table_params, url_with
from tests.test_reference import assert_close

PASSWORD = "sqlnet-test"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.fixture
def role(post_db: str, conn: psycopg.Connection) -> Iterator[str]:
    """A login role that can do nothing in this database but connect: PUBLIC's defaults revoked."""
    (allowed,) = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not allowed:
        pytest.skip("the test server's role may not create roles")
    name = f"trainer_{uuid.uuid4().hex[:8]}"
    (database,) = conn.execute("SELECT current_database()").fetchone()
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(PASSWORD))
    )
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(name))
    )
    conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    yield name
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(url: str, role: str) -> str:
    return url_with(url, username=role, password=PASSWORD)


def test_a_role_with_only_the_printed_grants_trains(
    post_db: str, conn: psycopg.Connection, role: str
) -> None:
    code, out, err = run("grants", role, "--trace", "--apply", "--database-url", post_db)
    assert code == 0, err
    assert f'GRANT SELECT, UPDATE ON TABLE "public"."weights2" TO "{role}";' in out
    assert f'GRANT SELECT ON TABLE "public"."inputs" TO "{role}";' in out
    url = as_role(post_db, role)

    code, _, err = run("train", "--epochs", "3", "--learning-rate", "0.0001", "--database-url", url)
    assert code == 0, err
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.0001, 3).params
    got = table_params(conn, POST_NET)
    assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
    # checkpoints, Adam's state, a trace, the check, the run list and an undo: all with the same grants
    for args in (
        [
            "train",
            "--epochs",
            "4",
            "--checkpoint-every",
            "2",
            "--optimizer",
            "adam",
            "--learning-rate",
            "0.01",
        ],
        ["train", "--trace", "--learning-rate", "0.0001"],
        ["check", "--epochs", "2", "--learning-rate", "0.0001"],
        ["runs"],
        ["restore", "3"],
        ["phases"],
    ):
        code, _, err = run(*args, "--database-url", url)
        assert code == 0, (args, err)
    # the role can do no more than that
    with psycopg.connect(url, autocommit=True) as trainer:
        for forbidden in ("DELETE FROM inputs", "UPDATE outputs SET outputvalue = 0", "CREATE TABLE public.x (i int)",
                          "DROP TABLE sqlnet.runs"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                trainer.execute(forbidden)


REVOKES = [
    ("UPDATE ON weights2", "REVOKE UPDATE ON weights2 FROM {role}", "UPDATE on table public.weights2",
     'GRANT UPDATE ON TABLE "public"."weights2" TO'),
    ("SELECT ON outputs", "REVOKE SELECT ON outputs FROM {role}", "SELECT on table public.outputs",
     'GRANT SELECT ON TABLE "public"."outputs" TO'),
    ("INSERT ON sqlnet.runs", "REVOKE INSERT ON sqlnet.runs FROM {role}", "INSERT on table sqlnet.runs",
     'GRANT INSERT ON TABLE "sqlnet"."runs" TO'),
    ("USAGE ON SCHEMA sqlnet", "REVOKE USAGE ON SCHEMA sqlnet FROM {role}", "USAGE on schema sqlnet",
     'GRANT USAGE ON SCHEMA "sqlnet" TO'),
    ("TEMPORARY", "REVOKE TEMPORARY ON DATABASE {database} FROM {role}", "TEMPORARY on database",
     "GRANT TEMPORARY ON DATABASE"),
    ("USAGE ON SCHEMA public", "REVOKE USAGE ON SCHEMA public FROM {role}", "may use no schema on its search_path",
     "GRANT USAGE ON SCHEMA public TO"),
]  # fmt: skip


@pytest.mark.parametrize(("revoke", "lacks", "grant"), [r[1:] for r in REVOKES], ids=[r[0] for r in REVOKES])
def test_a_missing_grant_is_named_and_nothing_changes(
    post_db: str, conn: psycopg.Connection, role: str, revoke: str, lacks: str, grant: str
) -> None:
    assert run("grants", role, "--apply", "--database-url", post_db)[0] == 0
    (database,) = conn.execute("SELECT current_database()").fetchone()
    conn.execute(sql.SQL(revoke).format(role=sql.Identifier(role), database=sql.Identifier(database)))
    before = database_snapshot(conn)
    for args in (
        ["train", "--epochs", "2"],
        ["train", "--epochs", "2", "--checkpoint-every", "1"],
        ["check"],
    ):
        code, _, err = run(*args, "--database-url", as_role(post_db, role))
        assert code == 1, (args, err)
        assert lacks in err and grant in err, (args, err)
        assert f"sqlnet grants {role}" in err
        assert database_snapshot(conn) == before, args


def test_without_schema_sqlnet_the_role_is_told_to_ask_the_owner(
    post_db: str, conn: psycopg.Connection, role: str
) -> None:
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT SELECT ON inputs, outputs TO {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT SELECT, UPDATE ON weights1, weights2 TO {}").format(sql.Identifier(role)))
    before = database_snapshot(conn)
    code, _, err = run("train", "--database-url", as_role(post_db, role))
    assert code == 1
    assert "schema sqlnet does not exist yet" in err and f"sqlnet grants {role} --apply" in err
    assert database_snapshot(conn) == before


def test_grants_for_a_role_that_does_not_exist(post_db: str) -> None:
    code, _, err = run("grants", "nobody_here", "--database-url", post_db)
    assert code == 1 and "role 'nobody_here' does not exist" in err
