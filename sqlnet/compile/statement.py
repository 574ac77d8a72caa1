"""Assembling the phases into the statements that train: WITH RECURSIVE, write-back, result.

A training statement is self-contained and runs as printed in psql: it reads the user's tables,
runs every phase of every update as one step of the recursive CTE, writes the trained weights
and biases (and the optimizer's state) back (data-modifying CTEs, which see the tables as they
were when the statement began) and returns the loss of each epoch and the trained parameters.

A long training runs several statements, each for the next block of updates, in one
transaction. Mini-batches first copy the samples into indexed temporary tables (the
"preparation"), so that each update reads its batch through an index instead of scanning
every sample: nothing per update grows with the number of samples.

The layouts are registered here, in ``LAYOUTS``; they do not import this module.
"""

from __future__ import annotations

from psycopg import sql

from sqlnet.compile.dialect import POSTGRES
from sqlnet.compile.long import LongLayout
from sqlnet.compile.names import LAYOUT_NAMES
from sqlnet.compile.native import NativeLayout
from sqlnet.compile.shared import Layout, trace, write_back
from sqlnet.compile.training import Training
from sqlnet.compile.wide import WideLayout
from sqlnet.model.phases import BIAS, WEIGHT

# native: the wide layout's statement with its phases in C (--kernels native; not a --layout of its own)
LAYOUTS: dict[str, Layout] = {"long": LongLayout(), "wide": WideLayout(), "native": NativeLayout()}
assert set(LAYOUT_NAMES) <= set(LAYOUTS), "sqlnet.compile.names lists the layouts the command line offers"


def header(tr: Training) -> str:
    steps = ", ".join(f"{p.number} {p.name}" for p in tr.phases[1:])
    batches = (
        "full batch (gradients are means over all samples)"
        if not tr.mini_batch
        else f"batches of {tr.batch_size} samples"
        + (
            " in ascending sampleId order"
            if tr.shuffle is None
            else f" shuffled per epoch (seed {tr.shuffle})"
        )
    )
    numbers = "float8" if tr.scale is None else f"exact NUMERIC rounded to {tr.scale} decimals"
    return (
        f"-- sqlnet: train a {tr.net.describe()}\n"
        f"-- updates from epoch {tr.first[0]} batch {tr.first[1]} to epoch {tr.last[0]} batch {tr.last[1]}, "
        f"learning rate {tr.learning_rate}, {tr.optimizer.describe()}\n"
        f"-- {batches}; {numbers}; layout {tr.layout}\n"
        f"-- the phases of each update: {steps}\n"
        f"-- It writes the trained weights back and returns each epoch's summed loss and sample count\n"
        f"-- (each sample's loss taken before its batch's update), then the trained weights and biases.\n"
    )


def _position(tr: Training) -> sql.Composable:
    """Each result row's place, one integer: a loss row's epoch; then, from the last epoch on, each layer's
    weights ((i, j) at (i - 1) * n_out + j) and then its biases; then the validation loss and accuracy by
    epoch. The order the six keys (quantity <> 'loss', layer, quantity DESC, epoch, i, j) gave."""
    net = tr.net
    at = tr.last[0] + 1
    weights: list[sql.Composable] = []
    biases: list[sql.Composable] = []
    for k in range(1, net.depth + 1):
        n_out = net.sizes[k]
        weights.append(sql.SQL("WHEN {k} THEN {at} + (i - 1) * {n} + j").format(
            k=sql.Literal(k), at=sql.Literal(at), n=sql.Literal(n_out)))  # fmt: skip
        at += net.sizes[k - 1] * n_out
        biases.append(sql.SQL("WHEN {k} THEN {at} + (coalesce(i, 1) - 1) * {n} + j").format(
            k=sql.Literal(k), at=sql.Literal(at), n=sql.Literal(n_out)))  # fmt: skip
        at += net.bias_rows(k) * n_out
    return sql.SQL(
        "CASE quantity WHEN 'loss' THEN epoch::bigint\n"
        "  WHEN {wq} THEN CASE layer {weights} END\n"
        "  WHEN {bq} THEN CASE layer {biases} END\n"
        "  WHEN 'val_loss' THEN {at} + epoch ELSE {after} + epoch END"
    ).format(
        wq=sql.Literal(WEIGHT), bq=sql.Literal(BIAS), weights=sql.SQL(" ").join(weights),
        biases=sql.SQL(" ").join(biases), at=sql.Literal(at), after=sql.Literal(at + tr.last[0] + 1),
    )  # fmt: skip


