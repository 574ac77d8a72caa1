"""The PostgreSQL engine: the network's tables in a schema, trained by one recursive CTE per block of
updates (``sqlnet.ops``). It has every capability, so it refuses nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlnet.engines.base import Epoch, refuse

if TYPE_CHECKING:
    from sqlnet.db.samples import Loaded
    from sqlnet.db.store import RunInfo
    from sqlnet.ops.predict import Prediction
    from sqlnet.ops.progress import Progress
    from sqlnet.ops.train import TrainResult
    from sqlnet.ops.verify import CheckReport


@dataclass(frozen=True)
class PostgreSQL:
    database_url: str | None = None
    schema: str | None = None
    name: str = "postgresql"

    def where(self) -> str:
        return f"schema {self.schema}" if self.schema else "the current schema"

    def refuse(self, **given: object) -> None:
        refuse(self.name, given)

    def init(
        self, *, example: str | None, layers: tuple[int, ...] | None, seed: int | None, init: str, bias: str,
        replace: bool,
    ) -> list[str]:  # fmt: skip
        from sqlnet.ops.setup import init as init_tables

        return init_tables(self.database_url, schema=self.schema, example=example, layers=layers, init=init,
                           seed=seed, bias=bias, replace=replace)  # fmt: skip

    def load(self, *, on_rows: Callable[[int], None] | None = None, **options: Any) -> Loaded:
        from sqlnet.ops.data import load

        return load(self.database_url, schema=self.schema, on_rows=on_rows, **options)

    def train(
        self,
        *,
        on_update: Callable[[Progress], None] | None = None,
        on_block: Callable[[int, float], None] | None = None,
        **options: Any,
    ) -> TrainResult:
        from sqlnet.ops.train import train

        return train(self.database_url, schema=self.schema, on_update=on_update, on_block=on_block, **options)

    def training_sql(self, **options: Any) -> str:
        from sqlnet.ops.train import training_sql

        return training_sql(self.database_url, schema=self.schema, **options)

    def check(self, *, tolerance: float, **options: Any) -> CheckReport:
        from sqlnet.ops.verify import check

        return check(self.database_url, schema=self.schema, tolerance=tolerance, **options)

    def predict(self, **options: Any) -> Prediction:
        from sqlnet.ops.predict import predict

        return predict(self.database_url, schema=self.schema, **options)

    def export(self, **options: Any) -> Prediction:
        from sqlnet.ops.export import export

        return export(self.database_url, schema=self.schema, **options)

    def runs(self) -> list[RunInfo]:
        from sqlnet.ops.history import runs

        return runs(self.database_url)

    def runs_and_sizes(self) -> tuple[list[RunInfo], dict[str, int] | None]:
        from sqlnet.ops.history import runs_and_sizes

        return runs_and_sizes(self.database_url)

    def run(self, run_id: int) -> tuple[RunInfo, list[Epoch]]:
        from sqlnet.ops.history import run

        return run(self.database_url, run_id)
