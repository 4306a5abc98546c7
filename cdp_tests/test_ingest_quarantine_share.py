"""A source with much of it quarantined is flagged by its contract check: a warning above
max_quarantined_row_ratio.warning (config/quality.yaml), a blocking failure above .blocking,
naming the main reasons."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from cdp_pipelines.ingest.assets import build_ingest_definitions
from cdp_pipelines.ingest.quality import QuarantineCounts, quarantine_failure
from cdp_pipelines.ingest.quality_suites import QualityConfigError, QuarantineRatios, max_quarantined_row_ratio
from cdp_pipelines.resources import project_resources
from cdp_pipelines.settings import PROJECT_ROOT

CP1252_ROWS = ("Kundennummer;Vorname;E-Mail;Geaendert\n"
               "K1;Jürgen;j@example.de;2024-03-01 09:15\n"
               "K2;Anna;anna@example.de;2024-03-02 10:00\n"
               "K3;Zoë;zoe@example.de;2024-03-03 11:00\n"
               "K4;Max;max@example.de;2024-03-04 12:00\n")
SOURCES = """
version: 1
sources:
  - name: shop_customers
    path: kunden.csv
    format: csv
    csv: {delimiter: ";"}
    record_id: Kundennummer
    kind: profile
    timestamp: Geaendert
    mapping: {first_name: Vorname, email: E-Mail}
"""


def test_a_share_above_the_warning_ratio_is_a_warning_naming_the_main_reasons():
    counts = QuarantineCounts(rows_read=4, rows_quarantined=2, reasons={"invalid UTF-8 in column Vorname": 2})
    failure = quarantine_failure(counts, QuarantineRatios(warning=0.05, blocking=None))
    assert failure["severity"] == "warning" and failure["unexpected_count"] == 2
    assert failure["problem"] == ("2 of 4 rows read (50%) were quarantined, above the allowed 5% "
                                  "(max_quarantined_row_ratio.warning); main reasons: "
                                  "invalid UTF-8 in column Vorname (2)")
    assert quarantine_failure(counts, QuarantineRatios(warning=0.05, blocking=0.25))["severity"] == "blocking"
    assert quarantine_failure(counts, QuarantineRatios(warning=0.5, blocking=None)) is None
    assert quarantine_failure(QuarantineCounts(0, 0), QuarantineRatios(warning=0.0, blocking=0.0)) is None


def test_the_ratios_come_from_quality_yaml_and_bad_values_are_refused(tmp_path: Path):
    shipped = max_quarantined_row_ratio(PROJECT_ROOT / "config" / "quality.yaml")
    assert shipped == QuarantineRatios(warning=0.05, blocking=None)
    path = tmp_path / "quality.yaml"
    path.write_text("max_quarantined_row_ratio: {blocking: 0.5}\n")
    assert max_quarantined_row_ratio(path) == QuarantineRatios(warning=0.05, blocking=0.5)
    for bad, problem in [("{warning: 5}", r"max_quarantined_row_ratio\.warning: Input should be less than or equal"),
                         ("{warning: true}", r"max_quarantined_row_ratio\.warning: Input should be a valid number"),
                         ("{warn: 0.1}", r"max_quarantined_row_ratio\.warn: unknown key .*allowed: warning, blocking"),
                         ("0.1", r"max_quarantined_row_ratio: Input should be a valid dictionary")]:
        path.write_text(f"max_quarantined_row_ratio: {bad}\n")
        with pytest.raises(QualityConfigError, match=problem):
            max_quarantined_row_ratio(path)


def ingest_cp1252_without_encoding(tmp_path: Path) -> dict[str, dg.AssetCheckEvaluation]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kunden.csv").write_bytes(CP1252_ROWS.encode("cp1252"))
    sources = tmp_path / "sources.yaml"
    sources.write_text(textwrap.dedent(SOURCES), encoding="utf-8")
    defs = build_ingest_definitions(sources)
    resources = project_resources(tmp_path, data, sources, PROJECT_ROOT / "config")
    result = dg.materialize(list(defs.assets), resources=resources, raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_file_read_with_the_wrong_encoding_warns_the_run(tmp_path: Path):
    checks = ingest_cp1252_without_encoding(tmp_path)
    contract = checks["source_contract"]
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.WARN
    assert ("2 of 4 rows read (50%) were quarantined, above the allowed 5% (max_quarantined_row_ratio.warning); "
            "main reasons: invalid UTF-8 in column Vorname (2)") in contract.description
    assert checks["rows_reconcile"].passed


def test_a_blocking_ratio_fails_the_check(tmp_path: Path, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    quality = config / "quality.yaml"
    quality.write_text(quality.read_text().replace("  blocking: null", "  blocking: 0.25"))
    monkeypatch.setenv("CDP_CONFIG_DIR", str(config))
    contract = ingest_cp1252_without_encoding(tmp_path)["source_contract"]
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.ERROR
    assert "above the allowed 25% (max_quarantined_row_ratio.blocking)" in contract.description
