"""Attacks: a low-privilege role sets a trap, a privileged role runs sqlnet, and nothing of the trap runs.

Table-driven like ``test_bad_data.py``. Each ``Attack`` is SQL the attacker runs as its own role (and,
where the trap needs a careless grant first, SQL the superuser runs before it), then every command a
superuser would run on that database, and what each must do: work (with the reference's numbers) or
refuse with a message naming the trap. After every command the attacker's evidence table is empty
(none of its code ran, as any role), the attacker is still not a superuser (its trap tries to make it
one), and a refused command changed nothing anywhere in the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from sqlnet.cli import main
from sqlnet.model.reference import train as reference_train
from tests.helpers import POST_DATA, POST_NET, POST_PARAMS, database_snapshot, table_params, url_with
from tests.test_reference import assert_close

PASSWORD = "sqlnet-attacker"
SQL_DIR = Path(__file__).parent.parent / "sql"
PROGRESS_ARGS = "run integer, epoch integer, batch integer, loss double precision, samples bigint"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def with_user(url: str, role: str) -> str:
    return url_with(url, username=role, password=PASSWORD)


def with_search_path(url: str, path: str) -> str:
    """The URL of a session whose search path is `path` (as ALTER ROLE ... SET search_path would make it)."""
    return url_with(url, query={"options": f"-csearch_path={path}"})


@dataclass
class Attacker:
    name: str
    url: str

    def run(self, statements: list[str]) -> None:
        with psycopg.connect(self.url, autocommit=True) as c:
            for s in statements:
                c.execute(s.replace("{attacker}", self.name))


@pytest.fixture
def attacker(post_db: str, conn: psycopg.Connection) -> Iterator[Attacker]:
    """A login role that may create schemas in the database and objects in public (as PostgreSQL up to
    14 let everyone), with an evidence table anyone may write to and a trap function that records
    who ran it and tries to make the attacker a superuser."""
    (allowed,) = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not allowed:
        pytest.skip("the attacks need a superuser to run sqlnet as")
    name = f"attacker_{uuid.uuid4().hex[:8]}"
    (database,) = conn.execute("SELECT current_database()").fetchone()
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(PASSWORD)))
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(name)))
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    a = Attacker(name, with_user(post_db, name))
    a.run(
        [
            "CREATE TABLE public.evidence (who text, what text)",
            "GRANT INSERT ON public.evidence TO PUBLIC",
            """CREATE FUNCTION public.trap(what text) RETURNS boolean LANGUAGE plpgsql
               SET search_path = pg_catalog AS $$
               BEGIN
                 INSERT INTO public.evidence VALUES (current_user, what || ': ' || left(current_query(), 300));
                 BEGIN EXECUTE 'ALTER ROLE {attacker} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
                 RETURN true;
               END $$""",
            """CREATE FUNCTION public.trap_trigger() RETURNS trigger LANGUAGE plpgsql
               SET search_path = pg_catalog AS $$
               BEGIN PERFORM public.trap(TG_NAME); RETURN NEW; END $$""",
        ]
    )
    yield a
    conn.execute("SET search_path = pg_catalog")
    conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def the_network_in(schema: str) -> list[str]:
    """The attacker's own copy of the post's network, in a schema of its own."""
    tables = (SQL_DIR / "01_tables.sql").read_text()
    values = (SQL_DIR / "02_example_post.sql").read_text()
    return [f"CREATE SCHEMA {schema}", f"SET search_path = {schema}", tables, values, "SET search_path = public"]


# --- the traps ------------------------------------------------------------------------------------

# operators a training expression could pick over the built-in ones when their types fit better,
# or when the search path lists public before pg_catalog; each records that it ran, then does its job
OPERATORS = ["*", "+", "-", "/", "^", ">", "<", ">=", "<=", "=", "<>"]
TYPES = ["double precision", "integer", "bigint", "numeric"]
COMPARISONS = {">", "<", ">=", "<=", "=", "<>"}


def shadowing_operators() -> list[str]:
    statements = []
    n = 0
    for op in OPERATORS:
        for left in TYPES:
            for right in TYPES:
                n += 1
                returns = "boolean" if op in COMPARISONS else (left if left == right else "double precision")
                cast = "" if left == right else "::double precision"
                statements += [
                    f"""CREATE FUNCTION public.shadow_{n}(a {left}, b {right}) RETURNS {returns} LANGUAGE plpgsql
                        SET search_path = pg_catalog AS $$
                        BEGIN PERFORM public.trap('operator {op} ({left}, {right})');
                        RETURN a{cast} OPERATOR(pg_catalog.{op}) b{cast}; END $$""",
                    f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.shadow_{n})",
                ]
    for left, right in (("text", "bigint"), ("text", "integer"), ("text", "text")):
        n += 1
        statements += [
            f"""CREATE FUNCTION public.shadow_{n}(a {left}, b {right}) RETURNS text LANGUAGE plpgsql
                SET search_path = pg_catalog AS $$
                BEGIN PERFORM public.trap('operator || ({left}, {right})'); RETURN a::text || b::text; END $$""",
            f"CREATE OPERATOR public.|| (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.shadow_{n})",
        ]
    return statements


def shadowing_functions() -> list[str]:
    statements = []
    for name, args, body in (
        ("exp", "x double precision", "pg_catalog.exp(x)"),
        ("ln", "x double precision", "pg_catalog.ln(x)"),
        ("tanh", "x double precision", "pg_catalog.tanh(x)"),
        ("exp", "x numeric", "pg_catalog.exp(x)"),
        ("abs", "x double precision", "pg_catalog.abs(x)"),
        ("sqrt", "x double precision", "pg_catalog.sqrt(x)"),
        ("power", "x double precision, y double precision", "pg_catalog.power(x, y)"),
        ("md5", "x text", "pg_catalog.md5(x)"),
        ("round", "x numeric, s integer", "pg_catalog.round(x, s)"),
        ("current_schema", "", "pg_catalog.current_schema()"),
    ):
        returns = {"md5": "text", "current_schema": "name"}.get(name, "numeric" if "numeric" in args else "double precision")
        statements.append(
            f"""CREATE FUNCTION public.{name}({args}) RETURNS {returns} LANGUAGE plpgsql
                SET search_path = pg_catalog AS $$
                BEGIN PERFORM public.trap('function {name}({args})'); RETURN {body}; END $$"""
        )
    statements += [
        """CREATE FUNCTION public.shadow_sum(s double precision, x double precision) RETURNS double precision
           LANGUAGE plpgsql SET search_path = pg_catalog AS $$
           BEGIN PERFORM public.trap('aggregate sum'); RETURN coalesce(s, 0) + x; END $$""",
        "CREATE AGGREGATE public.sum(double precision) (SFUNC = public.shadow_sum, STYPE = double precision)",
    ]
    return statements


@dataclass
class Attack:
    name: str
    setup: list[str]  # the attacker's SQL
    refused_with: list[str] = field(default_factory=list)  # words of the refusal; empty: the commands work
    admin: list[str] = field(default_factory=list)  # what a careless superuser did first
    schema: str | None = None  # the network's schema, when it is not public
    search_path: str | None = None  # the runner's own search path
    trace_only: bool = False  # the trap is in the trace schema: only commands that use it refuse

    def refuses(self, args: list[str]) -> bool:
        return bool(self.refused_with) and (not self.trace_only or "--trace" in args or args[0] == "phases")


ATTACKS = [
    Attack(
        "hostile sqlnet schema",
        [
            "CREATE SCHEMA sqlnet",
            f"""CREATE FUNCTION sqlnet.progress({PROGRESS_ARGS}) RETURNS boolean LANGUAGE sql
                AS $$ SELECT public.trap('progress') $$""",
        ],
        ["schema 'sqlnet' belongs to role 'attacker_"],
    ),
    Attack(
        "hostile sqlnet_trace schema",
        [
            "CREATE SCHEMA sqlnet_trace",
            "CREATE TABLE sqlnet_trace.phase0_start (run_id int, epoch int, batch int, sample bigint, layer int, "
            "quantity text, input_node int, node int, value float8)",
            "CREATE TRIGGER t BEFORE INSERT ON sqlnet_trace.phase0_start "
            "FOR EACH ROW EXECUTE FUNCTION public.trap_trigger()",
        ],
        ["schema 'sqlnet_trace' belongs to role 'attacker_"],
        trace_only=True,
    ),
    Attack(
        "replaced sqlnet.progress",
        [
            f"""CREATE OR REPLACE FUNCTION sqlnet.progress({PROGRESS_ARGS}) RETURNS boolean LANGUAGE plpgsql
                AS $$ BEGIN PERFORM public.trap('progress'); RETURN true; END $$""",
        ],
        ["schema 'sqlnet'", "attacker_"],
        # the superuser trained once, then handed the function over by mistake
        admin=[
            f"ALTER FUNCTION sqlnet.progress({PROGRESS_ARGS}) OWNER TO {{attacker}}",
            "GRANT USAGE, CREATE ON SCHEMA sqlnet TO {attacker}",
        ],
    ),
    Attack(
        "a role that may create in schema sqlnet",
        ["CREATE FUNCTION sqlnet.progress(run integer, epoch integer, batch integer, loss numeric, samples bigint) "
         "RETURNS boolean LANGUAGE sql AS $$ SELECT public.trap('progress overload') $$"],
        ["may create objects in schema 'sqlnet'"],
        admin=["GRANT USAGE, CREATE ON SCHEMA sqlnet TO {attacker}"],
    ),
    Attack("operators and functions on the search path", shadowing_operators() + shadowing_functions()),
    Attack(
        "operators and functions first on the runner's search path",
        shadowing_operators() + shadowing_functions(),
        search_path="public,pg_catalog",
    ),
    Attack(
        "trigger on a weights table",
        [*the_network_in("att"),
         "CREATE TRIGGER steal BEFORE UPDATE ON att.weights1 FOR EACH ROW EXECUTE FUNCTION public.trap_trigger()"],
        ["trigger steal on att.weights1"],
        schema="att",
    ),
    Attack(
        "rule on a weights table",
        [*the_network_in("att"),
         "CREATE RULE steal AS ON UPDATE TO att.weights2 DO ALSO SELECT public.trap('rule')"],
        ["rule steal on att.weights2"],
        schema="att",
    ),
    Attack(
        "row-level security on a weights table",
        [*the_network_in("att"),
         "ALTER TABLE att.weights1 ENABLE ROW LEVEL SECURITY",
         "ALTER TABLE att.weights1 FORCE ROW LEVEL SECURITY",
         "CREATE POLICY hide ON att.weights1 USING (public.trap('policy'))"],
        ["row-level security on att.weights1"],
        schema="att",
    ),
    Attack(
        "check constraint calling the attacker's function",
        [*the_network_in("att"), "ALTER TABLE att.weights2 ADD CONSTRAINT c CHECK (public.trap('check'))"],
        ["depends on function public.trap(text)"],
        schema="att",
    ),
    Attack(
        "index expression calling the attacker's function",
        [*the_network_in("att"),
         "CREATE FUNCTION public.ix(x numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS "
         "$$ BEGIN PERFORM public.trap('index'); RETURN x; END $$",
         "CREATE INDEX ON att.weights1 (public.ix(weight1value))"],
        ["depends on function public.ix(numeric)"],
        schema="att",
    ),
    Attack(
        "inputs a view calling the attacker's function",
        [*the_network_in("att"),
         "ALTER TABLE att.inputs RENAME TO raw_inputs",
         "CREATE VIEW att.inputs AS SELECT inputnode, inputvalue FROM att.raw_inputs WHERE public.trap('view')"],
        ["depends on function public.trap(text)"],
        schema="att",
    ),
]


def commands(attack: Attack) -> list[list[str]]:
    """Every command that reads or writes the network (and, unless the trap is in the network's own
    tables, those that read sqlnet's records)."""
    where = ["--schema", attack.schema] if attack.schema else []
    table = ["--table", "samples", "--table-schema", "public"]
    network = [
        ["train", *where, "--epochs", "2", "--learning-rate", "0.0001"],
        ["train", *where, "--epochs", "2", "--learning-rate", "0.0001", "--checkpoint-every", "1"],
        ["train", *where, "--trace", "--learning-rate", "0.0001"],
        ["train", *where, "--epochs", "2", "--learning-rate", "0.001", "--optimizer", "adam"],
        ["check", *where, "--epochs", "2", "--learning-rate", "0.0001"],
        ["gradcheck", *where],
        ["sql", *where],
        ["predict", *where, *table, "--into", "predicted", "--replace", "--into-schema", "public"],
        ["export", *where, *table, "--view", "exported", "--replace", "--into-schema", "public"],
        ["export", *where, "--function", "exported_f", "--replace", "--into-schema", "public"],
    ]
    return network if attack.schema else [*network, ["runs"], ["restore", "1"], ["phases"]]


def evidence(conn: psycopg.Connection, attacker: Attacker) -> list[tuple]:
    (superuser,) = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s", (attacker.name,)).fetchone()
    rows = conn.execute("SELECT who, what FROM public.evidence").fetchall()
    return rows + ([("attacker", "became a superuser")] if superuser else [])


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_nothing_of_the_trap_runs(post_db: str, conn: psycopg.Connection, attacker: Attacker, attack: Attack) -> None:
    url = with_search_path(post_db, attack.search_path) if attack.search_path else post_db
    if attack.admin:
        assert run("train", "--database-url", post_db, "--learning-rate", "0.0001")[0] == 0
        for statement in attack.admin:
            conn.execute(statement.replace("{attacker}", attacker.name))
    conn.execute("CREATE TABLE public.samples (sampleid int, inputnode int, inputvalue float8)")
    conn.execute("INSERT INTO public.samples VALUES (1, 1, 1), (1, 2, 3), (1, 3, 5)")
    attacker.run(attack.setup)
    # from here on the test's own connection resolves nothing through public: it must not spring the trap
    conn.execute("SET search_path = pg_catalog, pg_temp")
    conn.execute("DELETE FROM public.evidence")  # what ran as the attacker while it set the trap up
    for args in commands(attack):
        before = database_snapshot(conn, views=False)
        code, out, err = run(*args, "--database-url", url)
        assert evidence(conn, attacker) == [], (args, err)
        if attack.refuses(args):
            assert code == 1, (args, out, err)
            assert err.startswith("error:"), (args, err)
            for words in attack.refused_with:
                assert words in err, (args, err)
            assert database_snapshot(conn, views=False) == before, args
        else:
            assert code == 0 or (args[0] == "phases" and "no traced run yet" in err), (args, err)
    if not attack.refused_with:
        # `restore 1` put back the weights the first training started from: the post's own
        got = table_params(conn, POST_NET, "public")
        assert_close(got.weights + got.biases, POST_PARAMS.weights + POST_PARAMS.biases, 0)
        # the exported view and function, queried under the same search path, run no trap either
        with psycopg.connect(url, autocommit=True) as user:
            view = user.execute("SELECT output_1, output_2, output_3 FROM public.exported").fetchone()
            (function,) = user.execute("SELECT public.exported_f(ARRAY[1, 3, 5]::float8[])").fetchone()
        assert list(view) == pytest.approx(function, rel=1e-12)
        assert evidence(conn, attacker) == []


def test_a_hostile_search_path_trains_to_the_reference(
    post_db: str, conn: psycopg.Connection, attacker: Attacker
) -> None:
    """With every operator shadowed first on the path, the numbers are still the built-in operators'
    numbers, in both layouts, with shuffled mini-batches (md5, ||) and Adam (power, sqrt)."""
    attacker.run(shadowing_operators() + shadowing_functions())
    conn.execute("SET search_path = pg_catalog, pg_temp")
    url = with_search_path(post_db, "public,pg_catalog")
    options = ["--epochs", "3", "--learning-rate", "0.0001", "--batch-size", "1", "--shuffle", "3"]
    want = reference_train(POST_NET, POST_PARAMS, POST_DATA, 0.0001, 3, batch_size=1, shuffle=3).params
    for run_id, layout in enumerate(("wide", "long"), start=1):
        code, _, err = run("train", *options, "--layout", layout, "--database-url", url)
        assert code == 0, err
        got = table_params(conn, POST_NET, "public")
        assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
        assert run("restore", str(run_id), "--database-url", url)[0] == 0
    code, _, err = run("check", "--optimizer", "adam", "--epochs", "3", "--learning-rate", "0.01", "--database-url", url)
    assert code == 0, err
    assert evidence(conn, attacker) == []


def test_restore_acts_on_the_network_the_run_trained(db_url: str, conn: psycopg.Connection) -> None:
    """A run records its schema when it starts: restored under another search path, it still restores it."""
    for schema in ("a", "b"):
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        conn.execute((SQL_DIR / "01_tables.sql").read_text())
        conn.execute((SQL_DIR / "02_example_post.sql").read_text())
    conn.execute("SET search_path = pg_catalog")
    assert run("train", "--learning-rate", "0.0001", "--database-url", with_search_path(db_url, "a"))[0] == 0
    trained_b = database_snapshot(conn, ["b"])
    code, out, err = run("restore", "1", "--database-url", with_search_path(db_url, "b"))
    assert code == 0, err
    assert database_snapshot(conn, ["b"]) == trained_b  # b untouched
    got = table_params(conn, POST_NET, "a")
    assert_close(got.weights + got.biases, POST_PARAMS.weights + POST_PARAMS.biases, 0)
    (recorded,) = conn.execute("SELECT schema_name FROM sqlnet.runs WHERE run_id = 1").fetchone()
    assert recorded == "a"


def test_tables_that_differ_only_in_case_are_refused(post_db: str, conn: psycopg.Connection) -> None:
    conn.execute('CREATE TABLE "Weights2" (LIKE weights2)')
    before = database_snapshot(conn)
    code, _, err = run("train", "--database-url", post_db)
    assert code == 1 and "'Weights2'" in err and "'weights2'" in err and "differ only in case" in err
    conn.execute('DROP TABLE "Weights2"')
    conn.execute('ALTER TABLE inputs ADD COLUMN "InputValue" numeric')
    code, _, err = run("train", "--database-url", post_db)
    assert code == 1 and "'InputValue'" in err and "'inputvalue'" in err, err
    assert database_snapshot(conn, ["sqlnet"]) == {k: v for k, v in before.items() if k.startswith("sqlnet")}


def test_more_layers_than_the_limit_are_refused_not_cut(db_url: str) -> None:
    import sqlnet

    sqlnet.init(db_url, layers=[1] * 71, seed=1)  # 70 layers
    code, _, err = run("train", "--database-url", db_url)
    assert code == 1 and "weights1..weights70" in err and "at most 64 layers" in err, err


def test_a_write_that_does_not_stick_is_refused(post_db: str, conn: psycopg.Connection) -> None:
    """A column that cannot hold the trained weights (numeric(6,2) rounds them): the write-back is read
    back, the difference named, and the training rolled back."""
    conn.execute("ALTER TABLE weights1 ALTER COLUMN weight1value TYPE numeric(6,2)")
    before = database_snapshot(conn)
    code, _, err = run("train", "--learning-rate", "0.0001", "--database-url", post_db)
    assert code == 1, err
    assert "weights1.weight1value holds" in err and "but sqlnet wrote" in err, err
    assert database_snapshot(conn) == before
    code, _, err = run("train", "--learning-rate", "0.0001", "--checkpoint-every", "1", "--database-url", post_db)
    assert code == 1 and "weights1.weight1value holds" in err and "no checkpoint was made" in err, err


def records_of(conn: psycopg.Connection, run_id: int) -> list[list[tuple]]:
    """Everything sqlnet keeps of network b's run: the run, losses, parameters, optimizer state, trace."""
    return [
        conn.execute(q, (run_id,)).fetchall()
        for q in (
            "SELECT * FROM sqlnet.runs WHERE run_id = %s",
            "SELECT * FROM sqlnet.run_losses WHERE run_id = %s ORDER BY epoch",
            "SELECT * FROM sqlnet.run_params WHERE run_id = %s ORDER BY stage, quantity, layer, input_node, node",
            "SELECT * FROM sqlnet.optimizer_state WHERE network = 'b' OR %s IS NULL ORDER BY 1, 2, 3, 4, 5",
            "SELECT * FROM sqlnet_trace.phase1_hidden_input WHERE run_id = %s ORDER BY 2, 3, 4, 5, 6, 7, 8",
        )
    ]


def test_a_role_granted_one_network_cannot_touch_another(db_url: str, conn: psycopg.Connection) -> None:
    """`sqlnet grants ROLE --schema a --apply` lets the role train network a: it can neither read nor
    change the run records, parameters, losses, optimizer state or traces of network b."""
    (superuser,) = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser:
        pytest.skip("needs a superuser to create the roles")
    import sqlnet

    for schema in ("a", "b"):
        sqlnet.init(db_url, schema=schema, example="post")
    b_run = sqlnet.train(db_url, schema="b", optimizer="adam", learning_rate=0.01, epochs=2, trace=True).run_id
    name = f"trainer_{uuid.uuid4().hex[:8]}"
    (database,) = conn.execute("SELECT current_database()").fetchone()
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(PASSWORD)))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(name)))
    try:
        code, _, err = run("grants", name, "--schema", "a", "--trace", "--apply", "--database-url", db_url)
        assert code == 0, err
        url = with_user(db_url, name)
        code, _, err = run("train", "--schema", "a", "--optimizer", "adam", "--learning-rate", "0.01", "--trace",
                           "--database-url", url)  # fmt: skip
        assert code == 0, err
        conn.execute("SET search_path = pg_catalog")
        b_records = records_of(conn, b_run)
        assert all(b_records), "network b has records of every kind"
        with psycopg.connect(url, autocommit=True) as trainer:
            seen = trainer.execute("SELECT DISTINCT schema_name FROM sqlnet.runs").fetchall()
            assert seen == [("a",)]
            for query in (
                "SELECT * FROM sqlnet.run_params WHERE run_id = %(b)s",
                "SELECT * FROM sqlnet.run_losses WHERE run_id = %(b)s",
                "SELECT * FROM sqlnet.optimizer_state WHERE network = 'b'",
                "SELECT * FROM sqlnet_trace.phase1_hidden_input WHERE run_id = %(b)s",
            ):
                assert trainer.execute(query, {"b": b_run}).fetchall() == [], query
            for change in (
                "UPDATE sqlnet.optimizer_state SET m = 1e6 WHERE network = 'b'",
                "DELETE FROM sqlnet.run_params WHERE run_id = %(b)s",
                "UPDATE sqlnet.runs SET status = 'failed' WHERE run_id = %(b)s",
                "DELETE FROM sqlnet.run_losses WHERE run_id = %(b)s",
            ):
                assert trainer.execute(change, {"b": b_run}).rowcount == 0, change
            for forbidden in (
                "INSERT INTO sqlnet.optimizer_state (network, quantity, layer, i, j, m) VALUES ('b', 'weight', 1, 1, 1, 5)",
                "UPDATE sqlnet.runs SET schema_name = 'b' WHERE schema_name = 'a'",
                "INSERT INTO sqlnet.runs (status, schema_name, network, options, epochs, learning_rate) "
                "VALUES ('finished', 'b', '{}', '{}', 1, 0.1)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                    trainer.execute(forbidden)
        code, out, err = run("runs", "--json", "--database-url", url)
        assert code == 0 and f'"run_id": {b_run},' not in out, out
        code, _, err = run("restore", str(b_run), "--database-url", url)
        assert code == 1 and f"run {b_run}" in err, err
        after = records_of(conn, b_run)
        assert after == b_records
    finally:
        conn.execute("SET search_path = pg_catalog")
        conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_network_owner_who_is_not_a_superuser_is_trusted_with_the_schema_it_made(
    db_url: str, conn: psycopg.Connection
) -> None:
    """The network's owner (here not a superuser) made schema sqlnet with `grants --apply`: the role it
    granted the network trains, and so does a superuser, and both equal the reference."""
    (superuser,) = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser:
        pytest.skip("needs a superuser to create the roles")
    owner, trainer = (f"{who}_{uuid.uuid4().hex[:8]}" for who in ("owner", "trainer"))
    (database,) = conn.execute("SELECT current_database()").fetchone()
    for role in (owner, trainer):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD)))
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(owner)))
    import sqlnet

    try:
        as_owner = with_user(db_url, owner)
        sqlnet.init(as_owner, schema="n", example="post")
        sqlnet.grants(as_owner, role=trainer, schema="n", apply=True)
        want = POST_PARAMS
        for url in (with_user(db_url, trainer), db_url):
            code, _, err = run("train", "--schema", "n", "--learning-rate", "0.0001", "--database-url", url)
            assert code == 0, err
            want = reference_train(POST_NET, want, POST_DATA, 0.0001, 1).params
            got = table_params(conn, POST_NET, "n")
            assert_close(got.weights + got.biases, want.weights + want.biases, 1e-12)
    finally:
        conn.execute("SET search_path = pg_catalog")
        for role in (trainer, owner):
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
