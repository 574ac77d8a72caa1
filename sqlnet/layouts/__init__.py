"""Layouts: how the rows of the recursive CTE carry the training state.

The phases (``sqlnet.phases``) say *what* each step computes; a layout says *how* rows hold the
values and turns the phases into SQL. Every layout gives the same numbers (the differential tests
run each against the reference), so the performance work picks layouts without touching the maths:

- ``long``: one row per value, one recursive step per phase (``sqlnet.layouts.long``);
- ``wide``: one row per sample and a column per node, one recursive step per update with each
  phase a materialised CTE inside it (``sqlnet.layouts.wide``).

A layout provides, for a compiled training (``sqlnet.statement.Training``):

- ``preparation(training)``: statements run before the training statement (mini-batch temp tables);
- ``data_ctes(training)``: the CTEs that read the user's data;
- ``recursive_cte(training)``: the ``train`` CTE itself;
- ``trained(training)``: the final parameters as rows ``(quantity, layer, i, j, value[, m, v])``,
  from which the statement writes the tables back;
- ``losses(training)``: rows ``(epoch, loss, samples)``, each epoch's summed loss and sample count;
- ``trace(training, phase)``: the phase's values as rows (long only: ``--trace`` chooses long).
"""

from __future__ import annotations

from sqlnet.layouts.long import LongLayout
from sqlnet.layouts.wide import WideLayout

LAYOUTS = {"long": LongLayout(), "wide": WideLayout()}
DEFAULT_LAYOUT = "long"

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "LongLayout", "WideLayout"]
