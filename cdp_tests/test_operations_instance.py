"""The production Dagster instance of deploy/dagster.yaml works against a real PostgreSQL:
runs and their events are stored there and read back."""

from __future__ import annotations

import shutil
import uuid

import dagster as dg
import pytest
from psycopg.conninfo import conninfo_to_dict

from cdp_pipelines import settings
from postgres_fixtures import fresh_database


def test_documented_postgres_instance_records_runs(postgres_server_url, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")

    @dg.asset
    def tiny() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 1})

    with fresh_database(postgres_server_url, f"cdp_test_{uuid.uuid4().hex[:12]}") as url:
        info = conninfo_to_dict(url)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DAGSTER_HOME", str(home))
            patch.setenv("DAGSTER_PG_HOST", info.get("host") or "127.0.0.1")
            patch.setenv("DAGSTER_PG_USER", info.get("user") or "postgres")
            patch.setenv("DAGSTER_PG_PASSWORD", info.get("password") or "")
            patch.setenv("DAGSTER_PG_DB", info["dbname"])
            with dg.DagsterInstance.get() as instance:
                assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
                result = dg.materialize([tiny], instance=instance)
                assert result.success
                stored = instance.get_run_by_id(result.run_id)
                assert stored is not None and stored.is_success
                materialized = instance.fetch_materializations(dg.AssetKey("tiny"), limit=1).records
                assert materialized[0].asset_materialization.metadata["rows"].value == 1
                instance.run_storage.dispose()
                instance.event_log_storage.dispose()
