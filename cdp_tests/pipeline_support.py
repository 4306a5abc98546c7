"""Running the pipeline in a throw-away project folder, for tests that need real runs."""

import csv
import random
from pathlib import Path

import dagster as dg
import pytest

from cdp_pipelines import settings
from cdp_pipelines.identity import assets as identity_assets
from cdp_pipelines.ingest.assets import build_ingest_definitions
from cdp_pipelines.resources import project_resources
from cdp_pipelines.runner import RunOutcome, run_pipeline
from cdp_pipelines.standardize.assets import build_standardize_definitions

SOURCES = settings.PROJECT_ROOT / "data" / "sources.yaml"
CONFIG = settings.PROJECT_ROOT / "config"


def run_whole_graph(root: Path, data_dir: Path, sources_file: Path | None = None,
                    serving_url: str | None = None, incremental: bool = False) -> RunOutcome:
    """`cdp run` (or `cdp run --incremental`) with the warehouse, artifacts, exports and Dagster
    instance under `root`."""
    env = {
        settings.ENV_DATA_DIR: str(data_dir),
        settings.ENV_WAREHOUSE: str(root / "warehouse.duckdb"),
        settings.ENV_ARTIFACTS_DIR: str(root / "artifacts"),
        settings.ENV_EXPORT_DIR: str(root / "exports"),
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in (settings.ENV_SERVING_URL, settings.ENV_SOURCES_FILE):
            patch.delenv(name, raising=False)
        if sources_file is not None:
            env[settings.ENV_SOURCES_FILE] = str(sources_file)
        if serving_url is not None:
            env[settings.ENV_SERVING_URL] = serving_url
        for name, value in env.items():
            patch.setenv(name, value)
        return run_pipeline(incremental=incremental)


def resolve_identities(root: Path, data_dir: Path, config_dir: Path = CONFIG, incremental: bool = False,
                       with_checks: bool = False) -> dg.ExecuteInProcessResult:
    """Ingest, standardize and identity only (the stages identity tests are about)."""
    defs = dg.Definitions.merge(build_ingest_definitions(SOURCES), build_standardize_definitions(SOURCES))
    assets = [*defs.assets, identity_assets.identity_graph]
    if with_checks:
        assets += [identity_assets.largest_cluster_within_bound, identity_assets.every_record_resolved_once]
    return dg.materialize(
        assets, resources=project_resources(root, data_dir, SOURCES, config_dir), raise_on_error=False,
        run_config={"ops": {"identity_graph": {"config": {"incremental": incremental}}}},
    )


def without_some_records(full: Path, base: Path, share: float, seed: int) -> None:
    """A copy of a generated dataset holding all but about `share` of each source file's records."""
    rng = random.Random(seed)
    base.mkdir(parents=True)
    for path in full.iterdir():
        if path.suffix == ".jsonl":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if rng.random() > share]
            (base / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif path.name != "ground_truth.csv" and path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            with (base / path.name).open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(rows[0])
                writer.writerows(row for row in rows[1:] if rng.random() > share)
