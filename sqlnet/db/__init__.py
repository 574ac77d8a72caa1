"""Talking to PostgreSQL: the connection and embedded server (``connection``), the user's tables
(``tables``), sqlnet's own records (``store``), locks (``guard``), privileges and loading data.

The connection's names are re-exported here, as ``sqlnet.db`` offered them before it was a package.
"""

from __future__ import annotations

from sqlnet.db.connection import (
    DB_ERRORS,
    Database,
    Session,
    configured_url,
    connection_lost,
    embedded_url,
    error_text,
    libpq_url,
    psql_binary,
    redact,
    sqlalchemy_url,
    stop_embedded,
)

__all__ = [
    "DB_ERRORS",
    "Database",
    "Session",
    "configured_url",
    "connection_lost",
    "embedded_url",
    "error_text",
    "libpq_url",
    "psql_binary",
    "redact",
    "sqlalchemy_url",
    "stop_embedded",
]
