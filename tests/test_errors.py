"""Bad input: a clear error naming the table, column or row and what to do; nothing changes."""

from __future__ import annotations

import psycopg
import pytest

import sqlnet
from sqlnet.errors import InputError
from sqlnet.model.reference import train as reference_train
from tests.helpers import POST_DATA, POST_NET, POST_PARAMS, snapshot, url_with


def test_samples_without_targets(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE inputs (sampleId int, inputNode int, inputValue float8)")
    conn.execute("CREATE TABLE outputs (sampleId int, outputNode int, outputValue float8)")
    conn.execute(
        "CREATE TABLE weights1 (weight1InputNodeNumber int, weight1OutputNodeNumber int, weight1Value float8)"
    )
    conn.execute("INSERT INTO inputs VALUES (1, 1, 0.5), (2, 1, 0.7)")
    conn.execute("INSERT INTO outputs VALUES (1, 1, 1.0)")
    conn.execute("INSERT INTO weights1 VALUES (1, 1, 0.3)")
    with pytest.raises(InputError, match=r"sample 2 is in public\.inputs but not in public\.outputs"):
        sqlnet.train(db_url)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"learning_rate": 0}, "learning rate must be a finite number above 0"),
        ({"learning_rate": float("nan")}, "learning rate"),
        ({"learning_rate": -1}, "learning rate"),
        ({"epochs": 0}, "epochs must be a whole number of at least 1"),
        ({"epochs": 2.5}, "epochs"),
        ({"updates_per_statement": 0}, "updates per statement"),
        ({"hidden_activation": "swish"}, "unknown hidden activation 'swish'"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"bias": "row"}, "unknown bias layout 'row'"),
    ],
)
def test_bad_options_are_refused(post_db: str, conn: psycopg.Connection, options: dict, words: str) -> None:
    before = snapshot(conn)
    with pytest.raises(InputError, match=words):
        sqlnet.train(post_db, **options)
    assert snapshot(conn) == before


def test_missing_schema(post_db: str) -> None:
    with pytest.raises(InputError, match="schema 'nowhere' does not exist"):
        sqlnet.train(post_db, schema="nowhere")


def test_edge_bias_without_bias_columns(post_db: str, conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE weights2 DROP COLUMN weight2bias")
    with pytest.raises(InputError, match=r"'weight2bias' in public\.weights2"):
        sqlnet.train(post_db, bias="edge")


def test_failure_in_a_later_statement_rolls_back_everything(post_db: str, conn: psycopg.Connection) -> None:
    """The second statement's write-back fails: the first one's writes and the run record vanish too.

    A CHECK constraint (built-in operators only, so sqlnet accepts the table) lets the first update's
    weight through and refuses the second's."""
    first, second = (
        reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.0001, epochs).params.weights[0][0][0] for epochs in (1, 2)
    )
    assert first != second
    bound = (first + second) / 2
    op = ">=" if second < first else "<="
    conn.execute(f"ALTER TABLE weights1 ADD CONSTRAINT moves_once CHECK (weight1value {op} {bound!r})")
    before = snapshot(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        sqlnet.train(post_db, epochs=3, learning_rate=0.0001, updates_per_statement=1)
    assert snapshot(conn) == before
    assert conn.execute("SELECT to_regclass('sqlnet.runs')").fetchone()[0] is None


def test_a_servers_own_statement_timeout_is_named(post_db: str, conn: psycopg.Connection) -> None:
    """The role or database may limit statements: the error says so and what to change."""

    url = url_with(post_db, query={"options": "-c statement_timeout=50"})
    before = snapshot(conn)
    with pytest.raises(
        sqlnet.DatabaseError, match=r"statement_timeout = 50ms .* lower --updates-per-statement"
    ):
        sqlnet.train(url, epochs=200_000, learning_rate=1e-6, updates_per_statement=100_000)
    assert snapshot(conn) == before
