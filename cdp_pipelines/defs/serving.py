"""Serving stage: identity lookup table and the atomic PostgreSQL publish."""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.serving.assets import build_publish_asset, identity_lookup


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[identity_lookup, build_publish_asset(settings.config_dir())])
