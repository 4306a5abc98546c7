"""Incremental ingest and standardize through Dagster: a new file is the only one read, a changed
record replaces the old row, earlier rows superseded by a later file are quarantined, and the
blocking reconciliation checks pass in both modes."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from cdp_pipelines.ingest.assets import build_ingest_definitions
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.standardize.assets import build_standardize_definitions

SOURCES = """
version: 1
sources:
  - name: shop
    description: Test shop accounts.
    path: shop*.csv
    format: csv
    record_id: id
    kind: profile
    timestamp: ts
    mapping:
      full_name: name
      email: email
"""
HEADER = "id,name,email,ts\n"


def rows(ids, name="Person", day="2024-03-01") -> str:
    return "".join(f"{i},{name} {i},p{i}@example.com,{day}T10:00:00\n" for i in ids)


@pytest.fixture
def project(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text(SOURCES)
    (data / "shop_1.csv").write_text(HEADER + rows(range(1, 21)))
    defs = dg.Definitions.merge(build_ingest_definitions(sources), build_standardize_definitions(sources))
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
        "paths": ProjectPathsResource(data_dir=str(data), sources_file=str(sources), config_dir=str(tmp_path),
                                      artifacts_dir=str(tmp_path / "a"), export_dir=str(tmp_path / "e")),
    }
    return {"data": data, "defs": defs, "resources": resources, "warehouse": tmp_path / "w.duckdb"}


def run(project, incremental: bool):
    defs = project["defs"]
    assets = [*defs.assets, *(defs.asset_checks or [])]
    config = {"incremental": incremental}
    run_config = {"ops": {name: {"config": config} for name in
                          ("raw__shop", "standardized__shop", "standardized__identity_records")}}
    result = dg.materialize(assets, resources=project["resources"], run_config=run_config, raise_on_error=False)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success and not [f for f in failed if f.check_name == "rows_reconcile"], \
        [(f.asset_key, f.check_name, f.description) for f in failed]
    return result


def query(project, sql, params=None):
    con = duckdb.connect(str(project["warehouse"]), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_incremental_reads_only_the_new_file_and_upserts(project):
    run(project, incremental=False)
    assert query(project, "SELECT count(*) FROM raw.shop")[0][0] == 20
    # A second file: two changed records, one unchanged re-delivery, three new records.
    (project["data"] / "shop_2.csv").write_text(
        HEADER + rows([3, 4], name="Renamed", day="2024-03-02") + rows([5]) + rows([21, 22, 23], day="2024-03-02"))
    result = run(project, incremental=True)
    run_id = result.run_id
    read, staged, quarantined, files, mode = query(
        project, "SELECT rows_read, rows_staged, rows_quarantined, files, mode FROM quality.ingest_runs "
                 "WHERE run_id = ? AND source = 'shop'", [run_id])[0]
    assert (read, staged, quarantined, files, mode) == (6, 6, 0, "shop_2.csv", "incremental")
    changes = dict(query(project, "SELECT source_record_id, change FROM quality.record_changes WHERE run_id = ?",
                         [run_id]))
    assert changes == {"3": "changed", "4": "changed", "21": "new", "22": "new", "23": "new"}
    assert query(project, "SELECT count(*), count(DISTINCT _record_id) FROM raw.shop")[0] == (23, 23)
    assert query(project, "SELECT name, _file FROM raw.shop WHERE _record_id = '3'")[0] == ("Renamed 3", "shop_2.csv")
    superseded = query(project, "SELECT record_id, file, reason FROM quality.quarantine WHERE run_id = ? ORDER BY 1",
                       [run_id])
    assert superseded == [("3", "shop_1.csv", "superseded by shop_2.csv row 1"),
                          ("4", "shop_1.csv", "superseded by shop_2.csv row 2"),
                          ("5", "shop_1.csv", "superseded by shop_2.csv row 3")]
    assert query(project, "SELECT src_name FROM standardized.shop WHERE source_record_id = '3'")[0][0] == "Renamed 3"
    assert query(project, "SELECT count(*) FROM standardized.shop")[0][0] == 23
    assert query(project, "SELECT count(*) FROM standardized.identity_records")[0][0] == 23
    assert {f for f, in query(project, "SELECT file FROM quality.ingested_files")} == {"shop_1.csv", "shop_2.csv"}

    # Nothing new: nothing read, nothing touched.
    again = run(project, incremental=True)
    assert query(project, "SELECT rows_read, files FROM quality.ingest_runs WHERE run_id = ?",
                 [again.run_id])[0] == (0, "")
    assert query(project, "SELECT count(*) FROM quality.record_changes WHERE run_id = ?", [again.run_id])[0][0] == 0

    # A full refresh over the same files ends in the same state.
    incremental_state = query(project, "SELECT * EXCLUDE (_row_number) FROM raw.shop ORDER BY _record_id")
    run(project, incremental=False)
    assert query(project, "SELECT * EXCLUDE (_row_number) FROM raw.shop ORDER BY _record_id") == incremental_state
    assert query(project, "SELECT count(*) FROM quality.quarantine WHERE reason LIKE 'superseded%'")[0][0] == 3


def test_a_changed_file_is_read_again_and_its_rows_replace_their_old_versions(project):
    run(project, incremental=False)
    path = project["data"] / "shop_1.csv"
    path.write_text(HEADER + rows(range(1, 20)) + rows([20], name="Fixed") + rows([30]))
    result = run(project, incremental=True)
    changes = dict(query(project, "SELECT source_record_id, change FROM quality.record_changes WHERE run_id = ?",
                         [result.run_id]))
    assert changes == {"20": "changed", "30": "new"}
    assert query(project, "SELECT count(*) FROM raw.shop")[0][0] == 21
    assert query(project, "SELECT count(*) FROM quality.quarantine")[0][0] == 0
    # Touching a file without changing its bytes does not make it new.
    path.touch()
    touched = run(project, incremental=True)
    assert query(project, "SELECT rows_read FROM quality.ingest_runs WHERE run_id = ?", [touched.run_id])[0][0] == 0


def test_an_older_file_arriving_late_loses_to_the_later_one(project):
    (project["data"] / "shop_5.csv").write_text(HEADER + rows([7], name="Latest", day="2024-03-05"))
    run(project, incremental=False)
    (project["data"] / "shop_3.csv").write_text(HEADER + rows([7], name="Older", day="2024-03-03") + rows([40]))
    result = run(project, incremental=True)
    assert query(project, "SELECT name FROM raw.shop WHERE _record_id = '7'")[0][0] == "Latest 7"
    assert query(project, "SELECT record_id, reason FROM quality.quarantine WHERE run_id = ?", [result.run_id]) == [
        ("7", "superseded by shop_5.csv row 1")]
    assert dict(query(project, "SELECT source_record_id, change FROM quality.record_changes WHERE run_id = ?",
                      [result.run_id])) == {"40": "new"}
    assert query(project, "SELECT rows_read, rows_staged, rows_quarantined FROM quality.ingest_runs WHERE run_id = ?",
                 [result.run_id])[0] == (2, 1, 1)


def _check(result, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_incremental_checks_validate_only_the_new_rows(project):
    first = run(project, incremental=False)
    assert _check(first, "source_contract").metadata["rows_validated"].value == 20
    (project["data"] / "shop_2.csv").write_text(HEADER + rows([21, 22, 23], day="2024-03-02"))
    second = run(project, incremental=True)
    for name in ("source_contract", "standardized_quality"):
        check = _check(second, name)
        assert check.passed and check.metadata["rows_validated"].value == 3, (name, check.metadata)
    third = run(project, incremental=True)  # nothing new: nothing to validate, nothing fails
    contract = _check(third, "source_contract")
    assert contract.passed and contract.metadata["rows_validated"].value == 0


def test_large_tables_are_validated_on_a_sample(project, tmp_path, monkeypatch):
    import shutil

    from cdp_pipelines import settings

    config = tmp_path / "config"
    shutil.copytree(settings.PROJECT_ROOT / "config", config)
    text = (config / "quality.yaml").read_text().replace("max_rows_validated: 50000", "max_rows_validated: 5")
    (config / "quality.yaml").write_text(text)
    monkeypatch.setenv(settings.ENV_CONFIG_DIR, str(config))
    result = run(project, incremental=False)
    for name in ("source_contract", "standardized_quality"):
        check = _check(result, name)
        assert check.passed
        assert (check.metadata["rows_validated"].value, check.metadata["rows_in_scope"].value) == (5, 20)


def test_standardized_metadata_shows_junk_and_null_rates_and_a_preview(project):
    lines = "".join(f"{i},Person {i},p{i}@mail.co.uk,2024-03-01T10:00:00\n" for i in range(1, 20))
    (project["data"] / "shop_1.csv").write_text(HEADER + lines + "20,Person 20,test@test.com,2024-03-01T10:00:00\n")
    result = run(project, incremental=False)
    metadata = next(m for m in result.asset_materializations_for_node("standardized__shop")).metadata
    assert metadata["junk_values_removed"].value["email"] == 1
    assert metadata["junk_rates"].value["email"] == 0.05
    assert metadata["null_rates"].value["email"] == 0.05 and metadata["null_rates"].value["phone"] == 1.0
    preview = metadata["preview"].value
    assert "source_record_id" in preview and "p1@mail.co.uk" not in preview  # personal data masked


def test_standardized_quality_fails_on_values_standardization_should_not_produce(project):
    """The check fetches only the columns its suite reads, and still sees a non-canonical email and
    a phone outside E.164 in the rows standardization wrote."""
    from cdp_pipelines.ingest.sources_config import load_sources
    from cdp_pipelines.standardize.assets import quality_check_fn

    assert _check(run(project, incremental=False), "standardized_quality").passed
    con = duckdb.connect(str(project["warehouse"]))
    con.execute("UPDATE standardized.shop SET email = 'Person 3 AT mail', phone = '07700 900123' WHERE source_record_id = '3'")
    con.close()
    declared = next(s for s in load_sources(project["data"].parent / "sources.yaml").sources if s.name == "shop")
    quality = quality_check_fn(declared)
    result = quality(project["resources"]["warehouse"])
    assert not result.passed
    failures = [f for f in result.metadata["failures"].value if f["severity"] == "blocking"]
    assert {f["column"]: f["unexpected_count"] for f in failures} == {"email": 1, "phone": 1}, failures
    assert result.metadata["rows_validated"].value == 20


def test_identity_records_is_a_view_even_where_an_older_run_left_a_table(project):
    run(project, incremental=False)
    con = duckdb.connect(str(project["warehouse"]))
    con.execute("DROP VIEW standardized.identity_records")
    con.execute("CREATE TABLE standardized.identity_records AS SELECT 'stale' AS source")  # as older runs left it
    con.close()
    run(project, incremental=False)
    assert query(project, "SELECT table_type FROM information_schema.tables WHERE table_schema = 'standardized' "
                          "AND table_name = 'identity_records'") == [("VIEW",)]
    assert query(project, "SELECT source, count(*) FROM standardized.identity_records GROUP BY ALL") == [("shop", 20)]
