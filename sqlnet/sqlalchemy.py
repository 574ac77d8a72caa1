"""SQLAlchemy, as an integration (``pip install 'sqlnet[sqlalchemy]'``): a trained network inside your own
queries, and Table objects for a network's tables and sqlnet's records.

    from sqlalchemy import create_engine, select
    import sqlnet.sqlalchemy as sqa

    engine = create_engine("postgresql+psycopg://...")
    net = sqa.network(engine, schema="wine")            # the trained weights, read once
    p = sqa.prediction(net, customers)                  # the forward pass, inline, per row of customers
    rows = conn.execute(select(customers.c.id, p.c.label, p.c.probability)).all()

``prediction`` is a LATERAL subquery correlated to the selectable's rows: the network's own forward phases
(``sqlnet.compile.predict``, the SQL ``sqlnet predict`` and ``sqlnet export`` run) with the weights written
in as constants and the stored standardisation applied once, so it equals ``sqlnet predict`` on the same rows
and needs neither sqlnet nor the weights tables when it runs. It works in Core and in ORM queries (the
selectable may be a Table, a subquery or alias, or a mapped class).

Every public function of sqlnet also takes an SQLAlchemy Engine or Connection as its database
(``sqlnet.db.borrowed``).
"""

from __future__ import annotations

try:  # an optional extra: say how to get it rather than which module is missing
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test environment has it
    raise ImportError(f"sqlnet.sqlalchemy needs SQLAlchemy: pip install 'sqlnet[sqlalchemy]' ({exc})") from exc

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from sqlnet.compile import predict as predict_sql
from sqlnet.db import records
from sqlnet.errors import InputError
from sqlnet.model.network import Params
from sqlnet.ops.predict import Trained, trained_constants, trained_tables

__all__ = ["Network", "network", "prediction", "tables"]


@dataclass(frozen=True)
class Network:
    """A trained network as ``prediction`` writes it into SQL: its weights, functions and what ``load`` kept."""

    trained: Trained
    params: Params

    @property
    def features(self) -> list[str]:
        """The stored feature names, in input-node order (x1..xn if `load` did not name them)."""
        return list(self.trained.data.get("features") or [f"x{i}" for i in range(1, self.trained.net.sizes[0] + 1)])

    @property
    def columns(self) -> list[str]:
        """The prediction's columns: label (and probability) and one per class, or the targets by name."""
        return self.trained.outputs("sample").columns[1:]


def network(bind: Any, schema: str | None = None) -> Network:
    """The network trained in `schema`, read once through `bind` (an Engine, a Connection or a URL)."""
    trained, params = trained_constants(bind, schema=schema)
    return Network(trained, params)


class _Forward(FunctionElement[Any]):
    """The forward pass over one row's features (its arguments), rendered as a subquery: see ``prediction``."""

    name = "sqlnet_forward"
    inherit_cache = False  # the SQL holds the weights: two networks must never share a cached statement

    def __init__(self, net: Network, *features: Any) -> None:
        self.net = net
        super().__init__(*features)

    @property
    def _from_objects(self) -> list[Any]:
        # the selectable the features come from stays the query's own FROM item (a LATERAL would otherwise
        # hide it): the prediction is correlated to it, it does not replace it
        return []


MARK = "sqlnet_features_here"  # where the row's compiled features go in the network's SQL


@compiles(_Forward)
def _compile_forward(element: _Forward, compiler: Any, **kw: Any) -> str:
    net = element.net
    tr = net.trained.training()
    samples = predict_sql.standardized(sql.SQL("SELECT 1::bigint AS sample, " + MARK), net.trained.scaling)
    query = predict_sql.predictions(tr, samples, net.trained.outputs("sample"), constants=net.params).as_string(None)
    if compiler.dialect.paramstyle in ("format", "pyformat"):  # a class named '50%' must stay a '%'
        query = query.replace("%", "%%")
    args = {k: v for k, v in kw.items() if k not in ("asfrom", "lateral")}
    xs = ", ".join(
        f"({compiler.process(e, **args)})::double precision AS x{i}"
        for i, e in enumerate(element.clauses, start=1)
    )
    return "(" + query.replace(MARK, xs, 1) + ")"


