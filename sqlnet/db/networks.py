"""What a network is beyond its weights, kept beside them: its definition and its optimizer's state.

A network is the schema of its tables. ``sqlnet.networks`` holds one row per network: the functions it
was trained with (written by its first training, changed only on purpose), its bias layout and sizes,
what ``load`` did to its data (feature and class names, the standardisation), which optimizer's state
``sqlnet.optimizer_state`` holds for it, and the run that last changed its weights. Every command reads
it, so no command gives other numbers because an option was left out. Each run records the optimizer
state it started and ended with (``sqlnet.run_state``), so ``restore`` puts back weights and state
together.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row

from sqlnet.db.connection import Session
from sqlnet.db.store import has_schema, json_value, networks
from sqlnet.model.network import Network
from sqlnet.model.optimizers import Optimizer

if TYPE_CHECKING:
    from sqlnet.model.reference import OptimizerState

FUNCTIONS = ("hidden_activation", "output_activation", "loss")


@dataclass(frozen=True)
class Definition:
    network: str
    sizes: tuple[int, ...] | None = None
    hidden_activation: str | None = None
    output_activation: str | None = None
    loss: str | None = None
    bias: str | None = None
    optimizer: str | None = None
    features: list[str] | None = None
    targets: list[str] | None = None
    classes: list[str] | None = None
    means: list[float] | None = None
    stds: list[float] | None = None
    source: str | None = None
    samples: int | None = None
    last_run: int | None = None
    validation_fraction: float | None = None
    validation_seed: int | None = None
    id_column: str | None = None
    raw_table: str | None = None

    @property
    def scaling(self) -> tuple[list[float], list[float]] | None:
        return (self.means, self.stds) if self.means is not None and self.stds is not None else None

    def describe(self) -> str:
        shape = "-".join(map(str, self.sizes)) if self.sizes else "?"
        functions = ", ".join(f"{f.replace('_', ' ')} {getattr(self, f) or 'not chosen yet'}" for f in FUNCTIONS)
        return f"a {shape} network ({functions}, bias {self.bias or 'not known yet'})"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sizes"] = list(self.sizes) if self.sizes else None
        return data


# whether the role may read sqlnet.networks (no error where it may not: the privilege check names that)
READABLE = """
SELECT CASE WHEN pg_catalog.has_schema_privilege(n.oid, 'USAGE') THEN pg_catalog.has_table_privilege(c.oid, 'SELECT')
            ELSE false END
FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'sqlnet' AND c.relname = 'networks'
"""


def read_definition(s: Session, schema: str) -> Definition | None:
    """The network's stored definition; None when there is none (or the role may not read it)."""
    readable = s.pg.execute(READABLE).fetchone()
    if not readable or not readable[0]:
        return None
    row = s.pg.cursor(row_factory=dict_row).execute(
        "SELECT * FROM sqlnet.networks WHERE network = %s", (schema,)
    ).fetchone()
    if row is None:
        return None
    values = {k: row[k] for k in Definition.__dataclass_fields__ if k in row}
    values["sizes"] = tuple(row["sizes"]) if row["sizes"] else None
    return Definition(**values)


def save_definition(s: Session, schema: str, **values: Any) -> None:
    """Insert or update the network's row with these columns (the others stay as they are)."""
    if "sizes" in values and values["sizes"] is not None:
        values["sizes"] = list(values["sizes"])
    unknown = set(values) - set(networks.column_names)
    assert not unknown, unknown  # sqlnet's own column names, never a user's
    names = [sql.Identifier(k) for k in values]
    s.pg.execute(
        sql.SQL(
            "INSERT INTO sqlnet.networks (network{cols}) VALUES (%s{marks}) "
            "ON CONFLICT (network) DO UPDATE SET {sets}"
        ).format(
            cols=sql.SQL("").join(sql.SQL(", {}").format(n) for n in names),
            marks=sql.SQL(", %s" * len(names)),
            sets=sql.SQL(", ").join(
                [sql.SQL("{n} = excluded.{n}").format(n=n) for n in names] + [sql.SQL("updated_at = now()")]
            ),
        ),
        [schema, *(json_value(k, v) for k, v in values.items())],
    )


def define(
    s: Session,
    schema: str,
    net: Network,
    optimizer: str | None = None,
    last_run: int | None = None,
    validation: tuple[float, int] | None = None,
) -> None:
    """Record what a training trained: shape, functions, bias (and the optimizer, the run, the samples it
    held out: later trainings hold out the same ones)."""
    values: dict[str, Any] = {
        "sizes": net.sizes,
        "hidden_activation": net.hidden_activation,
        "output_activation": net.output_activation,
        "loss": net.loss,
        "bias": net.bias,
    }
    if validation is not None:
        values["validation_fraction"], values["validation_seed"] = validation
    if optimizer is not None:
        values["optimizer"] = optimizer
    if last_run is not None:
        values["last_run"] = last_run
    save_definition(s, schema, **values)


DATA = (
    "features", "targets", "classes", "means", "stds", "source", "samples", "validation_fraction",
    "validation_seed", "id_column", "raw_table",
)  # fmt: skip


