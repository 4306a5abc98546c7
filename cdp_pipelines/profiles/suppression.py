"""Erasure requests: a list of hashed identifiers, and the customers it removes from every profile.

The list (CSV: request_id, identifier_type, identifier_hash, requested_at) holds only SHA-256
hashes of identifiers normalised exactly as standardization normalises them, so the list keeps
no personal data and still matches every later record of the same person: suppression is
recomputed from the hashes on every run.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from cdp_pipelines import settings
from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.profiles.identifiers import IDENTIFIER_TYPES, identifier_rows_sql
from cdp_pipelines.sql_text import literal
from cdp_pipelines.standardize.identifiers import UnusableIdentifierError, standardized_identifier

ENV_SUPPRESSION_FILE = settings.ENV_SUPPRESSION_FILE
COLUMNS = ("request_id", "identifier_type", "identifier_hash", "requested_at")
SUPPRESSED = "profiles.suppressed_customers"
AUDIT = "profiles.erasure_audit"
ACTIVE_XREF = "profiles.active_xref"
XREF = "identity.customer_xref"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def suppression_file() -> Path:
    """The erasure list: CDP_SUPPRESSION_FILE, default data/suppression/erasure_requests.csv."""
    return settings.suppression_file()


def normalise_identifier(identifier_type: str, value: str, default_region: str = "GB") -> str:
    """The standardized form of an identifier, the one stored in the warehouse and hashed."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise ProfilesConfigError(f"unknown identifier type {identifier_type!r}; allowed: {list(IDENTIFIER_TYPES)}")
    try:
        return standardized_identifier(identifier_type, value or "", default_region)
    except UnusableIdentifierError as error:
        raise ProfilesConfigError(f"{error}; nothing recorded") from None


