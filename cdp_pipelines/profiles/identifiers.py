"""Every identifier each customer is known by, one row per (customer, type, value)."""

from __future__ import annotations

import duckdb

from cdp_pipelines.sql_text import quote_identifier as quoted
from cdp_pipelines.vocabulary import IDENTIFIER_TYPES as VOCABULARY_IDENTIFIER_TYPES

IDENTIFIER_TYPES = VOCABULARY_IDENTIFIER_TYPES
CUSTOMER_IDENTIFIERS = "profiles.customer_identifiers"


def records_sql(xref: str) -> str:
    """A customer's records: the xref joined to the canonical columns of every source record."""
    return (
        f"(SELECT x.customer_id, r.* FROM {xref} AS x "
        f"JOIN standardized.identity_records AS r USING (source, source_record_id))"
    )


def identifier_rows_sql(xref: str, types: tuple[str, ...] = IDENTIFIER_TYPES) -> str:
    """One row per (record, identifier) with a value: customer_id, source, source_record_id,
    observed_at, identifier_type, identifier_value (missing values are left out by UNPIVOT)."""
    casts = ", ".join(f"CAST({quoted(t)} AS VARCHAR) AS {quoted(t)}" for t in types)
    return f"""(
        UNPIVOT (SELECT customer_id, source, source_record_id, observed_at, {casts} FROM {records_sql(xref)})
        ON {', '.join(quoted(t) for t in types)}
        INTO NAME identifier_type VALUE identifier_value
    )"""


def build_customer_identifiers(con: duckdb.DuckDBPyConnection, xref: str) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
    con.execute(f"CREATE OR REPLACE TABLE {CUSTOMER_IDENTIFIERS} AS {customer_identifiers_select(xref)}")


def customer_identifiers_select(xref: str) -> str:
    """One row per (customer, identifier type, value) of the customers in `xref`.

    Sources are gathered with list_distinct(list(...)) rather than list(DISTINCT ...), which
    DuckDB evaluates with a hash table per group and which cost a third of the statement."""
    return f"""
        SELECT customer_id, identifier_type, identifier_value,
               min(observed_at) AS first_seen, max(observed_at) AS last_seen,
               count(*) AS records, list_sort(list_distinct(list(source))) AS sources
        FROM {identifier_rows_sql(xref)}
        WHERE trim(identifier_value) <> ''
        GROUP BY ALL
        ORDER BY customer_id, identifier_type, identifier_value
        """


def identifier_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(f"SELECT identifier_type, count(*) FROM {CUSTOMER_IDENTIFIERS} GROUP BY ALL ORDER BY 1").fetchall()
    return {t: int(n) for t, n in rows}
