"""Asset metadata every stage shows in the UI: row counts, null rates, masked previews."""

from __future__ import annotations

import dagster as dg
import duckdb
from tabulate import tabulate

from cdp_pipelines import settings
from cdp_pipelines.privacy import is_pii_column, mask_value

OWNERS = ["team:data-platform"]

BACKGROUND_STEP_TAGS = {"dagster/priority": "-1"}
"""Op tags of a step nothing urgent waits on: a non-blocking check, or work whose dependents
also wait on identity resolution. Among the ready steps the executor starts it last, so it fills
a slot the steps on the way to identity resolution (the run's longest step, which leaves part of
the machine idle) and to the published tables leave free, instead of delaying them."""


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


PREVIEW_CELL_CHARACTERS = 60


def preview(con: duckdb.DuckDBPyConnection, table: str, limit: int = 10, columns: list[str] | None = None) -> dg.MetadataValue:
    """First rows of a table as Markdown, with personal data masked. Built from the fetched rows
    without pandas: every asset of a run shows one, and a DataFrame for ten rows cost ~10 ms."""
    select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    result = con.execute(f"SELECT {select} FROM {table} LIMIT {int(limit)}")
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    if not rows:
        return dg.MetadataValue.md("_(no rows)_")
    show_pii = settings.show_pii()
    masked = [[_preview_cell(value, name, show_pii) for value, name in zip(row, names)] for row in rows]
    return dg.MetadataValue.md(tabulate(masked, headers=names, tablefmt="pipe", disable_numparse=True))


def _preview_cell(value, column: str, show_pii: bool) -> str:
    if value is None:
        return ""
    if not show_pii and is_pii_column(column):
        value = mask_value(value, column)
    return str(value)[:PREVIEW_CELL_CHARACTERS]


def null_rates(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> dict[str, float]:
    """Share of missing values per column (0..1)."""
    if not columns:
        return {}
    parts = ", ".join(f'avg(CASE WHEN "{c}" IS NULL THEN 1.0 ELSE 0.0 END)' for c in columns)
    values = con.execute(f"SELECT {parts} FROM {table}").fetchall()[0]
    return {c: round(float(v or 0.0), 4) for c, v in zip(columns, values)}


def table_metadata(con: duckdb.DuckDBPyConnection, table: str, preview_columns: list[str] | None = None) -> dict:
    """The metadata every table-producing asset reports."""
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count(con, table)),
        "table": dg.MetadataValue.text(table),
        "preview": preview(con, table, columns=preview_columns),
    }


def named(name: str, result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """`result` reported as check `name`: an asset step that runs several of its checks must
    name each result."""
    return dg.AssetCheckResult(check_name=name, passed=result.passed, severity=result.severity,
                               description=result.description, metadata=result.metadata)
