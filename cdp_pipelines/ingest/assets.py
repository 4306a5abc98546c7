"""Dagster assets of the ingest stage: one asset per declared source, built from the sources
file, each guarded by a blocking contract check and a blocking reconciliation check."""


from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipelines.ingest.errors import SourceContractError, SourcesConfigError
from cdp_pipelines.ingest.quality import validate_frame
from cdp_pipelines.ingest.readers import QUARANTINE_SCHEMA, read_source
from cdp_pipelines.ingest.sources_config import SourceConfig, load_sources
from cdp_pipelines.metadata import OWNERS, null_rates, table_metadata
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource

RUNS_TABLE = "quality.ingest_runs"
QUARANTINE_TABLE = "quality.quarantine"


def raw_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", name])


def ensure_quality_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
            stage VARCHAR, source VARCHAR, record_id VARCHAR, file VARCHAR, row_number BIGINT,
            raw_content VARCHAR, reason VARCHAR, run_id VARCHAR, quarantined_at TIMESTAMP)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
            run_id VARCHAR, source VARCHAR, ingested_at TIMESTAMP, files VARCHAR, rows_read BIGINT,
            rows_staged BIGINT, rows_quarantined BIGINT, extra_columns VARCHAR, contract_error VARCHAR)"""
    )


def current_source(paths: ProjectPathsResource, name: str, fallback: SourceConfig) -> SourceConfig:
    """The source as declared in the run's sources file (the resource may point elsewhere)."""
    try:
        return load_sources(Path(paths.sources_file)).get(name)
    except (SourcesConfigError, KeyError, FileNotFoundError):
        return fallback


def _record_run(con, run_id: str, source: str, **values) -> None:
    con.execute(f"DELETE FROM {RUNS_TABLE} WHERE run_id = ? AND source = ?", [run_id, source])
    con.execute(
        f"INSERT INTO {RUNS_TABLE} VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?)",
        [run_id, source, values.get("files", ""), values.get("rows_read", 0), values.get("rows_staged", 0),
         values.get("rows_quarantined", 0), values.get("extra_columns", ""), values.get("contract_error")],
    )


def build_raw_asset(declared: SourceConfig) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_key(declared.name),
        group_name="ingest",
        kinds={"duckdb", declared.format},
        owners=OWNERS,
        description=f"{declared.description or declared.name}\n\nEvery row of the source file(s) "
                    f"`{declared.path}` as text, with its file and row number. Unreadable rows go to "
                    f"`{QUARANTINE_TABLE}` with their reason.",
    )
    def _raw(context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: ProjectPathsResource):
        source = current_source(paths, declared.name, declared)
        table = f"raw.{source.name}"
        with warehouse.connect() as con:
            ensure_quality_tables(con)
            try:
                result = read_source(source, Path(paths.data_dir))
            except SourceContractError as error:
                # A broken contract is reported by the blocking check, which stops everything
                # downstream; the previous raw table is left as it was.
                _record_run(con, context.run.run_id, source.name, contract_error=str(error))
                context.log.error(str(error))
                return dg.MaterializeResult(metadata={"contract_error": dg.MetadataValue.text(str(error))})
            con.register("_staged", result.table)
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _staged")
            con.unregister("_staged")
            con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ?", [source.name])
            con.register("_quarantine", result.quarantine.cast(QUARANTINE_SCHEMA))
            con.execute(
                f"INSERT INTO {QUARANTINE_TABLE} SELECT 'ingest', source, record_id, file, row_number, "
                f"raw_content, reason, ?, now() FROM _quarantine",
                [context.run.run_id],
            )
            con.unregister("_quarantine")
            _record_run(
                con, context.run.run_id, source.name, files=", ".join(p.name for p in result.files),
                rows_read=result.rows_read, rows_staged=result.rows_staged,
                rows_quarantined=result.rows_quarantined, extra_columns=", ".join(result.extra_columns),
            )
            reasons = con.execute(
                f"SELECT reason, count(*) FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ? "
                f"GROUP BY ALL ORDER BY 2 DESC LIMIT 10",
                [source.name],
            ).fetchall()
            columns = [c for c in result.table.column_names if not c.startswith("_")]
            metadata = {
                **table_metadata(con, table),
                "rows_read": result.rows_read,
                "rows_staged": result.rows_staged,
                "rows_quarantined": result.rows_quarantined,
                "quarantine_reasons": dg.MetadataValue.json({r: int(n) for r, n in reasons}),
                "files": dg.MetadataValue.json([str(p) for p in result.files]),
                "extra_columns": dg.MetadataValue.json(result.extra_columns),
                "null_rates": dg.MetadataValue.json(null_rates(con, table, columns)),
            }
        context.log.info(
            f"{source.name}: read {result.rows_read}, staged {result.rows_staged}, quarantined {result.rows_quarantined}"
        )
        return dg.MaterializeResult(metadata=metadata)

    return _raw


