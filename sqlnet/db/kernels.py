"""Whether a database has sqlnet's native kernels (the extension ``sqlnet_kernels``), and whether they are
to be trusted.

The kernels run inside every training statement that uses them, with the runner's privileges, so they
pass the same trust boundary as sqlnet's own schemas: the extension must be installed in schema
``sqlnet_kernels``, by a trusted role, and every function in that schema must be a member of the
extension (a role that could create objects there cannot slip a function of its own in beside them:
sqlnet calls them schema-qualified, and checks this before each training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from sqlnet.db.trust import TRUSTED, Untrusted, network_owners

EXTENSION = "sqlnet_kernels"
SCHEMA = "sqlnet_kernels"
VERSION = "1.4"  # the version this sqlnet calls (sqlnet/native/sqlnet_kernels.control's default)


@dataclass(frozen=True)
class KernelStatus:
    installed: str | None  # the extension's version in this database, or None
    available: str | None  # the version the server could install (CREATE EXTENSION), or None
    library: str | None = None  # the loaded library's own version, when installed

    @property
    def usable(self) -> bool:
        return self.installed == VERSION and self.library == VERSION


def status(pg: psycopg.Connection, schema: str | None = None) -> KernelStatus:
    row = pg.execute(
        "SELECT (SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = %(x)s), "
        "(SELECT a.default_version FROM pg_catalog.pg_available_extensions AS a WHERE a.name = %(x)s)",
        {"x": EXTENSION},
    ).fetchone()
    installed, available = (row[0], row[1]) if row else (None, None)
    library = None
    if installed is not None:
        check(pg, schema)
        library = pg.execute("SELECT sqlnet_kernels.version()").fetchone()[0]  # type: ignore[index]
    return KernelStatus(installed, available, library)


def check(pg: psycopg.Connection, schema: str | None = None) -> None:
    """Refuse the kernels unless the extension is in its own schema, installed by a trusted role, and
    every function in that schema is the extension's."""
    extra = network_owners(pg, schema)
    where = pg.execute(
        "SELECT n.nspname, er.rolname, " + re.sub(r"\br\.", "er.", TRUSTED) + ", sr.rolname, "
        + re.sub(r"\br\.", "sr.", TRUSTED)
        + " FROM pg_catalog.pg_extension AS e JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace "
        "JOIN pg_catalog.pg_roles AS er ON er.oid = e.extowner JOIN pg_catalog.pg_roles AS sr ON sr.oid = n.nspowner "
        "WHERE e.extname = %(x)s",
        {"x": EXTENSION, "extra": extra},
    ).fetchone()
    if where is None:
        return
    namespace, owner, owner_trusted, schema_owner, schema_trusted = where
    if namespace != SCHEMA:
        raise Untrusted(f"the extension {EXTENSION} is in schema {namespace}, not {SCHEMA}: reinstall it "
                        f"(DROP EXTENSION {EXTENSION}; then sqlnet kernels install)")  # fmt: skip
    if not owner_trusted or not schema_trusted:
        who = owner if not owner_trusted else schema_owner
        raise Untrusted(f"the native kernels ({EXTENSION}, schema {SCHEMA}) belong to role {who}, which sqlnet "
                        f"does not trust: a superuser should reinstall them, or use --kernels sql")  # fmt: skip
    stranger = pg.execute(
        "SELECT p.proname, r.rolname FROM pg_catalog.pg_proc AS p "
        "JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner "
        "WHERE n.nspname = %(s)s AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d "
        "  JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid "
        "  WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid "
        "  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e' AND e.extname = %(x)s) "
        "ORDER BY 1 LIMIT 1",
        {"s": SCHEMA, "x": EXTENSION},
    ).fetchone()
    if stranger is not None:
        raise Untrusted(f"function {SCHEMA}.{stranger[0]} (owner {stranger[1]}) is not one of the native kernels': "
                        f"drop it (DROP FUNCTION {SCHEMA}.{stranger[0]}), or use --kernels sql")  # fmt: skip
