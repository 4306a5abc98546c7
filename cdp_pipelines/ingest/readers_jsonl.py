"""JSON lines files: one JSON object per line.

A file whose values are all strings or nulls is first parsed by Arrow's JSON reader, in C++ and
column-wise. It takes only files Arrow reads without a complaint and with one row per line; any
other file (a blank or broken line, a number, a nested value, a repeated key) goes to the row
reader, which parses each line with orjson: a line that is not valid UTF-8, not valid JSON, or
not an object is quarantined with the parser's message, and nested values are kept as JSON text
so nothing is flattened away. Both paths stage and quarantine exactly the same rows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from cdp_pipelines.ingest.sources_config import SourceConfig

if TYPE_CHECKING:
    from cdp_pipelines.ingest.readers import RowStager

_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\x0b\x0c"
_BLANK_INNER_LINE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")
# The column-wise path holds the file and its table in memory; larger files stream row by row.
COLUMN_WISE_MAX_BYTES = 512 * 1024 * 1024
SCHEMA_SAMPLE_BYTES = 256 * 1024
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number",
                    bool: "a boolean", type(None): "null"}


def read_jsonl_file(path: Path, source: SourceConfig, stager: RowStager, column_wise: bool = True) -> None:
    """Feed every non-blank line of one JSON lines file to the stager (column-wise when Arrow can)."""
    size = path.stat().st_size
    if size == 0:
        raise stager.contract_error(
            "the file is empty (0 bytes), expected one JSON object per line"
        )
    stager.set_raw_formatter(_raw_line)
    if column_wise and size <= COLUMN_WISE_MAX_BYTES and _read_column_wise(path, stager):
        return
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


def _read_column_wise(path: Path, stager: RowStager) -> bool:
    """Parse the file with Arrow and hand it to the stager in batches. Returns False, having
    staged nothing, when the file needs the row reader (see the module docstring)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if _has_blank_line(data):
        return False  # the row reader skips blank lines without counting them
    # Arrow would infer timestamps and numbers from text; every key met in the first lines is
    # declared text, and a key first met later must come out as text too (checked below).
    keys: dict[str, None] = {}
    for line in data[:SCHEMA_SAMPLE_BYTES].split(b"\n")[:-1] or [data]:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        if type(record) is not dict:
            return False
        keys.update(dict.fromkeys(record))
    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(use_threads=True),
            parse_options=pa_json.ParseOptions(
                explicit_schema=pa.schema([(key, pa.string()) for key in keys]),
                newlines_in_values=False, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return False
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if table.num_rows != lines or table.num_rows == 0:
        return False  # two objects on one line, or no rows: the row reader decides
    if not all(pa.types.is_string(t) or pa.types.is_null(t) for t in table.schema.types):
        return False  # numbers, booleans and nested values are kept as JSON text by the row reader
    stager.set_object_columns(table.column_names)
    split: list[bytes] = []

    def raw_of_row(row_number: int) -> bytes:
        """The line as the row reader would show it (only quarantined rows need it)."""
        if not split:
            split.extend(data.split(b"\n"))
        return split[row_number - 1].rstrip(b"\r")

    stager.add_table(table.cast(pa.schema([(name, pa.string()) for name in table.column_names])), raw_of_row)
    return True


def _has_blank_line(data: bytes) -> bool:
    """Whether a line of ``data`` holds nothing but whitespace (a final newline ends the last
    line; it does not start an empty one)."""
    first = data.split(b"\n", 1)[0]
    last = data[data.rfind(b"\n") + 1:]
    return (not first.strip(_WHITESPACE) or bool(_BLANK_INNER_LINE.search(data))
            or (bool(last) and not last.strip(_WHITESPACE)))
