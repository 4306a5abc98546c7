"""Opening the warehouse from a command: one readable line when it cannot be opened.

A path that is missing, a folder, not a DuckDB file, or locked by a running `cdp run` is a
mistake the user can fix, so each becomes a WarehouseAccessError instead of DuckDB's exception.
Every command opens the warehouse through here (`cdp run` to write, the others to read).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cdp_pipelines import settings


class WarehouseAccessError(ValueError):
    """The warehouse file cannot be opened (message is one line)."""


def open_warehouse_read_only(warehouse: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to `warehouse` (default: the configured warehouse)."""
    path = Path(warehouse) if warehouse is not None else settings.warehouse_path()
    if not path.exists():
        raise WarehouseAccessError(f"warehouse {path} does not exist; run `cdp run` first")
    if path.is_dir():
        raise WarehouseAccessError(f"warehouse {path} is a folder; give the DuckDB warehouse file")
    return _connect(path, read_only=True)


def open_warehouse_for_writing(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to `path`, creating the file and its folder when missing."""
    path = Path(path)
    if path.is_dir():
        raise WarehouseAccessError(f"warehouse {path} is a folder; give the DuckDB warehouse file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WarehouseAccessError(
            f"cannot create the folder of warehouse {path}: {error.strerror or error}") from None
    return _connect(path, read_only=False)


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as error:
        raise WarehouseAccessError(_reason(path, error)) from None


def _reason(path: Path, error: duckdb.Error) -> str:
    text = str(error)
    if "Could not set lock" in text:
        return f"warehouse {path} is in use by another process (a running `cdp run`?); try again when it ends"
    if "not a valid DuckDB database file" in text:
        return f"{path} is not a DuckDB warehouse file"
    return f"cannot open warehouse {path}: {text.splitlines()[0] if text else type(error).__name__}"
