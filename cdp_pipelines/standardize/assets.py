"""Dagster assets of the standardize stage: one standardized table per source, and the union
of their identity attributes (a view) that identity resolution reads.

In an incremental run (``incremental: true``) only the records the ingest step of the same run
logged in quality.record_changes are standardized and merged into the existing tables.
"""


import dagster as dg
import pandas as pd
import pyarrow as pa

from cdp_pipelines import settings
from cdp_pipelines.ingest.assets import current_source, latest_ingest_filter, raw_key, rows_for_validation
from cdp_pipelines.ingest.quality import columns_read, validate_frame
from cdp_pipelines.ingest.sources_config import ADDRESS_JOINER, SourceConfig, load_sources
from cdp_pipelines.metadata import BACKGROUND_STEP_TAGS, OWNERS, named, null_rates, table_metadata
from cdp_pipelines.operations.tracking import RECORD_CHANGES, ensure_tracking_tables
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.sql_text import literal
from cdp_pipelines.standardize.frame import OUTPUT_COLUMNS, standardize_frame

IDENTITY_RECORDS = dg.AssetKey(["standardized", "identity_records"])
META = ("_record_id", "_file", "_row_number")


class StandardizeRunConfig(dg.Config):
    """Run-time choices for standardization."""

    incremental: bool = False
    """Standardize only the records this run's ingest added or changed, and merge them in."""


def _table_exists(con, schema: str, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, name]
    ).fetchall()[0][0])


def _changed_ids(con, run_id: str, source: str) -> str:
    """A subquery of the record ids this run's ingest touched in a source (reused in several
    statements, so the values are inlined as literals)."""
    return (f"SELECT source_record_id FROM {RECORD_CHANGES} "
            f"WHERE run_id = {literal(run_id)} AND source = {literal(source)}")


def merge_into(con, target: str, batch_view: str, key_condition: str) -> None:
    """Replace the target's rows matching ``key_condition`` by the batch (new columns added)."""
    existing = {r[0] for r in con.execute(f"DESCRIBE {target}").fetchall()}
    for column, column_type, *_ in con.execute(f"DESCRIBE {batch_view}").fetchall():
        if column not in existing:
            column_type = "VARCHAR" if column_type == '"NULL"' or column_type == "NULL" else column_type
            con.execute(f'ALTER TABLE {target} ADD COLUMN "{column}" {column_type}')
    con.execute(f"DELETE FROM {target} WHERE {key_condition}")
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {batch_view}")


def standardized_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["standardized", name])


def join_columns(parts: list[pd.Series], index: pd.Index) -> pd.Series:
    """Join several text columns with ", ", skipping blanks (vectorised, no per-row Python)."""
    joined = pd.Series(None, index=index, dtype="object")
    for part in parts:
        part = part.where(part.notna() & (part.astype("string").str.strip() != ""))
        both = joined.notna() & part.notna()
        combined = joined.astype("object") + ADDRESS_JOINER + part.astype("object")
        joined = joined.where(part.isna(), part).where(~both, combined)
    return joined


