"""What sqlnet made, marked as such: `--replace` replaces only an object sqlnet created for that network.

Every table, view and function sqlnet creates for a network (its tables at `init`, the samples and raw
rows at `load`, predictions, exported views and functions) carries a comment whose first line is
``sqlnet: <what> of network "<schema>"`` (the name as JSON, so that it is one line whatever it holds).
Before sqlnet drops or replaces an object it looks the name up: anything else under that name, of any
kind and any owner, is refused, naming it, and stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from sqlnet.errors import InputError

PREFIX = "sqlnet: "

KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table", "S": "sequence",
         "i": "index", "I": "index", "c": "type"}  # fmt: skip
DROP = {"table": "TABLE", "view": "VIEW", "function": "FUNCTION"}


def mark(what: str, network: str, details: str = "") -> str:
    """The comment sqlnet gives an object it made for `network`."""
    head = f"{PREFIX}{what} of network {json.dumps(network)}"
    return f"{head}\n{details}" if details else head


def made_for(comment: str | None, network: str, kinds: Sequence[str] | None = None) -> bool:
    """Whether a comment marks an object sqlnet made for `network` (as one of `kinds`, when given: predictions
    replace predictions, never the network's samples)."""
    head = (comment or "").split("\n", 1)[0]
    if kinds is not None and not any(head.startswith(f"{PREFIX}{kind} of network ") for kind in kinds):
        return False
    return head.startswith(PREFIX) and head.endswith(f" of network {json.dumps(network)}")


@dataclass(frozen=True)
class Found:
    """An object under a name sqlnet is about to use."""

    kind: str  # table, view, function, ...
    label: str  # schema.name (with a function's arguments)
    owner: str
    comment: str | None
    drop: sql.Composed | None  # how to drop it (None: sqlnet never drops this kind)

    def made_for(self, network: str, kinds: Sequence[str] | None = None) -> bool:
        return self.drop is not None and made_for(self.comment, network, kinds)


FIND = """
SELECT c.relkind::text, pg_catalog.format('%%I.%%I', n.nspname, c.relname), pg_catalog.pg_get_userbyid(c.relowner),
       pg_catalog.obj_description(c.oid, 'pg_class'), NULL::text
FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY (%(names)s) AND NOT %(functions)s
UNION ALL
SELECT 'function', pg_catalog.format('%%I.%%I(%%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)),
       pg_catalog.pg_get_userbyid(p.proowner), pg_catalog.obj_description(p.oid, 'pg_proc'),
       pg_catalog.pg_get_function_identity_arguments(p.oid)
FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proname = ANY (%(names)s) AND %(functions)s
"""


def find(pg: psycopg.Connection, schema: str, names: Sequence[str], functions: bool = False) -> list[Found]:
    """Every relation (or with `functions`, every function: they have names of their own) in `schema` under
    one of `names` (one catalog query)."""
    found = []
    query = {"schema": schema, "names": list(names), "functions": functions}
    for relkind, label, owner, comment, _ in pg.execute(FIND, query):
        kind = "function" if relkind == "function" else KINDS.get(relkind, "relation")
        drop: sql.Composed | None = None
        if kind in DROP:  # the label is the catalog's format('%I.%I(args)'): quoted as SQL needs it
            drop = sql.SQL("DROP {} {}").format(sql.SQL(DROP[kind]), sql.SQL(label))
        found.append(Found(kind, label, owner, comment, drop))
    return found


def make_room(
    pg: psycopg.Connection,
    schema: str,
    names: Sequence[str],
    network: str,
    replace: bool,
    option: str,
    kinds: Sequence[str],
    replace_empty: bool = False,
    functions: bool = False,
) -> list[str]:
    """Before creating `names` in `schema` for `network`: nothing there, or (with `replace`) only what sqlnet
    made for that network, which is dropped. Anything else is refused, naming it, and nothing is dropped.
    `kinds`: what the objects replaced must have been made as (marks' `what`): an --into never replaces the
    network's own samples. `replace_empty`: empty tables sqlnet made for the network go without `replace`.
    Returns the labels of what was dropped."""
    found = find(pg, schema, names, functions)
    if not found:
        return []
    foreign = [f for f in found if not f.made_for(network, kinds)]
    if foreign:
        f = foreign[0]
        why = (
            f"sqlnet made it for network {network!r}, but not as {' or '.join(kinds)}"
            if f.made_for(network)
            else "sqlnet made it for another network"
            if f.comment and f.comment.startswith(PREFIX)
            else "sqlnet did not make it"
        )
        raise InputError(
            f"{f.kind} {f.label} (owner {f.owner}) already exists and {why}: sqlnet never replaces it, even with "
            f"--replace. Choose another {option}, or drop or rename it yourself if you mean to"
        )
    if not replace and replace_empty and all(f.kind == "table" for f in found):
        replace = all(
            pg.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.SQL(f.label))).fetchone()[0]  # type: ignore[index]
            for f in found
        )
    if not replace:
        f = found[0]
        raise InputError(
            f"{f.kind} {f.label} already exists (sqlnet made it for network {network!r}): add --replace to replace "
            f"it, or choose another {option}"
        )
    for f in found:
        assert f.drop is not None
        try:
            with pg.transaction():
                pg.execute(f.drop)
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise InputError(
                f"{f.kind} {f.label} cannot be replaced: {exc.diag.message_detail or exc}. Drop what depends on "
                f"it first, or choose another {option}"
            ) from None
        except psycopg.errors.InsufficientPrivilege:
            raise InputError(
                f"{f.kind} {f.label} cannot be replaced: it belongs to role {f.owner}. Ask that role, or choose "
                f"another {option}"
            ) from None
    return [f.label for f in found]


def comment(pg: psycopg.Connection, kind: str, target: sql.Composable, text: str) -> None:
    """COMMENT ON kind target IS text (kind: TABLE, VIEW, FUNCTION, sqlnet's own words)."""
    pg.execute(sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), target, sql.Literal(text)))
