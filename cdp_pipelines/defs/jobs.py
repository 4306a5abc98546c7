"""Jobs over the whole graph: a full refresh, and an incremental run that reads only new files.

The incremental job's op names come from the sources file (one ingest and one standardize step
per source), so the jobs are built when the definitions load.
"""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.operations.run_config import incremental_ops_config

full_refresh = dg.define_asset_job(
    "full_refresh",
    selection=dg.AssetSelection.all(),
    description="Every stage from ingest to serving, recomputed from the source files.",
)


@dg.definitions
def defs() -> dg.Definitions:
    incremental = dg.define_asset_job(
        "incremental",
        selection=dg.AssetSelection.all(),
        config={"ops": incremental_ops_config(settings.sources_file())},
        description="Ingest only files not ingested before, standardize and link only the records they "
                    "add or change, then refresh profiles, context, segments and serving.",
    )
    return dg.Definitions(jobs=[full_refresh, incremental])