def training_statement(tr: Training) -> sql.Composed:
    """The statement that runs the updates first..last and writes the result back."""
    layout = LAYOUTS[tr.layout]
    ctes: list[sql.Composable] = [layout.data_ctes(tr), layout.recursive_cte(tr)]
    ctes.append(
        sql.SQL(
            "-- the trained weights and biases: the rows of the last update\ntrained AS (\n{rows}\n)"
        ).format(rows=layout.trained(tr))
    )
    write = write_back(tr)
    ctes.append(sql.SQL("-- write them back into the tables\n{first}").format(first=write[0]))
    ctes.extend(write[1:])
    if tr.validation is not None:
        ctes.extend(layout.validation_ctes(tr))
    if tr.trace_run is not None:
        traced = trace(tr, layout)
        ctes.append(
            sql.SQL("-- keep every phase's values in the trace schema\n{first}").format(first=traced[0])
        )
        ctes.extend(traced[1:])
    result = sql.SQL(
        "-- the result: each epoch's loss (summed over its samples) and sample count, then the trained parameters\n"
        "SELECT quantity, epoch, layer, i, j, value, samples FROM (\n"
        "  SELECT 'loss' AS quantity, epoch, NULL::int AS layer, NULL::int AS i, NULL::int AS j, loss AS value, "
        "samples\n"
        "  FROM ({losses}) AS l\n"
        "  UNION ALL\n"
        "{validation}"
        "  SELECT quantity, {end}, layer, i, j, value, NULL FROM trained WHERE quantity IN ({wq}, {bq})\n"
        ") AS result\n"
        "-- the losses by epoch, then layer by layer its weights and its biases in (i, j) order{val}: one number\n"
        "-- per row to sort by (sorting 100k rows by six keys took a fifth of a 784-128-10 training)\n"
        "ORDER BY {position};\n"
    ).format(
        position=_position(tr),
        val=sql.SQL(", then the validation rows" if tr.validation is not None else ""),
        losses=layout.losses(tr),
        end=sql.Literal(tr.last[0]),
        wq=sql.Literal(WEIGHT),
        bq=sql.Literal(BIAS),
        validation=sql.SQL(
            "  SELECT 'val_loss', epoch, NULL, NULL, NULL, loss, samples FROM validation\n  UNION ALL\n"
            "  SELECT 'val_accuracy', epoch, NULL, NULL, NULL, accuracy, samples FROM validation\n  UNION ALL\n"
        )
        if tr.validation is not None
        else sql.SQL(""),
    )
    return sql.Composed(
        [sql.SQL(header(tr)), sql.SQL("WITH RECURSIVE\n"), sql.SQL(",\n").join(ctes), sql.SQL("\n"), result]
    )


SETTINGS = POSTGRES.settings  # the settings of the one engine sqlnet trains on today


def settings(tr: Training) -> list[sql.Composable]:
    """What the transaction sets before the first block: the engine's settings, then the layout's."""
    return [*SETTINGS, *LAYOUTS[tr.layout].settings(tr)]


def statements(tr: Training, again: bool = False) -> list[sql.Composed]:
    """Everything one block runs, in order: the preparation (mini-batches), then the training.

    `again`: not the first block of its transaction, so the samples' temp tables are already made."""
    prepare = LAYOUTS[tr.layout].preparation(tr, again)
    return [sql.Composed([p, sql.SQL(";\n")]) for p in prepare] + [training_statement(tr)]


def script(trainings: list[Training]) -> str:
    """Everything `train` runs for a training, as one psql script: the settings, then each block."""
    blocks = ["".join(st.as_string(None) for st in statements(tr, n > 0)) for n, tr in enumerate(trainings)]
    head = "-- sqlnet runs these statements in one transaction"
    if len(blocks) > 1:
        head += "; each block's training statement runs the next\n-- updates on the weights the previous one wrote"
    parts = [
        head + ".\nBEGIN;\n"
        "-- names resolve in pg_catalog only, and every table is named with its schema: no operator,\n"
        "-- function or table another role created is ever used\n"
        f"{POSTGRES.pin.as_string(None)};\n"
        "-- hash joins: the planner cannot size a recursive CTE's steps and would loop over every pair\n"
        + "".join(f"{setting.as_string(None)};\n" for setting in SETTINGS)
        + "".join(
            f"-- {LAYOUTS[trainings[0].layout].settings_why}\n{setting.as_string(None)};\n"
            for setting in LAYOUTS[trainings[0].layout].settings(trainings[0])
        )
    ]
    for n, block in enumerate(blocks, start=1):
        parts.append((f"-- block {n} of {len(blocks)}\n" if len(blocks) > 1 else "") + block)
    parts.append("COMMIT;\n")
    return "\n".join(parts)
