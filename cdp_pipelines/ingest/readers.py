"""Read a declared source into an Arrow table of text, losing nothing.

Every data row a file contains ends up either staged (``IngestResult.table``) or quarantined with
a reason (``IngestResult.quarantine``); ``rows_read`` always equals the sum of the two. Problems
with a whole file or source (missing files, missing columns, too many bad rows) raise
``SourceContractError`` with a message naming the file, the column and the problem.

Across the files of one source (sorted by path) a later row with a record id seen in an earlier
file is an update: it supersedes the earlier row, which goes to the quarantine with the reason
"superseded by <file> row N". Within one file a repeated id is a duplicate and the first wins.

Format-specific parsing lives in readers_csv / readers_jsonl / readers_parquet; the checks every
row goes through (record id, timestamp, duplicates) and the table building live here.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cdp_pipelines.ingest import readers_csv, readers_jsonl, readers_parquet
from cdp_pipelines.ingest.errors import SourceContractError
from cdp_pipelines.ingest.sources_config import SourceConfig, resolve_source_files

META_COLUMNS = ("_record_id", "_file", "_row_number")
MAX_RAW_CHARS = 10_000
CHUNK_ROWS = 50_000

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string()),
        pa.field("file", pa.string(), nullable=False),
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("raw_content", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
"""Schema of ``IngestResult.quarantine`` (and of the quality.quarantine table)."""


@dataclass(frozen=True)
class IngestResult:
    """What reading one source produced; ``rows_read == table.num_rows + quarantine.num_rows``."""

    table: pa.Table
    quarantine: pa.Table
    rows_read: int
    files: list[Path]
    extra_columns: list[str]
    source: str = ""
    rows_per_file: dict[str, int] = field(default_factory=dict)
    """Rows read per file label (path relative to the data folder), for incremental tracking."""
    rows_superseded: int = 0
    """Rows quarantined because a later file of the source carries the same record id."""

    @property
    def rows_staged(self) -> int:
        return self.table.num_rows

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.num_rows


_FORMAT_READERS: dict[str, Callable[[Path, SourceConfig, RowStager], None]] = {
    "csv": readers_csv.read_csv_file,
    "jsonl": readers_jsonl.read_jsonl_file,
    "parquet": readers_parquet.read_parquet_file,
}


def read_source(
    source: SourceConfig, data_dir: Path, file_filter: Callable[[Path], bool] | None = None
) -> IngestResult:
    """Read every file of ``source`` under ``data_dir`` as text, quarantining bad rows.

    ``file_filter`` keeps only the files it returns True for (incremental runs pass one that
    accepts files not ingested before); when it leaves no file, the result is simply empty.
    """
    data_dir = Path(data_dir)
    files = resolve_source_files(source, data_dir)
    if file_filter is not None:
        files = [path for path in files if file_filter(path)]
    stager = RowStager(source)
    read_file = _FORMAT_READERS[source.format]
    for path in files:
        stager.start_file(_file_label(path, data_dir))
        try:
            with _cyclic_gc_paused():
                read_file(path, source, stager)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SourceContractError(
                f"source {source.name!r}: file {path} disappeared or could not be read "
                f"while ingesting ({type(exc).__name__}: {reason})",
                source=source.name,
                file=str(path),
            ) from None
        stager.finish_file()
    return stager.result(files)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing.

    Millions of short-lived row lists trigger repeated full collections that cost more than
    the parsing itself; the readers create no reference cycles, so nothing leaks meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def timestamp_validator(formats: list[str]) -> Callable[[list[str | None]], list[bool]]:
    """A column-wise test of which values parse as timestamps, by standardization's rules.

    Uses the vectorised parser of cdp_pipelines.standardize.dates (ISO 8601, the source's
    formats, then the project-wide formats, within the configured range); a strict
    ISO-or-strptime test stands in when that module cannot be imported. Its configuration is
    loaded here, once, so a configuration problem is not mistaken for an unreadable source file.
    """
    try:
        import pandas as pd

        from cdp_pipelines.standardize.config import default_config
        from cdp_pipelines.standardize.dates import parse_timestamps
    except ImportError:
        return lambda values: [
            v is not None and _strictly_parses(v.strip(), formats) for v in values
        ]
    config = default_config()
    all_formats = tuple(dict.fromkeys([*formats, *config.timestamp_formats]))

    def validity(values: list[str | None]) -> list[bool]:
        parsed = parse_timestamps(pd.Series(values, dtype="str"), all_formats, config)
        return parsed.notna().tolist()

    return validity


def _strictly_parses(text: str, formats: list[str]) -> bool:
    try:
        datetime.fromisoformat(text)
        return True
    except ValueError:
        pass
    for fmt in formats:
        try:
            datetime.strptime(text, fmt)
            return True
        except ValueError:
            continue
    return False


def _file_label(path: Path, data_dir: Path) -> str:
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return path.name


def _visible_text(text: str) -> str:
    """Text safe to store: undecodable bytes shown as \\xNN, long content cut with a marker."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(text) > MAX_RAW_CHARS:
        text = text[:MAX_RAW_CHARS] + f"...[truncated, {len(text)} characters in total]"
    return text



