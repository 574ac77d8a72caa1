"""The phases of one training epoch, as data: what each computes, reads and must keep for later.

A phase is one step of the recursive CTE. The list depends only on the network's shape, never on
how the SQL lays out its rows: a layout (``sqlnet.compile``) turns each phase into a SQL fragment.
For the post's 3-2-3 network the epoch is::

    1 hidden_input  2 hidden_activation  3 output_input  4 output  5 error  6 hidden_delta  7 update

Phase 0 (``start``) is the weights and biases as the tables hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlnet.model.functions import ACTIVATIONS, LOSSES
from sqlnet.model.network import Network

# The quantities a step's rows carry, by the name they have in the SQL's `quantity` column.
WEIGHT, BIAS, INPUT, ACTIVATION, DELTA, LOSS = "weight", "bias", "input", "activation", "delta", "loss"
STEP = "step"  # Adam's update count t, one row (layer 0)


@dataclass(frozen=True, order=True)
class Quantity:
    """One named array of the training state: e.g. the activations of layer 1."""

    kind: str
    layer: int | None = None

    def __str__(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}{self.layer}"


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    kind: str  # start | input | activation | error | delta | update
    layer: int | None  # the layer it works on; None for start and update
    produces: tuple[Quantity, ...]
    reads: tuple[Quantity, ...]
    comment: str  # what it computes, in maths; becomes the SQL comment and COMMENT ON TABLE
    carry: tuple[Quantity, ...] = ()  # what this step keeps from the previous one for later phases

    @property
    def table(self) -> str:
        """The name of its table in the trace schema, e.g. phase1_hidden_input."""
        return f"phase{self.number}_{self.name}"


def derivative_reads(net: Network, k: int) -> tuple[Quantity, ...]:
    """What f'_k needs: its input z, its activation a, both or neither (linear)."""
    template = ACTIVATIONS[net.activation(k)].sql_derivative
    return tuple(
        q for q, p in ((Quantity(INPUT, k), "{z}"), (Quantity(ACTIVATION, k), "{a}")) if p in template
    )


def _bias_text(net: Network, k: int) -> str:
    return {
        "edge": f" + sum over i of b{k}[i, j]",
        "node": f" + b{k}[j]",
        "none": "",
    }[net.bias]


def plan(net: Network, counts_steps: bool = False) -> list[Phase]:
    """The phases of one update, phase 0 (start) first, with what each step carries.

    `counts_steps`: the optimizer needs the number of updates so far (Adam), carried as a row.
    """
    K = net.depth
    params = tuple(q for k in range(1, K + 1) for q in (Quantity(WEIGHT, k), Quantity(BIAS, k)))
    if counts_steps:
        params += (Quantity(STEP, 0),)
    phases: list[Phase] = [
        Phase(0, "start", "start", None, params, (), "the weights and biases as the tables hold them")
    ]

    for k in range(1, K + 1):
        name = net.layer_name(k)
        prev_act = () if k == 1 else (Quantity(ACTIVATION, k - 1),)
        source = "the batch's input values" if k == 1 else f"the {net.layer_name(k - 1)} layer"
        phases.append(
            Phase(
                len(phases),
                f"{name}_input",
                "input",
                k,
                # the first layer also brings the batch's input values in, as layer 0's activations
                (Quantity(INPUT, k), Quantity(ACTIVATION, 0)) if k == 1 else (Quantity(INPUT, k),),
                (Quantity(WEIGHT, k), Quantity(BIAS, k), *prev_act),
                f"the input of each {name} node from {source}: "
                f"z{k}[s, j] = sum over i of w{k}[i, j] * a{k - 1}[s, i]{_bias_text(net, k)}"
                + ("; and a0, the batch's input values, kept for the update" if k == 1 else ""),
            )
        )
        act = ACTIVATIONS[net.activation(k)]
        phases.append(
            Phase(
                len(phases),
                "output" if k == K else f"{name}_activation",
                "activation",
                k,
                (Quantity(ACTIVATION, k),),
                (Quantity(INPUT, k),),
                f"the {act.name} activation of each {name} node: a{k} = {act.formula.replace('z', f'z{k}')}",
            )
        )

    loss = LOSSES[net.loss]
    paired = loss.outputs is not None  # cross-entropy: delta = y - t, loss from z
    phases.append(
        Phase(
            len(phases),
            "error",
            "error",
            K,
            (Quantity(LOSS), Quantity(DELTA, K)),
            (Quantity(ACTIVATION, K), Quantity(INPUT, K))
            if paired
            else (Quantity(ACTIVATION, K), *derivative_reads(net, K)),
            f"the loss of each sample, {loss.formula} (t from the outputs table), and the output delta "
            + (
                f"d{K}[s, j] = y - t ({net.output_activation} and cross-entropy together)"
                if paired
                else f"d{K}[s, j] = dL/dy * f'(z{K}) = ({loss.sql_gradient.format(y='y', t='t')}) * "
                f"{net.output_activation}'(z{K})"
            ),
        )
    )
    for k in range(K - 1, 0, -1):
        phases.append(
            Phase(
                len(phases),
                f"{net.layer_name(k)}_delta",
                "delta",
                k,
                (Quantity(DELTA, k),),
                (Quantity(WEIGHT, k + 1), Quantity(DELTA, k + 1), *derivative_reads(net, k)),
                f"the delta of each {net.layer_name(k)} node, backpropagated through the weights before "
                f"this epoch's update: d{k}[s, i] = {net.activation(k)}'(z{k}[s, i]) * "
                f"sum over j of w{k + 1}[i, j] * d{k + 1}[s, j]",
            )
        )
    phases.append(
        Phase(
            len(phases),
            "update",
            "update",
            None,
            params,
            (
                *params,
                *(Quantity(DELTA, k) for k in range(1, K + 1)),
                *(Quantity(ACTIVATION, k) for k in range(K)),
            ),
            "one optimizer step on every weight and bias, with the gradient of the mean loss over the batch: "
            "dL/dw[i, j] = mean over s of a[s, i] * d[s, j];  dL/dbias[., j] = mean over s of d[s, j]",
        )
    )
    return _with_carry(phases)


def _with_carry(phases: list[Phase]) -> list[Phase]:
    """Work out what each step must keep: what the previous state has that a later phase reads.

    PostgreSQL's recursive CTE only lets a step see the rows of the step before it, so anything a
    later phase needs has to be copied forward; keeping only that keeps every step small.
    """
    result = [phases[0]]
    state = set(phases[0].produces)
    for p, phase in enumerate(phases[1:], start=1):
        later_reads = {q for later in phases[p + 1 :] for q in later.reads}
        carry = tuple(sorted(q for q in state if q in later_reads and q not in phase.produces))
        result.append(
            Phase(
                phase.number,
                phase.name,
                phase.kind,
                phase.layer,
                phase.produces,
                phase.reads,
                phase.comment,
                carry,
            )
        )
        state = set(carry) | set(phase.produces)
    return result
