"""`psql` (the database in psql) and `demo` (the post's network, end to end).
"""

from __future__ import annotations

import os
import sys

import click
from rich.table import Table

import sqlnet as api
from sqlnet.cli.base import (
    EXIT_ERROR,
    TRACE_FIELDS,
    _fmt,
    database_option,
    handle_errors,
    main,
    out,
    params_table,
)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@database_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def psql(database_url: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql (the one shipped with the embedded server) on the database sqlnet uses.

    Arguments after the command go to psql.

    \b
    Examples:
      sqlnet psql
      sqlnet psql -c '\\dt sqlnet_trace.*'
      sqlnet psql -c 'SELECT * FROM sqlnet_trace.phase1_hidden_input'
    """
    from sqlnet.db.connection import Database, psql_binary, without_password

    db = Database(database_url)
    binary = str(psql_binary())
    conninfo, password = without_password(db.url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    sys.stdout.flush()
    os.execve(binary, [binary, conninfo, *psql_args], env)


@main.command()
@database_option
@handle_errors
def demo(database_url: str | None) -> None:
    """Train the blog post's 3-2-3 network one step in PostgreSQL and compare with the reference.

    Creates the post's tables in schema sqlnet_demo (replacing them), trains one traced epoch
    at learning rate 0.1, and prints the forward values, the loss and the updated weights beside
    the pure-Python reference's.

    \b
    Examples:
      sqlnet demo
    """
    d = api.demo(database_url)
    net = d.train.network
    from sqlnet.db.connection import redact

    out.print(f"[bold]sqlnet demo[/] — the blog post's network in PostgreSQL ({redact(d.url)})")
    out.print(f"tables inputs, weights1, weights2, outputs in schema {d.schema}; {net.describe()}")
    by_name = {t.phase.name: t for t in d.trace}
    fwd = Table(title="forward pass (epoch 1)", title_justify="left")
    for name in ("phase", "node", "SQL", "reference"):
        fwd.add_column(name, justify="right" if name != "phase" else "left", overflow="fold")
    for phase_name, k, quantity in (
        ("hidden_input", 1, "input"),
        ("hidden_activation", 1, "activation"),
        ("output_input", 2, "input"),
        ("output", 2, "activation"),
    ):
        ref = d.reference_forward.z[k] if quantity == "input" else d.reference_forward.a[k]
        for row in by_name[phase_name].rows:
            fields = dict(zip(TRACE_FIELDS, row))
            if fields["quantity"] == quantity and fields["layer"] == k:
                node = fields["node"]
                fwd.add_row(phase_name, str(node), _fmt(fields["value"]), _fmt(ref[node - 1]))
    out.print(fwd)
    out.print(f"loss (phase error): SQL {_fmt(d.train.losses[0])}, reference {_fmt(d.reference_loss)}")
    out.print(
        params_table(
            net, d.train.params, "weights and biases after one step (learning rate 0.1)", d.reference_params
        )
    )
    worst = max(x.max_rel for x in d.differences)
    out.print(
        f"largest difference SQL vs reference: {worst:.3g} "
        + ("(agree)" if worst <= 1e-9 else "[red](DISAGREE)[/]")
    )
    out.print(
        f"\nrun {d.train.run_id} is recorded: `sqlnet runs`. Every phase is a table in schema sqlnet_trace:\n"
        f"  sqlnet phases                      print them all\n"
        f"  sqlnet psql                        then \\dt sqlnet_trace.*\n"
        f"  sqlnet psql -c 'SELECT * FROM sqlnet_trace.phase6_hidden_delta WHERE run_id = {d.train.run_id}'\n"
        f"  sqlnet sql --schema {d.schema}      the training statement itself"
    )
    if worst > 1e-9:
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
