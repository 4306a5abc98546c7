"""A source that breaks its contract fails the blocking check, and nothing downstream runs on it."""

import shutil

import dagster as dg

from cdp_pipelines.ingest.assets import build_ingest_definitions
from cdp_pipelines.resources import project_resources
from cdp_pipelines.settings import PROJECT_ROOT
from cdp_pipelines.standardize.assets import build_standardize_definitions

SOURCES = PROJECT_ROOT / "data" / "sources.yaml"
SAMPLE = PROJECT_ROOT / "data" / "sample"


def test_missing_required_column_stops_the_source_and_names_file_and_column(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    reviews = data / "reviews.csv"
    lines = reviews.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace("review_id", "reviewid", 1)  # the record id column disappears
    reviews.write_text("".join(lines), encoding="utf-8")

    defs = dg.Definitions.merge(build_ingest_definitions(SOURCES), build_standardize_definitions(SOURCES))
    resources = project_resources(tmp_path, data, SOURCES, PROJECT_ROOT / "config")
    result = dg.materialize([*defs.assets, *(defs.asset_checks or [])], resources=resources, raise_on_error=False)

    contract = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    failed = contract[("reviews", "source_contract")]
    assert not failed.passed
    assert "reviews.csv" in failed.description and "review_id" in failed.description
    assert contract[("crm_accounts", "source_contract")].passed
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    assert "standardized/reviews" not in materialized and "standardized/identity_records" not in materialized
    assert "standardized/crm_accounts" in materialized
