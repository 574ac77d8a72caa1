"""The exceptions sqlnet raises on purpose. Each message names what was wrong and what to do."""

from __future__ import annotations


class SqlnetError(Exception):
    """Base class: anything sqlnet reports to a person as a clear error (CLI exit code 1)."""


class InputError(SqlnetError):
    """The tables, the options or the data cannot be trained as they are; nothing was changed."""


class DatabaseError(SqlnetError):
    """The database could not be reached or refused a statement; nothing was changed."""


class CheckFailed(SqlnetError):
    """The SQL training and the reference disagree beyond the tolerance."""


class Diverged(SqlnetError):
    """The training's numbers left the range of double precision (overflow, underflow, NaN), or its loss
    grew past a million times its first epoch's: nothing of it was kept beyond the last checkpoint.
    `losses` are the epochs' losses measured before it stopped (for the run's record)."""

    def __init__(self, message: str, losses: list[float] | None = None) -> None:
        super().__init__(message)
        self.losses = losses or []


class Unsupported(InputError):
    """An option asks for a capability the chosen engine does not have (the message names it); nothing ran.
    The command line exits 2 for it, as for any option that does not fit the command."""
