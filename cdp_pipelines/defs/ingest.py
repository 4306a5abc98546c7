"""Ingest stage: one asset per source declared in the sources file."""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.ingest.assets import build_ingest_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_ingest_definitions(settings.sources_file())