class RowStager:
    """Applies the row checks of one source and collects staged and quarantined rows.

    Format readers call ``start_file`` (via read_source), ``set_columns`` for a header or
    schema, then once per data row ``add_values`` / ``add_object`` / ``quarantine``. Rows wait
    in a chunk so timestamps can be checked column-wise; the surviving rows then become Arrow
    columns and the chunk is dropped.
    """

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.rows_read = 0
        self._timestamp_validity = timestamp_validator(source.timestamp_parse_formats())
        self._first_seen: dict[str, int] = {}
        self._file_labels: list[str] = []
        self._all_columns: dict[str, None] = {}
        self._tables: list[pa.Table] = []
        self._quarantine: dict[str, list[Any]] = {field.name: [] for field in QUARANTINE_SCHEMA}
        self._duplicates = 0
        self._duplicate_examples: list[str] = []
        self._bad_timestamps = 0
        self._bad_timestamp_examples: list[str] = []
        self._rows_per_file: dict[str, int] = {}
        self._rows_at_file_start = 0
        self._superseded: dict[int, tuple[str, int]] = {}

    # -- per file -------------------------------------------------------------------------
    def start_file(self, label: str) -> None:
        self._file_labels.append(label)
        self._file_index = len(self._file_labels) - 1
        self._rows_at_file_start = self.rows_read
        self.file_label = label
        self._file_columns: dict[str, None] = {}
        self._format_raw: Callable[[Any], str] = str
        self._id_index = self._ts_index = -1
        self._chunk_ids: list[str] = []
        self._chunk_numbers: list[int] = []
        self._chunk_rows: list[Any] = []
        self._chunk_raw: list[Any] = []

    def set_raw_formatter(self, format_raw: Callable[[Any], str]) -> None:
        """How to show a row's original content in the quarantine (called only when needed)."""
        self._format_raw = format_raw

    def set_columns(self, columns: list[str]) -> None:
        """Declare the file's columns (from a header or schema) and check the contract."""
        seen: dict[str, int] = {}
        for position, column in enumerate(columns, start=1):
            if not column.strip():
                raise self.contract_error(f"column {position} of the header has no name")
            if column in seen:
                raise self.contract_error(
                    f"column {column!r} appears twice in the header "
                    f"(positions {seen[column]} and {position})",
                    column=column,
                )
            seen[column] = position
        for column in columns:
            self._add_column(column)
        self.check_required_columns()
        self._id_index = columns.index(self.source.record_id)
        if self.source.timestamp:
            self._ts_index = columns.index(self.source.timestamp)

    def set_object_columns(self, columns: list[str]) -> None:
        """Declare columns met as object keys (JSON lines read column-wise), in first-seen
        order, as ``add_object`` declares them; the required columns must be among them."""
        for column in columns:
            if column not in self._file_columns:
                self._add_column(column)
        self.check_required_columns()
        names = list(self._file_columns)
        self._id_index = names.index(self.source.record_id)
        self._ts_index = names.index(self.source.timestamp) if self.source.timestamp else -1

    def check_required_columns(self) -> None:
        missing = [c for c in self.source.required_column_names() if c not in self._file_columns]
        if missing:
            found = ", ".join(self._file_columns) or "(none)"
            raise self.contract_error(
                f"missing required column(s) {', '.join(missing)}; columns found: {found}",
                column=missing[0],
            )

    def contract_error(self, problem: str, column: str | None = None) -> SourceContractError:
        return SourceContractError(
            f"source {self.source.name!r}, file {self.file_label}: {problem}",
            source=self.source.name,
            file=self.file_label,
            column=column,
        )

    def finish_file(self) -> None:
        self._flush()
        self._rows_per_file[self.file_label] = self.rows_read - self._rows_at_file_start

    # -- per row --------------------------------------------------------------------------
    def add_values(self, row_number: int, values: list[str | None]) -> None:
        """A row given as values in the order passed to ``set_columns``."""
        self.rows_read += 1
        record_id = values[self._id_index]
        if record_id is None or not (record_id := record_id.strip()):
            self._quarantine_row(row_number, None, values,
                                 f"missing record id in column {self.source.record_id}")
            return
        self._chunk_ids.append(record_id)
        self._chunk_numbers.append(row_number)
        self._chunk_rows.append(values)
        self._chunk_raw.append(values)
        if len(self._chunk_rows) >= CHUNK_ROWS:
            self._flush()

    def add_object(self, row_number: int, values: dict[str, str | None], raw: Any) -> None:
        """A row given as column -> text (JSON lines); keys not seen before become columns."""
        self.rows_read += 1
        if not values.keys() <= self._file_columns.keys():
            for column in values:
                if column not in self._file_columns:
                    self._add_column(column)
        record_id = values.get(self.source.record_id)
        if record_id is None or not (record_id := record_id.strip()):
            self._quarantine_row(row_number, None, raw,
                                 f"missing record id in column {self.source.record_id}")
            return
        self._chunk_ids.append(record_id)
        self._chunk_numbers.append(row_number)
        self._chunk_rows.append(values)
        self._chunk_raw.append(raw)
        if len(self._chunk_rows) >= CHUNK_ROWS:
            self._flush()

    def add_table(self, table: pa.Table, raw_of_row: Callable[[int], Any] | None = None) -> None:
        """Every row of a file parsed at once (text columns in the file's order), numbered from
        1 and checked in batches of CHUNK_ROWS."""
        for start in range(0, table.num_rows, CHUNK_ROWS):
            batch = table.slice(start, CHUNK_ROWS)
            self.add_columns(start + 1, [column.combine_chunks() for column in batch.columns], raw_of_row)

    def add_columns(
        self, first_row_number: int, columns: list[pa.Array], raw_of_row: Callable[[int], Any] | None = None,
    ) -> None:
        """Rows given column-wise (in the order of the file's columns) and numbered from
        ``first_row_number``: the checks of ``add_values``, without a Python step per row.
        ``raw_of_row(row_number)`` gives a quarantined row's original content (default: its
        values)."""
        self._flush()  # rows added one at a time before keep their place
        count = len(columns[0])
        if count == 0:
            return
        self.rows_read += count
        numbers = pa.array(range(first_row_number, first_row_number + count), pa.int64())
        given = columns

        def raw(number: int) -> Any:
            if raw_of_row is not None:
                return raw_of_row(number)
            return [column[number - first_row_number].as_py() for column in given]

        ids = pc.utf8_trim_whitespace(columns[self._id_index])  # the characters str.strip() removes
        present = pc.fill_null(pc.not_equal(ids, ""), False)
        if not pc.all(present).as_py():
            for position in pc.indices_nonzero(pc.invert(present)).to_pylist():
                self._quarantine_row(first_row_number + position, None, raw(first_row_number + position),
                                     f"missing record id in column {self.source.record_id}")
            columns = [column.filter(present) for column in columns]
            ids, numbers = ids.filter(present), numbers.filter(present)
            if len(ids) == 0:
                return
        timestamps = columns[self._ts_index].to_pylist() if self.source.timestamp else None
        number_list = numbers.to_pylist()
        keep = self._passing(ids.to_pylist(), number_list, timestamps, lambda i: raw(number_list[i]))
        if len(keep) < len(ids):
            if not keep:
                return
            chosen = pa.array(keep, pa.int64())
            columns = [column.take(chosen) for column in columns]
            ids, numbers = ids.take(chosen), numbers.take(chosen)
        arrays = {"_record_id": ids, "_file": pa.array([self.file_label] * len(ids), pa.string()),
                  "_row_number": numbers}
        for column, values in zip(self._file_columns, columns):
            arrays[column] = values
        self._tables.append(pa.table(arrays))

    def quarantine(self, row_number: int, record_id: str | None, raw: Any, reason: str) -> None:
        """Set a row aside with its original content and the reason it cannot be staged."""
        self.rows_read += 1
        self._quarantine_row(row_number, record_id, raw, reason)

    def _quarantine_row(
        self, row_number: int, record_id: str | None, raw: Any, reason: str
    ) -> None:
        q = self._quarantine
        q["source"].append(self.source.name)
        q["record_id"].append(_visible_text(record_id) if record_id else None)
        q["file"].append(self.file_label)
        q["row_number"].append(row_number)
        q["raw_content"].append(_visible_text(self._format_raw(raw)))
        q["reason"].append(reason)

    def _add_column(self, column: str) -> None:
        if column in META_COLUMNS:
            raise self.contract_error(
                f"column {column!r} clashes with a column the ingest adds; rename it in the file",
                column=column,
            )
        self._file_columns[column] = None
        self._all_columns[column] = None

    # -- per chunk ------------------------------------------------------------------------
    def _flush(self) -> None:
        rows = self._chunk_rows
        if not rows:
            return
        keep = self._rows_passing_checks()
        ids, numbers = self._chunk_ids, self._chunk_numbers
        if len(keep) < len(rows):
            ids = [ids[i] for i in keep]
            numbers = [numbers[i] for i in keep]
            rows = [rows[i] for i in keep]
        self._chunk_ids, self._chunk_numbers, self._chunk_rows, self._chunk_raw = [], [], [], []
        if not rows:
            return
        columns = list(self._file_columns)
        if isinstance(rows[0], dict):
            struct = pa.struct([pa.field(column, pa.string()) for column in columns])
            texts = pa.array(rows, type=struct).flatten()  # absent keys become nulls
        else:
            texts = [pa.array(values, pa.string()) for values in zip(*rows)]
        arrays = {
            "_record_id": pa.array(ids, pa.string()),
            "_file": pa.array([self.file_label] * len(rows), pa.string()),
            "_row_number": pa.array(numbers, pa.int64()),
        }
        for column, values in zip(columns, texts):
            arrays[column] = values
        self._tables.append(pa.table(arrays))

    def _rows_passing_checks(self) -> list[int]:
        """Chunk positions passing the timestamp and duplicate checks; quarantine the others."""
        rows, raws = self._chunk_rows, self._chunk_raw
        timestamps: list[str | None] | None = None
        if self.source.timestamp:
            if isinstance(rows[0], dict):
                timestamps = [row.get(self.source.timestamp) for row in rows]
            else:
                timestamps = [row[self._ts_index] for row in rows]
        return self._passing(self._chunk_ids, self._chunk_numbers, timestamps, raws.__getitem__)

    def _passing(
        self, ids: list[str], numbers: list[int], timestamps: list[str | None] | None,
        raw_of: Callable[[int], Any],
    ) -> list[int]:
        """Positions of rows passing the timestamp and duplicate checks; the others are
        quarantined with ``raw_of(position)`` as their content."""
        source = self.source
        valid: list[bool] = []
        if timestamps is not None:
            valid = self._timestamp_validity(timestamps)
        file_bits = self._file_index << 40
        first_seen = self._first_seen
        if timestamps is None or all(valid):
            # Fast path for the usual chunk: every id new and distinct, checked at C speed.
            chunk_first = dict(zip(reversed(ids), (file_bits | n for n in reversed(numbers))))
            if len(chunk_first) == len(ids) and chunk_first.keys().isdisjoint(first_seen.keys()):
                first_seen.update(chunk_first)
                return list(range(len(ids)))
        keep: list[int] = []
        for i, record_id in enumerate(ids):
            if timestamps is not None and not valid[i]:
                value = timestamps[i]
                if value is None or not value.strip():
                    if source.kind == "event":
                        self._count_bad_timestamp("(missing)")
                        self._quarantine_row(numbers[i], record_id, raw_of(i),
                                             f"missing timestamp in column {source.timestamp}")
                        continue
                else:
                    self._count_bad_timestamp(value)
                    reason = (f"unparseable or out-of-range timestamp {value[:60]!r} "
                              f"in column {source.timestamp}")
                    self._quarantine_row(numbers[i], record_id, raw_of(i), reason)
                    continue
            position = file_bits | numbers[i]
            first = first_seen.setdefault(record_id, position)
            if first != position and (first >> 40) != self._file_index:
                # A later file updates the record: its row wins, the earlier one is set aside.
                self._superseded[first] = (self.file_label, numbers[i])
                first_seen[record_id] = position
            elif first != position:
                self._count_duplicate(record_id)
                self._quarantine_row(numbers[i], record_id, raw_of(i),
                                     f"duplicate record id, first seen in file "
                                     f"{self._file_labels[first >> 40]} row "
                                     f"{first & ((1 << 40) - 1)}")
                continue
            keep.append(i)
        return keep

    def _count_bad_timestamp(self, value: str) -> None:
        self._bad_timestamps += 1
        if len(self._bad_timestamp_examples) < 3:
            self._bad_timestamp_examples.append(value[:60])

    def _count_duplicate(self, record_id: str) -> None:
        self._duplicates += 1
        if len(self._duplicate_examples) < 3:
            self._duplicate_examples.append(record_id)

    # -- whole source ---------------------------------------------------------------------
    def result(self, files: list[Path]) -> IngestResult:
        """The staged and quarantined rows, after the source-level contract checks."""
        self._check_ratios()
        names = [*META_COLUMNS, *self._all_columns]
        schema = pa.schema(
            [pa.field(n, pa.int64() if n == "_row_number" else pa.string()) for n in names]
        )
        if self._tables:
            table = pa.concat_tables(self._tables, promote_options="default").select(names)
            table = table.cast(schema)
        else:
            table = schema.empty_table()
        if self._superseded:
            table = self._set_aside_superseded(table)
        quarantine = pa.table(self._quarantine, schema=QUARANTINE_SCHEMA)
        if self.rows_read != table.num_rows + quarantine.num_rows:
            raise RuntimeError(
                f"source {self.source.name!r}: {self.rows_read} rows read but "
                f"{table.num_rows} staged + {quarantine.num_rows} quarantined"
            )
        declared = self.source.declared_columns()
        return IngestResult(
            table=table,
            quarantine=quarantine,
            rows_read=self.rows_read,
            files=list(files),
            extra_columns=[c for c in self._all_columns if c not in declared],
            source=self.source.name,
            rows_per_file=dict(self._rows_per_file),
            rows_superseded=len(self._superseded),
        )

    def _set_aside_superseded(self, table: pa.Table) -> pa.Table:
        """Move rows superseded by a later file from the staged table to the quarantine."""
        label_index = {label: i for i, label in enumerate(self._file_labels)}
        file_index = pa.array([label_index[f] for f in table.column("_file").to_pylist()], pa.int64())
        positions = pc.bit_wise_or(pc.shift_left(file_index, 40), table.column("_row_number"))
        superseded = pc.is_in(positions, value_set=pa.array(list(self._superseded), pa.int64()))
        q = self._quarantine
        for row in table.filter(superseded).to_pylist():
            by_file, by_row = self._superseded[(label_index[row["_file"]] << 40) | row["_row_number"]]
            values = {k: v for k, v in row.items() if k not in META_COLUMNS and v is not None}
            q["source"].append(self.source.name)
            q["record_id"].append(_visible_text(row["_record_id"]))
            q["file"].append(row["_file"])
            q["row_number"].append(row["_row_number"])
            q["raw_content"].append(_visible_text(json.dumps(values, ensure_ascii=False)))
            q["reason"].append(f"superseded by {by_file} row {by_row}")
        return table.filter(pc.invert(superseded))

    def _check_ratios(self) -> None:
        source, rows = self.source, self.rows_read
        if rows == 0:
            return
        files = ", ".join(self._file_labels)
        if self._duplicates / rows > source.max_duplicate_id_ratio:
            raise SourceContractError(
                f"source {source.name!r} ({files}): {self._duplicates} of {rows} rows "
                f"({self._duplicates / rows:.1%}) repeat a record id in column "
                f"{source.record_id}, above the allowed {source.max_duplicate_id_ratio:.1%} "
                f"(max_duplicate_id_ratio); for example {', '.join(self._duplicate_examples)}",
                source=source.name,
                column=source.record_id,
            )
        if self._bad_timestamps / rows > source.max_unparseable_timestamp_ratio:
            accepted = ", ".join(["ISO 8601", *source.timestamp_parse_formats()])
            examples = ", ".join(map(repr, self._bad_timestamp_examples))
            raise SourceContractError(
                f"source {source.name!r} ({files}): {self._bad_timestamps} of {rows} rows "
                f"({self._bad_timestamps / rows:.1%}) have a missing or unparseable timestamp in "
                f"column {source.timestamp}, above the allowed "
                f"{source.max_unparseable_timestamp_ratio:.1%} (max_unparseable_timestamp_ratio); "
                f"for example {examples}; accepted formats: {accepted}",
                source=source.name,
                column=source.timestamp,
            )
