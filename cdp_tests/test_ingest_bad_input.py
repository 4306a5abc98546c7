"""Readers against bad input: each case either stages, quarantines with a reason, or fails the
source with a message naming the file, column and problem. Counts always reconcile."""

from __future__ import annotations

import builtins
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp_pipelines.ingest import readers, readers_csv
from cdp_pipelines.ingest.errors import SourceContractError
from cdp_pipelines.ingest.readers import IngestResult, read_source
from cdp_pipelines.ingest.sources_config import SourceConfig

HEADER = "id,name,email,ts"


def make_source(**overrides) -> SourceConfig:
    fields = dict(name="shop", path="shop.csv", format="csv", record_id="id", kind="event",
                  timestamp="ts", mapping={"full_name": "name", "email": "email"})
    return SourceConfig(**{**fields, **overrides})


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def read(source: SourceConfig, data_dir: Path) -> IngestResult:
    """read_source, plus the invariant every test relies on."""
    result = read_source(source, data_dir)
    assert result.rows_read == result.table.num_rows + result.quarantine.num_rows
    assert result.table.column_names[:3] == ["_record_id", "_file", "_row_number"]
    assert result.table.schema.field("_row_number").type == pa.int64()
    for field in result.table.schema:
        if field.name != "_row_number":
            assert field.type == pa.string(), field.name
    return result


def reasons(result: IngestResult) -> list[str]:
    return result.quarantine.column("reason").to_pylist()


def contract_error(source: SourceConfig, data_dir: Path) -> str:
    with pytest.raises(SourceContractError) as caught:
        read_source(source, data_dir)
    return str(caught.value)


def good_rows(count: int, start: int = 1) -> str:
    return "".join(
        f"{i},Person {i},p{i}@example.com,2024-03-01T10:00:00\n"
        for i in range(start, start + count)
    )


def test_clean_csv_is_staged_with_lineage(tmp_path):
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(3))
    result = read(make_source(), tmp_path)
    assert (result.rows_read, result.table.num_rows, result.quarantine.num_rows) == (3, 3, 0)
    assert result.table.column("_record_id").to_pylist() == ["1", "2", "3"]
    assert result.table.column("_file").to_pylist() == ["shop.csv"] * 3
    assert result.table.column("_row_number").to_pylist() == [1, 2, 3]
    assert result.files == [tmp_path / "shop.csv"]
    assert result.extra_columns == []


def test_empty_file_fails_the_source(tmp_path):
    write(tmp_path, "shop.csv", b"")
    message = contract_error(make_source(), tmp_path)
    assert "shop.csv" in message and "empty (0 bytes)" in message


def test_header_only_fails_the_source(tmp_path):
    write(tmp_path, "shop.csv", HEADER + "\n\n")
    message = contract_error(make_source(), tmp_path)
    assert "shop.csv" in message and "has a header (4 columns) but no data rows" in message


def test_missing_required_column_lists_missing_and_found(tmp_path):
    write(tmp_path, "shop.csv", "id,name,ts\n1,Ann,2024-03-01\n")
    message = contract_error(make_source(), tmp_path)
    assert "shop.csv" in message
    assert "missing required column(s) email; columns found: id, name, ts" in message


def test_extra_column_is_kept_and_reported(tmp_path):
    write(tmp_path, "shop.csv", HEADER + ",loyalty_tier\n1,Ann,a@x.com,2024-03-01,gold\n")
    result = read(make_source(), tmp_path)
    assert result.extra_columns == ["loyalty_tier"]
    assert result.table.column("loyalty_tier").to_pylist() == ["gold"]
    assert result.table.num_rows == 1


def test_wrong_types_are_kept_as_text(tmp_path):
    write(tmp_path, "shop.csv", "id,name,email,ts,total\n1,42,not-an-email,2024-03-01,twelve\n")
    result = read(make_source(), tmp_path)
    row = result.table.to_pylist()[0]
    assert (row["name"], row["email"], row["total"]) == ("42", "not-an-email", "twelve")
    assert result.quarantine.num_rows == 0


def test_json_values_of_any_type_are_kept_as_text(tmp_path):
    record = {"id": 7, "name": None, "email": True, "ts": "2024-03-01", "n": 1.5,
              "items": [{"sku": "A"}]}
    write(tmp_path, "shop.jsonl", json.dumps(record) + "\n")
    result = read(make_source(path="shop.jsonl", format="jsonl"), tmp_path)
    row = result.table.to_pylist()[0]
    assert row["id"] == "7" and row["_record_id"] == "7"
    assert row["name"] is None and row["email"] == "true" and row["n"] == "1.5"
    assert json.loads(row["items"]) == [{"sku": "A"}]


