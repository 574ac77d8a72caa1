"""Creating the network's tables, granting a role what training needs, and the end-to-end demo."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from sqlnet.db import marks, store, trust
from sqlnet.db import trace as trace_store
from sqlnet.db.checks import check_and_size
from sqlnet.db.networks import forget
from sqlnet.db.privileges import grant_script, training_needs
from sqlnet.db.tables import check_names, create_data_tables, create_parameter_tables, discover, read_data
from sqlnet.errors import InputError
from sqlnet.model import reference
from sqlnet.model.initialize import initial_params
from sqlnet.model.network import Network, Params
from sqlnet.model.phases import plan
from sqlnet.ops.common import (
    DEMO_SCHEMA,
    POST_TABLES,
    TABLES_FILE,
    DatabaseLike,
    TrainOptions,
    connect,
    load_network,
)
from sqlnet.ops.defaults import EXAMPLES
from sqlnet.ops.history import PhaseTrace, phases
from sqlnet.ops.train import TrainResult, train
from sqlnet.ops.verify import Difference, compare


def _sql_file(name: str) -> str:
    return resources.files("sqlnet").joinpath("sql").joinpath(name).read_text()  # (one name per call on 3.10)


def init(
    database: DatabaseLike = None,
    *,
    schema: str | None = None,
    example: str | None = None,
    layers: Sequence[int] | None = None,
    init: str = "he",
    seed: int | None = None,
    bias: str = "edge",
    replace: bool = False,
) -> list[str]:
    """Create the network's tables; returns their names.

    Without `layers`: the post's tables, empty or with an example's values (`example="post"`).
    With `layers` (e.g. [4, 8, 8, 3]): weights1..K (and biases1..K for node biases) with random
    values (`init` he, xavier or uniform; `seed` makes them repeatable), plus empty inputs and
    outputs with a sampleId column where those tables do not exist yet.
    """
    check_names(schema=schema)
    if example is not None and example not in EXAMPLES:
        raise InputError(f"unknown example {example!r}: choose one of {', '.join(EXAMPLES)}")
    if example and layers:
        raise InputError("choose either --example or --layers")
    net = params = None
    if layers is not None:
        net = Network(tuple(layers), bias=bias)  # checks the sizes and the bias layout
        params = initial_params(net, init, seed)
    with connect(database).transaction() as s:
        if schema:
            s.pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        current = s.schema(schema)
        # the init scripts name their tables without a schema (docker-compose runs them too): they create
        # in `current`; pg_catalog, searched first when not listed, resolves every type and function
        s.pg.execute(sql.SQL("SET LOCAL search_path TO {}, pg_temp").format(sql.Identifier(current)))
        present = {
            name
            for (name,) in s.pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (current,)
            )
        }
        if net is None:
            ours = [t for t in POST_TABLES if t in present]
        else:
            # every weights/biases table: a deeper network left behind would extend the new one
            ours = sorted(t for t in present if re.fullmatch(r"(weights|biases)[0-9]+", t))
        if ours and not replace:
            raise InputError(
                f"{', '.join(ours)} already exist in schema {current!r}: use --replace to drop and recreate them "
                f"(`sqlnet runs` keeps every trained weight), or --schema for another schema"
            )
        # only tables sqlnet made for this network: a user's own are refused, naming them, and stay
        marks.make_room(s.pg, current, ours, current, replace, "--schema", TABLE_KINDS)
        # a new network: the functions, optimizer state and preprocessing of the one before are not its own
        trust.check_sqlnet_schemas(s.pg, current)
        if net is None:
            forget(s, current, (3, 2, 3) if example else None, "edge", keep_data=False)
        else:  # inputs and outputs stay where they exist, and so does what `load` did to them
            forget(s, current, net.sizes, net.bias, keep_data=bool({"inputs", "outputs"} & present))
        if net is None:
            # the files are sqlnet's own, shipped in the package; docker-compose runs the same files
            s.pg.execute(_sql_file(TABLES_FILE).encode())
            if example:
                s.pg.execute(_sql_file(EXAMPLES[example]).encode())
            _mark(s.pg, current, list(POST_TABLES), f"the post's tables{' with its example' if example else ''}")
            return list(POST_TABLES)
        assert params is not None
        created = []
        if not {"inputs", "outputs"} & present:
            create_data_tables(s.pg, None, current, "double precision", samples=True)
            created += ["inputs", "outputs"]
        create_parameter_tables(s.pg, net, params, current, "double precision")
        created += [
            f"{kind}{k}"
            for k in range(1, net.depth + 1)
            for kind in ("weights", "biases")
            if kind == "weights" or net.bias == "node"
        ]
        _mark(s.pg, current, created, f"a {net.describe()}, {init} initialisation, seed {seed}")
    return created


TABLE_KINDS = ("samples", "targets", "parameters")  # what init's tables are marked as (and replaces)


def _mark(pg: psycopg.Connection, schema: str, names: list[str], about: str) -> None:
    for name in names:
        what = "samples" if name == "inputs" else "targets" if name == "outputs" else "parameters"
        marks.comment(pg, "TABLE", sql.Identifier(schema, name), marks.mark(what, schema, f"made by sqlnet init: {about}"))


@dataclass
class Grants:
    role: str
    statements: list[str]  # the GRANT statements, as they run
    applied: bool
    store_exists: bool  # whether schema sqlnet existed (the grants on it need it)


def grants(
    database: DatabaseLike = None,
    *,
    role: str,
    schema: str | None = None,
    trace: bool = False,
    bias: str | None = None,
    apply: bool = False,
) -> Grants:
    """The GRANT statements that let `role` train the network in `schema` and nothing more: read
    inputs and outputs, read and update the parameter tables, record runs in schema `sqlnet`.
    ``apply=True`` (run as the tables' owner) creates sqlnet's schema and runs them."""
    check_names(schema=schema, role=role)
    with connect(database).transaction(commit=apply) as s:
        if s.pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            raise InputError(f"role {role!r} does not exist: create it first (CREATE ROLE ... LOGIN)")
        tables = discover(s, schema, bias)
        trust.check_sqlnet_schemas(s.pg, tables.resolved_schema)
        existed = store.has_schema(s)
        if apply:
            store.ensure_schema(s)
            if trace:
                # the phase tables of this network, made now by the owner: a role that made them itself
                # would own them, and sqlnet run by anyone else would refuse them (sqlnet.db.trust)
                net = Network(check_and_size(s.pg, tables), bias=tables.bias)
                for counts_steps in (False, True):
                    trace_store.ensure_trace_tables(s, plan(net, counts_steps))
        script = grant_script(training_needs(s.pg, tables, trace, for_script=True), role)
        if apply:
            for statement in script:
                s.pg.execute(statement)
        return Grants(role, [g.as_string(s.pg) for g in script], apply, existed or apply)


@dataclass
class DemoResult:
    url: str
    schema: str
    train: TrainResult
    reference_forward: reference.Forward
    reference_loss: float
    reference_params: Params
    differences: list[Difference]
    trace: list[PhaseTrace]


def demo(database: DatabaseLike = None, *, schema: str = DEMO_SCHEMA) -> DemoResult:
    """The post's network, end to end: create its tables, train one traced step, compare with the reference."""
    db = connect(database)
    init(db, schema=schema, example="post", replace=True)
    result = train(db, schema=schema, trace=True, epochs=1, learning_rate=0.1)
    with db.transaction(commit=False) as s:
        loaded = load_network(s, schema, TrainOptions(), None)
        tables, net = loaded.tables, loaded.net
        data = read_data(s.pg, tables, net)
    ref = reference.train(net, result.initial, data, 0.1, 1)
    forward = reference.forward(net, result.initial, data.samples[0].x)
    _, trace = phases(db, result.run_id, epoch=1)
    return DemoResult(
        db.url,
        schema,
        result,
        forward,
        ref.losses[0],
        ref.params,
        compare(net, tables, result.params, ref.params),
        trace,
    )
