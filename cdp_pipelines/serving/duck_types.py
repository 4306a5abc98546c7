"""DuckDB → PostgreSQL column types, and the DuckDB expression that renders each for COPY.

Publishing is generic: whatever columns a warehouse table has are served. Scalars map to their
PostgreSQL equivalent; nested values (lists, structs, maps, unions) become jsonb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from cdp_pipelines.sql_text import quote_identifier as quote_ident

_SCALARS = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "smallint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20,0)",
    "HUGEINT": "numeric(39,0)",
    "UHUGEINT": "numeric(39,0)",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIME WITH TIME ZONE": "timetz",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "BLOB": "bytea",
    "JSON": "jsonb",
}


@dataclass(frozen=True)
class Column:
    name: str
    duck_type: str
    pg_type: str
    export_sql: str  # DuckDB expression producing the COPY-ready value


def is_nested(duck_type: str) -> bool:
    """Lists, arrays, structs, maps and unions: served as JSON."""
    t = duck_type.upper().strip()
    return t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION"))


def map_column(name: str, duck_type: str) -> Column:
    """The PostgreSQL type and export expression for one DuckDB column."""
    t = duck_type.upper().strip()
    q = quote_ident(name)
    if is_nested(t):
        return Column(name, duck_type, "jsonb", f"to_json({q})::VARCHAR")
    if t == "JSON":
        return Column(name, duck_type, "jsonb", f"{q}::VARCHAR")
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t):
        return Column(name, duck_type, f"numeric({m[1]},{m[2]})", q)
    if t == "BLOB":
        return Column(name, duck_type, "bytea", f"'\\x' || hex({q})")
    if t.startswith("ENUM"):
        return Column(name, duck_type, "text", f"{q}::VARCHAR")
    if t in _SCALARS:
        return Column(name, duck_type, _SCALARS[t], q)
    return Column(name, duck_type, "text", f"{q}::VARCHAR")  # unknown: serve its text form


def duck_ref(qualified: str) -> str:
    """A quoted DuckDB reference for a 'schema.table' name taken from the config."""
    return ".".join(quote_ident(part) for part in qualified.split("."))


def table_exists(duck: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, table = qualified.rpartition(".")
    row = duck.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = ? AND table_name = ?",
        [schema or "main", table],
    ).fetchone()
    return bool(row and row[0])


def columns_of(duck: duckdb.DuckDBPyConnection, qualified: str) -> list[Column]:
    rows = duck.execute(f"DESCRIBE SELECT * FROM {duck_ref(qualified)}").fetchall()
    return [map_column(r[0], r[1]) for r in rows]
