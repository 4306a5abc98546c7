"""Which files were ingested, and which records a run touched.

``quality.ingested_files`` remembers every file a run read (size, modification time, SHA-256),
so an incremental run reads only files that are new or whose content changed. A file whose
modification time moved but whose bytes are the same is not read again.

``quality.record_changes`` lists, per run and source, the record ids an incremental run added
(``new``) or whose content it replaced (``changed``): standardization and identity resolution
read it to work on those records only. See docs/operations.md for the contract.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import duckdb

INGESTED_FILES = "quality.ingested_files"
RECORD_CHANGES = "quality.record_changes"


def ensure_tracking_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {INGESTED_FILES} (
            source VARCHAR, file VARCHAR, size BIGINT, mtime DOUBLE, sha256 VARCHAR,
            rows_read BIGINT, run_id VARCHAR, ingested_at TIMESTAMP)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {RECORD_CHANGES} (
            run_id VARCHAR, source VARCHAR, source_record_id VARCHAR, change VARCHAR)"""
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_label(path: Path, data_dir: Path) -> str:
    """How a file is named in raw._file and the tracking tables: relative to the data folder."""
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return path.name


def new_or_changed_filter(
    con: duckdb.DuckDBPyConnection, source: str, data_dir: Path
) -> Callable[[Path], bool]:
    """A file filter for read_source: True for files not ingested before or whose bytes changed."""
    known = {
        file: (size, mtime, sha)
        for file, size, mtime, sha in con.execute(
            f"SELECT file, size, mtime, sha256 FROM {INGESTED_FILES} WHERE source = ?", [source]
        ).fetchall()
    }

    def accept(path: Path) -> bool:
        previous = known.get(file_label(path, data_dir))
        if previous is None:
            return True
        stat = path.stat()
        if (stat.st_size, stat.st_mtime) == (previous[0], previous[1]):
            return False
        return stat.st_size != previous[0] or sha256_of(path) != previous[2]

    return accept


def record_ingested_files(
    con: duckdb.DuckDBPyConnection, source: str, files: list[Path], data_dir: Path,
    rows_per_file: dict[str, int], run_id: str, replace_all: bool,
) -> None:
    """Remember the files a run read; a full refresh forgets every file it did not read."""
    if replace_all:
        con.execute(f"DELETE FROM {INGESTED_FILES} WHERE source = ?", [source])
    for path in files:
        label = file_label(path, data_dir)
        stat = path.stat()
        con.execute(f"DELETE FROM {INGESTED_FILES} WHERE source = ? AND file = ?", [source, label])
        con.execute(
            f"INSERT INTO {INGESTED_FILES} VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            [source, label, stat.st_size, stat.st_mtime, sha256_of(path), rows_per_file.get(label, 0), run_id],
        )


def changed_ids_sql(source: str, run_id_param: str = "?") -> str:
    """SQL selecting the record ids a run touched in a source (bind run id, then source)."""
    return (f"SELECT source_record_id FROM {RECORD_CHANGES} "
            f"WHERE run_id = {run_id_param} AND source = ?")
