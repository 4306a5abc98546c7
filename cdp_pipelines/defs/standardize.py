"""Standardize stage: one standardized table per source plus the identity records union."""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.standardize.assets import build_standardize_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_standardize_definitions(settings.sources_file())
