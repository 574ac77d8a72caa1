"""sqlnet: train neural networks inside PostgreSQL, one recursive-CTE statement per training.

import sqlnet
sqlnet.init(example="post")                      # the blog post's 3-2-3 network
result = sqlnet.train(epochs=1, learning_rate=0.1)
print(result.losses, result.params.weights)
report = sqlnet.check(epochs=100, learning_rate=0.001)   # SQL vs the pure-Python reference
"""

from __future__ import annotations

from sqlnet.api import (
    CheckReport,
    DemoResult,
    Progress,
    TrainOptions,
    TrainResult,
    check,
    connect,
    demo,
    export,
    gradcheck,
    init,
    load,
    phases,
    predict,
    restore,
    run_losses,
    runs,
    train,
    training_sql,
)
from sqlnet.errors import CheckFailed, DatabaseError, Diverged, InputError, SqlnetError
from sqlnet.network import Dataset, Network, Params, Sample

__version__ = "0.1.0"

__all__ = [
    "CheckFailed",
    "CheckReport",
    "DatabaseError",
    "Dataset",
    "DemoResult",
    "Diverged",
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
    "init",
    "load",
    "phases",
    "predict",
    "restore",
    "run_losses",
    "runs",
    "train",
    "training_sql",
]
