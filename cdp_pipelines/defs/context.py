"""Context stage: one asset per SQL model under dbt_like_sql/, plus VADER text sentiment."""

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.context.assets import build_context_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_context_definitions(settings.SQL_MODELS_DIR)
