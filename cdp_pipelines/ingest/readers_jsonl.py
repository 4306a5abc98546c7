"""JSON lines files: one JSON object per line, parsed with orjson.

A line that is not valid UTF-8, not valid JSON, or not an object is quarantined with the
parser's message; nested values are kept as JSON text so nothing is flattened away.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from cdp_pipelines.ingest.sources_config import SourceConfig

if TYPE_CHECKING:
    from cdp_pipelines.ingest.readers import RowStager

_BOM = b"\xef\xbb\xbf"
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number",
                    bool: "a boolean", type(None): "null"}


def read_jsonl_file(path: Path, source: SourceConfig, stager: RowStager) -> None:
    """Feed every non-blank line of one JSON lines file to the stager."""
    if path.stat().st_size == 0:
        raise stager.contract_error(
            "the file is empty (0 bytes), expected one JSON object per line"
        )
    stager.set_raw_formatter(_raw_line)
    dumps, loads = orjson.dumps, orjson.loads
    row_number = 0
    with open(path, "rb") as handle:
        for line in handle:
            if row_number == 0 and line.startswith(_BOM):
                line = line[len(_BOM):]
            raw = line.rstrip(b"\r\n")
            line = raw.strip()
            if not line:
                continue  # a blank line holds no record
            row_number += 1
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                stager.quarantine(row_number, None, raw, _parse_failure(line, exc))
                continue
            if type(record) is not dict:
                kind = _JSON_TYPE_NAMES.get(type(record), type(record).__name__)
                stager.quarantine(row_number, None, raw,
                                  f"expected a JSON object, found {kind}")
                continue
            values = {
                key: value if value.__class__ is str
                else None if value is None
                else dumps(value).decode()
                for key, value in record.items()
            }
            stager.add_object(row_number, values, raw)
    if row_number == 0:
        raise stager.contract_error("contains only blank lines, expected one JSON object per line")
    stager.check_required_columns()


def _parse_failure(line: bytes, error: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start + 1} of the line"
    return f"malformed JSON: {error}"


def _raw_line(line: bytes) -> str:
    return line.decode("utf-8", "backslashreplace")
