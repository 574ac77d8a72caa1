"""`sqlnet kernels install` and `sqlnet kernels status`: sqlnet's C kernels for the training phases."""

from __future__ import annotations

import dataclasses
import json

import click
from rich.markup import escape

from sqlnet.cli.base import database_option, handle_errors, main, out


@main.group()
def kernels() -> None:
    """sqlnet's native kernels: each phase's arithmetic in C (the extension sqlnet_kernels).

    \b
    Examples:
      sqlnet kernels install
      sqlnet kernels status --json
      sqlnet kernels install --database-url postgresql://admin@db/shop --pg-config /usr/lib/postgresql/15/bin/pg_config
    """


@kernels.command()
@database_option
@click.option(
    "--pg-config",
    type=click.Path(dir_okay=False, exists=True),
    help="The pg_config of the database's server (default: the embedded server's).",
)
@click.option("--rebuild", is_flag=True, help="Build and install anew even where the server has this version.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON document.")
@handle_errors
def install(database_url: str | None, pg_config: str | None, rebuild: bool, as_json: bool) -> None:
    """Build the kernels with the server's pg_config, install them where it finds them, create the extension.

    For the embedded server (or another on this machine, run as a superuser) the files go into
    $SQLNET_HOME/kernels/pgNN, which the server is told to search: a reinstall of sqlnet keeps them.
    For another server, --pg-config builds and installs into its own folders; what sqlnet cannot do
    is printed as commands for its administrator.
    """
    from sqlnet.ops.kernels import install as install_kernels

    done = install_kernels(database_url, pg_config=pg_config, rebuild=rebuild)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(done), indent=2))
        return
    for step in done.steps:
        out.print(escape(step))
    for command in done.commands:
        out.print(escape(f"  {command}"))
    if done.status is not None:
        out.print(escape(_describe(done.status)))


@kernels.command()
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@handle_errors
def status(database_url: str | None, as_json: bool) -> None:
    """Whether the database has the kernels, which version, and whether this sqlnet uses them."""
    from sqlnet.ops.kernels import status as kernel_status

    found = kernel_status(database_url)
    if as_json:
        click.echo(json.dumps({**dataclasses.asdict(found), "usable": found.usable}, indent=2))
        return
    out.print(escape(_describe(found)))


def _describe(found: object) -> str:
    from sqlnet.db.kernels import VERSION, KernelStatus

    assert isinstance(found, KernelStatus)
    if found.usable:
        return f"native kernels: sqlnet_kernels {found.installed} in this database; --kernels auto uses them"
    if found.installed:
        return (f"native kernels: sqlnet_kernels {found.installed} (library {found.library}) in this database, but "
                f"this sqlnet needs {VERSION}: `sqlnet kernels install` updates them")  # fmt: skip
    if found.available:
        return (f"native kernels: the server has sqlnet_kernels {found.available}, not created in this database: "
                f"`sqlnet kernels install` (or, as a superuser, CREATE EXTENSION sqlnet_kernels)")  # fmt: skip
    return "native kernels: none on this server; trainings compute in SQL. `sqlnet kernels install` adds them"