def test_malformed_json_line_is_quarantined_and_the_rest_staged(tmp_path):
    lines = [
        '{"id": "1", "name": "Ann", "email": "a@x.com", "ts": "2024-03-01T10:00:00Z"}',
        '{"id": "2", "name": "Bob", "email": ',
        "",
        '["not", "an", "object"]',
        '{"id": "3", "name": "Cy", "email": "c@x.com", "ts": "2024-03-02T10:00:00Z"}',
        "",
    ]
    write(tmp_path, "shop.jsonl", "\n".join(lines) + "\n")
    result = read(make_source(path="shop.jsonl", format="jsonl"), tmp_path)
    assert result.rows_read == 4  # blank lines are not records
    assert result.table.column("_record_id").to_pylist() == ["1", "3"]
    assert result.table.column("_row_number").to_pylist() == [1, 4]
    quarantine = result.quarantine.to_pylist()
    assert quarantine[0]["row_number"] == 2
    assert quarantine[0]["reason"].startswith("malformed JSON: ")
    assert quarantine[0]["raw_content"] == lines[1]
    assert quarantine[1]["reason"] == "expected a JSON object, found an array"
    assert {q["source"] for q in quarantine} == {"shop"}


def test_invalid_utf8_in_csv_quarantines_only_that_row(tmp_path):
    content = (HEADER + "\n").encode() + good_rows(1).encode()
    content += b"2,Bj\xf6rn,b@x.com,2024-03-01\n" + good_rows(1, start=3).encode()
    write(tmp_path, "shop.csv", content)
    result = read(make_source(), tmp_path)
    assert result.table.column("_record_id").to_pylist() == ["1", "3"]
    assert reasons(result) == ["invalid UTF-8 in column name"]
    bad = result.quarantine.to_pylist()[0]
    assert bad["record_id"] == "2" and bad["row_number"] == 2
    assert bad["raw_content"] == "2,Bj\\xf6rn,b@x.com,2024-03-01"


def test_invalid_utf8_in_jsonl_is_quarantined(tmp_path):
    good = b'{"id": "1", "name": "Ann", "email": "a@x.com", "ts": "2024-03-01"}\n'
    bad = b'{"id": "2", "name": "Bj\xf6rn", "email": "b@x.com", "ts": "2024-03-01"}\n'
    write(tmp_path, "shop.jsonl", good + bad)
    result = read(make_source(path="shop.jsonl", format="jsonl"), tmp_path)
    assert result.table.num_rows == 1
    assert reasons(result)[0] == "invalid UTF-8 at byte 24 of the line"


def test_duplicate_ids_below_the_ratio_keep_the_first(tmp_path):
    rows = good_rows(200) + "7,Impostor,i@x.com,2024-03-05\n"
    write(tmp_path, "shop.csv", HEADER + "\n" + rows)
    result = read(make_source(), tmp_path)
    assert result.table.num_rows == 200
    assert reasons(result) == ["duplicate record id, first seen in file shop.csv row 7"]
    staged = result.table.filter(pa.compute.equal(result.table["_record_id"], "7")).to_pylist()
    assert staged[0]["name"] == "Person 7"


def test_duplicate_ids_above_the_ratio_fail_the_source(tmp_path):
    rows = good_rows(20) + good_rows(5)  # 5 of 25 rows repeat an id
    write(tmp_path, "shop.csv", HEADER + "\n" + rows)
    message = contract_error(make_source(), tmp_path)
    assert "5 of 25 rows (20.0%) repeat a record id in column id" in message
    assert "max_duplicate_id_ratio" in message and "shop.csv" in message
    result = read(make_source(max_duplicate_id_ratio=0.5), tmp_path)
    assert result.quarantine.num_rows == 5


def test_missing_record_id_and_wrong_field_count_are_quarantined(tmp_path):
    rows = good_rows(2) + " ,Nobody,n@x.com,2024-03-01\n" + "9,Short\n"
    write(tmp_path, "shop.csv", HEADER + "\n" + rows)
    result = read(make_source(), tmp_path)
    assert result.table.num_rows == 2
    assert reasons(result) == ["missing record id in column id", "expected 4 fields, found 2"]
    assert result.quarantine.column("raw_content").to_pylist()[1] == "9,Short"