def identifier_hash(normalised_value: str) -> str:
    """SHA-256 hex of the normalised value (DuckDB's sha256() gives the same string)."""
    return hashlib.sha256(normalised_value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    identifier_type: str
    identifier_hash: str
    requested_at: str


def add_erasure_request(
    identifier_type: str, value: str, request_id: str, path: Path | None = None,
    default_region: str = "GB", requested_at: datetime | None = None,
) -> ErasureRequest:
    """Append the hash of one identifier to the erasure list (created with its header if missing).

    Recording the same request, type and identifier twice changes nothing. An existing list is
    checked as the pipeline checks it first: a line appended to a list the next run refuses
    would stop every run.
    """
    request_id = (request_id or "").strip()
    if not request_id or any(ch in request_id for ch in ",\n\r\""):
        raise ProfilesConfigError("request id must be non-empty, without commas, quotes or line breaks")
    path = Path(path) if path is not None else suppression_file()
    if path.is_dir():
        raise ProfilesConfigError(f"erasure list {path} is a folder; give a CSV file")
    digest = identifier_hash(normalise_identifier(identifier_type, value, default_region))
    when = (requested_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    request = ErasureRequest(request_id, identifier_type, digest, when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    existing = read_erasure_list(path) if path.is_file() and path.stat().st_size else []
    for row_id, row_type, row_hash, row_at in existing:
        if (row_id, row_type, row_hash) == (request_id, identifier_type, digest):
            return ErasureRequest(request_id, identifier_type, digest, row_at or "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_header = not path.exists() or path.stat().st_size == 0
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if write_header:
                writer.writerow(COLUMNS)
            writer.writerow([request.request_id, request.identifier_type, request.identifier_hash,
                             request.requested_at])
    except OSError as error:
        raise ProfilesConfigError(f"cannot write erasure list {path}: {error.strerror or error}") from None
    return request


def read_erasure_list(path: Path) -> list[tuple[str, str, str, str | None]]:
    """The list's rows (request_id, identifier_type, identifier_hash, requested_at), checked:
    the header, the number of fields, known identifier types and hashes rather than identifiers.

    A missing file is an error rather than an empty list: a mistyped path must not silently
    bring erased people back.
    """
    path = Path(path)
    if not path.is_file():
        raise ProfilesConfigError(
            f"erasure list {path} not found; create it with the header {','.join(COLUMNS)} "
            f"or point {ENV_SUPPRESSION_FILE} at the right file"
        )
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _checked_rows(path, csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ProfilesConfigError(f"{path}: not a readable CSV erasure list ({error})") from None


def _checked_rows(path: Path, reader) -> list[tuple[str, str, str, str | None]]:
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != list(COLUMNS):
        raise ProfilesConfigError(f"{path}: header must be {','.join(COLUMNS)}, found {header}")
    rows, problems = [], []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            problems.append(f"line {line}: expected {len(COLUMNS)} fields, found {len(row)}")
            continue
        request_id, identifier_type, digest, requested_at = (cell.strip() for cell in row)
        if not request_id:
            problems.append(f"line {line}: empty request_id")
        if identifier_type not in IDENTIFIER_TYPES:
            problems.append(f"line {line}: unknown identifier_type {identifier_type!r}")
        if not _HASH.match(digest):
            problems.append(f"line {line}: identifier_hash must be 64 lower-case hex characters "
                            "(a SHA-256 hash, never the identifier itself)")
        rows.append((request_id, identifier_type, digest, requested_at or None))
    if problems:
        raise ProfilesConfigError(f"{path}: " + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
    return rows


def load_erasure_requests(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Validate the list (read_erasure_list) and load it as temp table erasure_requests; returns
    its row count."""
    rows = read_erasure_list(path)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE erasure_requests (request_id VARCHAR, identifier_type VARCHAR, "
        "identifier_hash VARCHAR, requested_at TIMESTAMP)"
    )
    if rows:
        con.executemany(
            "INSERT INTO erasure_requests VALUES (?, ?, ?, try_cast(replace(?, 'Z', '') AS TIMESTAMP))", rows
        )
    return len(rows)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchall()[0][0])


def apply_erasure_requests(con: duckdb.DuckDBPyConnection, path: Path, applied_at: datetime) -> dict:
    """Rebuild profiles.suppressed_customers from the list and fold this run into profiles.erasure_audit.

    Every identifier of every record is hashed on each run, so records arriving after the
    request (same email, new order) are caught again. suppressed_at is kept from earlier runs.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
    requests = load_erasure_requests(con, path)
    now = literal(applied_at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" "))
    previous = (
        f"SELECT customer_id, request_id, matched_identifier_type, suppressed_at FROM {SUPPRESSED}"
        if _table_exists(con, SUPPRESSED) else
        "SELECT NULL::VARCHAR customer_id, NULL::VARCHAR request_id, NULL::VARCHAR matched_identifier_type, "
        "NULL::TIMESTAMP suppressed_at WHERE FALSE"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE suppression_matches AS
        WITH ids AS (
            SELECT customer_id, identifier_type, sha256(identifier_value) AS identifier_hash
            FROM {identifier_rows_sql(XREF)}
            WHERE identifier_type IN (SELECT identifier_type FROM erasure_requests)
        )
        SELECT DISTINCT i.customer_id, e.request_id, e.identifier_type AS matched_identifier_type
        FROM ids i JOIN erasure_requests e USING (identifier_type, identifier_hash)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {SUPPRESSED} AS
        WITH previous AS ({previous})
        SELECT m.customer_id, m.request_id, m.matched_identifier_type,
               coalesce(p.suppressed_at, TIMESTAMP {now}) AS suppressed_at
        FROM suppression_matches m
        LEFT JOIN previous p USING (customer_id, request_id, matched_identifier_type)
        ORDER BY m.customer_id, m.request_id
        """
    )
    con.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {AUDIT} (
            request_id VARCHAR, identifier_type VARCHAR, customers_suppressed BIGINT,
            records_suppressed BIGINT, first_applied_at TIMESTAMP, last_applied_at TIMESTAMP)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {AUDIT} AS
        WITH this_run AS (
            SELECT e.request_id, e.identifier_type,
                   count(DISTINCT s.customer_id) AS customers_suppressed,
                   count(x.source_record_id) AS records_suppressed
            FROM (SELECT DISTINCT request_id, identifier_type FROM erasure_requests) e
            LEFT JOIN {SUPPRESSED} s ON s.request_id = e.request_id AND s.matched_identifier_type = e.identifier_type
            LEFT JOIN {XREF} x ON x.customer_id = s.customer_id
            GROUP BY ALL
        )
        SELECT coalesce(r.request_id, a.request_id) AS request_id,
               coalesce(r.identifier_type, a.identifier_type) AS identifier_type,
               coalesce(r.customers_suppressed, a.customers_suppressed) AS customers_suppressed,
               coalesce(r.records_suppressed, a.records_suppressed) AS records_suppressed,
               coalesce(a.first_applied_at, TIMESTAMP {now}) AS first_applied_at,
               CASE WHEN r.request_id IS NULL THEN a.last_applied_at ELSE TIMESTAMP {now} END AS last_applied_at
        FROM this_run r
        FULL OUTER JOIN {AUDIT} a USING (request_id, identifier_type)
        ORDER BY first_applied_at, request_id, identifier_type
        """
    )
    customers, records = con.execute(
        f"SELECT count(DISTINCT customer_id), (SELECT count(*) FROM {XREF} WHERE customer_id IN "
        f"(SELECT customer_id FROM {SUPPRESSED})) FROM {SUPPRESSED}"
    ).fetchall()[0]
    unmatched = con.execute(f"SELECT count(*) FROM {AUDIT} WHERE last_applied_at = TIMESTAMP {now} "
                            "AND customers_suppressed = 0").fetchall()[0][0]
    return {"requests": requests, "customers_suppressed": int(customers), "records_suppressed": int(records),
            "requests_matching_nobody": int(unmatched)}


def active_xref_sql() -> str:
    return f"""
        SELECT x.* FROM {XREF} AS x
        ANTI JOIN (SELECT DISTINCT customer_id FROM {SUPPRESSED}) AS s USING (customer_id)
        """


def build_active_xref(con: duckdb.DuckDBPyConnection, target: str = ACTIVE_XREF) -> None:
    """identity.customer_xref without suppressed customers: the only xref profile models read."""
    con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {active_xref_sql()}")


def update_active_xref(con: duckdb.DuckDBPyConnection, diff: str) -> bool:
    """Bring profiles.active_xref in line with what build_active_xref would write, changing only
    the rows that differ; their keys and old and new customer go to the temporary table `diff`
    (source, source_record_id, old_customer, new_customer). An incremental run changes about as
    many rows as it brings records, so this writes those instead of the whole xref again.
    Returns False, changing nothing, when the two tables' columns differ (rebuild it whole)."""
    columns = con.execute(
        "SELECT schema_name || '.' || table_name, list(column_name || ' ' || data_type ORDER BY column_index) "
        "FROM duckdb_columns() WHERE schema_name || '.' || table_name IN (?, ?) GROUP BY ALL", [XREF, ACTIVE_XREF]
    ).fetchall()
    if len(columns) != 2 or columns[0][1] != columns[1][1]:
        return False
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {diff} AS
        SELECT source, source_record_id, o.customer_id AS old_customer, n.customer_id AS new_customer
        FROM ({active_xref_sql()}) AS n FULL JOIN {ACTIVE_XREF} AS o USING (source, source_record_id)
        WHERE n IS DISTINCT FROM o
        """
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {ACTIVE_XREF} AS a USING {diff} AS d "
                    "WHERE a.source = d.source AND a.source_record_id = d.source_record_id")
        con.execute(f"INSERT INTO {ACTIVE_XREF} BY NAME SELECT n.* FROM ({active_xref_sql()}) AS n "
                    f"SEMI JOIN {diff} USING (source, source_record_id)")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def moved_customers_sql(diff: str) -> str:
    """The customers, old and new, of the rows of `diff` (update_active_xref) whose customer
    changed: what a generation lists."""
    return (f"SELECT old_customer AS customer_id FROM {diff} WHERE old_customer IS DISTINCT FROM new_customer "
            f"UNION SELECT new_customer FROM {diff} WHERE old_customer IS DISTINCT FROM new_customer")


def requests_dropped_from_list(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Requests applied on an earlier run that are no longer on the list (erased people would return)."""
    rows = con.execute(
        f"SELECT DISTINCT request_id FROM {AUDIT} a WHERE NOT EXISTS "
        f"(SELECT 1 FROM {AUDIT} b WHERE b.request_id = a.request_id AND b.last_applied_at = "
        f"(SELECT max(last_applied_at) FROM {AUDIT})) ORDER BY 1"
    ).fetchall()
    return [r for (r,) in rows]
