"""The Spark engine: the network's tables as Parquet folders (or a database of Spark's catalog), trained
by Spark SQL one statement per update (``sqlnet.ops.spark``). It refuses, naming the capability, what
Spark cannot do (``sqlnet.ops.engines.LACKS``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlnet.engines.base import Epoch, refuse
from sqlnet.errors import InputError

if TYPE_CHECKING:
    from sqlnet.db.samples import Loaded
    from sqlnet.db.store import RunInfo
    from sqlnet.ops.predict import Prediction
    from sqlnet.ops.progress import Progress
    from sqlnet.ops.train import TrainResult
    from sqlnet.ops.verify import CheckReport

# train's options that only PostgreSQL's training takes: each is refused by its capability, else dropped
_POSTGRES_TRAINING = ("wait", "allow_divergence")
# predict's options that only PostgreSQL's prediction takes (the keyword a capability knows it by)
_POSTGRES_PREDICTION = {"table_schema": "table_schema", "into_schema": "into_schema", "csv": "csv"}


@dataclass(frozen=True)
class Spark:
    parquet: str | None = None
    database: str | None = None  # a database of Spark's catalog, instead of a Parquet folder
    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    name: str = "spark"

    @property
    def _at(self) -> dict[str, Any]:
        return {"parquet": self.parquet, "database": self.database, "master": self.master, "conf": self.conf}

    def where(self) -> str:
        if self.parquet:
            return f"{self.parquet} (Parquet, one folder each)"
        return f"Spark database {self.database}"

    def refuse(self, **given: object) -> None:
        refuse(self.name, given)

    def init(
        self, *, example: str | None, layers: tuple[int, ...] | None, seed: int | None, init: str, bias: str,
        replace: bool,
    ) -> list[str]:  # fmt: skip
        from sqlnet.ops import spark

        return spark.init(**self._at, example=example, layers=layers, seed=seed, init=init, bias=bias,
                          replace=replace)  # fmt: skip

    def load(self, *, on_rows: Callable[[int], None] | None = None, **options: Any) -> Loaded:
        self.refuse(from_schema=options.pop("from_schema", None))
        from sqlnet.ops import spark

        made = spark.load_data(**self._at, on_rows=on_rows, **options)
        return dataclasses.replace(made, schema=self.parquet or self.database or made.schema)  # as the user named it

    def train(
        self,
        *,
        on_update: Callable[[Progress], None] | None = None,
        on_block: Callable[[int, float], None] | None = None,  # one update per statement: no blocks to report
        **options: Any,
    ) -> TrainResult:
        self.refuse(**{k: options.get(k) for k in _POSTGRES_TRAINING})
        from sqlnet.ops import spark

        hyper = {k: v for k, v in options.items() if k not in _POSTGRES_TRAINING}
        return spark.train(**self._at, on_update=on_update, **hyper)

    def training_sql(self, **options: Any) -> str:
        from sqlnet.ops import spark

        return spark.training_sql(**self._at, **options)

    def check(self, *, tolerance: float, **options: Any) -> CheckReport:
        from sqlnet.ops import spark

        return spark.check(**self._at, tolerance=tolerance, **options)

    def predict(self, **options: Any) -> Prediction:
        given = {key: options.pop(name, None) for name, key in _POSTGRES_PREDICTION.items()}
        self.refuse(**given)
        if not options.get("table"):
            raise InputError("the Spark engine predicts a table (--table NAME), not a CSV file")
        from sqlnet.ops import spark

        made = spark.predict(**self._at, **options)
        return dataclasses.replace(made, schema=self.parquet or self.database or made.schema)  # as the user named it

    def export(self, **options: Any) -> Prediction:
        given = {key: options.pop(name, None) for name, key in _POSTGRES_PREDICTION.items() if name != "csv"}
        self.refuse(function=options.pop("function", None), **given)
        if not options.get("view"):
            raise InputError("export on Spark makes a view: --view NAME with --table T")
        from sqlnet.ops import spark_predict

        return spark_predict.export_view(**self._at, **options)

    def runs(self) -> list[RunInfo]:
        from sqlnet.ops import spark

        return spark.runs(**self._at)

    def runs_and_sizes(self) -> tuple[list[RunInfo], dict[str, int] | None]:
        return self.runs(), None  # its records are Parquet folders, not tables with sizes

    def run(self, run_id: int) -> tuple[RunInfo, list[Epoch]]:
        from sqlnet.ops import spark

        return spark.run_detail(**self._at, run_id=run_id)