def test_unparseable_timestamps_below_and_above_the_ratio(tmp_path):
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(9) + "10,X,x@x.com,next tuesday\n")
    result = read(make_source(), tmp_path)
    assert result.table.num_rows == 9
    assert reasons(result) == [
        "unparseable or out-of-range timestamp 'next tuesday' in column ts"
    ]
    message = contract_error(make_source(max_unparseable_timestamp_ratio=0.05), tmp_path)
    assert "1 of 10 rows (10.0%) have a missing or unparseable timestamp in column ts" in message


def test_profiles_may_lack_a_timestamp_but_events_may_not(tmp_path):
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(9) + "10,X,x@x.com,\n")
    event = read(make_source(max_unparseable_timestamp_ratio=0.5), tmp_path)
    assert reasons(event) == ["missing timestamp in column ts"]
    profile = read(make_source(kind="profile"), tmp_path)
    assert profile.table.num_rows == 10 and profile.quarantine.num_rows == 0


def test_one_megabyte_field(tmp_path):
    note = "x" * 1_048_576
    write(tmp_path, "shop.csv", HEADER + ",note\n" + f'1,Ann,a@x.com,2024-03-01,"{note}"\n')
    result = read(make_source(), tmp_path)
    assert result.table.column("note").to_pylist() == [note]


def test_long_quarantined_content_is_truncated_with_a_marker(tmp_path):
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(1) + "2," + "y" * 20_000 + "\n")
    result = read(make_source(), tmp_path)
    raw = result.quarantine.column("raw_content").to_pylist()[0]
    assert raw.endswith("...[truncated, 20002 characters in total]")
    assert len(raw) < 10_100


def test_quoted_fields_with_newlines_and_commas(tmp_path):
    rows = ('1,"Smith, Ann","a@x.com",2024-03-01\n'
            '2,"Line one\nline two, with comma\r\nand ""quotes""",b@x.com,2024-03-02\n'
            "3,Cy,c@x.com,2024-03-03\n")
    write(tmp_path, "shop.csv", HEADER + "\n" + rows)
    result = read(make_source(), tmp_path)
    assert result.table.column("name").to_pylist() == [
        "Smith, Ann", 'Line one\nline two, with comma\r\nand "quotes"', "Cy",
    ]
    assert result.table.column("_row_number").to_pylist() == [1, 2, 3]


def test_file_deleted_between_glob_and_open(tmp_path, monkeypatch):
    write(tmp_path, "shop_1.csv", HEADER + "\n" + good_rows(2))
    write(tmp_path, "shop_2.csv", HEADER + "\n" + good_rows(2, start=3))
    real_resolve = readers.resolve_source_files

    def resolve_then_delete(source, data_dir):
        files = real_resolve(source, data_dir)
        files[1].unlink()
        return files

    monkeypatch.setattr(readers, "resolve_source_files", resolve_then_delete)
    message = contract_error(make_source(path="shop_*.csv"), tmp_path)
    assert "shop_2.csv disappeared or could not be read" in message
    assert "FileNotFoundError" in message


def test_file_unreadable_mid_read(tmp_path, monkeypatch):
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(5))
    real_open = builtins.open

    class FailingFile:
        def __init__(self, handle):
            self.handle, self.lines = handle, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def __iter__(self):
            for line in self.handle:
                self.lines += 1
                if self.lines == 3:
                    raise OSError(5, "Input/output error")
                yield line

        def read(self, *args):  # the column-wise path reads the file at once
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(readers_csv, "open", lambda *a, **k: FailingFile(real_open(*a, **k)),
                        raising=False)
    message = contract_error(make_source(), tmp_path)
    assert "shop.csv disappeared or could not be read" in message
    assert "Input/output error" in message