def _column_of(selectable: Any, name: str) -> Any:
    """A column of a Table, subquery, alias or mapped class by name: exactly, else ignoring case."""
    inspected = sa.inspect(selectable, raiseerr=False)
    if hasattr(inspected, "mapper"):  # a mapped class (or an aliased one): its attributes, for ORM queries
        columns = {c.key: getattr(selectable, c.key) for c in inspected.mapper.column_attrs}
    else:
        columns = {c.key: c for c in selectable.c}
    if name in columns:
        return columns[name]
    folded = [c for k, c in columns.items() if k.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise InputError(f"the selectable has no column {name!r} (it has {', '.join(columns)}): pass features=[...]")


def prediction(net: Network, selectable: Any, features: list[Any] | dict[str, Any] | None = None, name: str = "prediction") -> Any:
    """A LATERAL subquery with the network's predictions for each row of `selectable`: label and probability
    and one column per class (p_<class>), or the targets by name. `features` maps the network's inputs to
    columns: a list (names or column expressions, in input-node order) or a dict {stored feature name:
    column}; default: the stored feature names, found in the selectable.

    PostgreSQL's LATERAL may only refer to FROM items before it: select a column of the selectable before
    the prediction's (``select(customers.c.id, p.c.label)``), or name it with ``.select_from(customers)``."""
    stored = net.features
    if features is None:
        exprs = [_column_of(selectable, f) for f in stored]
    elif isinstance(features, dict):
        missing = [f for f in stored if f not in features]
        if missing:
            raise InputError(f"features names no column for the network's feature {missing[0]!r}")
        exprs = [_column_of(selectable, features[f]) if isinstance(features[f], str) else features[f] for f in stored]
    else:
        if len(features) != len(stored):
            raise InputError(f"the network has {len(stored)} features, features= names {len(features)}")
        exprs = [_column_of(selectable, f) if isinstance(f, str) else f for f in features]
    out = net.trained.outputs("sample")
    types = {c: sa.Text() if c == "label" else sa.Float(precision=53) for c in out.columns[1:]}
    # joins_implicitly: the lateral is correlated to the selectable, not a cartesian product (no warning)
    columns = [sa.column(c, t) for c, t in types.items()]
    return _Forward(net, *exprs).table_valued(*columns, joins_implicitly=True).lateral(name)


# --- Table objects ----------------------------------------------------------------------------------------
TYPES: dict[str, Callable[[], Any]] = {
    "integer": sa.Integer, "bigint": sa.BigInteger, "double precision": lambda: sa.Float(precision=53),
    "text": sa.Text, "jsonb": JSONB, "timestamp with time zone": lambda: sa.DateTime(timezone=True),
    "boolean": sa.Boolean, "double precision[]": lambda: sa.ARRAY(sa.Float(precision=53)),
}  # fmt: skip


def _sa_type(declared: str) -> Any:
    for prefix in sorted(TYPES, key=len, reverse=True):
        if declared.startswith(prefix):
            return TYPES[prefix]()
    raise AssertionError(f"no SQLAlchemy type for {declared!r}")  # sqlnet's own DDL: a test covers them all


@dataclass(frozen=True)
class Tables:
    """SQLAlchemy Table objects: the network's (inputs, outputs, weights[k], biases[k], raw) and sqlnet's
    records (runs, run_losses, run_params, ...) by name in `records`."""

    inputs: sa.Table | None
    outputs: sa.Table | None
    weights: list[sa.Table]
    biases: list[sa.Table]
    raw: sa.Table | None
    records: dict[str, sa.Table]

    def __getattr__(self, name: str) -> sa.Table:
        try:
            return self.records[name]
        except KeyError:
            raise AttributeError(name) from None


def tables(metadata: sa.MetaData, schema: str | None = None, bind: Any = None) -> Tables:
    """Table objects in `metadata` for sqlnet's records (schema sqlnet: runs, run_losses, run_params, networks,
    ...) and, with `bind`, for the network's tables in `schema` (reflected: their columns are the user's)."""
    made = {
        t.name: sa.Table(
            t.name, metadata,
            *[sa.Column(c, _sa_type(d), primary_key=False) for c, d, _ in t.columns],
            schema=records.SCHEMA, comment=t.comment, extend_existing=True,
        )
        for t in records.TABLES
    }  # fmt: skip
    if bind is None:
        return Tables(None, None, [], [], None, made)
    schema_name, names = trained_tables(bind, schema)
    engine = bind if hasattr(bind, "connect") or hasattr(bind, "execute") else sa.create_engine(bind)

    def reflect(name: str | None) -> sa.Table | None:
        return None if name is None else sa.Table(name, metadata, schema=schema_name, autoload_with=engine)

    return Tables(
        reflect(names["inputs"]), reflect(names["outputs"]), [reflect(n) for n in names["weights"]],  # type: ignore[misc]
        [reflect(n) for n in names["biases"]], reflect(names.get("raw")), made,  # type: ignore[misc]
    )
