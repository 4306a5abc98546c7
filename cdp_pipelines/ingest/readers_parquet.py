"""Parquet files, read batch by batch with pyarrow and turned into text like every other format.

Types are not trusted at this stage: numbers, dates and booleans become their text form, nested
values become JSON text, and standardization decides what they mean.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cdp_pipelines.ingest.sources_config import SourceConfig

if TYPE_CHECKING:
    from cdp_pipelines.ingest.readers import RowStager

BATCH_ROWS = 65_536
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def read_parquet_file(path: Path, source: SourceConfig, stager: RowStager) -> None:
    """Feed every row of one Parquet file to the stager."""
    if path.stat().st_size == 0:
        raise stager.contract_error("the file is empty (0 bytes), expected a Parquet file")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise stager.contract_error(f"is not a readable Parquet file: {exc}") from None
    columns = list(parquet.schema_arrow.names)
    stager.set_raw_formatter(lambda values: orjson.dumps(dict(zip(columns, values))).decode(
        "utf-8", "backslashreplace"))
    stager.set_columns(columns)
    if parquet.metadata.num_rows == 0:
        raise stager.contract_error(f"has a schema ({len(columns)} columns) but no rows")
    id_index = columns.index(source.record_id)
    row_number = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            texts, binary = zip(*(_as_text(column) for column in batch.columns))
            suspect = [i for i, is_binary in enumerate(binary) if is_binary]
            if not suspect:
                # Text only: no value can hold undecodable bytes, so the batch goes column-wise.
                stager.add_columns(row_number + 1, [pa.array(values, pa.string()) for values in texts])
                row_number += batch.num_rows
                continue
            for values in zip(*texts):
                row_number += 1
                bad = [columns[i] for i in suspect
                       if values[i] is not None and _ESCAPED_BYTE.search(values[i])]
                if bad:
                    record_id = None if columns[id_index] in bad else values[id_index]
                    plural = "s" if len(bad) > 1 else ""
                    stager.quarantine(row_number, record_id, [_shown(v) for v in values],
                                      f"invalid UTF-8 in column{plural} {', '.join(bad)}")
                    continue
                stager.add_values(row_number, list(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise stager.contract_error(f"is corrupt after row {row_number}: {exc}") from None


def _as_text(column: pa.Array) -> tuple[list[str | None], bool]:
    """Column values as text, and whether they came from raw bytes (and may not be UTF-8)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.to_pylist(), False
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) \
            or pa.types.is_fixed_size_binary(kind):
        return [None if v is None else v.decode("utf-8", "surrogateescape")
                for v in column.to_pylist()], True
    if pa.types.is_nested(kind):
        return [None if v is None else orjson.dumps(v, default=str,
                                                    option=orjson.OPT_NON_STR_KEYS).decode()
                for v in column.to_pylist()], False
    try:
        return pc.cast(column, pa.string()).to_pylist(), False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return [None if v is None else str(v) for v in column.to_pylist()], False


def _shown(value: str | None) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
