"""Typed Dagster resources: the warehouse, the project's paths and the serving store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipelines import settings


_SETTINGS_QUERY = ("SELECT current_setting('threads'), current_setting('memory_limit'), "
                   "current_setting('preserve_insertion_order'), current_setting('disabled_compression_methods')")
_applied: dict[tuple, tuple] = {}
"""What the settings read back as once applied (DuckDB shows '8GB' as '7.4 GiB'), per request."""


def configure_warehouse_connection(con: duckdb.DuckDBPyConnection, *, threads: int = 2, memory_limit: str = "8GB",
                                   compact_text: bool = False) -> None:
    """The settings every warehouse connection runs with (they apply to the process's whole
    DuckDB instance). Without `compact_text`, text is stored without DuckDB's dictionary+FSST
    compression: writing a table costs about 40% less (four alternated 1M-record runs: 82.6 s
    against 88.8 s on average), and the file is about three times as large (2.5 GiB against
    0.75 GiB at 1M records; docs/operations.md).

    The instance usually has them already (another connection of the run set them): they are
    read in one query and set only when they differ, since a SET of memory_limit waits for the
    buffer manager while other steps' queries run (about 5 ms a step)."""
    request = (int(threads), memory_limit, compact_text)
    if _applied.get(request) == con.execute(_SETTINGS_QUERY).fetchone():
        return
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET disabled_compression_methods = '{'' if compact_text else 'dict_fsst'}'")
    _applied[request] = con.execute(_SETTINGS_QUERY).fetchone()


class WarehouseResource(dg.ConfigurableResource):
    """The embedded DuckDB warehouse. One connection per asset; DuckDB does the heavy lifting."""

    path: str
    threads: int = 2
    memory_limit: str = "8GB"
    compact_text: bool = False
    """Compress text with dictionary+FSST: a smaller file for slower writes (see
    configure_warehouse_connection; CDP_WAREHOUSE_COMPACT_TEXT=1)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Before any step of a run: the schemas and tables several steps write, so that steps
        running at once never race to create them (see operations/shared_tables.py)."""
        from cdp_pipelines.operations.shared_tables import create_shared_tables

        with self.connect() as con:
            create_shared_tables(con)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path)
        try:
            configure_warehouse_connection(con, threads=self.threads, memory_limit=self.memory_limit,
                                           compact_text=self.compact_text)
            yield con
        finally:
            con.close()


class ProjectPathsResource(dg.ConfigurableResource):
    """Where the pipeline finds its inputs and configuration, and writes its artifacts."""

    data_dir: str
    sources_file: str
    config_dir: str
    artifacts_dir: str
    export_dir: str
    suppression_file: str | None = None

    def config_path(self, name: str) -> Path:
        return Path(self.config_dir) / name


class ServingResource(dg.ConfigurableResource):
    """The PostgreSQL serving store channel systems read. Unset URL means: do not publish."""

    url: str | None = None


def project_resources(
    root: Path, data_dir: Path, sources_file: Path, config_dir: Path, serving_url: str | None = None
) -> dict[str, dg.ConfigurableResource]:
    """Resources for a self-contained project folder: warehouse, artifacts and exports under `root`."""
    return {
        "warehouse": WarehouseResource(path=str(root / "warehouse.duckdb")),
        "paths": ProjectPathsResource(
            data_dir=str(data_dir), sources_file=str(sources_file), config_dir=str(config_dir),
            artifacts_dir=str(root / "artifacts"), export_dir=str(root / "exports"),
        ),
        "serving": ServingResource(url=serving_url),
    }


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources from the environment (see cdp_pipelines.settings), with project defaults."""
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path()),
                                       compact_text=settings.warehouse_compact_text()),
        "paths": ProjectPathsResource(
            data_dir=str(settings.data_dir()),
            sources_file=str(settings.sources_file()),
            config_dir=str(settings.config_dir()),
            artifacts_dir=str(settings.artifacts_dir()),
            export_dir=str(settings.export_dir()),
            suppression_file=str(settings.suppression_file()),
        ),
        # EnvVar keeps the URL (and any password in it) out of the UI and run config.
        "serving": ServingResource(
            url=dg.EnvVar(settings.ENV_SERVING_URL) if settings.serving_url() else None
        ),
    }
