"""Dagster assets of the ingest stage: one asset per declared source, built from the sources
file, each guarded by a blocking contract check and a blocking reconciliation check.

A full refresh rebuilds raw.<source> from every file. An incremental run (``incremental: true``
in the step's config) reads only files not ingested before and merges their rows into the
table (see cdp_pipelines.operations), logging the record ids it touched for the next stages.
"""


from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipelines import settings
from cdp_pipelines.ingest.errors import SourceContractError, SourcesConfigError
from cdp_pipelines.ingest.quality import (
    QuarantineCounts,
    columns_read,
    start_importing_great_expectations,
    validate_frame,
)
from cdp_pipelines.ingest.quality_suites import max_rows_validated, rows_to_validate_sql
from cdp_pipelines.ingest.readers import QUARANTINE_SCHEMA, read_source
from cdp_pipelines.ingest.sources_config import SourceConfig, load_sources
from cdp_pipelines.metadata import OWNERS, named, null_rates, table_metadata
from cdp_pipelines.operations.tracking import (
    ensure_tracking_tables,
    new_or_changed_filter,
    record_ingested_files,
)
from cdp_pipelines.operations.upsert import upsert_raw
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.sql_text import literal, quote_identifier
from cdp_pipelines.standardize.frame import start_workers_for

RUNS_TABLE = "quality.ingest_runs"
QUARANTINE_TABLE = "quality.quarantine"


class IngestRunConfig(dg.Config):
    """Run-time choices for ingesting a source."""

    incremental: bool = False
    """Read only files not ingested before and merge their rows into the raw table."""


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
    # Columns added for incremental runs; older warehouses gain them on first use.
    con.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS mode VARCHAR")
    con.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS previous_rows_superseded BIGINT")
    ensure_tracking_tables(con)


def current_source(paths: ProjectPathsResource, name: str, fallback: SourceConfig) -> SourceConfig:
    """The source as declared in the run's sources file (the resource may point elsewhere)."""
    try:
        return load_sources(Path(paths.sources_file)).get(name)
    except (SourcesConfigError, KeyError, FileNotFoundError):
        return fallback


def _record_run(con, run_id: str, source: str, **values) -> None:
    con.execute(f"DELETE FROM {RUNS_TABLE} WHERE run_id = ? AND source = ?", [run_id, source])
    con.execute(
        f"INSERT INTO {RUNS_TABLE} (run_id, source, ingested_at, files, rows_read, rows_staged, rows_quarantined, "
        f"extra_columns, contract_error, mode, previous_rows_superseded) VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, source, values.get("files", ""), values.get("rows_read", 0), values.get("rows_staged", 0),
         values.get("rows_quarantined", 0), values.get("extra_columns", ""), values.get("contract_error"),
         values.get("mode", "full"), values.get("previous_rows_superseded", 0)],
    )


def _store_full(con, table: str, result, source: str, run_id: str) -> dict:
    """Full refresh: the raw table and the source's ingest quarantine are rebuilt."""
    con.register("_staged", result.table)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _staged")
    con.unregister("_staged")
    con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ?", [source])
    _insert_quarantine(con, result, run_id)
    return {"rows_staged": result.rows_staged, "rows_quarantined": result.rows_quarantined}


def _store_incremental(con, table: str, result, source: str, run_id: str, labels: list[str]) -> dict:
    """Incremental: merge the new files' rows into the raw table (see operations.upsert)."""
    if labels:
        # A changed file read again replaces what its previous version set aside.
        con.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ? AND list_contains(?, file)",
            [source, labels],
        )
    _insert_quarantine(con, result, run_id)
    counts = upsert_raw(con, table, result.table, source, run_id, labels, QUARANTINE_TABLE)
    return {
        "rows_staged": counts.staged,
        "rows_quarantined": result.rows_quarantined + counts.batch_rows_superseded,
        "previous_rows_superseded": counts.previous_rows_superseded,
        "records_new": counts.new, "records_changed": counts.changed, "records_unchanged": counts.unchanged,
    }