def _latest_run(con, source: str):
    return con.execute(
        f"SELECT rows_read, rows_staged, rows_quarantined, contract_error FROM {RUNS_TABLE} "
        f"WHERE source = ? ORDER BY ingested_at DESC LIMIT 1",
        [source],
    ).fetchall()


def build_contract_check(declared: SourceConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(declared.name), name="source_contract", blocking=True,
        description="The source honours its contract: files present and readable, required columns, "
                    "unique ids, parseable timestamps, rows present (Great Expectations suite).",
    )
    def _contract(warehouse: WarehouseResource, paths: ProjectPathsResource) -> dg.AssetCheckResult:
        source = current_source(paths, declared.name, declared)
        with warehouse.connect() as con:
            ensure_quality_tables(con)
            latest = _latest_run(con, source.name)
            if not latest:
                return dg.AssetCheckResult(passed=False, description=f"{source.name}: never ingested")
            if latest[0][3]:
                return dg.AssetCheckResult(passed=False, description=latest[0][3],
                                           metadata={"contract_error": dg.MetadataValue.text(latest[0][3])})
            frame = con.execute(f"SELECT * FROM raw.{source.name}").df()
        mapping = {attr: (cols[0] if isinstance(cols, list) else cols) for attr, cols in source.mapping.items()}
        report = validate_frame(
            frame, suite_name=source.kind, source_name=source.name, record_id_column="_record_id",
            timestamp_column=source.timestamp, required_columns=source.required_column_names(), column_map=mapping,
        )
        return dg.AssetCheckResult(
            passed=report.passed_blocking,
            severity=dg.AssetCheckSeverity.ERROR,
            description=report.message,
            metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                      for k, v in report.to_metadata().items()},
        )

    return _contract


def build_reconcile_check(declared: SourceConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(declared.name), name="rows_reconcile", blocking=True,
        description="Nothing is lost: rows read = rows staged + rows quarantined.",
    )
    def _reconcile(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            ensure_quality_tables(con)
            latest = _latest_run(con, declared.name)
            if not latest or latest[0][3]:
                return dg.AssetCheckResult(passed=False, description=f"{declared.name}: no successful ingest to reconcile")
            rows_read = latest[0][0]
            staged = con.execute(f"SELECT count(*) FROM raw.{declared.name}").fetchall()[0][0]
            quarantined = con.execute(
                f"SELECT count(*) FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ?", [declared.name]
            ).fetchall()[0][0]
        passed = rows_read == staged + quarantined
        return dg.AssetCheckResult(
            passed=passed,
            metadata={"rows_read": rows_read, "rows_staged": staged, "rows_quarantined": quarantined},
            description=None if passed else
            f"{declared.name}: read {rows_read} rows but {staged} staged + {quarantined} quarantined",
        )

    return _reconcile


def build_ingest_definitions(sources_file: Path) -> dg.Definitions:
    sources = load_sources(sources_file)
    return dg.Definitions(
        assets=[build_raw_asset(s) for s in sources.sources],
        asset_checks=[c for s in sources.sources for c in (build_contract_check(s), build_reconcile_check(s))],
    )
