"""The one-round-trip lookup query, installed as the SQL function <stable>.lookup_customers.

Kept in one place so the function, the Python client and docs/serving.md describe the same SQL.
"""

from __future__ import annotations

from functools import lru_cache

from psycopg import sql

FUNCTION_NAME = "lookup_customers"

RETURN_TYPE = "json"
"""json, not jsonb: the stored document is already JSON text (document.py), so the function only
splices the per-call keys in front of it; jsonb would parse and re-render ~0.5 KB on every call."""

# {s} is the stable schema (default cdp). $1 = identifier types, $2 = identifier values
# (parallel arrays, already normalised). One json document per matching customer: the per-call
# keys, then the stored document's own keys (its text minus the opening brace). `d.doc::text`
# also reads a version published before the documents were stored as text (jsonb then).
# No DISTINCT or NULL filter on the input pairs: the equality join never matches a NULL value,
# and a pair given twice collapses in the GROUP BY (array_agg DISTINCT keeps matched_on clean).
LOOKUP_FUNCTION_BODY = """
SELECT ('{{"customer_id":' || to_json(h.customer_id)::text
        || ',"matched_on":' || to_json(h.matched_on)::text
        || ',"candidates":' || count(*) OVER ()
        || ',"version":' || h.version
        || CASE WHEN d.doc IS NULL THEN '}}' ELSE ',' || substr(d.doc::text, 2) END)::json
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


def function_body(stable_schema: str) -> str:
    quoted = sql.Identifier(stable_schema).as_string(None)
    return LOOKUP_FUNCTION_BODY.format(s=quoted)


def create_function_sql(stable_schema: str) -> sql.Composed:
    """CREATE OR REPLACE FUNCTION <stable>.lookup_customers(text[], text[]) RETURNS SETOF json."""
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {fn}(identifier_types text[], identifier_values text[]) "
        "RETURNS SETOF {rettype} LANGUAGE sql STABLE PARALLEL SAFE AS {body}"
    ).format(
        fn=sql.Identifier(stable_schema, FUNCTION_NAME),
        rettype=sql.SQL(RETURN_TYPE),
        body=sql.Literal(function_body(stable_schema)),
    )


def drop_other_return_type_sql(stable_schema: str) -> sql.Composed:
    """Drop the function if it exists with another return type (stores set up when it returned
    jsonb): CREATE OR REPLACE cannot change a return type. init_serving re-grants it after."""
    fn = sql.Identifier(stable_schema, FUNCTION_NAME).as_string(None)
    signature = sql.Literal(f"{fn}(text[], text[])").as_string(None)
    return sql.SQL("DO {}").format(sql.Literal(
        "BEGIN "
        f"IF EXISTS (SELECT FROM pg_proc WHERE oid = to_regprocedure({signature}) "
        f"AND prorettype <> {sql.Literal(RETURN_TYPE).as_string(None)}::regtype) "
        f"THEN DROP FUNCTION {fn}(text[], text[]); END IF; "
        "END"
    ))


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
