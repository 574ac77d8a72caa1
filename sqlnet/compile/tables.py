"""The network's tables as names: which table and column holds each part, and no connection.

``TableMap`` is what discovery (``sqlnet.db.tables``) finds and what the compiler turns into SQL;
it lives here so that compiling a statement needs no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from sqlnet.errors import InputError

MAX_LAYERS = 64


@dataclass(frozen=True)
class Table:
    """One user table and the actual names of the columns sqlnet uses, by role."""

    schema: str | None
    name: str
    columns: dict[str, str]  # role -> actual column name, e.g. "node" -> "inputnode"
    integer_columns: frozenset[str] = frozenset()  # roles whose column is an integer type
    # the schema it was found in when the user named none: SQL always names a table with its schema
    # (the search path is pinned to pg_catalog), messages name it as the user did
    home: str | None = None

    @property
    def ident(self) -> sql.Identifier:
        schema = self.schema or self.home
        return sql.Identifier(schema, self.name) if schema else sql.Identifier(self.name)

    def col(self, role: str) -> sql.Identifier:
        return sql.Identifier(self.columns[role])

    def has(self, role: str) -> bool:
        return role in self.columns

    def label(self, role: str | None = None) -> str:
        """How messages name it: schema.table, or schema.table.column (the schema it was found in, when
        the user named none: a message says which network it looked at)."""
        schema = self.schema or self.home
        table = f"{schema}.{self.name}" if schema else self.name
        return table if role is None else f"{table}.{self.columns[role]}"


@dataclass(frozen=True)
class TableMap:
    """Where every part of the network lives: inputs, outputs, weights1..K and biases1..K (node layout)."""

    schema: str | None
    inputs: Table
    outputs: Table
    weights: tuple[Table, ...]
    biases: tuple[Table, ...]  # empty unless the bias layout is "node"
    bias: str
    resolved_schema: str = "public"  # the schema the tables are in, even when found on the search path

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def has_samples(self) -> bool:
        return self.inputs.has("sample")

    def parameter_tables(self) -> tuple[Table, ...]:
        return self.weights + self.biases


# The columns of each table, by role, as the post (and sqlnet's many-sample layout) names them.
def _input_columns(prefix: str) -> dict[str, str]:
    return {"node": f"{prefix}node", "value": f"{prefix}value"}


def _weight_columns(k: int) -> dict[str, str]:
    return {
        "in": f"weight{k}inputnodenumber",
        "out": f"weight{k}outputnodenumber",
        "value": f"weight{k}value",
        "bias": f"weight{k}bias",
    }


def _bias_columns(k: int) -> dict[str, str]:
    return {"node": f"bias{k}nodenumber", "value": f"bias{k}value"}


# PostgreSQL keeps at most 63 bytes of a name (NAMEDATALEN - 1) and cuts the rest without an error:
# a longer name would create one object and then look for another
MAX_NAME_BYTES = 63


def check_names(**names: str | Sequence[str] | None) -> None:
    """Names given by a person (option -> name): each must be one PostgreSQL can hold as it is."""
    for option, value in names.items():
        for name in [value] if isinstance(value, str) else value or []:
            flag = "--" + option.replace("_", "-")
            if not name or "\x00" in name:
                raise InputError(
                    f"{flag} {name!r} is not a name PostgreSQL can hold (empty, or a NUL character)"
                )
            if len(name.encode()) > MAX_NAME_BYTES:
                raise InputError(
                    f"{flag} {name!r} is {len(name.encode())} bytes long: PostgreSQL cuts names at "
                    f"{MAX_NAME_BYTES} bytes; choose a shorter one"
                )
