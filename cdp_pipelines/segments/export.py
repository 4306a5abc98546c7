"""Segment exports: files channel systems pick up, written from the built membership.

Consent is checked again at export time (membership joined with the current opt-ins), so a
customer who opted out after the last build is still left out.

Ads exports contain only hashed identifiers, as ad platforms' customer-list uploads expect:
- `email_sha256`: SHA-256 (lower-case hex) of the email trimmed and lower-cased;
- `phone_sha256`: SHA-256 of the E.164 phone with every non-digit removed, i.e. without the '+'
  (`+447700900123` -> `447700900123`).
A missing or blank value gives an empty hash; customers with neither are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from cdp_pipelines import settings
from cdp_pipelines.segments.build import MEMBERSHIP_TABLE, consented_sql, latest_builds, stale_build_problem
from cdp_pipelines.segments.config import (
    SEGMENTS_FILE,
    SegmentConfigError,
    SegmentDefinition,
    SegmentsConfig,
    load_segments,
)
from cdp_pipelines.segments.validation import BASE_TABLE, warehouse_schema
from cdp_pipelines.sql_text import literal

EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet")

ADS_EXPRESSIONS = {
    "email_sha256": "CASE WHEN nullif(trim(c.email), '') IS NOT NULL THEN sha256(lower(trim(c.email))) END",
    "phone_sha256": "CASE WHEN nullif(regexp_replace(c.phone, '[^0-9]', '', 'g'), '') IS NOT NULL "
                    "THEN sha256(regexp_replace(c.phone, '[^0-9]', '', 'g')) END",
}


@dataclass(frozen=True)
class ExportResult:
    segment: str
    path: Path
    rows: int
    columns: tuple[str, ...]


def _column_expressions(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition) -> list[str]:
    available = warehouse_schema(con).get(BASE_TABLE, {})
    needed = ("email", "phone") if segment.channel == "ads" else segment.columns
    missing = [c for c in needed if c not in available]
    if missing:
        raise SegmentConfigError(f"segment {segment.name!r}: export needs column(s) {missing}, which "
                                 f"{BASE_TABLE} does not have; set export_columns to existing columns")
    if segment.channel == "ads":
        return [f"{ADS_EXPRESSIONS[c]} AS {c}" for c in segment.columns]
    return [f'c."{c}"' for c in segment.columns]


def export_sql(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition, config: SegmentsConfig) -> str:
    """The rows to export: members still consented today, with the segment's columns."""
    built = latest_builds(con).get(segment.name)
    if built is None:
        raise SegmentConfigError(f"segment {segment.name!r} has not been built yet; run `cdp run` or "
                                 f"materialize the asset segments/{segment.name}")
    stale = stale_build_problem(segment, built)
    if stale:
        raise SegmentConfigError(f"segment {segment.name!r}: {stale}")
    columns = _column_expressions(con, segment)
    members = f"SELECT customer_id FROM {MEMBERSHIP_TABLE} WHERE segment = {literal(segment.name)}"
    consented = consented_sql(config.consent_channels(segment.channel), among=members)
    query = f"""
        SELECT {', '.join(columns)}
        FROM {MEMBERSHIP_TABLE} m
        JOIN {BASE_TABLE} c ON CAST(c.customer_id AS VARCHAR) = m.customer_id
        WHERE m.segment = {literal(segment.name)}
          AND m.customer_id IN (SELECT customer_id FROM ({consented}) WHERE customer_id IS NOT NULL)
        ORDER BY m.customer_id
    """
    if segment.channel == "ads":
        filled = " OR ".join(f"{c} IS NOT NULL" for c in segment.columns)
        query = f"SELECT * FROM ({query}) WHERE {filled}"
    return query


def export_segment(con: duckdb.DuckDBPyConnection, segment: SegmentDefinition, config: SegmentsConfig,
                   out: Path, fmt: str = "csv") -> ExportResult:
    """Write one segment to `out`; the file appears complete or not at all.

    The rows go to `<out>.partial` first and are renamed into place, so a reader never sees half
    a file; whatever fails, the partial file is removed."""
    if fmt not in EXPORT_FORMATS:
        raise SegmentConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise SegmentConfigError(f"segment {segment.name!r}: {out} is a folder; give the file to write, "
                                 f"e.g. {out / f'{segment.name}.{fmt}'}")
    query = export_sql(con, segment, config)
    partial = out.with_name(out.name + ".partial")
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = int(con.execute(f"COPY ({query}) TO {literal(partial)} ({options})").fetchone()[0])  # rows written
        os.replace(partial, out)
    except OSError as error:
        raise SegmentConfigError(f"segment {segment.name!r}: cannot write {out}: "
                                 f"{error.strerror or error}") from None
    finally:
        if not partial.is_dir():
            partial.unlink(missing_ok=True)
    return ExportResult(segment=segment.name, path=out, rows=rows, columns=tuple(segment.columns))


def scheduled_path(export_dir: Path, segment: SegmentDefinition, day: date) -> Path:
    """`<export_dir>/<folder>/<segment>_<YYYYMMDD>.csv`; the folder defaults to the segment name."""
    return Path(export_dir) / segment.folder / f"{segment.name}_{day:%Y%m%d}.csv"


def export_all(con: duckdb.DuckDBPyConnection, export_dir: Path | None = None, config: SegmentsConfig | None = None,
               day: date | None = None) -> list[ExportResult]:
    """Write every declared segment as a dated CSV under the export folder (settings.export_dir())."""
    config = config or load_segments(settings.config_dir() / SEGMENTS_FILE)
    export_dir = Path(export_dir) if export_dir is not None else settings.export_dir()
    day = day or datetime.now(timezone.utc).date()
    return [export_segment(con, s, config, scheduled_path(export_dir, s, day), "csv") for s in config.segments]
