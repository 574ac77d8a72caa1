"""sqlnet: train neural networks inside PostgreSQL, one recursive-CTE statement per training.

import sqlnet
sqlnet.init(example="post")                      # the blog post's 3-2-3 network
result = sqlnet.train(epochs=1, learning_rate=0.1)
print(result.losses, result.params.weights)
report = sqlnet.check(epochs=100, learning_rate=0.001)   # SQL vs the pure-Python reference
"""

from __future__ import annotations

from sqlnet.errors import CheckFailed, DatabaseError, Diverged, InputError, SqlnetError
from sqlnet.model.network import Dataset, Network, Params, Sample
from sqlnet.ops.common import TrainOptions, connect
from sqlnet.ops.data import export, load, predict
from sqlnet.ops.history import network, phases, restore, run_epochs, run_losses, runs
from sqlnet.ops.setup import DemoResult, Grants, demo, grants, init
from sqlnet.ops.train import Progress, TrainResult, train, training_sql
from sqlnet.ops.verify import CheckReport, check, gradcheck

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
    "restore",
    "run_epochs",
    "run_losses",
    "runs",
    "train",
    "training_sql",
]