def test_glob_matching_several_files(tmp_path):
    (tmp_path / "daily").mkdir()
    write(tmp_path, "daily/shop_2024-03-02.csv", HEADER + "\n" + good_rows(2, start=3)
          + "1,Again,a@x.com,2024-03-02\n")
    write(tmp_path, "daily/shop_2024-03-01.csv", HEADER + ",channel\n"
          + "1,Person 1,p1@example.com,2024-03-01,web\n2,Person 2,p2@x.com,2024-03-01,shop\n")
    result = read(make_source(path="daily/shop_*.csv"), tmp_path)
    assert [p.name for p in result.files] == ["shop_2024-03-01.csv", "shop_2024-03-02.csv"]
    assert result.rows_read == 5 and result.table.num_rows == 4
    assert result.rows_per_file == {"daily/shop_2024-03-01.csv": 2, "daily/shop_2024-03-02.csv": 3}
    rows = {r["_record_id"]: r for r in result.table.to_pylist()}
    # Record 1 appears again in the later file: an update, not a duplicate.
    assert rows["1"]["name"] == "Again" and rows["1"]["_file"] == "daily/shop_2024-03-02.csv"
    assert rows["2"]["channel"] == "shop" and rows["3"]["channel"] is None
    assert reasons(result) == ["superseded by daily/shop_2024-03-02.csv row 3"]
    assert result.quarantine.column("file").to_pylist() == ["daily/shop_2024-03-01.csv"]
    assert json.loads(result.quarantine.column("raw_content")[0].as_py())["name"] == "Person 1"
    assert result.rows_superseded == 1
    assert result.extra_columns == ["channel"]


def test_superseding_chains_across_files_and_duplicates_within_a_file_keep_the_first(tmp_path):
    write(tmp_path, "shop_1.csv", HEADER + "\n" + good_rows(100))
    write(tmp_path, "shop_2.csv", HEADER + "\n5,Second,s@x.com,2024-03-02\n5,Twin,t@x.com,2024-03-02\n")
    write(tmp_path, "shop_3.csv", HEADER + "\n5,Third,t@x.com,2024-03-03\n")
    result = read(make_source(path="shop_*.csv"), tmp_path)
    assert result.rows_read == 103 and result.table.num_rows == 100
    staged = result.table.filter(pa.compute.equal(result.table["_record_id"], "5")).to_pylist()
    assert [r["name"] for r in staged] == ["Third"]
    assert sorted(reasons(result)) == [
        "duplicate record id, first seen in file shop_2.csv row 1",
        "superseded by shop_2.csv row 1",
        "superseded by shop_3.csv row 1",
    ]


def test_file_filter_reads_only_the_files_it_accepts(tmp_path):
    write(tmp_path, "shop_1.csv", HEADER + "\n" + good_rows(3))
    write(tmp_path, "shop_2.csv", HEADER + "\n" + good_rows(2, start=10))
    result = read_source(make_source(path="shop_*.csv"), tmp_path, file_filter=lambda p: p.name == "shop_2.csv")
    assert [p.name for p in result.files] == ["shop_2.csv"]
    assert result.rows_read == 2 and result.rows_per_file == {"shop_2.csv": 2}
    nothing = read_source(make_source(path="shop_*.csv"), tmp_path, file_filter=lambda p: False)
    assert nothing.rows_read == 0 and nothing.files == [] and nothing.table.num_rows == 0


