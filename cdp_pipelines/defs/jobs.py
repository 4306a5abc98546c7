"""Jobs over the whole graph."""

import dagster as dg

full_refresh = dg.define_asset_job(
    "full_refresh",
    selection=dg.AssetSelection.all(),
    description="Every stage from ingest to serving, recomputed from the source files.",
)
