"""What an engine must do (the protocol), and the one rule that refuses what it cannot."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlnet.errors import Unsupported
from sqlnet.ops.engines import LACKS, refusal

if TYPE_CHECKING:
    from sqlnet.db.samples import Loaded
    from sqlnet.db.store import RunInfo
    from sqlnet.ops.predict import Prediction
    from sqlnet.ops.progress import Progress
    from sqlnet.ops.train import TrainResult
    from sqlnet.ops.verify import CheckReport

# a recorded epoch: (epoch, training loss, validation loss, validation accuracy)
Epoch = tuple[int, float, float | None, float | None]


class Engine(Protocol):
    """What an engine does; every method refuses first an option the engine cannot honour."""

    @property
    def name(self) -> str:
        """"postgresql", "spark": what --engine says."""
        ...

    def where(self) -> str:
        """Where the network's tables are, as a message says it ("schema wine", "./net (Parquet)")."""
        ...

    def refuse(self, **given: object) -> None:
        """Raise Unsupported for the first option (keyword name -> value) that needs a capability this
        engine lacks."""
        ...

    def init(
        self, *, example: str | None, layers: tuple[int, ...] | None, seed: int | None, init: str, bias: str,
        replace: bool,
    ) -> list[str]: ...  # fmt: skip

    def load(self, *, on_rows: Callable[[int], None] | None = None, **options: Any) -> Loaded:
        """A CSV file (`file`) or a table (`from_table`) into inputs, outputs and the raw rows."""
        ...

    def train(
        self,
        *,
        on_update: Callable[[Progress], None] | None = None,
        on_block: Callable[[int, float], None] | None = None,
        **options: Any,
    ) -> TrainResult: ...

    def training_sql(self, **options: Any) -> str: ...

    def check(self, *, tolerance: float, **options: Any) -> CheckReport: ...

    def predict(self, **options: Any) -> Prediction: ...

    def export(self, **options: Any) -> Prediction:
        """A view (`view`, over `table`) or SQL functions (`function`) with the trained weights as constants."""
        ...

    def runs(self) -> list[RunInfo]: ...

    def runs_and_sizes(self) -> tuple[list[RunInfo], dict[str, int] | None]:
        """The runs, and the bytes each record table takes where the engine keeps them in tables it can size
        (None elsewhere), read together."""
        ...

    def run(self, run_id: int) -> tuple[RunInfo, list[Epoch]]: ...


def refuse(engine: str, given: dict[str, object]) -> None:
    """The one rule, raised: an option the engine cannot honour."""
    message = refusal(engine, given)
    if message:
        raise Unsupported(message)


def lacks(engine: str, capability: str) -> bool:
    return capability in LACKS[engine]
