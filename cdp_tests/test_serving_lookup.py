"""Lookup by every identifier type, with the same normalisation the pipeline applies."""

from __future__ import annotations

import duckdb
import psycopg
import pytest

from cdp_pipelines.serving import ServingClient, lookup, publish

from postgres_fixtures import build_serving_warehouse

pytestmark = pytest.mark.postgres


@pytest.fixture
def published(serving_db):
    duck = duckdb.connect()
    build_serving_warehouse(duck, 20)
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    duck.close()
    return serving_db


@pytest.mark.parametrize(
    ("keyword", "typed", "identifier_type"),
    [
        ("email", "  Cust7@MAIL.co.uk ", "email"),
        ("phone", "07700 900007", "phone"),
        ("phone", "+44 7700 900007", "phone"),
        ("card", " lc000007 ", "loyalty_card"),
        ("cookie", " ck-7-AbC ", "cookie_id"),  # stored as standardized: CK-7-ABC
        ("order", "ord-7", "order_number"),
        ("account", "acc7 ", "account_id"),
        ("web_user", "wu_7", "web_user_id"),
        ("social", "@Handle_7", "social_handle"),
    ],
)
def test_lookup_each_identifier_type(published, keyword, typed, identifier_type):
    [hit] = lookup(published.url, **{keyword: typed})
    assert hit["customer_id"] == "C000007"
    assert hit["matched_on"] == [identifier_type] and hit["candidates"] == 1 and hit["version"] == 1
    assert hit["profile"]["first_name"] == "First7" and "customer_id" not in hit["profile"]
    assert hit["contact_context"]["next_best_action"] == "offer_2"
    assert hit["sentiment"]["label"] == "neutral"
    assert hit["segments"] == ["all"]


def test_lookup_context_lists(published):
    [hit] = lookup(published.url, account="ACC6")
    assert hit["segments"] == ["all", "even"]
    assert hit["escalations"] == [{"escalation_id": "E6", "reason": "late delivery", "agent_comment": "customer angry"}]


def test_cookie_matches_as_standardization_stores_it(published):
    # Standardization stores codes without spaces and upper-cased, cookies included.
    found = {c["customer_id"] for c in lookup(published.url, cookie="ck-7-abc")}
    assert found == {c["customer_id"] for c in lookup(published.url, cookie="CK-7-ABC")} and len(found) == 1
    assert lookup(published.url, cookie="CK-8-ABD") == []


def test_shared_phone_returns_every_candidate(published):
    hits = lookup(published.url, phone="07700900001")
    assert [h["customer_id"] for h in hits] == ["C000001", "C000002"]
    assert {h["candidates"] for h in hits} == {2}


def test_several_identifiers_are_or_combined(published):
    hits = lookup(published.url, email="cust3@mail.co.uk", card="LC000003", order="ORD-4")
    assert [(h["customer_id"], h["matched_on"]) for h in hits] == [
        ("C000003", ["email", "loyalty_card"]), ("C000004", ["order_number"])]


def test_unknown_and_junk_inputs(published):
    assert lookup(published.url, email="nobody@mail.co.uk") == []
    assert lookup(published.url, phone="not a phone") == []  # normalises to nothing: no query
    assert lookup(published.url) == []


def test_client_reuses_one_connection_and_reconnects(published):
    with ServingClient(published.url, config_path=published.config_path) as client:
        assert client.lookup_email("cust5@mail.co.uk")[0]["customer_id"] == "C000005"
        first = client.conn
        for value in ["LC000005", "lc000006"]:
            assert client.lookup_card(value)
        assert client.conn is first
        client.lookup_phone("07700900009")
        client.lookup_cookie("ck-9-AbC")
        client.lookup_order("ORD-9")
        assert client.lookup_account("ACC9")[0]["customer_id"] == "C000009"
        with psycopg.connect(published.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first.info.backend_pid])
        assert client.lookup_email("cust5@mail.co.uk")[0]["customer_id"] == "C000005"


