"""Quoting names and values into generated SQL (DuckDB and PostgreSQL share these rules)."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A SQL identifier: any column or table name, double quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal, single quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"
