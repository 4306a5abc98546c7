"""Context marts on a small hand-made dataset, with exact expected values, on DuckDB and on a
real PostgreSQL (same models transpiled by sqlglot), which must give identical tables.

Cast: C1 shops on the web, chats and then phones about order O100 (one journey, three
channels); C2 contacts four times in a week about order O200 without resolution and then
writes a 1-star review; C3 leaves a happy review and later an angry post; C4 only has an
account; record W9 belongs to an erased customer and must appear nowhere.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import duckdb
import psycopg
import pytest
from psycopg import sql as pgsql

from cdp_pipelines import settings
from cdp_pipelines.context.runner import load_variables, run_models
from cdp_pipelines.context.sentiment import build_text_sentiment
from cdp_pipelines.context.sql_models import discover_models

from postgres_fixtures import fresh_database

from cdp_pipelines.vocabulary import STANDARDIZED_COLUMNS

CANONICAL = list(STANDARDIZED_COLUMNS)
ORIGINAL = {
    "crm_cases": ["case_id", "account_id", "opened_at", "closed_at", "channel", "reason", "order_number",
                  "status", "agent", "handle_seconds", "note"],
    "web_events": ["event_id", "cookie_id", "user_id", "session_id", "ts", "event_type", "url", "sku",
                   "order_number", "email", "consent_email"],
    "pos_transactions": ["transaction_id", "store_id", "ts", "loyalty_card", "card_token", "receipt_email",
                         "phone", "customer_name", "total", "currency", "line_items"],
    "reviews": ["review_id", "platform", "display_name", "email", "sku", "rating", "title", "body",
                "created_at", "order_number"],
    "social_posts": ["post_id", "platform", "handle", "display_name", "location", "text", "ts", "in_reply_to"],
}
TIMESTAMP_COLUMN = {"crm_cases": "opened_at", "web_events": "ts", "pos_transactions": "ts",
                    "reviews": "created_at", "social_posts": "ts"}

CASES = [  # case_id, customer, opened, closed, channel, reason, order, status, agent, seconds, note
    ("K1", "C1", "2026-03-02 09:03:00", "2026-03-02 10:00:00", "chat", "delivery_delay", "O100", "resolved", "agent_a", "600", ""),
    ("K2", "C1", "2026-03-03 08:00:00", "2026-03-03 08:30:00", "phone", "delivery_delay", "O100", "closed", "agent_a", "900", "sorted"),
    ("K3", "C2", "2026-03-20 09:00:00", "", "phone", "damaged_item", "O200", "open", "agent_a", "300", "first call"),
    ("K4", "C2", "2026-03-21 12:00:00", "", "chat", "damaged_item", "O200", "pending", "agent_b", "1200", "second"),
    ("K5", "C2", "2026-03-23T10:00:00Z", "", "email", "damaged_item", "O200", "open", "agent_b", "900", "third"),
    ("K6", "C2", "2026-03-25 08:00:00", "", "phone", "damaged_item", "O200", "open", "agent_c", "240", "fourth"),
]
WEB = [  # event_id, customer, session, ts, type, sku, order
    ("W1", "C1", "s1", "2026-03-01 10:00:00", "page_view", "SKU1", None),
    ("W2", "C1", "s1", "2026-03-01 10:05:00", "add_to_cart", "SKU1", None),
    ("W3", "C1", "s1", "2026-03-01 10:10:00", "checkout", "SKU1", "O100"),
    ("W4", "C1", "s2", "2026-03-02 09:00:00", "login", None, None),
    ("W5", "C1", "s2", "2026-03-02 09:02:00", "chat_started", None, None),
    ("W9", "CX", "s9", "2026-03-27 23:00:00", "checkout", "SKU9", "O900"),
]
POS = [("T1", "C1", "2026-03-10 12:00:00", "25.50", "GBP")]
REVIEWS = [  # review_id, customer, created, rating, title, body, order
    ("R1", "C2", "2026-03-26 12:00:00", "1", "Terrible", "Still waiting, awful service, very angry.", "O200"),
    ("R2", "C3", "2026-02-10 12:00:00", "5", "Love it", "Great quality, happy with it.", None),
]
POSTS = [("P1", "C3", "2026-03-27 18:00:00", "Absolutely awful service, never again. Horrible!")]

EXPECTED_AS_OF = dt.datetime(2026, 3, 27, 18, 0)


def _standardized(con, source: str, rows: list[dict]) -> None:
    originals = ORIGINAL[source]
    columns = (["source VARCHAR", "source_record_id VARCHAR", "observed_at TIMESTAMP"]
               + [f"{c} {'DATE' if c == 'date_of_birth' else 'VARCHAR'}" for c in CANONICAL]
               + [f"src_{c} VARCHAR" for c in originals])
    con.execute(f"CREATE OR REPLACE TABLE standardized.{source} ({', '.join(columns)})")
    for row in rows:
        raw = row["src"]
        stamp = raw[TIMESTAMP_COLUMN[source]].replace("T", " ").rstrip("Z")
        values = ([source, raw[originals[0]], stamp] + [row.get(c) for c in CANONICAL]
                  + [raw.get(c) for c in originals])
        con.execute(f"INSERT INTO standardized.{source} VALUES ({', '.join('?' * len(values))})", values)


def build_inputs(con) -> None:
    """The hand-made inputs: standardized sources and the profiles tables."""
    con.execute("CREATE SCHEMA IF NOT EXISTS standardized; CREATE SCHEMA IF NOT EXISTS profiles")
    xref = []
    _standardized(con, "crm_cases", [
        {"order_number": o, "account_id": "A" + cust,
         "src": dict(zip(ORIGINAL["crm_cases"], [cid, "A" + cust, opened, closed, ch, reason, o, status, agent, secs, note]))}
        for cid, cust, opened, closed, ch, reason, o, status, agent, secs, note in CASES])
    xref += [("crm_cases", c[0], c[1]) for c in CASES]
    _standardized(con, "web_events", [
        {"order_number": o, "cookie_id": "ck" + cust,
         "src": {"event_id": eid, "cookie_id": "ck" + cust, "session_id": s, "ts": ts, "event_type": et,
                 "url": "https://shop.example.co.uk/x", "sku": sku, "order_number": o}}
        for eid, cust, s, ts, et, sku, o in WEB])
    xref += [("web_events", w[0], w[1]) for w in WEB if w[1] != "CX"]
    _standardized(con, "pos_transactions", [
        {"src": {"transaction_id": tid, "store_id": "GB001", "ts": ts, "total": total, "currency": cur,
                 "line_items": '[{"sku": "SKU2", "qty": 1, "price": 25.5}]'}}
        for tid, cust, ts, total, cur in POS])
    xref += [("pos_transactions", p[0], p[1]) for p in POS]
    _standardized(con, "reviews", [
        {"order_number": o, "src": {"review_id": rid, "platform": "trustpilot", "rating": rating, "title": title,
                                    "body": body, "created_at": ts, "order_number": o}}
        for rid, cust, ts, rating, title, body, o in REVIEWS])
    xref += [("reviews", r[0], r[1]) for r in REVIEWS]
    _standardized(con, "social_posts", [
        {"social_handle": "@c3", "src": {"post_id": pid, "platform": "x", "handle": "@c3", "text": text, "ts": ts}}
        for pid, cust, ts, text in POSTS])
    xref += [("social_posts", p[0], p[1]) for p in POSTS]
    xref += [("crm_accounts", "A" + c, c) for c in ("C1", "C2", "C4")]
    con.execute("""CREATE OR REPLACE TABLE profiles.active_xref (source VARCHAR, source_record_id VARCHAR,
                   customer_id VARCHAR, match_kind VARCHAR, match_probability DOUBLE)""")
    con.executemany("INSERT INTO profiles.active_xref VALUES (?, ?, ?, 'deterministic', 1.0)", xref)
    con.execute("""CREATE OR REPLACE TABLE profiles.golden_profile AS
        SELECT * FROM (VALUES
          ('C1', 'Ann', 'Lee', 'ann@example.com', '+447700900001', DATE '1980-01-02', '1 High St', 'Leeds', 'LS1 1AA', 'GB', NULL,
           4, ['crm_accounts', 'web_events'], TIMESTAMP '2025-01-01 00:00:00', TIMESTAMP '2026-04-01 12:00:00'),
          ('C2', 'Bob', 'Ray', 'bob@example.com', NULL, NULL, NULL, NULL, NULL, 'GB', NULL,
           6, ['crm_accounts', 'crm_cases'], TIMESTAMP '2025-02-01 00:00:00', TIMESTAMP '2026-03-26 12:00:00'),
          ('C3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           2, ['reviews', 'social_posts'], TIMESTAMP '2026-02-10 12:00:00', TIMESTAMP '2026-03-27 18:00:00'),
          ('C4', 'Dee', 'Fox', 'dee@example.com', NULL, NULL, NULL, NULL, NULL, 'GB', 'LC4',
           1, ['crm_accounts'], TIMESTAMP '2024-06-01 00:00:00', TIMESTAMP '2024-06-01 00:00:00')
        ) AS t(customer_id, first_name, last_name, email, phone, date_of_birth, address_line, city, postcode,
               country, loyalty_card, records, sources, first_seen, last_seen)""")
    con.execute("""CREATE OR REPLACE TABLE profiles.customer_identifiers AS
        SELECT * FROM (VALUES ('C1', 'email', 'ann@example.com'), ('C1', 'email', 'a.lee@example.com'),
                              ('C1', 'cookie_id', 'ckC1'), ('C2', 'email', 'bob@example.com'),
                              ('C3', 'social_handle', '@c3'), ('C4', 'loyalty_card', 'LC4'))
        AS t(customer_id, identifier_type, identifier_value)""")
    con.execute("""CREATE OR REPLACE TABLE profiles.consent AS
        SELECT * FROM (VALUES
          ('C1', 'email', 'opt_in', TIMESTAMP '2025-05-01 00:00:00', 'crm_accounts', 'AC1'),
          ('C1', 'sms', 'opt_out', TIMESTAMP '2025-05-01 00:00:00', 'crm_accounts', 'AC1'),
          ('C4', 'email', 'opt_out', TIMESTAMP '2024-06-01 00:00:00', 'crm_accounts', 'AC4'))
        AS t(customer_id, channel, status, decided_at, source, source_record_id)""")
    con.execute("CREATE SCHEMA IF NOT EXISTS segments")
    con.execute("""CREATE OR REPLACE TABLE segments.membership AS
        SELECT * FROM (VALUES ('welcome', 'C2', TIMESTAMP '2026-03-01 00:00:00'),
                              ('frustrated', 'C2', TIMESTAMP '2026-03-26 00:00:00'),
                              ('welcome', 'C1', TIMESTAMP '2026-03-01 00:00:00'))
        AS t(segment, customer_id, added_at)""")
    build_text_sentiment(con)


def models():
    return discover_models(settings.SQL_MODELS_DIR)


def variables():
    return load_variables(settings.PROJECT_ROOT / "config" / "context.yaml")


@pytest.fixture(scope="module")
def duck():
    con = duckdb.connect()
    build_inputs(con)
    run_models(con, models(), variables(), engine="duckdb")
    yield con
    con.close()


def rows(con, query: str) -> list[dict]:
    cursor = con.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def one(con, query: str) -> dict:
    found = rows(con, query)
    assert len(found) == 1, found
    return found[0]


def test_text_sentiment_scores_each_text(duck):
    scores = dict(duck.execute("SELECT source_record_id, compound FROM intermediate.int_text_sentiment").fetchall())
    assert set(scores) == {"R1", "R2", "P1"}
    assert scores["R1"] < -0.05 and scores["P1"] < -0.05 and scores["R2"] > 0.05


def test_erased_customer_appears_nowhere(duck):
    for table in ("intermediate.int_interactions", "marts.interaction_timeline", "marts.journeys"):
        assert duck.execute(f"SELECT count(*) FROM {table} WHERE customer_id = 'CX'").fetchone()[0] == 0


def test_customer_360(duck):
    assert [r["customer_id"] for r in rows(duck, "SELECT customer_id FROM marts.customer_360 ORDER BY 1")] == \
        ["C1", "C2", "C3", "C4"]
    c1 = one(duck, "SELECT * FROM marts.customer_360 WHERE customer_id = 'C1'")
    assert c1["emails"] == ["a.lee@example.com", "ann@example.com"]
    assert c1["cookie_ids"] == ["ckC1"]
    assert (c1["order_count"], c1["web_orders"], c1["store_orders"]) == (2, 1, 1)
    assert c1["lifetime_value"] == decimal.Decimal("25.50") and c1["lifetime_value_currency"] == "GBP"
    assert c1["order_numbers"] == ["O100"]
    assert c1["preferred_channel"] == "web"
    assert c1["channels_used"] == ["web", "store", "phone", "chat"]  # by use, then most recent
    assert (c1["email_consent"], c1["sms_consent"]) == ("opt_in", "opt_out")
    assert c1["first_seen"] == dt.datetime(2025, 1, 1) and c1["interactions"] == 8
    c4 = one(duck, "SELECT * FROM marts.customer_360 WHERE customer_id = 'C4'")
    assert (c4["order_count"], c4["lifetime_value"], c4["interactions"], c4["preferred_channel"]) == (0, 0, 0, None)
    assert (c4["email_consent"], c4["sms_consent"], c4["loyalty_cards"]) == ("opt_out", "unknown", ["LC4"])


def test_customer_360_is_the_profile_plus_current_segments(duck):
    segments = dict(duck.execute("SELECT customer_id, current_segments FROM marts.customer_360").fetchall())
    assert segments == {"C1": ["welcome"], "C2": ["frustrated", "welcome"], "C3": [], "C4": []}
    profile = [d[0] for d in duck.execute("SELECT * FROM marts.customer_profile LIMIT 0").description]
    full = [d[0] for d in duck.execute("SELECT * FROM marts.customer_360 LIMIT 0").description]
    assert full == profile + ["current_segments"]
    assert duck.execute("SELECT count(*) FROM (SELECT * EXCLUDE (current_segments) FROM marts.customer_360 "
                        "EXCEPT SELECT * FROM marts.customer_profile)").fetchone()[0] == 0


def test_web_chat_phone_is_one_journey(duck):
    journeys = rows(duck, "SELECT * FROM marts.journeys WHERE customer_id = 'C1' ORDER BY started_at")
    assert len(journeys) == 2
    first = journeys[0]
    assert first["channels"] == ["web", "chat", "phone"] and first["channel_count"] == 3
    assert first["hops"] == 2 and first["interactions"] == 7 and first["contacts"] == 2
    assert first["cumulative_seconds"] == 600 + 120 + 600 + 900
    assert first["order_numbers"] == ["O100"] and first["case_ids"] == ["K1", "K2"]
    assert first["resolved"] is True
    assert (first["started_at"], first["ended_at"]) == (dt.datetime(2026, 3, 1, 10), dt.datetime(2026, 3, 3, 8))
    assert journeys[1]["channels"] == ["store"]
    c2 = one(duck, "SELECT * FROM marts.journeys WHERE customer_id = 'C2'")
    assert c2["channels"] == ["phone", "chat", "email", "review"] and c2["hops"] == 4
    assert c2["channel_count"] == 4 and c2["interactions"] > 4  # a channel used twice counts once
    assert c2["cumulative_seconds"] == 2640 and c2["resolved"] is False


def test_interaction_timeline(duck):
    c1 = rows(duck, "SELECT * FROM marts.interaction_timeline WHERE customer_id = 'C1' ORDER BY sequence_number")
    assert [r["source_record_id"] for r in c1] == ["W1", "W2", "W3", "W4", "W5", "K1", "K2", "T1"]
    assert c1[2]["summary"] == "checkout SKU1 order O100"
    assert c1[5]["summary"] == "delivery_delay (resolved) order O100" and c1[5]["channel"] == "chat"
    assert c1[-1]["journey_id"] == "C1-J2"


def test_contact_context(duck):
    c2 = one(duck, "SELECT * FROM marts.contact_context WHERE customer_id = 'C2'")
    assert c2["as_of"] == EXPECTED_AS_OF
    assert (c2["last_contact_at"], c2["last_contact_channel"], c2["last_contact_reason"]) == \
        (dt.datetime(2026, 3, 25, 8), "phone", "damaged_item")
    assert c2["handoff_from_channel"] == "email"
    assert (c2["open_case_id"], c2["open_case_status"], c2["open_case_owner"]) == ("K6", "open", "agent_c")
    assert float(c2["open_case_age_hours"]) == 58.0 and c2["order_number"] == "O200"
    assert c2["notes"] == "fourth | third | second | first call" and c2["open_cases"] == 4
    assert (c2["contacts_7d"], c2["contacts_30d"]) == (3, 4)
    assert (float(c2["handling_minutes_7d"]), float(c2["handling_minutes_30d"])) == (39.0, 44.0)
    c1 = one(duck, "SELECT * FROM marts.contact_context WHERE customer_id = 'C1'")
    assert (c1["last_contact_channel"], c1["handoff_from_channel"], c1["open_case_id"]) == ("phone", "chat", None)
    assert (c1["contacts_7d"], c1["contacts_30d"], float(c1["handling_minutes_30d"])) == (0, 2, 25.0)
    c4 = one(duck, "SELECT * FROM marts.contact_context WHERE customer_id = 'C4'")
    assert c4["last_contact_at"] is None and c4["contacts_30d"] == 0


def test_customer_sentiment(duck):
    c2 = one(duck, "SELECT * FROM marts.customer_sentiment WHERE customer_id = 'C2'")
    assert c2["last_rating"] == 1 and float(c2["average_rating"]) == 1.0 and c2["negative_mentions_30d"] == 1
    assert c2["last_compound"] < 0 and c2["last_negative_at"] == dt.datetime(2026, 3, 26, 12)
    c3 = one(duck, "SELECT * FROM marts.customer_sentiment WHERE customer_id = 'C3'")
    assert c3["last_rating"] == 5 and c3["ratings"] == 1 and c3["texts_scored"] == 2
    assert c3["negative_mentions_30d"] == 1 and c3["last_compound"] < 0
    assert [r[0] for r in duck.execute("SELECT customer_id FROM marts.customer_sentiment ORDER BY 1").fetchall()] == ["C2", "C3"]


def test_escalations(duck):
    found = {(r["customer_id"], r["rule"]): r for r in rows(duck, "SELECT * FROM marts.escalations")}
    assert set(found) == {("C2", "repeat_contacts"), ("C2", "long_unresolved"), ("C2", "negative_while_open")}
    assert found["C2", "repeat_contacts"]["reason"] == "4 contacts in 7 days about order O200 (case K6 still open)"
    assert found["C2", "long_unresolved"]["reason"] == \
        "44 minutes of handling across 4 contacts about order O200 (case K6 still open)"
    assert found["C2", "negative_while_open"]["reason"] == \
        "1-star review on trustpilot on 2026-03-26 while case K6 about order O200 is still open"
    assert all(r["flag"] for r in found.values())


# ---------------------------------------------------------------------------------------------
# The same models on PostgreSQL
# ---------------------------------------------------------------------------------------------

_PG_TYPES = {"VARCHAR": "text", "TIMESTAMP": "timestamp", "DATE": "date", "DOUBLE": "double precision",
             "INTEGER": "integer", "BIGINT": "bigint", "BOOLEAN": "boolean", "VARCHAR[]": "text[]"}


def copy_inputs_to_postgres(duck, conn) -> None:
    tables = duck.execute("""SELECT table_schema, table_name FROM information_schema.tables
                             WHERE table_schema IN ('standardized', 'profiles', 'segments')
                                OR (table_schema = 'intermediate' AND table_name = 'int_text_sentiment')""").fetchall()
    for schema, table in tables:
        described = duck.execute(f"DESCRIBE {schema}.{table}").fetchall()
        columns = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(name), pgsql.SQL(_PG_TYPES[kind])) for name, kind, *_ in described)
        target = pgsql.Identifier(schema, table)
        conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
        conn.execute(pgsql.SQL("CREATE TABLE {} ({})").format(target, columns))
        values = duck.execute(f"SELECT * FROM {schema}.{table}").fetchall()
        if values:
            placeholders = pgsql.SQL(", ").join(pgsql.Placeholder() * len(described))
            conn.cursor().executemany(pgsql.SQL("INSERT INTO {} VALUES ({})").format(target, placeholders), values)
    conn.commit()


def _normalise(value):
    if isinstance(value, decimal.Decimal):
        return round(float(value), 4)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def table_contents(con, table: str, key: list[str]) -> list[tuple]:
    cursor = con.execute(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")
    names = [d[0] for d in cursor.description]
    return names, [tuple(_normalise(v) for v in row) for row in cursor.fetchall()]


@pytest.mark.postgres
def test_postgres_gives_the_same_tables(duck, postgres_server_url):
    all_models = models()
    with fresh_database(postgres_server_url, f"cdp_test_{uuid.uuid4().hex[:12]}") as url:
        with psycopg.connect(url) as conn:
            copy_inputs_to_postgres(duck, conn)
            run_models(conn, all_models, variables(), engine="postgres")
            for model in all_models:
                key = list(model.key)
                assert key, f"{model.table} declares no key"
                duck_names, duck_rows = table_contents(duck, model.table, key)
                pg_names, pg_rows = table_contents(conn, model.table, key)
                assert pg_names == duck_names, model.table
                assert pg_rows == duck_rows, model.table


def test_text_sentiment_incrementally_scores_only_new_and_changed_texts():
    con = duckdb.connect()
    build_inputs(con)
    before = dict(con.execute("SELECT source_record_id, text_md5 FROM intermediate.int_text_sentiment").fetchall())
    con.execute("UPDATE standardized.reviews SET src_body = 'Absolutely wonderful, I love it' WHERE source_record_id = 'R1'")
    con.execute("DELETE FROM standardized.social_posts WHERE source_record_id = 'P1'")
    scored = build_text_sentiment(con, incremental=True)
    after = dict(con.execute("SELECT source_record_id, compound FROM intermediate.int_text_sentiment").fetchall())
    assert scored == 1  # R1 only: R2 kept as scored, P1's row removed
    assert set(after) == {"R1", "R2"} and after["R1"] > 0.05
    hashes = dict(con.execute("SELECT source_record_id, text_md5 FROM intermediate.int_text_sentiment").fetchall())
    assert hashes["R2"] == before["R2"] and hashes["R1"] != before["R1"]
    build_text_sentiment(con)  # a whole rebuild agrees
    assert dict(con.execute("SELECT source_record_id, compound FROM intermediate.int_text_sentiment").fetchall()) == after
    con.close()
