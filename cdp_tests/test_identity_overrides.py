"""Manual overrides survive reruns; the cluster-size bound stops the run; explanations name the evidence."""

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from pipeline_support import resolve_identities

from cdp_pipelines.cli import app
from cdp_pipelines.settings import PROJECT_ROOT
from cdp_pipelines.synthetic import generate_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    generate_dataset(persons=400, seed=13, out_dir=data)
    return data


def _config_dir(root: Path, **identity_changes) -> Path:
    config = root / "config"
    if not config.exists():
        shutil.copytree(PROJECT_ROOT / "config", config)
    settings = yaml.safe_load((config / "identity.yaml").read_text())
    for section, values in identity_changes.items():
        settings[section].update(values)
    (config / "identity.yaml").write_text(yaml.safe_dump(settings))
    return config


def _run(data: Path, root: Path, config: Path):
    return resolve_identities(root, data, config_dir=config, with_checks=True)


def _customer(warehouse: Path, record: str) -> str:
    source, record_id = record.split(":", 1)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT customer_id FROM identity.customer_xref WHERE source = ? AND source_record_id = ?",
                           [source, record_id]).fetchall()[0][0]
    finally:
        con.close()


def test_must_link_and_cannot_link_hold_on_every_rerun(dataset, tmp_path):
    config = _config_dir(tmp_path)
    assert _run(dataset, tmp_path, config).success
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    # Two CRM accounts of different customers, and two records of one multi-record customer.
    apart = con.execute(
        "SELECT 'crm_accounts:' || source_record_id FROM identity.customer_xref WHERE source = 'crm_accounts' "
        "ORDER BY source_record_id LIMIT 2").fetchall()
    together = con.execute(
        """SELECT list(source || ':' || source_record_id ORDER BY source, source_record_id)[1:2]
           FROM identity.customer_xref GROUP BY customer_id HAVING count(*) >= 4 ORDER BY customer_id LIMIT 1"""
    ).fetchall()[0][0]
    con.close()
    (a,), (b,) = apart
    assert _customer(warehouse, a) != _customer(warehouse, b)
    assert _customer(warehouse, together[0]) == _customer(warehouse, together[1])
    (config / "identity_overrides.yaml").write_text(yaml.safe_dump({
        "must_link": [{"a": a, "b": b, "reason": "customer confirmed by phone", "by": "test"}],
        "cannot_link": [{"a": together[0], "b": together[1], "reason": "twins", "by": "test"}],
    }))
    for _ in range(2):  # and again on the rerun
        result = _run(dataset, tmp_path, config)
        assert result.success
        assert _customer(warehouse, a) == _customer(warehouse, b)
        assert _customer(warehouse, together[0]) != _customer(warehouse, together[1])
        overrides = result.asset_materializations_for_node("identity_graph")[0].metadata["overrides"].value
        assert overrides["must_link"] == 1 and overrides["cannot_link"] == 1 and overrides["unknown_records"] == []


def test_largest_cluster_bound_fails_the_blocking_check(dataset, tmp_path):
    config = _config_dir(tmp_path, clustering={"max_cluster_records": 3})
    result = _run(dataset, tmp_path, config)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    check = evaluations["largest_cluster_within_bound"]
    assert not check.passed and "above the bound of 3" in check.description
    assert evaluations["every_record_resolved_once"].passed


def test_explain_shows_records_rules_and_match_weights(dataset, tmp_path):
    config = _config_dir(tmp_path)
    assert _run(dataset, tmp_path, config).success
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    customer = con.execute(
        """SELECT x.customer_id FROM identity.customer_xref x WHERE x.match_kind = 'probabilistic'
           ORDER BY x.customer_id LIMIT 1""").fetchall()[0][0]
    con.close()
    result = CliRunner().invoke(app, ["explain", customer, "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    assert customer in result.output and "records" in result.output
    assert "Probabilistic links accepted" in result.output and "match weight" in result.output
    missing = CliRunner().invoke(app, ["explain", "CNOPE", "--warehouse", str(warehouse)])
    assert missing.exit_code == 2 and "no customer" in missing.output
