"""Phases to SQL text, with no connection.

- ``tables``: where the network lives (``TableMap``), as names;
- ``training``: ``Training``, what one statement computes, and the temp/state tables it names;
- ``dialect``: what differs between SQL engines, as data;
- ``shared``: the pieces every layout uses (data selects, batches, write-back, trace);
- ``long`` and ``wide``: the layouts, how rows of the recursive CTE carry the state;
- ``statement``: the registry of layouts and the assembly of the statements and the psql script;
- ``predict``: the forward pass alone, for ``predict`` and ``export``.

The phases (``sqlnet.model.phases``) say *what* each step computes; a layout says *how* rows hold the
values and turns the phases into SQL. Every layout gives the same numbers (the differential tests run
each against the reference). A layout provides, for a ``Training``: ``preparation`` (statements run
before the training statement: mini-batch temp tables), ``data_ctes`` (the CTEs that read the user's
data), ``recursive_cte`` (the ``train`` CTE), ``trained`` (the final parameters as rows ``(quantity,
layer, i, j, value[, m, v])``), ``losses`` (rows ``(epoch, loss, samples)``) and ``trace`` (a phase's
values as rows; long only).
"""
