"""Shared test helpers: the post's network and random networks, as plain values."""

from __future__ import annotations

import random

from sqlnet.compile.tables import Table, TableMap, _input_columns, _weight_columns
from sqlnet.model.network import Dataset, Network, Params, Sample

POST_NET = Network((3, 2, 3))
POST_PARAMS = Params(
    weights=[[[2, 3], [4, 5], [6, 7]], [[1, 2, 3], [4, 5, 6]]],
    biases=[[[1, 1], [2, 2], [3, 3]], [[2, 2, 2], [3, 3, 3]]],
)
POST_DATA = Dataset([Sample(1, (1, 3, 5), (290, 399, 505))])

# The correct numbers after one step at learning rate 0.1 (../shared/reference/README.md).
POST_WEIGHTS_AFTER = [[[0.5, -0.3], [-0.5, -4.9], [-1.5, -9.5]], [[-4, -3, -17], [-1.9, -0.9, -17.6]]]
POST_BIASES_AFTER = [[[-0.5, -2.3], [0.5, -1.3], [1.5, -0.3]], [[1.9, 1.9, 1.6], [2.9, 2.9, 2.6]]]


def post_table_map(schema: str | None = None) -> TableMap:
    """The post's tables as discovery maps them (lower-case names, found in schema public unless
    `schema` is given), without a database."""
    home = schema or "public"
    return TableMap(
        schema,
        Table(schema, "inputs", _input_columns("input"), home=home),
        Table(schema, "outputs", _input_columns("output"), home=home),
        tuple(Table(schema, f"weights{k}", _weight_columns(k), home=home) for k in (1, 2)),
        (),
        "edge",
        home,
    )


def random_network(
    rng: random.Random,
    depth: int,
    bias: str,
    hidden: str = "relu",
    output: str = "linear",
    loss: str | None = None,
) -> Network:
    sizes = [rng.randint(1, 4) for _ in range(depth + 1)]
    if output == "softmax":
        sizes[-1] = max(2, sizes[-1])
        loss = "cross-entropy"
    return Network(tuple(sizes), hidden, output, loss or rng.choice(["half-se", "se"]), bias)


def random_targets(rng: random.Random, net: Network) -> tuple[float, ...]:
    """Targets the loss accepts: in [0, 1] for cross-entropy (a distribution for softmax)."""
    n = net.sizes[-1]
    if net.loss != "cross-entropy":
        return tuple(rng.uniform(-1, 1) for _ in range(n))
    if net.output_activation == "softmax":
        weights = [rng.random() for _ in range(n)]
        return tuple(w / sum(weights) for w in weights)
    return tuple(rng.random() for _ in range(n))


def random_params(rng: random.Random, net: Network, scale: float = 0.5) -> Params:
    return Params(
        [
            [[rng.uniform(-scale, scale) for _ in range(net.sizes[k])] for _ in range(net.sizes[k - 1])]
            for k in range(1, net.depth + 1)
        ],
        [
            [[rng.uniform(-scale, scale) for _ in range(net.sizes[k])] for _ in range(net.bias_rows(k))]
            for k in range(1, net.depth + 1)
        ],
    )


def random_data(rng: random.Random, net: Network, n: int) -> Dataset:
    ids = rng.sample(range(1, max(1000, 10 * n)), n)
    return Dataset(
        [
            Sample(
                i,
                tuple(rng.uniform(-1, 1) for _ in range(net.sizes[0])),
                random_targets(rng, net),
            )
            for i in sorted(ids)
        ]
    )


def snapshot(conn, schema: str = "public") -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A checksum of every table in a schema: proves that a failed command changed nothing."""
    from psycopg import sql

    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        )
    ]
    result = {}
    for t in tables:
        (digest,) = conn.execute(
            sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} AS t"
            ).format(sql.Identifier(schema, t))
        ).fetchone()
        result[t] = digest
    return result


def table_params(conn, net: Network, schema: str | None = None) -> Params:  # type: ignore[no-untyped-def]
    """Read the parameters back from the tables, independently of sqlnet's own reader."""
    from psycopg import sql

    def ident(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name) if schema else sql.Identifier(name)

    weights, biases = [], []
    for k in range(1, net.depth + 1):
        w = [[None] * net.sizes[k] for _ in range(net.sizes[k - 1])]
        b = [[None] * net.sizes[k] for _ in range(net.bias_rows(k))]
        cols = sql.SQL(", ").join(
            map(
                sql.Identifier, (f"weight{k}inputnodenumber", f"weight{k}outputnodenumber", f"weight{k}value")
            )
        )
        for i, j, v in conn.execute(sql.SQL("SELECT {} FROM {}").format(cols, ident(f"weights{k}"))):
            w[int(i) - 1][int(j) - 1] = float(v)
        if net.bias == "edge":
            for i, j, v in conn.execute(
                sql.SQL("SELECT {}, {}, {} FROM {}").format(
                    sql.Identifier(f"weight{k}inputnodenumber"),
                    sql.Identifier(f"weight{k}outputnodenumber"),
                    sql.Identifier(f"weight{k}bias"),
                    ident(f"weights{k}"),
                )
            ):
                b[int(i) - 1][int(j) - 1] = float(v)
        elif net.bias == "node":
            for j, v in conn.execute(
                sql.SQL("SELECT {}, {} FROM {}").format(
                    sql.Identifier(f"bias{k}nodenumber"), sql.Identifier(f"bias{k}value"), ident(f"biases{k}")
                )
            ):
                b[0][int(j) - 1] = float(v)
        weights.append(w)
        biases.append(b)
    return Params(weights, biases)


