"""Progress while a training statement runs: the statement raises a NOTICE per update, read here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlnet.ops.common import Loaded


@dataclass(frozen=True)
class Progress:
    """One update done, as the training statement reports it while it runs."""

    run_id: int
    epoch: int
    batch: int
    done: int  # updates done so far in this run
    total: int  # updates the run will make
    loss: float | None  # the mean loss of the update's batch (None in the long layout)


def progress_handler(
    on_update: Callable[[Progress], None], run_id: int, loaded: Loaded
) -> Callable[[Any], None]:
    total = loaded.options.epochs * loaded.batches

    def handle(diag: Any) -> None:
        words = (diag.message_primary or "").split()
        if len(words) != 7 or words[:2] != ["sqlnet", "progress"] or words[2] != str(run_id):
            return
        if "<NULL>" in words[3:5]:
            return  # the recursion's last, empty step: PostgreSQL may still evaluate the call once
        epoch, batch = int(words[3]), int(words[4])
        loss = None if words[5] == "<NULL>" else float(words[5])
        on_update(Progress(run_id, epoch, batch, (epoch - 1) * loaded.batches + batch, total, loss))

    return handle
