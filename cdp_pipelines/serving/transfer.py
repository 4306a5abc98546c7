"""Move one DuckDB query result into a PostgreSQL table with COPY, without Python per-row work.

DuckDB writes the rows to a temporary file in PostgreSQL's text format, which is streamed to
`COPY ... FROM STDIN` in large chunks. Text format rather than CSV: PostgreSQL parses it in
about half the time (no quote state; the lookup documents are JSON, full of quotes that CSV
doubles). Its rules: fields separated by tabs, NULL written as \\N, and a backslash, tab,
newline or carriage return inside a value written as \\\\, \\t, \\n, \\r. DuckDB applies the
escapes in SQL (`text_field`), so an empty string and NULL stay distinct.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import duckdb
import psycopg
from psycopg import sql

from cdp_pipelines.serving.duck_types import Column, quote_ident
from cdp_pipelines.sql_text import literal

CHUNK_BYTES = 4 * 1024 * 1024
_TAB = "\t"
# PostgreSQL types whose text form can hold any character; every other served type (numbers,
# dates, times, booleans, uuids, intervals) renders without tabs, newlines or backslashes.
_FREE_TEXT_TYPES = {"text", "jsonb", "json", "bytea"}


def text_field(column: Column, ref: str) -> str:
    """DuckDB expression: the value of `ref` escaped for PostgreSQL's COPY text format."""
    if column.pg_type not in _FREE_TEXT_TYPES:
        return ref
    escaped = f"replace(CAST({ref} AS VARCHAR), '\\', '\\\\')"
    for char, escape in ((9, "\\t"), (10, "\\n"), (13, "\\r")):
        escaped = f"replace({escaped}, chr({char}), '{escape}')"
    return escaped


def text_format_query(query: str, columns: Sequence[Column]) -> str:
    """The rows of `query` (which yields `columns`, in order) with every field ready for COPY."""
    aliases = [quote_ident(f"c{i}") for i in range(len(columns))]
    fields = ", ".join(text_field(c, a) for c, a in zip(columns, aliases))
    return f"SELECT {fields} FROM ({query}) AS q({', '.join(aliases)})"


def copy_query(
    duck: duckdb.DuckDBPyConnection,
    query: str,
    pg: psycopg.Connection,
    target: sql.Composable,
    columns: Sequence[Column],
) -> int:
    """COPY the rows of a DuckDB query (which yields `columns`, in order) into target; returns rows copied."""
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT text)").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    fd, path = tempfile.mkstemp(prefix="cdp_serving_", suffix=".tsv")
    os.close(fd)
    try:
        duck.execute(
            f"COPY ({text_format_query(query, columns)}) TO {literal(path)} "
            f"(FORMAT csv, DELIMITER '{_TAB}', QUOTE '', ESCAPE '', NULLSTR '\\N', HEADER false)"
        )
        with pg.cursor() as cur:
            with cur.copy(copy_sql) as copy, open(path, "rb") as fh:
                while chunk := fh.read(CHUNK_BYTES):
                    copy.write(chunk)
            return cur.rowcount
    finally:
        os.unlink(path)
