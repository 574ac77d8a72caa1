"""The write-back's verification names every way the tables can differ from what sqlnet wrote: a changed
value (weight or edge bias), a row it did not write, a missing row, a key written twice, a node bias; and an
exact NUMERIC write compared as numeric. The values go to the server as one binary array per table
(sqlnet.db.arrays), the keys from their positions."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

import sqlnet
from sqlnet.db.arrays import Doubles, cursor, pack
from sqlnet.db.checks import check_and_size
from sqlnet.db.connection import Database
from sqlnet.db.tables import WriteNotVerified, discover, read_params, verify_params
from sqlnet.model.network import Network, Params

CHANGES = {
    "as written": ([], None),
    "a changed weight": (
        ["UPDATE public.weights1 SET weight1value = weight1value + 1 WHERE weight1inputnodenumber = 2 AND weight1outputnodenumber = 1"],
        "weights1.weight1value holds 5 in the row weight1inputnodenumber = 2, weight1outputnodenumber = 1, but sqlnet wrote 4.0",
    ),
    "a changed edge bias": (
        ["UPDATE public.weights2 SET weight2bias = 7 WHERE weight2inputnodenumber = 1 AND weight2outputnodenumber = 3"],
        "weights2.weight2bias holds 7 in the row weight2inputnodenumber = 1, weight2outputnodenumber = 3",
    ),
    "a row sqlnet did not write": (
        ["INSERT INTO public.weights1 VALUES (9, 9, 0, 0)"],
        "weights1 has a row sqlnet did not write (weight1inputnodenumber = 9, weight1outputnodenumber = 9)",
    ),
    "a missing row": (
        ["DELETE FROM public.weights2 WHERE weight2inputnodenumber = 2 AND weight2outputnodenumber = 2"],
        "weights2 shows 5 of the 6 rows sqlnet wrote",
    ),
    "a key twice": (
        ["INSERT INTO public.weights1 SELECT * FROM public.weights1 WHERE weight1inputnodenumber = 1 AND weight1outputnodenumber = 1"],
        "weights1 shows 7 of the 6 rows sqlnet wrote",
    ),
}


def post(s: object) -> tuple[object, Network]:
    tables = discover(s, None)  # type: ignore[arg-type]
    sizes = check_and_size(s.pg, tables)  # type: ignore[attr-defined]
    return tables, Network(sizes, "sigmoid", "sigmoid", "half-se", "edge")


@pytest.mark.parametrize("name", CHANGES)
def test_every_difference_is_named_with_its_row(db_url: str, name: str) -> None:
    sqlnet.init(db_url, example="post")
    changes, message = CHANGES[name]
    with Database(db_url).connection() as s:
        tables, net = post(s)
        written = read_params(s.pg, tables, net)  # type: ignore[arg-type]
        for change in changes:
            s.pg.execute(change)
        if message is None:
            verify_params(s.pg, tables, written)  # type: ignore[arg-type]
            return
        with pytest.raises(WriteNotVerified) as caught:
            verify_params(s.pg, tables, written)  # type: ignore[arg-type]
        assert message in str(caught.value), str(caught.value)


def test_an_exact_numeric_write_is_compared_as_numeric(db_url: str) -> None:
    sqlnet.init(db_url, example="post")  # the post's tables are NUMERIC
    with Database(db_url).connection() as s:
        tables, net = post(s)
        exact = read_params(s.pg, tables, net, "numeric")  # type: ignore[arg-type]
        assert isinstance(exact.weights[0][0][0], Decimal)
        verify_params(s.pg, tables, exact)  # type: ignore[arg-type]
        exact.weights[1][1][2] += Decimal("1e-20")
        with pytest.raises(WriteNotVerified, match="weight2inputnodenumber = 2, weight2outputnodenumber = 3"):
            verify_params(s.pg, tables, exact)  # type: ignore[arg-type]


def test_node_biases_are_compared(db_url: str, conn: psycopg.Connection) -> None:
    sqlnet.init(db_url, schema="nb", layers=(3, 4, 2), seed=1, bias="node")
    with Database(db_url).connection() as s:
        tables = discover(s, "nb")
        net = Network((3, 4, 2), "tanh", "linear", "half-se", "node")  # its inputs are still empty
        written = read_params(s.pg, tables, net)
        verify_params(s.pg, tables, written)
        s.pg.execute('UPDATE nb.biases2 SET bias2value = bias2value * 2 + 1 WHERE bias2nodenumber = 2')
        with pytest.raises(WriteNotVerified, match=r"biases2\.bias2value holds .* in the row bias2nodenumber = 2"):
            verify_params(s.pg, tables, written)
        wrong = Params([[list(r) for r in m] for m in written.weights], written.biases)
        wrong.weights[0][2][3] += 1e-300 if wrong.weights[0][2][3] == 0 else wrong.weights[0][2][3] * 1e-15
        with pytest.raises(WriteNotVerified, match="weight1inputnodenumber = 3, weight1outputnodenumber = 4"):
            verify_params(s.pg, tables, wrong)  # the last key of a layer: positions map to keys exactly


def test_doubles_arrive_bit_for_bit(conn: psycopg.Connection) -> None:
    values = [0.1, -0.0, 1e-308, 5e-324, 1.7976931348623157e308, -2.5, 1 / 3]
    got = cursor(conn).execute("SELECT %b::float8[]", [Doubles(values)]).fetchone()
    assert got is not None and [v.hex() for v in got[0]] == [v.hex() for v in values]
    assert cursor(conn).execute("SELECT %b::float8[]", [Doubles([])]).fetchone() == ([],)
    assert len(pack(values)) == 20 + 12 * len(values)
    with pytest.raises(psycopg.ProgrammingError):  # the connection's own adapters are left as they were
        conn.execute("SELECT %b", [Doubles([1.0])])