def _insert_quarantine(con, result, run_id: str) -> None:
    con.register("_quarantine", result.quarantine.cast(QUARANTINE_SCHEMA))
    con.execute(
        f"INSERT INTO {QUARANTINE_TABLE} SELECT 'ingest', source, record_id, file, row_number, "
        f"raw_content, reason, ?, now() FROM _quarantine",
        [run_id],
    )
    con.unregister("_quarantine")


CONTRACT_DESCRIPTION = ("The source honours its contract: files present and readable, required columns, "
                        "unique ids, parseable timestamps, rows present (Great Expectations suite), and "
                        "no more of the rows read quarantined than max_quarantined_row_ratio in "
                        "config/quality.yaml (a warning above `warning`, a failure above `blocking`).")
RECONCILE_DESCRIPTION = ("Nothing is lost: rows read this run = rows staged + rows quarantined this run, and "
                         "the raw table holds each record id once (after a full refresh: every row of every "
                         "file is in the raw table or the quarantine).")


def build_raw_asset(declared: SourceConfig) -> dg.AssetsDefinition:
    """The source's raw asset. Its blocking checks (contract, reconciliation) run in the same
    step once the rows are stored: one step instead of three."""
    key = raw_key(declared.name)
    contract, reconcile = contract_check_fn(declared), reconcile_check_fn(declared)

    def with_checks(metadata: dict, warehouse: WarehouseResource, paths: ProjectPathsResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=metadata, check_results=[
            named("source_contract", contract(warehouse, paths)), named("rows_reconcile", reconcile(warehouse))])

    @dg.asset(
        key=key,
        check_specs=[dg.AssetCheckSpec("source_contract", asset=key, blocking=True, description=CONTRACT_DESCRIPTION),
                     dg.AssetCheckSpec("rows_reconcile", asset=key, blocking=True, description=RECONCILE_DESCRIPTION)],
        group_name="ingest",
        kinds={"duckdb", declared.format},
        owners=OWNERS,
        description=f"{declared.description or declared.name}\n\nEvery row of the source file(s) "
                    f"`{declared.path}` as text, with its file and row number. Unreadable rows go to "
                    f"`{QUARANTINE_TABLE}` with their reason.",
    )
    def _raw(context: dg.AssetExecutionContext, config: IngestRunConfig, warehouse: WarehouseResource,
             paths: ProjectPathsResource):
        start_importing_great_expectations()  # overlaps reading the files; the check needs it
        source = current_source(paths, declared.name, declared)
        table = f"raw.{source.name}"
        run_id = context.run.run_id
        data_dir = Path(paths.data_dir)
        mode = "incremental" if config.incremental else "full"
        with warehouse.connect() as con:
            ensure_quality_tables(con)
            file_filter = new_or_changed_filter(con, source.name, data_dir) if config.incremental else None
            try:
                result = read_source(source, data_dir, file_filter=file_filter)
            except SourceContractError as error:
                # A broken contract is reported by the blocking check, which stops everything
                # downstream; the previous raw table is left as it was.
                _record_run(con, run_id, source.name, contract_error=str(error), mode=mode)
                context.log.error(str(error))
                return with_checks({"contract_error": dg.MetadataValue.text(str(error))}, warehouse, paths)
            labels = list(result.rows_per_file)
            con.execute("BEGIN TRANSACTION")
            if config.incremental:
                counts = _store_incremental(con, table, result, source.name, run_id, labels)
            else:
                counts = _store_full(con, table, result, source.name, run_id)
            record_ingested_files(con, source.name, result.files, data_dir, result.rows_per_file, run_id,
                                  replace_all=not config.incremental)
            _record_run(
                con, run_id, source.name, files=", ".join(labels), rows_read=result.rows_read,
                rows_staged=counts["rows_staged"], rows_quarantined=counts["rows_quarantined"],
                extra_columns=", ".join(result.extra_columns), mode=mode,
                previous_rows_superseded=counts.get("previous_rows_superseded", 0),
            )
            con.execute("COMMIT")
            start_workers_for(counts["rows_staged"])  # the standardize step will need them
            reasons = con.execute(
                f"SELECT reason, count(*) FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' AND source = ? "
                f"GROUP BY ALL ORDER BY 2 DESC LIMIT 10",
                [source.name],
            ).fetchall()
            columns = [c for c in result.table.column_names if not c.startswith("_")]
            metadata = {
                **table_metadata(con, table),
                "mode": mode,
                "rows_read": result.rows_read,
                **{name: value for name, value in counts.items()},
                "rows_superseded_by_later_files": result.rows_superseded,
                "quarantine_reasons": dg.MetadataValue.json({r: int(n) for r, n in reasons}),
                "files": dg.MetadataValue.json([str(p) for p in result.files]),
                "extra_columns": dg.MetadataValue.json(result.extra_columns),
                "null_rates": dg.MetadataValue.json(null_rates(con, table, columns)),
            }
        context.log.info(
            f"{source.name} ({mode}): read {result.rows_read} from {len(labels)} file(s), "
            f"staged {counts['rows_staged']}, quarantined {counts['rows_quarantined']}"
        )
        return with_checks(metadata, warehouse, paths)

    return _raw


