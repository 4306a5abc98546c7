"""Delimited text files, read with the csv module so quoted commas and line breaks survive.

Undecodable bytes are decoded with ``surrogateescape`` so one bad row cannot stop the file: the
row that contains them is quarantined ("invalid UTF-8 in column X"), the rest is staged.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cdp_pipelines.ingest.sources_config import SourceConfig

if TYPE_CHECKING:
    from cdp_pipelines.ingest.readers import RowStager

# Large free-text fields (notes, review bodies) must not abort a file; 2**31 - 1 fits a C long.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def read_csv_file(path: Path, source: SourceConfig, stager: RowStager) -> None:
    """Feed every data row of one CSV file to the stager."""
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
