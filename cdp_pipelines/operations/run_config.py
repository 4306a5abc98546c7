"""Run configuration of the incremental job: `incremental: true` on every ingest and standardize
step, on identity resolution, and on the profile and context steps that refresh only the
customers a run changed."""

from __future__ import annotations

import os
from pathlib import Path

from cdp_pipelines.ingest.sources_config import load_sources

ENV_INCREMENTAL_CRON = "CDP_INCREMENTAL_CRON"
DEFAULT_INCREMENTAL_CRON = "0 2 * * *"


def incremental_cron() -> str:
    """The incremental schedule's cron expression (env CDP_INCREMENTAL_CRON, default 02:00 daily)."""
    return os.environ.get(ENV_INCREMENTAL_CRON, "").strip() or DEFAULT_INCREMENTAL_CRON


def identity_supports_incremental() -> bool:
    from cdp_pipelines.identity.assets import IdentityRunConfig

    return "incremental" in IdentityRunConfig.model_fields


def incremental_ops_config(sources_file: Path) -> dict:
    """The `ops` section setting incremental mode on every step that has one."""
    from cdp_pipelines import settings
    from cdp_pipelines.context.assets import TEXT_SENTIMENT, model_key
    from cdp_pipelines.context.sql_models import discover_models
    from cdp_pipelines.ingest.assets import raw_key
    from cdp_pipelines.profiles.assets import ACTIVE_XREF, GOLDEN, IDENTIFIERS
    from cdp_pipelines.serving.assets import IDENTITY_LOOKUP
    from cdp_pipelines.standardize.assets import IDENTITY_RECORDS, standardized_key

    names = load_sources(sources_file).names()
    keys = [*(raw_key(n) for n in names), *(standardized_key(n) for n in names), IDENTITY_RECORDS,
            ACTIVE_XREF, GOLDEN, IDENTIFIERS, TEXT_SENTIMENT, IDENTITY_LOOKUP,
            *(model_key(m) for m in discover_models(settings.SQL_MODELS_DIR))]
    ops = {key.to_python_identifier(): {"config": {"incremental": True}} for key in keys}
    ops["consent"] = {"config": {"incremental": True}}
    if identity_supports_incremental():
        ops["identity_graph"] = {"config": {"incremental": True}}
    return ops
