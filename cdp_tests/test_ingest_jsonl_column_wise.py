"""The column-wise JSON lines path (Arrow) stages and quarantines exactly what the row reader
(orjson, line by line) does, and hands every file it cannot read identically to the row reader."""

import json

import ingest_paths
import pytest
from ingest_paths import assert_same

from cdp_pipelines.ingest import readers_jsonl
from cdp_pipelines.ingest.sources_config import SourceConfig


def source() -> SourceConfig:
    return SourceConfig(name="web", path="web*.jsonl", format="jsonl", record_id="id", kind="event", timestamp="ts",
                        mapping={"email": "email"}, max_duplicate_id_ratio=0.5, max_unparseable_timestamp_ratio=0.5)


def lines(*objects) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objects)


GOOD = [{"id": f"E{i}", "ts": "2024-03-01T10:00:00Z", "email": f"p{i}@x.com", "url": None} for i in range(1, 6)]

CASES = {
    "clean": (lines(*GOOD), True),
    "keys first seen late, absent keys, bom and crlf": (
        b"\xef\xbb\xbf" + lines(*GOOD, {"ts": "2024-03-01", "id": "E9", "extra": "x"}, {"id": "E10", "ts": "2024-03-01"})
        .replace(b"\n", b"\r\n"), True),
    "missing ids, padded ids, duplicates and bad timestamps": (
        lines(*GOOD, {"ts": "2024-03-01"}, {"id": " \u3000", "ts": "2024-03-01"}, {"id": " E7\x1f", "ts": "2024-03-01"},
              {"id": "E3", "ts": "2024-03-02"}, {"id": "E8", "ts": "2024-02-30"}, {"id": "E11", "ts": None}, {}),
        True),
    "escapes and unicode": (lines(*GOOD, {"id": "E6", "ts": "2024-03-01", "email": "caf\u00e9 \"q\"\n\\"}), True),
    "no final newline": (lines(*GOOD).rstrip(b"\n"), True),
    "a blank line": (lines(*GOOD[:2]) + b"  \n" + lines(*GOOD[2:]), False),
    "a broken line": (lines(*GOOD) + b'{"id": "E6", "ts": \n', False),
    "two objects on one line": (lines(*GOOD) + b'{"id": "E6", "ts": "2024-03-01"} {"id": "E7", "ts": "2024-03-01"}\n',
                                False),
    "a number": (lines(*GOOD, {"id": "E6", "ts": "2024-03-01", "email": 15}), False),
    "a boolean": (lines(*GOOD, {"id": "E6", "ts": "2024-03-01", "vip": True}), False),
    "a nested value": (lines(*GOOD, {"id": "E6", "ts": "2024-03-01", "tags": ["a"]}), False),
    "a line that is not an object": (lines(*GOOD) + b'["E6"]\n', False),
    "a repeated key": (lines(*GOOD) + b'{"id": "E6", "id": "E7", "ts": "2024-03-01"}\n', False),
    "invalid utf-8": (lines(*GOOD) + b'{"id": "E6", "ts": "2024-03-01", "email": "caf\xe9"}\n', False),
}


def read_both(tmp_path, monkeypatch, files: dict[str, bytes]):
    return ingest_paths.read_both(tmp_path, monkeypatch, files, source(), readers_jsonl, readers_jsonl.read_jsonl_file)


@pytest.mark.parametrize("case", list(CASES))
def test_column_wise_and_row_reader_agree(tmp_path, monkeypatch, case):
    content, column_wise = CASES[case]
    fast, slow, went_column_wise = read_both(tmp_path, monkeypatch, {"web.jsonl": content})
    assert went_column_wise is column_wise
    assert_same(fast, slow)


def test_later_files_supersede_earlier_ones_the_same_way(tmp_path, monkeypatch):
    files = {"web_1.jsonl": lines(*GOOD), "web_2.jsonl": lines({"id": "E2", "ts": "2024-04-01", "email": "new@x.com"})}
    fast, slow, went_column_wise = read_both(tmp_path, monkeypatch, files)
    assert went_column_wise
    assert_same(fast, slow)
    assert fast.rows_superseded == 1


@pytest.mark.parametrize("value, column_wise", [("yes", True), (True, False), ("2024-03-01T10:00:00Z", False)])
def test_keys_first_met_after_the_sampled_lines_must_come_out_as_text(tmp_path, monkeypatch, value, column_wise):
    # Only the first line is sampled for the schema; Arrow infers the rest itself, and would
    # read a late boolean as a boolean (row reader: "true") and a late timestamp as a timestamp.
    monkeypatch.setattr(readers_jsonl, "SCHEMA_SAMPLE_BYTES", len(lines(GOOD[0])))
    content = lines(*GOOD, {"id": "E6", "ts": "2024-03-01", "late": value})
    fast, slow, went_column_wise = read_both(tmp_path, monkeypatch, {"web.jsonl": content})
    assert went_column_wise is column_wise
    assert_same(fast, slow)
