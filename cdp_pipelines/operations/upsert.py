"""Merge an incremental batch of staged rows into raw.<source>.

Rules, chosen so an incremental run ends where a full refresh over the same files would:
- a batch row whose record id is new is inserted (``new``);
- a batch row whose id is already in raw from an earlier file (by path) replaces it; the old
  row goes to the quarantine as "superseded by <file> row N" (``changed``, unless identical);
- a batch row whose id is already in raw from a *later* file loses and is quarantined instead;
- rows of a changed file that is read again replace that file's earlier rows silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from cdp_pipelines.operations.tracking import RECORD_CHANGES
from cdp_pipelines.sql_text import quote_identifier

META = ("_record_id", "_file", "_row_number")


@dataclass(frozen=True)
class UpsertCounts:
    new: int
    changed: int
    unchanged: int
    batch_rows_superseded: int
    """Batch rows that lost to a row of a later file already in raw (quarantined)."""
    previous_rows_superseded: int
    """Rows already in raw replaced by a batch row of a later file (quarantined)."""

    @property
    def staged(self) -> int:
        return self.new + self.changed + self.unchanged


def upsert_raw(
    con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table, source: str, run_id: str,
    run_files: list[str], quarantine_table: str,
) -> UpsertCounts:
    """Apply the batch to ``table`` (created when missing) and log touched ids in record_changes."""
    con.register("_batch_arrow", batch)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _batch AS SELECT * FROM _batch_arrow")
    finally:
        con.unregister("_batch_arrow")
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _batch LIMIT 0")
    con.execute(f"DELETE FROM {RECORD_CHANGES} WHERE run_id = ? AND source = ?", [run_id, source])
    if batch.num_rows == 0:
        con.execute("DROP TABLE _batch")
        return UpsertCounts(new=0, changed=0, unchanged=0, batch_rows_superseded=0, previous_rows_superseded=0)
    existing = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    for column in batch.column_names:
        if column not in existing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(column)} VARCHAR")
    columns = [c for c in (r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()) if c not in META]
    in_batch = set(batch.column_names)
    same = " AND ".join(
        f"r.{quote_identifier(c)} IS NOT DISTINCT FROM " + (f"b.{quote_identifier(c)}" if c in in_batch else "NULL")
        for c in columns
    ) or "TRUE"
    con.execute("CREATE OR REPLACE TEMP TABLE _run_files (file VARCHAR)")
    con.execute("INSERT INTO _run_files SELECT unnest(?::VARCHAR[])", [list(run_files)])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _matched AS
        SELECT b._record_id, b._file AS b_file, b._row_number AS b_row, r._file AS r_file,
               r._row_number AS r_row, r._file IN (SELECT file FROM _run_files) AS same_file_again,
               {same} AS identical
        FROM _batch b JOIN {table} r ON r._record_id = b._record_id"""
    )
    # Batch rows beaten by a later file already ingested: quarantined, not staged.
    con.execute(
        f"""INSERT INTO {quarantine_table}
        SELECT 'ingest', ?, m._record_id, m.b_file, m.b_row, CAST(to_json(b) AS VARCHAR),
               'superseded by ' || m.r_file || ' row ' || m.r_row, ?, now()
        FROM _matched m JOIN _batch b ON b._record_id = m._record_id
        WHERE NOT m.same_file_again AND m.r_file > m.b_file""",
        [source, run_id],
    )
    batch_lost = con.execute(
        "SELECT count(*) FROM _matched WHERE NOT same_file_again AND r_file > b_file").fetchall()[0][0]
    con.execute(
        f"""INSERT INTO {quarantine_table}
        SELECT 'ingest', ?, r._record_id, r._file, r._row_number, CAST(to_json(r) AS VARCHAR),
               'superseded by ' || m.b_file || ' row ' || m.b_row, ?, now()
        FROM _matched m JOIN {table} r ON r._record_id = m._record_id
        WHERE NOT m.same_file_again AND m.r_file < m.b_file""",
        [source, run_id],
    )
    previous_superseded = con.execute(
        "SELECT count(*) FROM _matched WHERE NOT same_file_again AND r_file < b_file").fetchall()[0][0]
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _winners AS
        SELECT b.*, CASE WHEN m._record_id IS NULL THEN 'new' WHEN m.identical THEN 'unchanged'
                         ELSE 'changed' END AS _change
        FROM _batch b LEFT JOIN _matched m ON m._record_id = b._record_id
        WHERE m._record_id IS NULL OR m.same_file_again OR m.r_file < m.b_file"""
    )
    con.execute(f"DELETE FROM {table} WHERE _record_id IN (SELECT _record_id FROM _winners)")
    con.execute(f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (_change) FROM _winners")
    con.execute(
        f"INSERT INTO {RECORD_CHANGES} SELECT ?, ?, _record_id, _change FROM _winners WHERE _change <> 'unchanged'",
        [run_id, source],
    )
    counts = dict(con.execute("SELECT _change, count(*) FROM _winners GROUP BY ALL").fetchall())
    for temp in ("_batch", "_matched", "_winners", "_run_files"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return UpsertCounts(
        new=counts.get("new", 0), changed=counts.get("changed", 0), unchanged=counts.get("unchanged", 0),
        batch_rows_superseded=batch_lost, previous_rows_superseded=previous_superseded,
    )
