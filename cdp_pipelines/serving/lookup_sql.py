"""The one-round-trip lookup query, installed as the SQL function <stable>.lookup_customers.

Kept in one place so the function, the Python client and docs/serving.md describe the same SQL.
"""

from __future__ import annotations

from functools import lru_cache

from psycopg import sql

FUNCTION_NAME = "lookup_customers"

CONTEXT_TABLE = "customer_context"
"""Built in PostgreSQL at publish time: one ready jsonb document per customer, so a lookup is two
index probes (identity_lookup, then this table) instead of assembling the document per call."""

# {v} is the version schema being published. One row per customer of customer_360.
CONTEXT_DOCUMENT_SELECT = """
SELECT p.customer_id, jsonb_build_object(
    'profile', to_jsonb(p) - '{{_publish_version,customer_id}}'::text[],
    'contact_context', (SELECT to_jsonb(c) - '{{_publish_version,customer_id}}'::text[]
                        FROM {v}.contact_context c WHERE c.customer_id = p.customer_id),
    'sentiment', (SELECT to_jsonb(t) - '{{_publish_version,customer_id}}'::text[]
                  FROM {v}.customer_sentiment t WHERE t.customer_id = p.customer_id),
    'escalations', COALESCE((SELECT jsonb_agg(to_jsonb(e) - '{{_publish_version,customer_id}}'::text[])
                             FROM {v}.escalations e WHERE e.customer_id = p.customer_id), '[]'::jsonb),
    'segments', COALESCE((SELECT jsonb_agg(m.segment ORDER BY m.segment)
                          FROM {v}.segment_membership m WHERE m.customer_id = p.customer_id), '[]'::jsonb)
) AS doc
FROM {v}.customer_360 p
"""

# {s} is the stable schema (default cdp). $1 = identifier types, $2 = identifier values
# (parallel arrays, already normalised). One jsonb document per matching customer.
# No DISTINCT or NULL filter on the input pairs: the equality join never matches a NULL value,
# and a pair given twice collapses in the GROUP BY (array_agg DISTINCT keeps matched_on clean).
LOOKUP_FUNCTION_BODY = """
SELECT COALESCE(d.doc, '{{}}'::jsonb) || jsonb_build_object(
    'customer_id', h.customer_id,
    'matched_on', to_jsonb(h.matched_on),
    'candidates', count(*) OVER (),
    'version', h.version
)
FROM (
    SELECT il.customer_id,
           array_agg(DISTINCT il.identifier_type ORDER BY il.identifier_type) AS matched_on,
           max(il._publish_version) AS version
    FROM unnest($1::text[], $2::text[]) AS w(identifier_type, identifier_value)
    JOIN {s}.identity_lookup il
      ON il.identifier_type = w.identifier_type
     AND il.identifier_value = w.identifier_value
    GROUP BY il.customer_id
) h
LEFT JOIN {s}.customer_context d ON d.customer_id = h.customer_id
ORDER BY h.customer_id
"""


def build_context_sql(version_schema: str) -> sql.Composed:
    """CREATE TABLE <version>.customer_context AS the documents, for the version being published."""
    quoted = sql.Identifier(version_schema).as_string(None)
    return sql.SQL("CREATE TABLE {} AS {}").format(
        sql.Identifier(version_schema, CONTEXT_TABLE), sql.SQL(CONTEXT_DOCUMENT_SELECT.format(v=quoted))
    )


def function_body(stable_schema: str) -> str:
    quoted = sql.Identifier(stable_schema).as_string(None)
    return LOOKUP_FUNCTION_BODY.format(s=quoted)


def create_function_sql(stable_schema: str) -> sql.Composed:
    """CREATE OR REPLACE FUNCTION <stable>.lookup_customers(text[], text[]) RETURNS SETOF jsonb."""
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {fn}(identifier_types text[], identifier_values text[]) "
        "RETURNS SETOF jsonb LANGUAGE sql STABLE PARALLEL SAFE AS {body}"
    ).format(
        fn=sql.Identifier(stable_schema, FUNCTION_NAME),
        body=sql.Literal(function_body(stable_schema)),
    )


@lru_cache(maxsize=64)
def call_sql(stable_schema: str, identifiers: int = 1) -> str:
    """What a client sends for `identifiers` (type, value) pairs: one statement, 2 x n text
    parameters, the types first (`ARRAY[$1, ..., $n]`, then the values), each document as text.

    The arrays are built from scalar parameters rather than passed as text[] parameters: with
    ARRAY[$1] the planner knows how many pairs there are, so the generic plan of the prepared
    statement costs the same as a custom one and PostgreSQL keeps it. With a text[] parameter it
    estimates 10 pairs, prefers a fresh custom plan and re-plans on every call (about 0.3 ms of
    server CPU, three times the cost of the lookup itself). The document is read as text and
    decoded by the client (lookup.decode_document), skipping psycopg's per-row loader lookup.
    """
    if identifiers < 1:
        raise ValueError("a lookup needs at least one identifier")
    marks = ", ".join(["%s"] * identifiers)
    fn = sql.Identifier(stable_schema, FUNCTION_NAME).as_string(None)
    return f"SELECT l::text FROM {fn}(ARRAY[{marks}]::text[], ARRAY[{marks}]::text[]) AS l"
