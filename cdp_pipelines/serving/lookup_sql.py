"""The one-round-trip lookup query, installed as the SQL function <stable>.lookup_customers.

Kept in one place so the function, the Python client and docs/serving.md describe the same SQL.
"""

from __future__ import annotations

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
LOOKUP_FUNCTION_BODY = """
WITH wanted AS (
    SELECT DISTINCT w.identifier_type, w.identifier_value
    FROM unnest($1::text[], $2::text[]) AS w(identifier_type, identifier_value)
    WHERE w.identifier_value IS NOT NULL
),
hits AS (
    SELECT il.customer_id,
           array_agg(DISTINCT il.identifier_type ORDER BY il.identifier_type) AS matched_on,
           max(il._publish_version) AS version
    FROM wanted w
    JOIN {s}.identity_lookup il
      ON il.identifier_type = w.identifier_type
     AND il.identifier_value = w.identifier_value
    GROUP BY il.customer_id
)
SELECT COALESCE(d.doc, '{{}}'::jsonb) || jsonb_build_object(
    'customer_id', h.customer_id,
    'matched_on', to_jsonb(h.matched_on),
    'candidates', count(*) OVER (),
    'version', h.version
)
FROM hits h
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


def call_sql(stable_schema: str) -> sql.Composed:
    """What a client sends: one statement, two array parameters."""
    return sql.SQL("SELECT * FROM {fn}(%s::text[], %s::text[])").format(
        fn=sql.Identifier(stable_schema, FUNCTION_NAME)
    )