def _latest_run(con, source: str):
    return con.execute(
        f"SELECT rows_read, rows_staged, rows_quarantined, contract_error, run_id, coalesce(mode, 'full'), "
        f"coalesce(previous_rows_superseded, 0) FROM {RUNS_TABLE} "
        f"WHERE source = ? ORDER BY ingested_at DESC LIMIT 1",
        [source],
    ).fetchall()


# A quarantine reason without the row's details (quoted values, row and byte numbers, a parser's
# message), so that reasons of one kind count together, e.g. "unparseable or out-of-range
# timestamp '…' in column ts".
REASON_KIND_SQL = (
    r"""regexp_replace(regexp_replace(regexp_replace(reason, '''[^'']*''|"[^"]*"', '''…''', 'g'), """
    r"""': .*$', ''), '\b(row|byte) [0-9]+', '\1 N', 'g')"""
)


def quarantine_counts(con: duckdb.DuckDBPyConnection, source: str, run_id: str, rows_read: int) -> QuarantineCounts:
    """The rows a run of the source quarantined as unreadable, by kind of reason. Rows superseded
    by a later file's row ("superseded by <file> row N") are updates, not problems."""
    reasons = con.execute(
        f"SELECT {REASON_KIND_SQL} AS kind, count(*) FROM {QUARANTINE_TABLE} WHERE stage = 'ingest' "
        f"AND source = ? AND run_id = ? AND NOT starts_with(reason, 'superseded by ') GROUP BY kind ORDER BY 2 DESC, 1",
        [source, run_id],
    ).fetchall()
    return QuarantineCounts(rows_read=int(rows_read or 0), rows_quarantined=sum(int(n) for _, n in reasons),
                            reasons={kind: int(n) for kind, n in reasons})


def latest_ingest_filter(con: duckdb.DuckDBPyConnection, source: str) -> tuple[str, int]:
    """SQL condition on a raw table's `_file` selecting the rows the source's latest run read,
    and how many files that run read. After a full refresh that is every row; after an
    incremental run only the new files' rows, so checks do not re-validate unchanged data."""
    latest = con.execute(
        f"SELECT run_id FROM {RUNS_TABLE} WHERE source = ? ORDER BY ingested_at DESC LIMIT 1", [source]
    ).fetchall()
    run_id = latest[0][0] if latest else ""
    files = con.execute(
        "SELECT count(*) FROM quality.ingested_files WHERE source = ? AND run_id = ?", [source, run_id]
    ).fetchall()[0][0]
    return (
        f"_file IN (SELECT file FROM quality.ingested_files WHERE source = {literal(source)} "
        f"AND run_id = {literal(run_id)})",
        files,
    )


def rows_for_validation(con: duckdb.DuckDBPyConnection, select: str):
    """The rows of `select` for Great Expectations (a sample past max_rows_validated), and how many there are."""
    rows = con.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0]
    limit = max_rows_validated()
    sql = rows_to_validate_sql(select, limit) if rows > limit else select
    return con.execute(sql).df(), rows


