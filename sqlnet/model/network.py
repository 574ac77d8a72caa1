"""What a network is, independent of where it lives: its shape, its functions, its parameters, its data.

Everything downstream (the reference maths, the phases, the SQL) reads these plain values.
Layers are numbered like the post's tables: layer k is ``weights{k}``, taking layer k-1's
activations (layer 0 is the input) to layer k's. Nodes are numbered 1..n in every layer;
in Python lists they sit at index node - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlnet.errors import InputError
from sqlnet.model.functions import ACTIVATIONS, LOSSES

Vector = list[float]
Matrix = list[list[float]]

BIAS_LAYOUTS = ("edge", "node", "none")


@dataclass(frozen=True)
class Network:
    """The shape and the functions of a fully connected feed-forward network."""

    sizes: tuple[int, ...]  # nodes per layer, input layer first: the post's network is (3, 2, 3)
    hidden_activation: str = "relu"
    output_activation: str = "linear"
    loss: str = "half-se"
    bias: str = "edge"  # "edge": one bias per weight (the post); "node": one per node; "none"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(n < 1 for n in self.sizes):
            raise InputError(
                f"a network needs an input and an output layer of at least one node, got {self.sizes}"
            )
        for what, name, table in (
            ("hidden activation", self.hidden_activation, ACTIVATIONS),
            ("output activation", self.output_activation, ACTIVATIONS),
            ("loss", self.loss, LOSSES),
        ):
            if name not in table:
                raise InputError(f"unknown {what} {name!r}: choose one of {', '.join(table)}")
        if not ACTIVATIONS[self.hidden_activation].elementwise:
            raise InputError(f"{self.hidden_activation} can only be the output activation")
        allowed = LOSSES[self.loss].outputs
        if allowed is not None and self.output_activation not in allowed:
            raise InputError(
                f"loss {self.loss} needs a {' or '.join(allowed)} output, not {self.output_activation}: "
                f"add --output-activation {allowed[0]}"
            )
        if not ACTIVATIONS[self.output_activation].elementwise:
            if allowed is None or self.output_activation not in allowed:
                raise InputError(f"a {self.output_activation} output needs --loss cross-entropy")
            if self.sizes[-1] < 2:
                raise InputError(
                    f"a {self.output_activation} output needs at least 2 output nodes, the network has 1: "
                    f"use a sigmoid output for one node"
                )
        if self.bias not in BIAS_LAYOUTS:
            raise InputError(f"unknown bias layout {self.bias!r}: choose one of {', '.join(BIAS_LAYOUTS)}")

    @property
    def depth(self) -> int:
        """The number of weight layers K (tables weights1 .. weightsK)."""
        return len(self.sizes) - 1

    def activation(self, k: int) -> str:
        return self.output_activation if k == self.depth else self.hidden_activation

    def layer_name(self, k: int) -> str:
        """The name phases use for layer k: 'hidden' (or 'hidden2', ...) and 'output'."""
        if k == self.depth:
            return "output"
        return "hidden" if self.depth == 2 else f"hidden{k}"

    def bias_rows(self, k: int) -> int:
        """How many bias rows layer k has; the input of node j adds entry j of every row.

        Edge biases (the post) are one row per input node, node biases one row, no bias none.
        Every row gets the same gradient, the node's delta, which is why one formula covers all three.
        """
        return {"edge": self.sizes[k - 1], "node": 1, "none": 0}[self.bias]

    def describe(self) -> str:
        bias = "no bias" if self.bias == "none" else f"bias per {self.bias}"
        return (
            f"{'-'.join(map(str, self.sizes))} network, {self.hidden_activation} hidden layers, "
            f"{self.output_activation} output, loss {self.loss}, {bias}"
        )


@dataclass
class Params:
    """Weights and biases: ``weights[k-1][i-1][j-1]`` is the weight from node i to node j of layer k;
    ``biases[k-1][r][j-1]`` is bias row r of node j (see ``Network.bias_rows``)."""

    weights: list[Matrix]
    biases: list[Matrix]

    def copy(self) -> Params:
        return Params(
            [[row[:] for row in w] for w in self.weights], [[row[:] for row in b] for b in self.biases]
        )

    def check_shape(self, net: Network) -> None:
        for k in range(1, net.depth + 1):
            n_in, n_out = net.sizes[k - 1], net.sizes[k]
            w, b = self.weights[k - 1], self.biases[k - 1]
            if len(w) != n_in or any(len(row) != n_out for row in w):
                raise InputError(f"weights{k} must be {n_in} x {n_out}")
            if len(b) != net.bias_rows(k) or any(len(row) != n_out for row in b):
                raise InputError(f"biases of layer {k} must be {net.bias_rows(k)} x {n_out}")


@dataclass(frozen=True)
class Sample:
    """One training example: the input values x (input nodes 1..n) and the targets t (output nodes)."""

    id: int
    x: tuple[float, ...]
    t: tuple[float, ...]


@dataclass
class Dataset:
    samples: list[Sample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)
