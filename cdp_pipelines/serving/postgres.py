"""Connection helpers: one clear line when PostgreSQL is unreachable, safe identifier quoting."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict


class ServingError(RuntimeError):
    """A serving operation failed for a reason a human can act on (message is one line)."""


class ServingConnectionError(ServingError):
    """PostgreSQL could not be reached or refused the login."""


def describe_target(url: str) -> str:
    """host:port/db of a URL, without user or password, for messages and logs."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable PostgreSQL URL>"
    host = info.get("host") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or '?'}"


def connect(url: str, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    """Open a connection, turning malformed URLs and connection failures into a one-line
    ServingConnectionError."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # psycopg's message quotes the text it could not parse, which may hold a password.
        raise ServingConnectionError(
            "the serving URL is not a valid PostgreSQL URL; expected postgresql://user@host:port/database"
        ) from None
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise ServingConnectionError(
            f"cannot connect to PostgreSQL at {describe_target(url)}: {connection_failure_reason(exc)}"
        ) from None


def connection_failure_reason(error: Exception) -> str:
    """The server's or the socket's own words ("Connection refused", "FATAL: database "x" does
    not exist"), without libpq's preamble naming the address again or its multi-line hints."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    reason = lines[0].rpartition("failed: ")[2] or lines[0]
    return " ".join(reason.split())


def ident(*parts: str) -> sql.Identifier:
    """A (possibly schema-qualified) quoted identifier."""
    return sql.Identifier(*parts)


def ident_list(names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)