def contract_check_fn(declared: SourceConfig):
    """The source-contract check of the latest ingest of the source (run in the raw asset's step)."""
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
            condition, files = latest_ingest_filter(con, source.name)
            if files == 0:
                return dg.AssetCheckResult(passed=True, description=f"{source.name}: no new files to validate",
                                           metadata={"rows_validated": 0})
            mapping = {attr: (cols[0] if isinstance(cols, list) else cols) for attr, cols in source.mapping.items()}
            present = [row[0] for row in con.execute(f"DESCRIBE raw.{source.name}").fetchall()]
            # Only the columns the suite reads are fetched: turning the others into Python objects
            # for a 50,000-row sample cost as much as validating it.
            read = columns_read(present, suite_name=source.kind, record_id_column="_record_id",
                                timestamp_column=source.timestamp, column_map=mapping)
            frame, rows = rows_for_validation(
                con, f"SELECT {', '.join(quote_identifier(c) for c in read) or '1 AS _row'} "
                     f"FROM raw.{source.name} WHERE {condition}")
            quarantined = quarantine_counts(con, source.name, run_id=latest[0][4], rows_read=latest[0][0])
        report = validate_frame(
            frame[read], suite_name=source.kind, source_name=source.name, record_id_column="_record_id",
            timestamp_column=source.timestamp, required_columns=source.required_column_names(), column_map=mapping,
            columns_present=present, quarantine=quarantined,
        )
        return dg.AssetCheckResult(
            # Blocking failures stop downstream; too many quarantined rows is a warning to the run.
            passed=report.passed_blocking and not report.quarantine_warning,
            severity=dg.AssetCheckSeverity.ERROR if not report.passed_blocking else dg.AssetCheckSeverity.WARN,
            description=report.message,
            metadata={"rows_validated": len(frame), "rows_in_scope": rows, "files_validated": files,
                      **{k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                         for k, v in report.to_metadata(mask=not settings.show_pii()).items()}},
        )

    return _contract


def reconcile_check_fn(declared: SourceConfig):
    """The row reconciliation of the latest ingest of the source (run in the raw asset's step)."""
    def _reconcile(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        name = declared.name
        with warehouse.connect() as con:
            ensure_quality_tables(con)
            latest = _latest_run(con, name)
            if not latest or latest[0][3]:
                return dg.AssetCheckResult(passed=False, description=f"{name}: no successful ingest to reconcile")
            rows_read, staged_run, quarantined_run, _, run_id, mode, previous_superseded = latest[0]
            raw_rows, distinct_ids = con.execute(
                f"SELECT count(*), count(DISTINCT _record_id) FROM raw.{name}").fetchall()[0]
            quarantined_total, quarantined_now = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE run_id = ?) FROM {QUARANTINE_TABLE} "
                f"WHERE stage = 'ingest' AND source = ?", [run_id, name]
            ).fetchall()[0]
        problems = []
        if rows_read != staged_run + quarantined_run:
            problems.append(f"read {rows_read} rows this run but staged {staged_run} + quarantined {quarantined_run}")
        if quarantined_now != quarantined_run + previous_superseded:
            problems.append(f"the quarantine holds {quarantined_now} rows of this run, expected "
                            f"{quarantined_run} + {previous_superseded} superseded earlier rows")
        if raw_rows != distinct_ids:
            problems.append(f"raw.{name} has {raw_rows} rows but {distinct_ids} distinct record ids")
        if mode == "full" and rows_read != raw_rows + quarantined_total:
            problems.append(f"read {rows_read} rows but {raw_rows} staged + {quarantined_total} quarantined")
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"mode": mode, "rows_read": rows_read, "rows_staged": staged_run,
                      "rows_quarantined": quarantined_run, "previous_rows_superseded": previous_superseded,
                      "raw_rows": raw_rows, "distinct_record_ids": distinct_ids},
            description=f"{name}: " + "; ".join(problems) if problems else None,
        )

    return _reconcile


def build_ingest_definitions(sources_file: Path) -> dg.Definitions:
    sources = load_sources(sources_file)
    return dg.Definitions(assets=[build_raw_asset(s) for s in sources.sources])
