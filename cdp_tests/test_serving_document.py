"""The lookup document built in DuckDB equals what PostgreSQL used to assemble from the served tables."""

from __future__ import annotations

import json

import duckdb
import psycopg
import pytest

from cdp_pipelines.serving import lookup, publish
from cdp_pipelines.serving.config import ServingConfigError, load_config
from cdp_pipelines.serving.document import json_value
from cdp_pipelines.serving.duck_types import Column

from postgres_fixtures import build_serving_warehouse

# How publish assembled each customer's document in PostgreSQL before it moved to DuckDB
# (correlated subqueries over the just-loaded version schema {v}): the reference.
POSTGRES_ASSEMBLY = """
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
)::text
FROM {v}.customer_360 p
"""


def _awkward_warehouse(duck) -> None:
    """The fixture warehouse plus every type whose JSON rendering differs between the engines,
    customers lacking optional rows, several escalations, and text needing escapes."""
    build_serving_warehouse(duck, 20)
    duck.execute("""
        CREATE OR REPLACE TABLE marts.customer_360 AS SELECT *,
            TIMESTAMP '2024-01-01 10:00:00' + to_microseconds(i * 250000) AS seen_fraction,
            TIMESTAMPTZ '2024-03-01 10:00:00+02' + to_hours(i) AS seen_tz,
            CASE i % 4 WHEN 0 THEN 'nan'::DOUBLE WHEN 1 THEN 'inf'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE ELSE i / 3 END AS ratio,
            (i / 10)::FLOAT AS score_f, (i * 1.5)::DECIMAL(10, 2) AS balance,
            (12345678901234567890 + i)::DECIMAL(30, 0) AS big_number, ('ab' || i)::BLOB AS raw,
            CASE WHEN i % 5 = 0 THEN NULL ELSE 'é"\\' || chr(10) || '😀 ' || i END AS awkward_text,
            [TIMESTAMP '2024-01-01 10:00:00'] AS nested_times, NULL::DATE AS no_date
        FROM (SELECT *, CAST(substr(customer_id, 2) AS INTEGER) AS i FROM marts.customer_360)""")
    duck.execute("ALTER TABLE marts.customer_360 DROP COLUMN i")
    duck.execute("DELETE FROM marts.contact_context WHERE customer_id IN ('C000003', 'C000007')")
    duck.execute("DELETE FROM marts.customer_sentiment WHERE customer_id = 'C000004'")
    duck.execute("""INSERT INTO marts.escalations
        SELECT 'E' || customer_id || '-b', customer_id, 'refund', NULL FROM marts.escalations""")


def _by_customer(rows) -> dict[str, dict]:
    out = {}
    for customer_id, text in rows:
        doc = json.loads(text)
        doc["escalations"].sort(key=lambda e: json.dumps(e, sort_keys=True))  # the old order was arbitrary
        out[customer_id] = doc
    return out


@pytest.mark.postgres
def test_duckdb_document_equals_postgres_assembly(serving_db):
    duck = duckdb.connect()
    _awkward_warehouse(duck)
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # the old documents rendered timestamptz in the session zone
        expected = _by_customer(conn.execute(POSTGRES_ASSEMBLY.format(v="cdp_v1")).fetchall())
        stored = conn.execute("SELECT customer_id, doc FROM cdp.customer_context").fetchall()
    got = _by_customer(stored)
    assert len(got) == 20 and got == expected
    c2 = got["C000002"]
    assert c2["profile"]["ratio"] == "-Infinity" and c2["profile"]["raw"] == "\\x616232"
    assert c2["profile"]["big_number"] == 12345678901234567892 and c2["profile"]["score_f"] == 0.2
    assert got["C000003"]["contact_context"] is None and got["C000004"]["sentiment"] is None
    assert len(got["C000003"]["escalations"]) == 2 and got["C000001"]["escalations"] == []
    # Timestamps keep PostgreSQL's ISO rendering in the stored text, fractions and zones included.
    text = dict(stored)["C000001"]
    assert '"seen_fraction":"2024-01-01T10:00:00.25"' in text
    assert '"seen_tz":"2024-03-01T09:00:00+00:00"' in text and '"last_seen_at":"2024-05-01T09:01:00"' in text


@pytest.mark.postgres
def test_lookup_with_optional_table_absent(serving_db):
    duck = duckdb.connect()
    build_serving_warehouse(duck, 20)
    duck.execute("DROP TABLE segments.membership")
    result = publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert result.row_counts["segment_membership"] == 0 and result.row_counts["customer_context"] == 20
    [hit] = lookup(serving_db.url, account="ACC6")
    assert hit["segments"] == [] and hit["profile"]["first_name"] == "First6"
    assert [e["escalation_id"] for e in hit["escalations"]] == ["E6"]


