"""One trainer per network on Spark, as PostgreSQL's advisory lock gives it: an exclusive lock on a file.

Parquet tables: `DIR/.sqlnet-train.lock`, beside the network's tables, so every process that trains the
folder (on any machine that mounts it with working `flock`) takes the same lock. The file exists while a
training holds it (a killed holder may leave it behind: it is then merely a file, locked by nobody). A database of Spark's
catalog has no folder of sqlnet's: its lock is a file in the system's temporary folder named after the
database, which keeps apart the trainers of one machine only (said in the README). The lock is held for the
whole training, so the run id taken under it (the largest recorded + 1) is the holder's alone; the operating
system releases it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlnet.errors import SqlnetError


class SparkNetworkBusy(SqlnetError):
    """Another process trains this Spark network."""


def lock_path(root: Path, database: str | None) -> Path:
    if database is None:
        return root / ".sqlnet-train.lock"
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sqlnet-spark-{digest}.lock"


@contextmanager
def training_lock(root: Path, database: str | None, where: str) -> Iterator[None]:
    """Hold the network's training lock, or fail at once naming who holds it."""
    path = lock_path(root, database)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SparkNetworkBusy(
                f"the network in {where} is being trained{holder}. Wait for it to finish (one training per "
                f"network at a time, as on PostgreSQL)"
            ) from None
        try:  # the holder before us removes the file as it lets go: lock the file the path names now
            current = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still holding it: a newcomer that opened it sees it gone and retries
        os.close(fd)  # closing the descriptor releases the lock


def held(root: Path, database: str | None) -> bool:
    """Whether a process holds the network's training lock now (a file left by a killed one is not held)."""
    try:
        fd = os.open(lock_path(root, database), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f": process {info['pid']}, started {info['since']}"
    except (ValueError, KeyError, OSError):
        return ""
