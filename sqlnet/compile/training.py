"""What one training statement is to compute: the network, its tables, the updates and the options.

``Training`` is the single input of every layout and of the statement assembly; it knows nothing of
a connection. The temp and state tables every layout shares are named here, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from psycopg import sql

from sqlnet.compile.dialect import POSTGRES, Dialect
from sqlnet.compile.tables import TableMap
from sqlnet.model.network import Network
from sqlnet.model.optimizers import Optimizer
from sqlnet.model.phases import Phase, plan

TRACE_SCHEMA = "sqlnet_trace"
BATCH_TABLE = sql.Identifier("pg_temp", "sqlnet_batches")
X_TABLE = sql.Identifier("pg_temp", "sqlnet_x")
TARGET_TABLE = sql.Identifier("pg_temp", "sqlnet_target")
STATE_TABLE = sql.Identifier("sqlnet", "optimizer_state")
DEFAULT_LAYOUT = "long"


@dataclass(frozen=True)
class Training:
    """Everything one statement needs: the network, where it lives, and which updates to run."""

    net: Network
    tables: TableMap
    learning_rate: float
    first: tuple[int, int] = (1, 1)  # (epoch, batch) of the statement's first update
    last: tuple[int, int] = (1, 1)  # (epoch, batch) of its last update
    batch_size: int = 0  # 0: full batch, one update per epoch
    shuffle: int | None = None  # seed of the per-epoch sample order; None: ascending sample id
    optimizer: Optimizer = field(default_factory=Optimizer)
    scale: int | None = None  # exact NUMERIC rounded at this scale; None: float8
    layout: str = DEFAULT_LAYOUT
    trace_run: int | None = None  # with a run id, every phase's values go to the trace schema
    progress_run: int | None = None  # with a run id, every update reports itself (RAISE NOTICE)
    validation: tuple[int, int] | None = None  # (seed, count): the samples held out of training
    dialect: Dialect = POSTGRES

    def progress(
        self, epoch: sql.Composable, batch: sql.Composable, loss: sql.Composable, samples: sql.Composable
    ) -> sql.Composable:
        """A condition that is always true and, when asked for, tells the client an update is done.

        sqlnet.progress() raises a NOTICE, which psycopg hands to sqlnet while the statement runs.
        """
        if self.progress_run is None:
            return sql.SQL("")
        return sql.SQL(" AND sqlnet.progress({run}, {e}, {b}, {loss}, {n})").format(
            run=sql.Literal(self.progress_run), e=epoch, b=batch, loss=loss, n=samples
        )

    @property
    def phases(self) -> list[Phase]:
        return plan(self.net, counts_steps=self.optimizer.name == "adam")

    @property
    def mini_batch(self) -> bool:
        return self.batch_size > 0

    @property
    def num(self) -> str:
        return self.dialect.number_type(exact=self.scale is not None)

    @property
    def rate(self) -> object:

        return self.learning_rate if self.scale is None else Decimal(str(self.learning_rate))

    @property
    def state_key(self) -> str:
        """Which network the optimizer state belongs to: the schema of its tables."""
        return self.tables.resolved_schema

    @property
    def batches_sql(self) -> sql.Composable:
        return sql.SQL("(SELECT n FROM batches)") if self.mini_batch else sql.SQL("1")

    def batch_rows(self, kind: str, when: str) -> sql.Composable:
        """SELECT sample, node, value of the inputs ("x") or targets of the batch of update `when`.

        Mini-batches read them through an index (a batch column, or the sample ids of a shuffled
        batch as an array): no join, so nothing per update scans all the samples.
        """
        if not self.mini_batch:
            return sql.SQL("SELECT sample, node, value FROM {}").format(
                sql.SQL("x" if kind == "x" else "target")
            )
        table = X_TABLE if kind == "x" else TARGET_TABLE
        if self.shuffle is None:
            return sql.SQL(
                "SELECT sample, node, value FROM {t} WHERE batch = (SELECT batch FROM {w})"
            ).format(t=table, w=sql.SQL(when))
        return sql.SQL(
            "SELECT sample, node, value FROM {t}\n"
            "      WHERE sample = ANY (ARRAY(SELECT sample FROM {b} "
            "WHERE epoch = (SELECT epoch FROM {w}) AND batch = (SELECT batch FROM {w})))"
        ).format(t=table, b=BATCH_TABLE, w=sql.SQL(when))


Block = tuple[tuple[int, int], tuple[int, int]]  # (epoch, batch) of a statement's first and last update


def iter_update_blocks(epochs: int, batches: int, per_statement: int, first_epoch: int = 1) -> Iterator[Block]:
    """Split the updates of epochs first_epoch..epochs (of `batches` batches each) into blocks of at
    most `per_statement` updates, one at a time: a billion epochs are never a list in memory.

    PostgreSQL keeps every iteration of a recursive CTE until the statement ends, so a block
    bounds the memory and temp files one statement uses, whatever the number of epochs.
    """
    total = epochs * batches

    def at(u: int) -> tuple[int, int]:  # update number u (1-based) as (epoch, batch)
        return ((u - 1) // batches + 1, (u - 1) % batches + 1)

    start = (first_epoch - 1) * batches + 1
    for u in range(start, total + 1, per_statement):
        yield at(u), at(min(u + per_statement - 1, total))


def update_blocks(epochs: int, batches: int, per_statement: int, first_epoch: int = 1) -> list[Block]:
    return list(iter_update_blocks(epochs, batches, per_statement, first_epoch))
