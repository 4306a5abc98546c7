"""Exports: CSV and Parquet with the segment's columns, ads hashes equal to hashlib's, dated
files under the export folder, and readable errors for segments not built or bad columns."""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cdp_pipelines.segments.build import build_segment
from cdp_pipelines.segments.config import SegmentConfigError, load_segments
from cdp_pipelines.segments.export import export_all, export_segment

try:
    from cdp_tests.test_segments_fixtures import build_warehouse, write_segments
except ImportError:
    from test_segments_fixtures import build_warehouse, write_segments


@pytest.fixture()
def built(tmp_path: Path):
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    config = load_segments(write_segments(tmp_path))
    for segment in config.segments:
        build_segment(con, segment, config)
    yield con, config
    con.close()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_csv_export_has_the_default_safe_columns(built, tmp_path):
    con, config = built
    result = export_segment(con, config.get("everyone_email"), config, tmp_path / "out" / "e.csv", "csv")
    rows = list(csv.DictReader(result.path.open()))
    assert list(rows[0]) == ["customer_id", "first_name", "email"]
    assert [r["customer_id"] for r in rows] == ["C1", "C4"] and result.rows == 2
    assert not (tmp_path / "out" / "e.csv.partial").exists()


def test_parquet_export_uses_the_configured_columns(built, tmp_path):
    con, config = built
    result = export_segment(con, config.get("high_value"), config, tmp_path / "h.parquet", "parquet")
    table = pq.read_table(result.path)
    assert table.column_names == ["customer_id", "email", "city"]
    assert table.column("customer_id").to_pylist() == ["C1", "C4"]


def test_ads_export_has_only_sha256_of_normalised_email_and_phone(built, tmp_path):
    con, config = built
    result = export_segment(con, config.get("everyone_ads"), config, tmp_path / "ads.csv", "csv")
    rows = list(csv.DictReader(result.path.open()))
    assert list(rows[0]) == ["email_sha256", "phone_sha256"]
    assert rows == [
        # ' Alice.Smith@Example.com ' -> trimmed, lower-cased; '+447700900001' -> digits only.
        {"email_sha256": sha256("alice.smith@example.com"), "phone_sha256": sha256("447700900001")},
        {"email_sha256": sha256("dan@example.com"), "phone_sha256": sha256("353861234567")},
    ]


def test_ads_export_leaves_missing_values_empty(built, tmp_path):
    con, config = built
    con.execute("UPDATE marts.customer_profile SET phone = NULL WHERE customer_id = 'C4'")
    con.execute("UPDATE marts.customer_profile SET email = '  ', phone = NULL WHERE customer_id = 'C1'")
    result = export_segment(con, config.get("everyone_ads"), config, tmp_path / "ads.parquet", "parquet")
    assert pq.read_table(result.path).to_pylist() == [{"email_sha256": sha256("dan@example.com"), "phone_sha256": None}]


def test_export_all_writes_dated_csv_per_segment(built, tmp_path):
    con, config = built
    results = export_all(con, tmp_path / "exports", config, day=date(2026, 11, 1))
    paths = {r.segment: r.path for r in results}
    assert paths["everyone_email"] == tmp_path / "exports" / "everyone_email" / "everyone_email_20261101.csv"
    assert paths["high_value"] == tmp_path / "exports" / "crm" / "weekly" / "high_value_20261101.csv"
    assert all(p.exists() for p in paths.values())
    assert {r.segment: r.rows for r in results}["opted_out_email"] == 0


def test_unbuilt_segment_and_missing_export_column_are_readable_errors(tmp_path):
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    config = load_segments(write_segments(tmp_path, """
        segments:
          - {name: mail, description: d, owner: team:x, channel: direct_mail, rule: "TRUE"}
    """))
    with pytest.raises(SegmentConfigError, match="segment 'mail' has not been built yet"):
        export_segment(con, config.get("mail"), config, tmp_path / "m.csv")
    build_segment(con, config.get("mail"), config)
    # The test customer_profile has no address_line column.
    with pytest.raises(SegmentConfigError, match=r"segment 'mail': export needs column\(s\) \['address_line'\]"):
        export_segment(con, config.get("mail"), config, tmp_path / "m.csv")
    con.close()


def test_a_folder_as_target_is_refused_before_anything_is_written(built, tmp_path):
    con, config = built
    folder = tmp_path / "w"
    folder.mkdir()
    with pytest.raises(SegmentConfigError, match=r"segment 'everyone_email': .*w is a folder; give the file"):
        export_segment(con, config.get("everyone_email"), config, folder, "csv")
    assert not (tmp_path / "w.partial").exists()
    assert list(folder.iterdir()) == []


def test_a_failed_write_leaves_no_partial_file(built, tmp_path, monkeypatch):
    con, config = built

    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("cdp_pipelines.segments.export.os.replace", refuse)
    out = tmp_path / "out" / "e.csv"
    with pytest.raises(SegmentConfigError, match=r"segment 'everyone_email': cannot write .*e.csv: Permission denied"):
        export_segment(con, config.get("everyone_email"), config, out, "csv")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_changed_channel_makes_the_built_members_stale(built, tmp_path):
    con, config = built
    moved = config.get("everyone_email").model_copy(update={"channel": "sms"})
    with pytest.raises(SegmentConfigError, match=r"segment 'everyone_email': the segment's channel changed since "
                                                 r"it was built at .*; run `cdp run` to rebuild"):
        export_segment(con, moved, config, tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()
