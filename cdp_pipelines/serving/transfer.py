"""Move one DuckDB query result into a PostgreSQL table with COPY, without Python per-row work.

DuckDB writes the rows in PostgreSQL's text format into a named pipe, from which a second thread
streams them to `COPY ... FROM STDIN` in large chunks while DuckDB is still writing: PostgreSQL
parses the first rows while DuckDB renders the last, and no temporary file as large as the
table is written to disk and read back (where named pipes do not exist, a temporary file is).

Text format rather than CSV: PostgreSQL parses it in about half the time (no quote state; the
lookup documents are JSON, full of quotes that CSV doubles). Its rules: fields separated by tabs,
NULL written as \\N, and a backslash, tab, newline or carriage return inside a value written as
\\\\, \\t, \\n, \\r. DuckDB applies the escapes in SQL (`text_field`), so an empty string and
NULL stay distinct.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

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
    *,
    freeze: bool = False,
) -> int:
    """COPY the rows of a DuckDB query (which yields `columns`, in order) into target; returns rows copied.

    With `freeze`, the rows are written frozen and their pages marked all-visible, as a VACUUM
    would leave them; PostgreSQL allows it only into a table created (or truncated) earlier in
    the same transaction."""
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT text{})").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), sql.SQL(", FREEZE" if freeze else "")
    )
    with tempfile.TemporaryDirectory(prefix="cdp_serving_") as folder:
        path = Path(folder) / "rows.tsv"
        if not hasattr(os, "mkfifo"):
            _write_rows(duck, query, columns, path)
            return _copy_file(pg, copy_sql, path)
        os.mkfifo(path, 0o600)
        outcome: dict = {}

        def load() -> None:
            try:
                outcome["rows"] = _copy_file(pg, copy_sql, path)
            except BaseException as exc:  # re-raised in the calling thread
                outcome["error"] = exc

        reader = threading.Thread(target=load, name="cdp-serving-copy", daemon=True)
        reader.start()
        try:
            _write_rows(duck, query, columns, path)
        finally:
            _release_reader(path, reader)
            reader.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["rows"]


def _write_rows(duck: duckdb.DuckDBPyConnection, query: str, columns: Sequence[Column], path: Path) -> None:
    duck.execute(
        f"COPY ({text_format_query(query, columns)}) TO {literal(str(path))} "
        f"(FORMAT csv, DELIMITER '{_TAB}', QUOTE '', ESCAPE '', NULLSTR '\\N', HEADER false)"
    )


def _copy_file(pg: psycopg.Connection, copy_sql: sql.Composable, path: Path) -> int:
    """Stream the file (or pipe) into COPY. Should PostgreSQL refuse the data, the pipe is still
    read to its end, so that DuckDB, writing into it, finishes instead of waiting for a reader."""
    with open(path, "rb") as fh:
        try:
            with pg.cursor() as cur:
                with cur.copy(copy_sql) as copy:
                    while chunk := fh.read(CHUNK_BYTES):
                        copy.write(chunk)
                return cur.rowcount
        finally:
            while fh.read(CHUNK_BYTES):
                pass


def _release_reader(path: Path, reader: threading.Thread) -> None:
    """A reader opening the pipe waits for a writer, which DuckDB never became if its query failed
    first: open the pipe for writing once, so that the reader sees an empty input and ends. Opening
    without blocking succeeds only once the reader is there, so it is retried until it has come."""
    while reader.is_alive():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError:  # no reader on the pipe yet
            reader.join(0.01)
