"""A failed ERROR check fails `cdp run`; a failed WARN check is reported without failing it."""

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

from cdp_pipelines.runner import split_check_failures


def _evaluation(check: str, passed: bool, severity: dg.AssetCheckSeverity) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(asset_key=dg.AssetKey(["raw", "crm_accounts"]), check_name=check, passed=passed,
                                metadata={}, severity=severity, description=f"{check} says so")


def test_only_error_checks_fail_the_run():
    failed, warnings = split_check_failures([
        _evaluation("source_contract", False, dg.AssetCheckSeverity.ERROR),
        _evaluation("standardized_quality", False, dg.AssetCheckSeverity.WARN),
        _evaluation("rows_reconcile", True, dg.AssetCheckSeverity.ERROR),
    ])
    assert [c["check"] for c in failed] == ["source_contract"]
    assert warnings == [{"asset": "raw/crm_accounts", "check": "standardized_quality",
                         "description": "standardized_quality says so"}]