def database_snapshot(conn, schemas: list[str] | None = None, views: bool = True) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A checksum of every table and view in every schema (or in `schemas`), and of every function's
    definition: proves that a command changed nothing anywhere, including sqlnet's own schemas.
    Without `views`, views are not read (an attacker's view would run its trap for the test)."""
    from psycopg import sql

    result: dict[str, str] = {}
    relations = [
        (schema, table)
        for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND table_type <> 'LOCAL TEMPORARY' AND (%s OR table_type <> 'VIEW') ORDER BY 1, 2",
            (views,),
        ).fetchall()
        if schemas is None or schema in schemas
    ]
    for schema, table in relations:
        (digest,) = conn.execute(
            sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} AS t"
            ).format(sql.Identifier(schema, table))
        ).fetchone()
        result[f"{schema}.{table}"] = digest
    for schema, name, digest in conn.execute(
        "SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', "
        "md5(pg_get_functiondef(p.oid)) FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind = 'f'"
    ):
        result[f"{schema}.{name}"] = digest
    for (schema,) in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
    ):
        result.setdefault(f"{schema}.", "schema")
    if schemas is None:
        return result
    return {k: v for k, v in result.items() if k.split(".")[0] in schemas}


def table_data(conn, net: Network, schema: str = "public") -> Dataset:  # type: ignore[no-untyped-def]
    """The samples (with sampleId) as the tables hold them, read without sqlnet."""
    import math

    from psycopg import sql

    xs: dict[int, list[float]] = {}
    ts: dict[int, list[float]] = {}
    for name, into, n in (("input", xs, net.sizes[0]), ("output", ts, net.sizes[-1])):
        query = sql.SQL("SELECT sampleid, {}, {} FROM {}").format(
            sql.Identifier(f"{name}node"), sql.Identifier(f"{name}value"), sql.Identifier(schema, f"{name}s")
        )
        for sample, node, value in conn.execute(query):
            into.setdefault(int(sample), [math.nan] * n)[int(node) - 1] = float(value)
    return Dataset([Sample(i, tuple(xs[i]), tuple(ts[i])) for i in sorted(xs)])


def url_with(
    url: str,
    *,
    database: str | None = None,
    username: str | None = None,
    password: str | None = None,
    query: dict[str, str] | None = None,
) -> str:
    """A database URL with some of its parts replaced (or, for `query`, added)."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    u = urlsplit(url)
    user, _, host = u.netloc.rpartition("@")
    name, _, secret = user.partition(":")
    name = quote(username, safe="") if username is not None else name
    secret = quote(password, safe="") if password is not None else secret
    userinfo = f"{name}:{secret}" if secret else name
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = f"/{quote(database, safe='')}" if database is not None else u.path
    params = dict(parse_qsl(u.query, keep_blank_values=True)) | (query or {})
    return urlunsplit(u._replace(netloc=netloc, path=path, query=urlencode(params, quote_via=quote, safe="/")))


def url_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    return unquote(password) if password else password


SATURATED_NET = Network((2, 3, 2), "tanh", "softmax", "cross-entropy", "node")


def saturated_softmax() -> tuple[Params, Dataset]:
    """A softmax so sure that its other class gets exp(-700) ~ 1e-304 (samples 1 and 2, right) or its
    class ~1e-304 (samples 3 and 4, wrong): one sample per batch, the right ones' gradients are ~1e-304,
    whose squares (Adam's v) are under float8's smallest number -- IEEE rounds them to 0, PostgreSQL
    raises "value out of range: underflow" unless sqlnet counts them as 0 (SQUARE_FLOOR)."""
    params = Params(
        [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[300.0, -300.0], [300.0, -300.0], [300.0, -300.0]]],
        [[[0.5, 0.25, 0.125]], [[0.0, 0.0]]],
    )
    data = Dataset([
        Sample(1, (3.0, 3.0), (1.0, 0.0)), Sample(2, (3.0, 2.5), (1.0, 0.0)),
        Sample(3, (3.0, 3.0), (0.0, 1.0)), Sample(4, (2.0, 3.0), (0.0, 1.0)),
    ])  # fmt: skip
    return params, data
