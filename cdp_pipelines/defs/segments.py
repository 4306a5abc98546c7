"""Segments stage: one asset per segment in config/segments.yaml, consent checks, daily exports."""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.segments.assets import build_segment_definitions
from cdp_pipelines.segments.config import SEGMENTS_FILE

segment_exports = dg.define_asset_job(
    "segment_exports",
    selection=dg.AssetSelection.groups("segments"),
    description="Rebuild every segment from the current marts and consent, then write the dated exports.",
)


@dg.definitions
def defs() -> dg.Definitions:
    segments = build_segment_definitions(settings.config_dir() / SEGMENTS_FILE)
    daily = dg.ScheduleDefinition(
        name="segment_exports_daily", job=segment_exports, cron_schedule="0 6 * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Refresh segments and write the day's export files at 06:00.",
    )
    return dg.Definitions.merge(segments, dg.Definitions(jobs=[segment_exports], schedules=[daily]))
