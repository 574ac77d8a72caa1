"""sqlnet: train neural networks inside PostgreSQL, one recursive-CTE statement per training.

import sqlnet
sqlnet.init(example="post")                      # the blog post's 3-2-3 network
result = sqlnet.train(epochs=1, learning_rate=0.1)
print(result.losses, result.params.weights)
report = sqlnet.check(epochs=100, learning_rate=0.001)   # SQL vs the pure-Python reference
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sqlnet.errors import CheckFailed, DatabaseError, Diverged, InputError, SqlnetError

if TYPE_CHECKING:
    from sqlnet.model.network import Dataset, Network, Params, Sample
    from sqlnet.ops.common import TrainOptions, connect
    from sqlnet.ops.data import load
    from sqlnet.ops.export import export
    from sqlnet.ops.history import (
        network,
        phases,
        prune_runs,
        record_sizes,
        restore,
        run_epochs,
        run_losses,
        runs,
    )
    from sqlnet.ops.predict import predict
    from sqlnet.ops.progress import Progress
    from sqlnet.ops.setup import DemoResult, Grants, demo, grants, init
    from sqlnet.ops.train import TrainResult, train, training_sql
    from sqlnet.ops.verify import CheckReport, check, gradcheck

# The public names, imported when first used: `sqlnet --help` and `sqlnet runs` need not load the
# training machinery (psycopg, the compiler) to start, and `import sqlnet` stays cheap.
_WHERE = {
    "Dataset": "sqlnet.model.network",
    "Network": "sqlnet.model.network",
    "Params": "sqlnet.model.network",
    "Sample": "sqlnet.model.network",
    "TrainOptions": "sqlnet.ops.common",
    "connect": "sqlnet.ops.common",
    "export": "sqlnet.ops.export",
    "load": "sqlnet.ops.data",
    "predict": "sqlnet.ops.predict",
    "network": "sqlnet.ops.history",
    "phases": "sqlnet.ops.history",
    "restore": "sqlnet.ops.history",
    "prune_runs": "sqlnet.ops.history",
    "record_sizes": "sqlnet.ops.history",
    "run_epochs": "sqlnet.ops.history",
    "run_losses": "sqlnet.ops.history",
    "runs": "sqlnet.ops.history",
    "DemoResult": "sqlnet.ops.setup",
    "Grants": "sqlnet.ops.setup",
    "demo": "sqlnet.ops.setup",
    "grants": "sqlnet.ops.setup",
    "init": "sqlnet.ops.setup",
    "Progress": "sqlnet.ops.progress",
    "TrainResult": "sqlnet.ops.train",
    "train": "sqlnet.ops.train",
    "training_sql": "sqlnet.ops.train",
    "CheckReport": "sqlnet.ops.verify",
    "check": "sqlnet.ops.verify",
    "gradcheck": "sqlnet.ops.verify",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sqlnet' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "CheckFailed",
    "CheckReport",
    "DatabaseError",
    "Dataset",
    "DemoResult",
    "Diverged",
    "Grants",
    "InputError",
    "Network",
    "Params",
    "Progress",
    "Sample",
    "SqlnetError",
    "TrainOptions",
    "TrainResult",
    "check",
    "connect",
    "demo",
    "export",
    "gradcheck",
    "grants",
    "init",
    "load",
    "network",
    "phases",
    "predict",
    "prune_runs",
    "record_sizes",
    "restore",
    "run_epochs",
    "run_losses",
    "runs",
    "train",
    "training_sql",
]
