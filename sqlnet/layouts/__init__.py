"""Layouts: how the rows of the recursive CTE carry the training state.

The phases (``sqlnet.phases``) say *what* each step computes; a layout says *how* its rows hold the
values and turns each phase into one SQL fragment. Every layout gives the same numbers, so the
performance work can add or pick layouts without touching the maths.

A layout provides, for a compiled training (``sqlnet.statement.Training``):

- ``columns``: the recursive CTE's column list;
- ``start(training)``: the non-recursive term, phase 0, read from the user's tables;
- ``step_prelude(training)``: the CTEs every phase of the recursive term shares;
- ``phase(training, phase)``: the body of the phase's CTE, the rows of one step;
- ``trained(training)``: the final weights and biases as rows ``(quantity, layer, i, j, value)``;
- ``losses(training)``: rows ``(epoch, loss)``, the mean loss of each epoch;
- ``trace(training, phase)``: the phase's own values as rows
  ``(epoch, sample, layer, quantity, input_node, node, value)``.
"""

from __future__ import annotations

from sqlnet.layouts.long import LongLayout
from sqlnet.layouts.wide import WideLayout

LAYOUTS = {"long": LongLayout(), "wide": WideLayout()}
DEFAULT_LAYOUT = "long"

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "LongLayout", "WideLayout"]
