"""The command line: a thin click layer over the public API (``sqlnet``).

``base`` holds the group and what every command shares; each other module adds its commands to the
group when imported. Exit codes: 0 success; 1 a clear error (bad tables or options, database refused,
check failed); 2 a usage error; 130 interrupted by Ctrl-C (the transaction was rolled back).
"""

from __future__ import annotations

from sqlnet.cli import data, kernels, misc, network, records, training  # noqa: F401  (each registers its commands)
from sqlnet.cli.base import main

__all__ = ["main"]
