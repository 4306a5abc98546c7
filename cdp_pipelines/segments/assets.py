"""Dagster assets of the segments stage: one asset per declared segment, a blocking consent
check on each, and the scheduled exports that channel systems pick up."""

from pathlib import Path

import dagster as dg

from cdp_pipelines.metadata import OWNERS
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.segments.build import MEMBERSHIP_TABLE, build_segment, members_without_consent, prune_undeclared
from cdp_pipelines.segments.config import SEGMENTS_FILE, SegmentConfigError, SegmentDefinition, SegmentsConfig, load_segments
from cdp_pipelines.segments.export import export_all
from cdp_pipelines.segments.validation import CONSENT_TABLE, validate_rule

GROUP = "segments"
EXPORTS_KEY = dg.AssetKey(["segments", "exports"])


def segment_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["segments", name])


def current_config(paths: ProjectPathsResource, fallback: SegmentsConfig) -> SegmentsConfig:
    """The segments file the run points at (the resource may point elsewhere than at load time)."""
    path = paths.config_path(SEGMENTS_FILE)
    return load_segments(path) if path.exists() else fallback


def _upstream(segment: SegmentDefinition) -> list[dg.AssetKey]:
    tables = set(validate_rule(segment.name, segment.rule).tables) | {CONSENT_TABLE}
    return [dg.AssetKey(table.split(".")) for table in sorted(tables)]


def build_segment_asset(declared: SegmentDefinition, loaded: SegmentsConfig) -> dg.AssetsDefinition:
    consent = ", ".join(loaded.consent_channels(declared.channel))

    @dg.asset(
        key=segment_key(declared.name),
        deps=_upstream(declared),
        group_name=GROUP,
        kinds={"duckdb"},
        owners=[declared.owner],
        tags={"channel": declared.channel},
        description=f"{declared.description}\n\nChannel `{declared.channel}`; members hold an opt-in for "
                    f"{consent} in `{CONSENT_TABLE}`. Rows of `{MEMBERSHIP_TABLE}` where segment = "
                    f"'{declared.name}'.\n\nRule:\n```sql\n{declared.rule.strip()}\n```",
    )
    def _segment(context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: ProjectPathsResource):
        config = current_config(paths, loaded)
        segment = config.get(declared.name) if declared.name in config.names else declared
        with warehouse.connect() as con:
            pruned = prune_undeclared(con, config.names, run_id=context.run.run_id)
            result = build_segment(con, segment, config, run_id=context.run.run_id)
        if pruned:
            context.log.info(f"removed {pruned} membership rows of segments no longer declared")
        context.log.info(f"{segment.name}: {result.matched} matched, {result.members} members after consent "
                         f"(+{result.added} / -{result.removed})")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(result.members),
            "members": dg.MetadataValue.int(result.members),
            "members_added": dg.MetadataValue.int(result.added),
            "members_removed": dg.MetadataValue.int(result.removed),
            "rule_matches": dg.MetadataValue.int(result.matched),
            "eligible_after_consent": dg.MetadataValue.int(result.members),
            "excluded_by_consent": dg.MetadataValue.int(result.excluded_by_consent),
            "channel": dg.MetadataValue.text(segment.channel),
            "consent_required": dg.MetadataValue.text(", ".join(result.consent_channels)),
            "rule": dg.MetadataValue.md(f"```sql\n{segment.rule.strip()}\n```"),
            "table": dg.MetadataValue.text(MEMBERSHIP_TABLE),
        })

    return _segment


def build_consent_check(declared: SegmentDefinition, loaded: SegmentsConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=segment_key(declared.name), name="members_consented", blocking=True,
                    description="Every member holds a current opt-in for the segment's channel.")
    def _check(warehouse: WarehouseResource, paths: ProjectPathsResource) -> dg.AssetCheckResult:
        config = current_config(paths, loaded)
        needed = config.consent_channels(declared.channel)
        with warehouse.connect() as con:
            offending = members_without_consent(con, declared.name, needed)
        return dg.AssetCheckResult(
            passed=offending == 0,
            metadata={"members_without_consent": offending, "consent_required": ", ".join(needed)},
            description=None if offending == 0 else
            f"{offending} member(s) of {declared.name} lack an opt-in for {', '.join(needed)}",
        )

    return _check


def build_exports_asset(loaded: SegmentsConfig) -> dg.AssetsDefinition:
    @dg.asset(
        key=EXPORTS_KEY,
        deps=[segment_key(s.name) for s in loaded.segments],
        group_name=GROUP,
        kinds={"duckdb", "csv"},
        owners=OWNERS,
        description="Dated CSV of every segment under the export folder "
                    "(`<export_dir>/<segment>/<segment>_<YYYYMMDD>.csv`), consent re-checked at export.",
    )
    def _exports(context: dg.AssetExecutionContext, warehouse: WarehouseResource, paths: ProjectPathsResource):
        config = current_config(paths, loaded)
        with warehouse.connect() as con:
            results = export_all(con, Path(paths.export_dir), config)
        for result in results:
            context.log.info(f"{result.segment}: {result.rows} rows -> {result.path}")
        return dg.MaterializeResult(metadata={
            "files": dg.MetadataValue.json({r.segment: str(r.path) for r in results}),
            "rows": dg.MetadataValue.json({r.segment: r.rows for r in results}),
            "export_dir": dg.MetadataValue.path(paths.export_dir),
        })

    return _exports


def build_segment_definitions(segments_file: Path) -> dg.Definitions:
    """One asset and one blocking consent check per segment, plus the exports asset."""
    loaded = load_segments(segments_file)
    for segment in loaded.segments:
        validate_rule(segment.name, segment.rule)
    if not loaded.segments:
        return dg.Definitions()
    return dg.Definitions(
        assets=[*(build_segment_asset(s, loaded) for s in loaded.segments), build_exports_asset(loaded)],
        asset_checks=[build_consent_check(s, loaded) for s in loaded.segments],
    )


__all__ = ["EXPORTS_KEY", "SegmentConfigError", "build_segment_definitions", "segment_key"]
