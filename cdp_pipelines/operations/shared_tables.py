"""Schemas and tables that several steps write, created once before a run's steps start.

Why: steps run concurrently (operations/threaded_executor.py), and DuckDB refuses one of two
transactions that create the same schema or table at the same moment ("Catalog write-write
conflict"). Once these exist, each step's own `IF NOT EXISTS` is a no-op and concurrent steps
only append or delete their own rows of the shared tables, which DuckDB allows.
"""

from __future__ import annotations

import duckdb

STAGE_SCHEMAS = ("raw", "quality", "standardized", "identity", "profiles", "segments", "serving")


def create_shared_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Every stage schema, the context layers and the tables more than one step writes."""
    from cdp_pipelines.context.sql_models import LAYERS
    from cdp_pipelines.ingest.assets import ensure_quality_tables
    from cdp_pipelines.operations import scoped_refresh
    from cdp_pipelines.operations.tracking import ensure_tracking_tables
    from cdp_pipelines.segments.build import ensure_tables as ensure_segment_tables

    for schema in (*STAGE_SCHEMAS, *LAYERS, scoped_refresh.WORK_SCHEMA):
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    ensure_quality_tables(con)
    ensure_tracking_tables(con)
    scoped_refresh.ensure_tables(con)
    ensure_segment_tables(con)