@pytest.mark.postgres
def test_identifier_without_profile_gets_the_lookup_keys_only(serving_db):
    duck = duckdb.connect()
    build_serving_warehouse(duck, 20)
    duck.execute("INSERT INTO serving.identity_lookup VALUES ('email', 'ghost@mail.co.uk', 'C999999')")
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert lookup(serving_db.url, email="ghost@mail.co.uk") == [
        {"customer_id": "C999999", "matched_on": ["email"], "candidates": 1, "version": 1}]


@pytest.mark.parametrize(("duck_type", "value", "rendered"), [
    ("TIMESTAMP", "TIMESTAMP '2024-01-01 10:00:00'", '"2024-01-01T10:00:00"'),
    ("TIMESTAMP", "TIMESTAMP '2024-01-01 10:00:00.5'", '"2024-01-01T10:00:00.5"'),
    ("TIMESTAMP_NS", "TIMESTAMP_NS '2024-01-01 10:00:00.123456'", '"2024-01-01T10:00:00.123456"'),
    ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ '2024-01-01 10:00:00+02'", '"2024-01-01T08:00:00+00:00"'),
    ("DATE", "DATE '1980-01-02'", '"1980-01-02"'),
    ("DOUBLE", "'nan'::DOUBLE", '"NaN"'),
    ("DOUBLE", "'-inf'::DOUBLE", '"-Infinity"'),
    ("DOUBLE", "0.1::DOUBLE", "0.1"),
    ("DOUBLE", "NULL::DOUBLE", "null"),
    ("FLOAT", "0.1::FLOAT", "0.1"),
    ("DECIMAL(30,0)", "123456789012345678901234567890::DECIMAL(30,0)", "123456789012345678901234567890"),
    ("BLOB", "'ab'::BLOB", '"\\\\x6162"'),
    ("VARCHAR[]", "['a', NULL]", '["a",null]'),
])
def test_json_value_renders_like_postgres(duck_type, value, rendered):
    expr = json_value(Column("x", duck_type, "", ""))
    query = f"SELECT CAST(to_json(struct_pack(v := {expr})) AS VARCHAR) FROM (SELECT {value} AS x)"
    [(text,)] = duckdb.connect().execute(query).fetchall()
    assert text == '{"v":' + rendered + "}"


@pytest.mark.parametrize(("name", "part", "message"), [
    ("version", {"table": "customer_360", "shape": "row"}, "reserved key"),
    ("extra", {"table": "nowhere", "shape": "row"}, "unknown table"),
    ("extra", {"table": "escalations", "shape": "row"}, "keyed by"),
    ("extra", {"table": "segment_membership", "shape": "values"}, "needs a column"),
    ("extra", {"table": "escalations", "shape": "tree"}, "shape must be one of"),
])
def test_document_config_is_validated(tmp_path, name, part, message):
    import yaml

    from cdp_pipelines import settings

    raw = yaml.safe_load((settings.PROJECT_ROOT / "config" / "serving.yaml").read_text())
    load_config(settings.PROJECT_ROOT / "config" / "serving.yaml")  # the shipped one is valid
    raw["lookup_document"]["parts"][name] = part
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ServingConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("table", "setting", "message"), [
    ("escalations", True, "needs a primary_key"),
    ("identity_lookup", "yes", "must be true or false"),
])
def test_load_in_key_order_is_validated(tmp_path, table, setting, message):
    import yaml

    from cdp_pipelines import settings

    raw = yaml.safe_load((settings.PROJECT_ROOT / "config" / "serving.yaml").read_text())
    raw["tables"][table]["load_in_key_order"] = setting
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ServingConfigError, match=message):
        load_config(path)


@pytest.mark.postgres
def test_store_whose_function_returned_jsonb_is_upgraded(serving_db):
    """CREATE OR REPLACE cannot change a return type: init_serving drops the jsonb-returning
    function of an older store and recreates it, grants included."""
    with psycopg.connect(serving_db.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA cdp")
        conn.execute("CREATE FUNCTION cdp.lookup_customers(text[], text[]) RETURNS SETOF jsonb "
                     "LANGUAGE sql AS $$ SELECT '{}'::jsonb $$")
    duck = duckdb.connect()
    build_serving_warehouse(duck, 5)
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url, autocommit=True) as conn:
        assert conn.execute("SELECT prorettype::regtype::text FROM pg_proc "
                            "WHERE oid = 'cdp.lookup_customers(text[], text[])'::regprocedure").fetchone() == ("json",)
        conn.execute(f'SET ROLE "{serving_db.channel_role}"')
        assert lookup(conn, card="LC000002")[0]["profile"]["first_name"] == "First2"


def test_documented_function_body_is_the_installed_one():
    """docs/serving.md shows channel teams the SQL the function runs: it must not drift."""
    from cdp_pipelines import settings
    from cdp_pipelines.serving.lookup_sql import function_body

    assert function_body("cdp").strip() in (settings.PROJECT_ROOT / "docs" / "serving.md").read_text()