def test_parquet_input_becomes_text(tmp_path):
    table = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["Ann", "Bob", None],
        "email": ["a@x.com", "b@x.com", "c@x.com"],
        "ts": pa.array([1_709_287_200_000_000] * 3, pa.timestamp("us")),
        "vip": [True, False, None],
        "tags": [["a", "b"], [], None],
    })
    pq.write_table(table, tmp_path / "shop.parquet")
    result = read(make_source(path="shop.parquet", format="parquet"), tmp_path)
    rows = result.table.to_pylist()
    assert [r["_record_id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["ts"].startswith("2024-03-01 10:00:00")
    assert [r["vip"] for r in rows] == ["true", "false", None]
    assert json.loads(rows[0]["tags"]) == ["a", "b"] and rows[2]["tags"] is None
    assert result.extra_columns == ["vip", "tags"]


def test_parquet_with_duplicate_and_missing_ids(tmp_path):
    pq.write_table(pa.table({"id": ["1", "1", None], "name": ["A", "B", "C"],
                             "email": ["a", "b", "c"], "ts": ["2024-03-01"] * 3}),
                   tmp_path / "shop.parquet")
    result = read(make_source(path="shop.parquet", format="parquet",
                              max_duplicate_id_ratio=0.5), tmp_path)
    assert result.table.num_rows == 1
    assert sorted(reasons(result)) == [
        "duplicate record id, first seen in file shop.parquet row 1",
        "missing record id in column id",
    ]
    raw = dict(zip(reasons(result), result.quarantine.column("raw_content").to_pylist()))
    assert json.loads(raw["missing record id in column id"]) == {"id": None, "name": "C", "email": "c",
                                                                 "ts": "2024-03-01"}
    assert result.quarantine.column("row_number").to_pylist() == [3, 2]


def test_semicolon_csv_with_german_columns_and_day_first_dates(tmp_path):
    content = ("Kunden-Nr;Vorname;Nachname;E-Mail;Geburtsdatum;Geändert am\n"
               "K1;Jürgen;Müller;j.mueller@example.de;03.11.1975;01.03.2024 09:15\n"
               "K2;Anna;Schmidt;anna@example.de;29.02.1980;15.03.2024\n"
               "K3;Max;Mustermann;max@example.de;31.12.1990;32.13.2024\n")
    write(tmp_path, "kunden.csv", content.encode("cp1252"))
    source = SourceConfig(
        name="kunden", path="kunden.csv", format="csv", record_id="Kunden-Nr", kind="profile",
        timestamp="Geändert am", timestamp_formats=["%d.%m.%Y %H:%M"], date_formats=["%d.%m.%Y"],
        default_region="DE", csv={"delimiter": ";", "encoding": "cp1252"},
        mapping={"first_name": "Vorname", "last_name": "Nachname", "email": "E-Mail",
                 "date_of_birth": "Geburtsdatum"},
        max_unparseable_timestamp_ratio=0.5,
    )
    result = read(source, tmp_path)
    assert result.table.column_names[3:] == [
        "Kunden-Nr", "Vorname", "Nachname", "E-Mail", "Geburtsdatum", "Geändert am",
    ]
    assert result.table.column("Vorname").to_pylist() == ["Jürgen", "Anna"]
    assert result.table.column("Geburtsdatum").to_pylist() == ["03.11.1975", "29.02.1980"]
    assert reasons(result) == [
        "unparseable or out-of-range timestamp '32.13.2024' in column Geändert am"
    ]
    assert result.extra_columns == []


def test_no_files_match(tmp_path):
    message = contract_error(make_source(path="exports/*.csv"), tmp_path)
    assert "no files match 'exports/*.csv'" in message


def test_jsonl_with_only_blank_lines(tmp_path):
    write(tmp_path, "shop.jsonl", "\n  \n\n")
    message = contract_error(make_source(path="shop.jsonl", format="jsonl"), tmp_path)
    assert "shop.jsonl" in message and "only blank lines" in message


def test_jsonl_missing_required_key_everywhere(tmp_path):
    write(tmp_path, "shop.jsonl", '{"id": "1", "name": "Ann", "ts": "2024-03-01"}\n')
    message = contract_error(make_source(path="shop.jsonl", format="jsonl"), tmp_path)
    assert "missing required column(s) email; columns found: id, name, ts" in message


@pytest.mark.slow
def test_a_million_csv_rows_read_quickly(tmp_path):
    columns = ["id", "name", "email", "ts", *(f"c{i}" for i in range(11))]
    with open(tmp_path / "shop.csv", "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(columns) + "\n")
        filler = ",".join(f"value {i}" for i in range(11))
        for i in range(1_000_000):
            timestamp = f"2024-03-01T10:{i % 60:02d}:00"
            handle.write(f"{i},Person {i},p{i}@example.com,{timestamp},{filler}\n")
    # CPU time rather than wall time: the test machine may be shared with other jobs.
    started = time.process_time()
    result = read(make_source(), tmp_path)
    elapsed = time.process_time() - started
    assert result.table.num_rows == 1_000_000
    assert elapsed < 15, f"took {elapsed:.1f} s of CPU time"


def test_strict_timestamp_check_stands_in_without_the_standardize_parser(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cdp_pipelines.standardize.dates", None)
    write(tmp_path, "shop.csv", HEADER + "\n" + good_rows(3)
          + "4,D,d@x.com,01.03.2024\n5,E,e@x.com,2024-02-30\n")
    result = read(make_source(date_formats=["%d.%m.%Y"], max_unparseable_timestamp_ratio=0.5),
                  tmp_path)
    assert result.table.column("_record_id").to_pylist() == ["1", "2", "3", "4"]
    assert reasons(result) == [
        "unparseable or out-of-range timestamp '2024-02-30' in column ts"
    ]
