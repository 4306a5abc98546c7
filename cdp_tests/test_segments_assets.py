"""Segment assets materialize on a small temp warehouse with membership metadata, a passing
consent check, and the dated exports."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.segments.assets import EXPORTS_KEY, build_segment_definitions, segment_key
from cdp_pipelines.settings import PROJECT_ROOT

try:
    from cdp_tests.test_segments_fixtures import build_warehouse, write_segments
except ImportError:
    from test_segments_fixtures import build_warehouse, write_segments


def resources(tmp_path: Path, warehouse: Path) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(warehouse), memory_limit="1GB"),
        "paths": ProjectPathsResource(data_dir=str(tmp_path), sources_file=str(tmp_path / "sources.yaml"),
                                      config_dir=str(tmp_path), artifacts_dir=str(tmp_path / "artifacts"),
                                      export_dir=str(tmp_path / "exports")),
    }


def materialize_all(defs: dg.Definitions, res: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=res, instance=instance)


def test_segments_materialize_with_metadata_checks_and_exports(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    defs = build_segment_definitions(write_segments(tmp_path))
    spec = next(a for a in defs.assets if segment_key("everyone_email") in a.keys)
    assert spec.group_names_by_key[segment_key("everyone_email")] == "segments"
    assert spec.specs_by_key[segment_key("everyone_email")].kinds == {"duckdb"}

    instance = dg.DagsterInstance.ephemeral()
    result = materialize_all(defs, resources(tmp_path, warehouse), instance)
    assert result.success
    meta = result.asset_materializations_for_node("segments__everyone_email")[0].metadata
    assert meta["members"].value == 2 and meta["rule_matches"].value == 6
    assert meta["eligible_after_consent"].value == 2 and meta["excluded_by_consent"].value == 4
    assert (meta["members_added"].value, meta["members_removed"].value) == (2, 0)
    assert meta["channel"].value == "email" and "TRUE" in meta["rule"].value
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert {c.asset_key for c in checks} == {segment_key(n) for n in (
        "everyone_email", "opted_out_email", "everyone_sms", "everyone_ads", "high_value")}
    exports = result.asset_materializations_for_node("segments__exports")[0].metadata
    assert all(Path(p).exists() for p in exports["files"].value.values())

    # Second run: C4 opted out in the meantime.
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE profiles.consent SET status = 'opt_out' WHERE customer_id = 'C4' AND channel = 'email'")
    con.close()
    result = materialize_all(defs, resources(tmp_path, warehouse), instance)
    meta = result.asset_materializations_for_node("segments__everyone_email")[0].metadata
    assert (meta["members"].value, meta["members_added"].value, meta["members_removed"].value) == (1, 0, 1)


def test_consent_check_fails_when_membership_is_tampered_with(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    defs = build_segment_definitions(write_segments(tmp_path))
    res = resources(tmp_path, warehouse)
    instance = dg.DagsterInstance.ephemeral()
    email = next(a for a in defs.assets if segment_key("everyone_email") in a.keys)
    assert dg.materialize([email], resources=res, instance=instance).success
    con = duckdb.connect(str(warehouse))
    con.execute("INSERT INTO segments.membership VALUES ('everyone_email', 'C2', now())")
    con.close()
    check = next(c for c in defs.asset_checks if any(k.asset_key == segment_key("everyone_email") for k in c.check_keys))
    result = dg.materialize([email.to_source_asset(), check], resources=res, instance=instance,
                            selection=dg.AssetSelection.checks(check), raise_on_error=False)
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed and evaluation.metadata["members_without_consent"].value == 1


def test_project_segments_load_as_definitions():
    defs = build_segment_definitions(PROJECT_ROOT / "config" / "segments.yaml")
    keys = {key for a in defs.assets for key in a.keys}
    assert segment_key("frustrated_across_channels") in keys and EXPORTS_KEY in keys
    email = next(a for a in defs.assets if segment_key("frustrated_across_channels") in a.keys)
    deps = {d.asset_key for d in email.specs_by_key[segment_key("frustrated_across_channels")].deps}
    assert deps == {dg.AssetKey(["marts", "customer_profile"]), dg.AssetKey(["marts", "contact_context"]),
                    dg.AssetKey(["marts", "interaction_timeline"]), dg.AssetKey(["profiles", "consent"])}


def test_members_of_segments_no_longer_declared_are_removed(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    defs = build_segment_definitions(write_segments(tmp_path))
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE SCHEMA IF NOT EXISTS segments")
    con.execute("CREATE TABLE segments.membership (segment VARCHAR, customer_id VARCHAR, added_at TIMESTAMP)")
    con.execute("INSERT INTO segments.membership VALUES ('retired_segment', 'C1', now()), ('retired_segment', 'C4', now())")
    con.close()
    email = next(a for a in defs.assets if segment_key("everyone_email") in a.keys)
    assert dg.materialize([email], resources=resources(tmp_path, warehouse),
                          instance=dg.DagsterInstance.ephemeral()).success
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT DISTINCT segment FROM segments.membership").fetchall() == [("everyone_email",)]
    removed = con.execute("SELECT customer_id FROM segments.membership_changes "
                          "WHERE segment = 'retired_segment' AND change = 'removed' ORDER BY 1").fetchall()
    con.close()
    assert removed == [("C1",), ("C4",)]