def mapped_frame(raw: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """Source columns renamed to canonical attributes (several address columns joined)."""
    mapped = pd.DataFrame(index=raw.index)
    for attribute, columns in source.mapping.items():
        if isinstance(columns, list):
            mapped[attribute] = join_columns([raw[c] for c in columns if c in raw], raw.index)
        elif columns in raw:
            mapped[attribute] = raw[columns]
    if source.timestamp and source.timestamp in raw:
        mapped["observed_at"] = raw[source.timestamp]
    return mapped


def standardize_source(raw: pd.DataFrame, source: SourceConfig):
    """The standardized table of one source: canonical columns, then originals as src_*."""
    outcome = standardize_frame(
        mapped_frame(raw, source),
        default_region=source.default_region,
        date_formats=tuple(source.date_formats) or None,
        timestamp_formats=tuple(source.timestamp_parse_formats()) or None,
    )
    table = outcome.frame
    # Raw columns are passed on as their Arrow-backed arrays: converting them to Python objects
    # and back (to_numpy) cost ~2 s of this process's CPU at 1M records, holding the GIL.
    table.insert(0, "source_record_id", raw["_record_id"].array)
    table.insert(0, "source", source.name)
    originals = {f"src_{c}": raw[c].array for c in raw.columns if c not in META}
    table = pd.concat([table, pd.DataFrame(originals, index=table.index)], axis=1)
    return table, outcome


RECONCILE_DESCRIPTION = "Every staged raw row has exactly one standardized row."
QUALITY_DESCRIPTION = "Standardized values look right: E.164 phones, lower-case emails, ISO countries."


def build_standardized_asset(declared: SourceConfig) -> dg.AssetsDefinition:
    """The source's standardized asset; its blocking reconciliation check runs in the same step
    once the table is written (the quality suite is a step of its own: see
    build_standardized_quality_check)."""
    key = standardized_key(declared.name)
    reconcile = reconcile_check_fn(declared)

    @dg.asset(
        key=key,
        check_specs=[dg.AssetCheckSpec("rows_reconcile", asset=key, blocking=True, description=RECONCILE_DESCRIPTION)],
        deps=[raw_key(declared.name)],
        group_name="standardize",
        kinds={"duckdb", "pandas"},
        owners=OWNERS,
        description=f"`{declared.name}` with canonical identity attributes (E.164 phones, canonical "
                    "emails, names with nicknames resolved, dates, postcodes, countries); placeholder "
                    "junk becomes missing and is counted. Original values are kept as `src_*` columns.",
    )
    def _standardized(context: dg.AssetExecutionContext, config: StandardizeRunConfig,
                      warehouse: WarehouseResource, paths: ProjectPathsResource):
        source = current_source(paths, declared.name, declared)
        target = f"standardized.{source.name}"
        with warehouse.connect() as con:
            ensure_tracking_tables(con)
            con.execute("CREATE SCHEMA IF NOT EXISTS standardized")
            incremental = config.incremental and _table_exists(con, "standardized", source.name)
            if incremental:
                changed = _changed_ids(con, context.run.run_id, source.name)
                raw = con.sql(
                    f"SELECT * FROM raw.{source.name} WHERE _record_id IN ({changed})").to_arrow_table().to_pandas()
            else:
                raw = con.sql(f"SELECT * FROM raw.{source.name}").to_arrow_table().to_pandas()
            table, outcome = standardize_source(raw, source)
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            con.register("_standardized", arrow)
            con.execute("BEGIN TRANSACTION")
            if incremental:
                con.execute("CREATE OR REPLACE TEMP TABLE _standardized_batch AS SELECT * FROM _standardized")
                merge_into(con, target, "_standardized_batch", f"source_record_id IN ({changed})")
                con.execute("DROP TABLE _standardized_batch")
            else:
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM _standardized")
            con.execute("COMMIT")
            con.unregister("_standardized")
            present = [c for c in OUTPUT_COLUMNS if table[c].notna().any()]
            metadata = {
                **table_metadata(con, target, preview_columns=["source_record_id", *present[:10]]),
                "mode": "incremental" if incremental else "full",
                "rows_in": len(raw),
                "junk_values_removed": dg.MetadataValue.json(outcome.junk_counts),
                "junk_rates": dg.MetadataValue.json(
                    {c: round(n / len(raw), 4) for c, n in outcome.junk_counts.items()} if len(raw) else {}),
                "invalid_values": dg.MetadataValue.json(outcome.invalid_counts),
                "null_rates": dg.MetadataValue.json(null_rates(con, target, list(OUTPUT_COLUMNS))),
            }
        context.log.info(f"{source.name}: standardized {len(table)} rows ({'incremental' if incremental else 'full'}); "
                         f"junk removed {sum(outcome.junk_counts.values())}")
        return dg.MaterializeResult(metadata=metadata, check_results=[named("rows_reconcile", reconcile(warehouse))])

    return _standardized


def build_standardized_quality_check(declared: SourceConfig) -> dg.AssetChecksDefinition:
    """The warning-level quality suite of a standardized table, as a step of its own at background
    priority. Nothing downstream waits on it, so it runs when a slot is free (in a full run,
    beside identity resolution, which leaves part of the machine idle) instead of lengthening the
    source's standardize step, which identity resolution waits on."""
    quality = quality_check_fn(declared)

    @dg.asset_check(asset=standardized_key(declared.name), name="standardized_quality", blocking=False,
                    description=QUALITY_DESCRIPTION, op_tags=BACKGROUND_STEP_TAGS)
    def _standardized_quality(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return quality(warehouse)

    return _standardized_quality


def _as_text_for_gx(column: str) -> str:
    """Dates and timestamps are validated as ISO text (the suite parses them itself)."""
    return f"CAST({column} AS VARCHAR) AS {column}" if column in ("observed_at", "date_of_birth") else column


def reconcile_check_fn(declared: SourceConfig):
    """The blocking reconciliation of a standardized table with its raw table (run in the
    standardized asset's step): every raw row once, by record id."""

    def _reconcile(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            raw_rows, std_rows, distinct = con.execute(
                f"SELECT (SELECT count(*) FROM raw.{declared.name}), (SELECT count(*) FROM standardized.{declared.name}), "
                f"(SELECT count(DISTINCT source_record_id) FROM standardized.{declared.name})"
            ).fetchall()[0]
        passed = raw_rows == std_rows == distinct
        return dg.AssetCheckResult(
            passed=passed, metadata={"raw_rows": raw_rows, "standardized_rows": std_rows, "distinct_ids": distinct},
            description=None if passed else f"{declared.name}: {raw_rows} raw rows became {std_rows} standardized rows",
        )

    return _reconcile


def quality_check_fn(declared: SourceConfig):
    """The warning-level quality suite of a standardized table, over the rows of the latest ingest
    (run as a step of its own: build_standardized_quality_check)."""
    suite = f"standardized_{declared.kind}"
    present = ["source", "source_record_id", *OUTPUT_COLUMNS]

    def _quality(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            condition, files = latest_ingest_filter(con, declared.name)
            if files == 0:
                return dg.AssetCheckResult(passed=True, description=f"{declared.name}: no new rows to validate",
                                           metadata={"rows_validated": 0})
            # Only the columns the suite reads become Python objects (a 50,000-row sample of every
            # column cost more than validating it).
            read = columns_read(present, suite_name=suite, record_id_column="source_record_id", timestamp_column=None)
            frame, rows = rows_for_validation(
                con,
                f"SELECT {', '.join(_as_text_for_gx(c) for c in read) or '1 AS _row'} FROM standardized.{declared.name} "
                f"WHERE source_record_id IN (SELECT _record_id FROM raw.{declared.name} WHERE {condition})",
            )
        report = validate_frame(frame[read], suite_name=suite, source_name=declared.name,
                                record_id_column="source_record_id", timestamp_column=None, required_columns=[],
                                columns_present=present)
        return dg.AssetCheckResult(
            passed=report.passed_blocking,
            severity=dg.AssetCheckSeverity.WARN,
            description=report.message,
            metadata={"rows_validated": len(frame), "rows_in_scope": rows,
                      **{k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                         for k, v in report.to_metadata(mask=not settings.show_pii()).items()}},
        )

    return _quality


def build_identity_records_asset(sources: list[SourceConfig]) -> dg.AssetsDefinition:
    @dg.asset(
        key=IDENTITY_RECORDS,
        deps=[standardized_key(s.name) for s in sources],
        group_name="standardize",
        kinds={"duckdb"},
        owners=OWNERS,
        description="Every source record's canonical identity attributes, one row per record: "
                    "the input of identity resolution. A view over the standardized tables, so it "
                    "is never a stale copy of them, and a run does not write a million rows twice.",
    )
    def _identity_records(context: dg.AssetExecutionContext, config: StandardizeRunConfig,
                          warehouse: WarehouseResource) -> dg.MaterializeResult:
        columns = ", ".join(("source", "source_record_id", *OUTPUT_COLUMNS))
        union = "\nUNION ALL\n".join(f"SELECT {columns} FROM standardized.{s.name}" for s in sources)
        with warehouse.connect() as con:
            ensure_tracking_tables(con)
            con.execute("BEGIN TRANSACTION")
            if _table_exists(con, "standardized", "identity_records"):  # a table in older warehouses
                con.execute("DROP TABLE standardized.identity_records")
            con.execute(f"CREATE OR REPLACE VIEW standardized.identity_records AS {union}")
            con.execute("COMMIT")
            per_source = con.execute(
                "SELECT source, count(*) FROM standardized.identity_records GROUP BY ALL ORDER BY 1"
            ).fetchall()
            metadata = {**table_metadata(con, "standardized.identity_records", preview_columns=["source", "source_record_id"]),
                        "records_per_source": dg.MetadataValue.json({s: int(n) for s, n in per_source}),
                        "mode": "incremental" if config.incremental else "full"}
            if config.incremental:
                metadata["records_touched"] = sum(
                    con.execute(f"SELECT count(*) FROM ({_changed_ids(con, context.run.run_id, s.name)})").fetchall()[0][0]
                    for s in sources)
        return dg.MaterializeResult(metadata=metadata)

    return _identity_records


def build_standardize_definitions(sources_file) -> dg.Definitions:
    sources = load_sources(sources_file).sources
    return dg.Definitions(
        assets=[*(build_standardized_asset(s) for s in sources), build_identity_records_asset(sources)],
        asset_checks=[build_standardized_quality_check(s) for s in sources])