def test_channel_role_can_run_lookup_and_marketing_cannot(published):
    with psycopg.connect(published.url, autocommit=True) as conn:
        conn.execute(f'SET ROLE "{published.channel_role}"')
        assert lookup(conn, card="LC000002")[0]["customer_id"] == "C000002"
        conn.execute(f'SET ROLE "{published.marketing_role}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            lookup(conn, card="LC000002")


def test_lookup_normalises_exactly_as_the_pipeline_stores():
    """A code typed with spaces or in lower case, or a lower-case cookie from a source, finds
    what standardization stored (the same per-value rules, not a copy of them)."""
    import pandas as pd

    from cdp_pipelines.serving.normalize import normalize_identifiers
    from cdp_pipelines.standardize.frame import standardize_frame

    raw = pd.DataFrame({"loyalty_card": [" lc 000 007 "], "cookie_id": ["3f2a-9c"], "social_handle": ["https://x.com/Ann_B/"]})
    stored = standardize_frame(raw).frame.iloc[0]
    typed = dict(normalize_identifiers({"card": "LC000 007", "cookie": "3F2A-9C ", "social": "@ann_b"}))
    assert typed == {"loyalty_card": stored["loyalty_card"], "cookie_id": stored["cookie_id"],
                     "social_handle": stored["social_handle"]}
    assert normalize_identifiers({"card": "N/A", "email": "test@test.com"}) == []


def test_repeated_lookups_keep_one_generic_plan(published):
    """The client's prepared lookup must not be re-planned on every call: with text[] parameters
    PostgreSQL estimated 10 pairs and chose a fresh custom plan each time (~0.3 ms of server CPU
    per lookup). With ARRAY[$1] it settles on the generic plan after its five custom trials."""
    with ServingClient(published.url, config_path=published.config_path) as client:
        for i in range(12):
            assert client.lookup_email(f"cust{i % 9 + 1}@mail.co.uk")
        for i in range(8):  # two identifiers: a statement (and a plan) of its own
            assert client.lookup(email=f"cust{i % 9 + 1}@mail.co.uk", card="LC000003")
        plans = client.conn.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%lookup_customers%' ORDER BY statement").fetchall()
    assert len(plans) == 2
    for generic, custom in plans:
        assert custom <= 5 and generic >= 3, plans


def test_sql_function_ignores_null_and_repeated_pairs(published):
    """What a channel system may send by hand: NULL values match nothing, a pair given twice
    (or two identifiers of one customer) still yields one row per customer."""
    with psycopg.connect(published.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT * FROM cdp.lookup_customers("
            "ARRAY['email', 'email', 'loyalty_card', 'phone'], "
            "ARRAY['cust3@mail.co.uk', 'cust3@mail.co.uk', 'LC000003', NULL])").fetchall()
        assert [(r[0]["customer_id"], r[0]["matched_on"], r[0]["candidates"]) for r in rows] == [
            ("C000003", ["email", "loyalty_card"], 1)]
        assert conn.execute("SELECT * FROM cdp.lookup_customers(ARRAY['phone'], ARRAY[NULL])").fetchall() == []
        # The documented shape with text[] parameters returns the same documents as the client.
        [(doc,)] = conn.execute("SELECT * FROM cdp.lookup_customers(%s::text[], %s::text[])",
                                [["email"], ["cust3@mail.co.uk"]]).fetchall()
    assert lookup(published.url, email="cust3@mail.co.uk") == [doc]


def test_documents_decode_like_json():
    import json

    from cdp_pipelines.serving.lookup import decode_document

    text = '{"a": 1.5, "b": [true, null, "é"], "big": 123456789012345678901234567890, "n": -0.1}'
    assert decode_document(text) == json.loads(text)
    assert decode_document('{"x": {"y": 2}}') == {"x": {"y": 2}}
    tiny = '{"v": 0.00000000000000000000012345678901234567890123}'  # numeric: plain digits
    assert decode_document(tiny) == json.loads(tiny)
