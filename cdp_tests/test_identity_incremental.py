"""Incremental identity resolution agrees with a full refresh on the same data."""

import shutil
from pathlib import Path

import duckdb
import pytest

from pipeline_support import resolve_identities, without_some_records

from cdp_pipelines.synthetic import generate_dataset


def _resolve(data_dir: Path, root: Path, incremental: bool) -> dict:
    result = resolve_identities(root, data_dir, incremental=incremental)
    assert result.success
    metadata = next(m.metadata for m in result.asset_materializations_for_node("identity_graph")
                    if "links_refused" in m.metadata)
    return {"incremental": metadata["incremental"].value, "links_accepted": metadata["links_accepted"].value,
            "links_refused": metadata["links_refused"].value}


def _decision_tally(warehouse: Path) -> tuple[int, dict[str, int]]:
    """Accepted links and refusals by reason (probabilities and the cluster bound by first word)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute("SELECT accepted, reason FROM identity.link_decisions").fetchall()
    con.close()
    refused: dict[str, int] = {}
    for accepted, reason in rows:
        if not accepted:
            key = reason.split(" ")[0] if reason.startswith(("probability", "would")) else reason
            refused[key] = refused.get(key, 0) + 1
    return sum(accepted for accepted, _ in rows), refused


def _together(warehouse: Path) -> set[tuple[str, str]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        """SELECT a.source || ':' || a.source_record_id, b.source || ':' || b.source_record_id
           FROM identity.customer_xref a JOIN identity.customer_xref b
             ON a.customer_id = b.customer_id AND (a.source, a.source_record_id) < (b.source, b.source_record_id)"""
    ).fetchall()
    con.close()
    return set(rows)


@pytest.mark.slow
def test_incremental_run_agrees_with_full_refresh(tmp_path):
    full = tmp_path / "full"
    generate_dataset(persons=1500, seed=21, out_dir=full)
    without_some_records(full, tmp_path / "base", share=0.02, seed=5)

    incremental_root, full_root = tmp_path / "incremental", tmp_path / "refresh"
    _resolve(tmp_path / "base", incremental_root, incremental=False)
    summary = _resolve(full, incremental_root, incremental=True)["incremental"]
    assert summary["mode"] == "incremental", summary  # the affected region, not the whole graph
    assert summary["new_nodes"] > 0 and summary["pairs_kept"] > 0
    assert summary["affected_records"] < summary["new_records"] * 10
    shutil.rmtree(incremental_root / "artifacts")  # the full refresh trains its own model
    _resolve(full, full_root, incremental=False)

    incremental, refresh = _together(incremental_root / "warehouse.duckdb"), _together(full_root / "warehouse.duckdb")
    agreement = len(incremental & refresh) / len(incremental | refresh)
    assert agreement >= 0.999, (len(incremental - refresh), len(refresh - incremental))


@pytest.mark.slow
def test_incremental_run_without_new_records_scores_nothing_and_changes_nothing(tmp_path):
    data = tmp_path / "data"
    generate_dataset(persons=600, seed=8, out_dir=data)
    full = _resolve(data, tmp_path, incremental=False)
    before = _together(tmp_path / "warehouse.duckdb")
    accepted, refused = _decision_tally(tmp_path / "warehouse.duckdb")
    assert (full["links_accepted"], full["links_refused"]) == (accepted, refused)
    assert accepted > 0 and "probability" in refused
    again = _resolve(data, tmp_path, incremental=True)
    summary = again["incremental"]
    assert summary["new_nodes"] == 0 and summary["pairs_scored"] == 0
    assert _together(tmp_path / "warehouse.duckdb") == before
    # Both kinds of run report the decisions they leave in identity.link_decisions.
    assert (again["links_accepted"], again["links_refused"]) == (accepted, refused)
