"""The generated SQL: golden file, readability, safe composition (no database)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sqlnet.compile.statement import script, training_statement
from sqlnet.compile.training import Training, update_blocks
from tests.helpers import POST_NET, post_table_map

GOLDEN = Path(__file__).parent.parent / "sql" / "golden"


def post_statement(**kw: object) -> str:
    return training_statement(Training(POST_NET, post_table_map(), 0.1, **kw)).as_string(None)  # type: ignore[arg-type]


def post_script(**kw: object) -> str:
    return script([Training(POST_NET, post_table_map(), 0.1, **kw)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("post_train.sql", {"layout": "wide"}),  # what `sqlnet sql` prints for the post (layout auto)
        ("post_train_long.sql", {"layout": "long"}),
        ("post_train_trace.sql", {"layout": "long", "trace_run": 1}),
    ],
)
def test_golden(name: str, kwargs: dict) -> None:
    """The post's training script; set SQLNET_UPDATE_GOLDEN=1 to rewrite after a deliberate change."""
    text = post_script(**kwargs)
    path = GOLDEN / name
    if os.environ.get("SQLNET_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text, f"generated SQL changed: diff it against {path}"


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_one_named_commented_fragment_per_phase(layout: str) -> None:
    text = post_statement(layout=layout)
    for n, name in enumerate(
        ["hidden_input", "hidden_activation", "output_input", "output", "error", "hidden_delta", "update"],
        start=1,
    ):
        assert f"-- phase {n} · {name}: " in text
        assert f'"phase{n}_{name}" AS (' in text or f'"phase{n}_{name}" AS MATERIALIZED (' in text


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_hostile_names_are_quoted_identifiers(layout: str) -> None:
    hostile = 'x"; DROP TABLE inputs; --'
    text = training_statement(Training(POST_NET, post_table_map(hostile), 0.1, layout=layout)).as_string(None)
    assert '"x""; DROP TABLE inputs; --"."inputs"' in text
    # outside quoted identifiers, the hostile text never appears
    assert "DROP TABLE" not in re.sub(r'"(?:[^"]|"")*"', '""', text)


def test_update_blocks() -> None:
    assert update_blocks(1, 1, 100) == [((1, 1), (1, 1))]
    assert update_blocks(250, 1, 100) == [((1, 1), (100, 1)), ((101, 1), (200, 1)), ((201, 1), (250, 1))]
    assert update_blocks(3, 1, 1) == [((1, 1), (1, 1)), ((2, 1), (2, 1)), ((3, 1), (3, 1))]
    # mini-batches: blocks cut through epochs
    assert update_blocks(2, 3, 4) == [((1, 1), (2, 1)), ((2, 2), (2, 3))]