def forget(s: Session, schema: str, sizes: tuple[int, ...] | None, bias: str | None, keep_data: bool) -> None:
    """A network made anew (`init --replace`): its functions are chosen again and its optimizer state is
    gone; what `load` did to its data stays with the data when the data stays (`keep_data`)."""
    if not has_schema(s, "networks"):
        return
    reset_optimizer_state(s, schema)
    kept = read_definition(s, schema) if keep_data else None
    s.pg.execute("DELETE FROM sqlnet.networks WHERE network = %s", (schema,))
    data = {k: getattr(kept, k) for k in DATA} if kept else {}
    save_definition(s, schema, sizes=sizes, bias=bias, **data)


# --- the optimizer's state ---------------------------------------------------------------------


def optimizer_key(optimizer: Optimizer) -> str:
    """Which optimizer a state belongs to: momentum's velocity is not Nesterov's look-ahead, nor Adam's moment."""
    return "nesterov" if optimizer.name == "momentum" and optimizer.nesterov else optimizer.name


def load_optimizer_state(s: Session, key: str, net: Network) -> OptimizerState:
    """The state a run starts from (zeros where none is kept), as the reference needs it."""
    from sqlnet.model.reference import OptimizerState

    state = OptimizerState.zeros(net)
    if not has_schema(s, "optimizer_state"):
        return state
    for quantity, layer, i, j, m, v in s.pg.execute(
        "SELECT quantity, layer, i, j, m, v FROM sqlnet.optimizer_state WHERE network = %s", (key,)
    ):
        if quantity == "step":
            state.t = int(m)
            continue
        kind = "weights" if quantity == "weight" else "biases"
        row = i - 1 if (quantity == "weight" or net.bias == "edge") else 0
        getattr(state.m, kind)[layer - 1][row][j - 1] = m or 0.0
        getattr(state.v, kind)[layer - 1][row][j - 1] = v or 0.0
    return state


def reset_optimizer_state(s: Session, key: str) -> None:
    if has_schema(s, "optimizer_state"):
        s.pg.execute("DELETE FROM sqlnet.optimizer_state WHERE network = %s", (key,))


def state_fits(s: Session, key: str, net: Network) -> bool:
    """Whether every state row names a parameter this network has (a layer or bias change makes it not)."""
    if not has_schema(s, "optimizer_state"):
        return True
    for quantity, layer, i, j in s.pg.execute(
        "SELECT quantity, layer, i, j FROM sqlnet.optimizer_state WHERE network = %s", (key,)
    ):
        if quantity == "step":
            continue
        if not 1 <= layer <= net.depth or not 1 <= j <= net.sizes[layer]:
            return False
        if quantity == "weight" and not 1 <= i <= net.sizes[layer - 1]:
            return False
        if quantity == "bias" and (
            net.bias == "none" or (net.bias == "edge" and not 1 <= i <= net.sizes[layer - 1]) or (net.bias == "node" and i != 0)
        ):
            return False
    return True


def prepare_state(s: Session, key: str, net: Network, optimizer: Optimizer, definition: Definition | None) -> str | None:
    """Make the stored state the one this training continues, and say what changed (or None).

    Another optimizer's state is not this one's (momentum's velocity as Adam's first moment would be
    wrong), and a state whose shape no longer fits the network belongs to other weights: both are
    dropped, and the training starts a fresh state."""
    name = optimizer_key(optimizer)
    if not optimizer.state:
        return None
    previous = definition.optimizer if definition else None
    if previous is not None and previous != name and has_state(s, key):
        reset_optimizer_state(s, key)
        return f"the network's optimizer state was {previous}'s: {name} starts a fresh one"
    if not state_fits(s, key, net):
        reset_optimizer_state(s, key)
        return "the network's optimizer state was for another shape of network: it starts afresh"
    return None


def has_state(s: Session, key: str) -> bool:
    if not has_schema(s, "optimizer_state"):
        return False
    return s.pg.execute("SELECT 1 FROM sqlnet.optimizer_state WHERE network = %s LIMIT 1", (key,)).fetchone() is not None


def save_run_state(s: Session, run_id: int, stage: str, key: str, optimizer: str) -> None:
    """Copy the network's optimizer state as it is now into the run's record."""
    s.pg.execute(
        "INSERT INTO sqlnet.run_state (run_id, stage, optimizer, quantity, layer, i, j, m, v) "
        "SELECT %s, %s, %s, quantity, layer, i, j, m, v FROM sqlnet.optimizer_state WHERE network = %s",
        (run_id, stage, optimizer, key),
    )


def restore_run_state(s: Session, run_id: int, stage: str, key: str) -> str | None:
    """Put back the optimizer state a run started (or ended) with; returns its optimizer, if it kept one."""
    reset_optimizer_state(s, key)
    row = s.pg.execute(
        "SELECT optimizer FROM sqlnet.run_state WHERE run_id = %s AND stage = %s LIMIT 1", (run_id, stage)
    ).fetchone()
    optimizer = row[0] if row else None
    s.pg.execute(
        "INSERT INTO sqlnet.optimizer_state (network, quantity, layer, i, j, m, v) "
        "SELECT %s, quantity, layer, i, j, m, v FROM sqlnet.run_state WHERE run_id = %s AND stage = %s",
        (key, run_id, stage),
    )
    return optimizer


def state_checksum(s: Session, key: str) -> str:
    """A checksum of the network's optimizer state, to tell whether it is still a checkpoint's."""
    rows = s.pg.execute(
        "SELECT quantity, layer, i, j, m, v FROM sqlnet.optimizer_state WHERE network = %s "
        "ORDER BY quantity, layer, i, j",
        (key,),
    ).fetchall()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
