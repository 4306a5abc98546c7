"""Delimited text files: quoted commas and line breaks survive, and a bad row never stops a file.

A UTF-8 file is first parsed by Arrow's CSV reader, in C++ and column-wise. Arrow reads quoting
as the csv module does (doubled quotes, quotes inside unquoted fields, text after a closing
quote; cdp_tests/test_ingest_csv_column_wise.py compares them), but takes only files it reads
without a single complaint: any row it rejects (a wrong number of fields, undecodable bytes), a
NUL byte, or a header that is not one plain line sends the whole file to the row reader.

The row reader uses the csv module and decodes undecodable bytes with ``surrogateescape``, so
the row that holds them is quarantined ("invalid UTF-8 in column X") and the rest is staged.
Both paths stage and quarantine exactly the same rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pa_csv

from cdp_pipelines.ingest.sources_config import SourceConfig

if TYPE_CHECKING:
    from cdp_pipelines.ingest.readers import RowStager

# Large free-text fields (notes, review bodies) must not abort a file; 2**31 - 1 fits a C long.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# The column-wise path holds the file and its table in memory; larger files stream row by row.
COLUMN_WISE_MAX_BYTES = 512 * 1024 * 1024


def read_csv_file(path: Path, source: SourceConfig, stager: RowStager, column_wise: bool = True) -> None:
    """Feed every data row of one CSV file to the stager (column-wise when Arrow can)."""
    options = source.csv_options()
    encoding = options.encoding
    encoding_name = codecs.lookup(encoding).name
    if encoding_name == "utf-8":
        encoding = "utf-8-sig"  # tolerate a byte-order mark from spreadsheet exports
    label = "UTF-8" if encoding_name == "utf-8" else encoding
    if path.stat().st_size == 0:
        raise stager.contract_error("the file is empty (0 bytes), expected a header and data rows")

    def as_line(fields: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=options.delimiter, quotechar=options.quotechar,
                   lineterminator="").writerow(fields)
        return buffer.getvalue()

    stager.set_raw_formatter(as_line)
    if (column_wise and encoding_name == "utf-8" and path.stat().st_size <= COLUMN_WISE_MAX_BYTES
            and _read_column_wise(path, options, stager)):
        return
    with open(path, encoding=encoding, errors="surrogateescape", newline="") as handle:
        flagged = [False]  # set when the record being parsed contains an undecodable byte
        reader = csv.reader(_flagging_lines(handle, flagged), delimiter=options.delimiter,
                            quotechar=options.quotechar, strict=False)
        try:
            _read_rows(reader, stager, flagged, label)
        except csv.Error as exc:
            raise stager.contract_error(
                f"cannot be parsed as CSV near line {reader.line_num}: {exc}"
            ) from None


def _read_rows(reader: Iterator[list[str]], stager: RowStager, flagged: list[bool],
               encoding_label: str) -> None:
    header = next((row for row in reader if row), None)
    if header is None:
        raise stager.contract_error("contains only blank lines, expected a header and data rows")
    if flagged[0]:
        bad = [name for name in header if _ESCAPED_BYTE.search(name)]
        raise stager.contract_error(f"invalid {encoding_label} in the header (column(s) "
                                    f"{', '.join(ascii(b) for b in bad)})")
    stager.set_columns(header)
    width = len(header)
    id_index = header.index(stager.source.record_id)
    row_number = 0
    for row in reader:
        if not row:
            continue  # a blank line holds no data
        row_number += 1
        if len(row) != width:
            flagged[0] = False
            stager.quarantine(row_number, None, row, f"expected {width} fields, found {len(row)}")
            continue
        if flagged[0]:
            flagged[0] = False
            bad = [name for name, value in zip(header, row) if _ESCAPED_BYTE.search(value)]
            if bad:
                record_id = None if header[id_index] in bad else row[id_index]
                plural = "s" if len(bad) > 1 else ""
                stager.quarantine(row_number, record_id, row,
                                  f"invalid {encoding_label} in column{plural} {', '.join(bad)}")
                continue
        stager.add_values(row_number, row)
    if row_number == 0:
        raise stager.contract_error(
            f"has a header ({width} columns) but no data rows"
        )


def _flagging_lines(handle: Iterator[str], flagged: list[bool]) -> Iterator[str]:
    """Yield lines unchanged, flagging any that hold undecodable bytes (cheap for ASCII)."""
    for line in handle:
        if not line.isascii() and _ESCAPED_BYTE.search(line):
            flagged[0] = True
        yield line


def _read_column_wise(path: Path, options, stager: RowStager) -> bool:
    """Parse a UTF-8 file with Arrow and hand it to the stager in batches. Returns False, having
    staged nothing, when the file needs the row reader (see the module docstring)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if b"\0" in data:
        return False  # rare, and not compared between the two parsers: the row reader decides
    header, header_end = _header(data, options)
    if header is None:
        return False
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)[header_end:]),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pa_csv.ParseOptions(delimiter=options.delimiter, quote_char=options.quotechar,
                                              double_quote=True, escape_char=False, newlines_in_values=True,
                                              ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                  null_values=[], check_utf8=True),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    if table.num_rows == 0:
        return False  # the row reader names the problem
    stager.set_columns(header)
    stager.add_table(table)
    return True


def _header(data: bytes, options) -> tuple[list[str] | None, int]:
    """The header row and the byte offset where data rows start, as the row reader sees them:
    blank lines before it are skipped and a UTF-8 byte-order mark is dropped. (None, 0) when the
    header is not one plain line the csv module reads the same way (a quoted line break in it,
    undecodable bytes)."""
    position = 3 if data.startswith(codecs.BOM_UTF8) else 0
    while True:
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position:end + 1]
        if not line:
            return None, 0
        if line.strip(b"\r\n"):
            break
        position += len(line)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, 0
    try:
        rows = list(csv.reader([text], delimiter=options.delimiter, quotechar=options.quotechar, strict=False))
    except csv.Error:
        return None, 0  # a carriage return inside the line: the row reader decides
    if len(rows) != 1 or text.count(options.quotechar) % 2:
        return None, 0
    return rows[0], position + len(line)

