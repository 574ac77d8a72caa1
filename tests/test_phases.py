"""The phase plan: names, order, and that every phase finds what it reads (no database)."""

from __future__ import annotations

import random

import pytest

from sqlnet.model.network import Network
from sqlnet.model.phases import plan
from tests.helpers import POST_NET, random_network


def test_post_phases_are_the_posts() -> None:
    assert [p.table for p in plan(POST_NET)] == [
        "phase0_start",
        "phase1_hidden_input",
        "phase2_hidden_activation",
        "phase3_output_input",
        "phase4_output",
        "phase5_error",
        "phase6_hidden_delta",
        "phase7_update",
    ]


def test_deep_network_names_each_hidden_layer() -> None:
    names = [p.name for p in plan(Network((2, 3, 3, 1)))]
    assert names[1:5] == ["hidden1_input", "hidden1_activation", "hidden2_input", "hidden2_activation"]
    assert names[-3:] == ["hidden2_delta", "hidden1_delta", "update"]


@pytest.mark.parametrize("seed", range(30))
def test_every_read_is_available(seed: int) -> None:
    """Each phase reads only what the previous step produced or carried: the recursion sees one step."""
    rng = random.Random(seed)
    net = random_network(
        rng,
        rng.randint(1, 5),
        rng.choice(["edge", "node", "none"]),
        rng.choice(["relu", "sigmoid", "tanh", "linear"]),
        rng.choice(["linear", "sigmoid"]),
    )
    phases = plan(net)
    state = set(phases[0].produces)
    for phase in phases[1:]:
        missing = set(phase.reads) - state
        assert not missing, (phase.name, missing)
        assert set(phase.carry) <= state
        state = set(phase.carry) | set(phase.produces)
    assert state == set(phases[0].produces)  # the update leaves exactly the parameters


def test_linear_derivative_reads_nothing_extra() -> None:
    error = next(p for p in plan(POST_NET) if p.kind == "error")
    assert {str(q) for q in error.reads} == {"activation2"}
