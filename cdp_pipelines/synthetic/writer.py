"""Serialise tables, the ground truth and the story list with byte-for-byte stable output."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cdp_pipelines.synthetic.tables import Table


def _format_timestamps(values: list[Any], style: str) -> list[str | None]:
    """Epoch seconds to text in one vectorised pass; None stays None."""
    raw = np.array([-1 if v is None else v for v in values], dtype="int64")
    text = np.datetime_as_string(raw.astype("datetime64[s]"), unit="s").tolist()
    suffix_style = style == "iso_z"
    return [
        None if v is None else (t + "Z" if suffix_style else t.replace("T", " "))
        for v, t in zip(values, text)
    ]


def sorted_rows(table: Table) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows in time order (ties broken by id) with timestamps rendered; plus matching person ids."""
    spec, rows = table.spec, table.rows
    order = sorted(range(len(rows)), key=lambda i: (rows[i][spec.order_by], rows[i][spec.id_column]))
    rows = [rows[i] for i in order]
    persons = [table.person_ids[i] for i in order]
    for column, style in spec.timestamps.items():
        rendered = _format_timestamps([row.get(column) for row in rows], style)
        for row, value in zip(rows, rendered):
            row[column] = value
    return rows, persons


def write_table(rows: list[dict[str, Any]], table: Table, path: Path) -> None:
    columns = table.spec.columns
    if table.spec.file_format == "jsonl":
        with open(path, "wb") as handle:
            for row in rows:
                handle.write(orjson.dumps({c: row.get(c) for c in columns}))
                handle.write(b"\n")
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


def write_ground_truth(path: Path, entries: list[tuple[str, str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("source", "source_record_id", "person_id"))
        writer.writerows(entries)


def write_stories(path: Path, stories: list[dict[str, Any]]) -> None:
    with open(path, "wb") as handle:
        for story in stories:
            handle.write(orjson.dumps(story))
            handle.write(b"\n")
