"""Operations: a daily schedule and an incoming-files sensor, both starting the incremental job.

Both are stopped by default; start them in the UI (or with `dagster schedule start` /
`dagster sensor start`) and keep `dagster-daemon` running. See docs/operations.md.
"""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.ingest.errors import SourcesConfigError
from cdp_pipelines.operations import incoming
from cdp_pipelines.operations.run_config import ENV_INCREMENTAL_CRON, incremental_cron


@dg.sensor(
    name="incoming_files_sensor",
    job_name="incremental",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the data folder for new or modified source files (by size and modification "
                "time, never opening the warehouse) and starts an incremental run for them.",
)
def incoming_files_sensor(context: dg.SensorEvaluationContext):
    try:
        changed, run_key, cursor = incoming.evaluate(context.cursor, settings.sources_file(), settings.data_dir())
    except (SourcesConfigError, OSError) as error:
        return dg.SkipReason(f"cannot read the sources file or data folder: {error}")
    if not changed:
        return dg.SkipReason(f"no new or modified files in {settings.data_dir()}")
    context.update_cursor(cursor)
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    context.log.info(f"{len(changed)} new or modified file(s): {shown}")
    return dg.RunRequest(run_key=run_key, tags={"cdp/trigger": "incoming_files", "cdp/files": str(len(changed))})


@dg.definitions
def defs() -> dg.Definitions:
    cron = incremental_cron()
    try:
        schedule = dg.ScheduleDefinition(
            name="incremental_daily", job_name="incremental", cron_schedule=cron,
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description=f"Incremental run on the cron schedule {cron!r} (set {ENV_INCREMENTAL_CRON} to change it).",
        )
    except dg.DagsterInvalidDefinitionError as error:
        raise ValueError(f"{ENV_INCREMENTAL_CRON}={cron!r} is not a valid cron expression") from error
    return dg.Definitions(schedules=[schedule], sensors=[incoming_files_sensor])
