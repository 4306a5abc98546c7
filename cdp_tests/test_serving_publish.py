"""Publishing to a real PostgreSQL: init, versions, roles, guard, rollback, type mapping."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import psycopg
import pytest
from psycopg import errors

from cdp_pipelines.serving import (
    PublishError, ServingConnectionError, ServingError, current_version, init_serving, publish, rollback,
)
from cdp_pipelines.serving.postgres import connection_failure_reason

from postgres_fixtures import build_serving_warehouse

pytestmark = pytest.mark.postgres


@pytest.fixture
def duck():
    con = duckdb.connect()
    build_serving_warehouse(con, 20)
    yield con
    con.close()


def _catalog_snapshot(url: str) -> list:
    with psycopg.connect(url) as conn:
        return conn.execute("""
            SELECT n.nspname, n.nspacl::text,
                   (SELECT array_agg(c.relname || ':' || coalesce(c.relacl::text, '') ORDER BY c.relname)
                    FROM pg_class c WHERE c.relnamespace = n.oid),
                   (SELECT array_agg(p.proname || ':' || md5(p.prosrc) || coalesce(p.proacl::text, ''))
                    FROM pg_proc p WHERE p.pronamespace = n.oid)
            FROM pg_namespace n WHERE n.nspname LIKE 'cdp%' ORDER BY 1""").fetchall()


def _as_role(url: str, role: str, query: str):
    with psycopg.connect(url) as conn:
        conn.execute(f'SET ROLE "{role}"')
        return conn.execute(query).fetchall()


def test_init_is_idempotent(serving_db):
    init_serving(serving_db.url, config_path=serving_db.config_path)
    first = _catalog_snapshot(serving_db.url)
    init_serving(serving_db.url, config_path=serving_db.config_path)
    assert _catalog_snapshot(serving_db.url) == first
    with psycopg.connect(serving_db.url) as conn:
        roles = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            [[serving_db.channel_role, serving_db.marketing_role]],
        ).fetchall()
    assert roles == sorted([(serving_db.channel_role, False), (serving_db.marketing_role, False)])
    assert current_version(serving_db.url, config_path=serving_db.config_path) is None


def test_publish_creates_version_views_and_log(serving_db, duck):
    result = publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert (result.version, result.schema) == (1, "cdp_v1")
    assert result.row_counts["identity_lookup"] == 160 and result.row_counts["escalations"] == 6
    with psycopg.connect(serving_db.url) as conn:
        assert conn.execute("SELECT count(*), min(_publish_version) FROM cdp.customer_360").fetchone() == (20, 1)
        status, counts = conn.execute("SELECT status, row_counts FROM cdp_admin.publish_log").fetchone()
        assert status == "published" and counts == result.row_counts
        pks = conn.execute("""
            SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            WHERE k.contype = 'p' AND c.relnamespace = 'cdp_v1'::regnamespace ORDER BY 1""").fetchall()
        assert [p for (p,) in pks] == sorted(
            ["contact_context", "customer_360", "customer_context", "customer_sentiment", "identity_lookup",
             "journeys", "segment_membership"])
        # One ready lookup document per customer, served to channels only (it holds notes and DOBs).
        assert result.row_counts["customer_context"] == 20
        assert conn.execute("SELECT count(*) FROM cdp.customer_context").fetchone()[0] == 20
        assert conn.execute(
            "SELECT count(*) FROM information_schema.views WHERE table_schema = 'cdp_marketing' "
            "AND table_name = 'customer_context'").fetchone()[0] == 0


def test_types_are_mapped(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        types = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'cdp_v1' AND table_name = 'customer_360'").fetchall())
        row = conn.execute(
            "SELECT date_of_birth, is_vip, last_seen_at, channels, address, lifetime_value "
            "FROM cdp.customer_360 WHERE customer_id = 'C000002'").fetchone()
        empty, null = conn.execute(
            "SELECT empty_text, notes FROM cdp.contact_context WHERE customer_id = 'C000004'").fetchone()
    assert types["date_of_birth"] == "date" and types["is_vip"] == "boolean"
    assert types["last_seen_at"] == "timestamp without time zone" and types["lifetime_value"] == "double precision"
    assert types["channels"] == "jsonb" and types["address"] == "jsonb" and types["_publish_version"] == "integer"
    assert row == (dt.date(1980, 1, 3), True, dt.datetime(2024, 5, 1, 9, 2), ["web", "store"],
                   {"city": "Leeds", "postcode": "LS1 1AA"}, 21.0)
    assert (empty, null) == ("", None)  # empty string and NULL survive COPY distinctly


# Characters PostgreSQL's COPY text format treats specially (tab, newline, carriage return,
# backslash, its end-of-data and NULL markers), and others CSV would have quoted.
AWKWARD_TEXT = ["tab\there", "two\nlines", "cr\rhere", "back\\slash", "\\.", "\\N", "",
                'quote "q" \'s', "comma, semicolon;", "end\\", "\\t not a tab", "é漢字 🙂"]


def test_awkward_text_survives_the_copy(serving_db, duck):
    """Every value arrives as it was in the warehouse: as text, inside jsonb and in the document."""
    duck.execute("ALTER TABLE marts.contact_context ADD COLUMN raw BLOB")
    for i, text in enumerate(AWKWARD_TEXT, start=1):
        duck.execute("UPDATE marts.contact_context SET notes = ?, raw = encode(?) WHERE customer_id = ?",
                     [text, text, f"C{i:06d}"])
    duck.execute("UPDATE marts.customer_360 SET channels = ? WHERE customer_id = 'C000001'", [AWKWARD_TEXT])
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        rows = conn.execute(
            "SELECT notes, raw FROM cdp.contact_context ORDER BY customer_id LIMIT %s", [len(AWKWARD_TEXT)]
        ).fetchall()
        (channels,) = conn.execute("SELECT channels FROM cdp.customer_360 WHERE customer_id = 'C000001'").fetchone()
        docs = dict(conn.execute("SELECT customer_id, doc FROM cdp.customer_context").fetchall())
    assert [r[0] for r in rows] == AWKWARD_TEXT
    assert [bytes(r[1]) for r in rows] == [t.encode() for t in AWKWARD_TEXT]
    assert channels == AWKWARD_TEXT
    assert [json.loads(docs[f"C{i:06d}"])["contact_context"]["notes"] for i in range(1, len(AWKWARD_TEXT) + 1)] \
        == AWKWARD_TEXT
    assert json.loads(docs["C000001"])["profile"]["channels"] == AWKWARD_TEXT
    # NULL stays NULL, beside the empty string above (customer 7)
    with psycopg.connect(serving_db.url) as conn:
        assert conn.execute("SELECT notes FROM cdp.contact_context WHERE customer_id = 'C000016'").fetchone() == (None,)
    assert json.loads(docs["C000016"])["contact_context"]["notes"] is None


def test_channel_role_reads_views_only(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    role = serving_db.channel_role
    assert _as_role(serving_db.url, role, "SELECT count(*) FROM cdp.identity_lookup") == [(160,)]
    for forbidden in ("SELECT * FROM cdp_v1.customer_360", "SELECT * FROM cdp_admin.publish_log",
                      "SELECT * FROM cdp_marketing.customer_360"):
        with pytest.raises(errors.InsufficientPrivilege):
            _as_role(serving_db.url, role, forbidden)
    for write in ("DELETE FROM cdp.customer_360",
                  "UPDATE cdp.customer_360 SET first_name = 'x'",
                  "INSERT INTO cdp.identity_lookup (identifier_type, identifier_value, customer_id) VALUES ('a','b','c')",
                  "CREATE TABLE cdp.sneaky (x int)"):
        with pytest.raises(errors.InsufficientPrivilege):
            _as_role(serving_db.url, role, write)


def test_marketing_role_sees_narrow_views(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    role = serving_db.marketing_role
    with psycopg.connect(serving_db.url) as conn:
        conn.execute(f'SET ROLE "{role}"')
        cur = conn.execute("SELECT * FROM cdp_marketing.customer_360 LIMIT 1")
        c360 = [d.name for d in cur.description]
        cur = conn.execute("SELECT * FROM cdp_marketing.contact_context LIMIT 1")
        context = [d.name for d in cur.description]
        views = [v for (v,) in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'cdp_marketing'")]
    assert "first_name" in c360 and "agent_notes" not in c360 and "date_of_birth" not in c360
    assert "notes" not in context and "next_best_action" in context
    assert "identity_lookup" not in views and "escalations" not in views
    for forbidden in ("SELECT * FROM cdp.customer_360", "SELECT * FROM cdp_v1.customer_360",
                      "SELECT * FROM cdp_admin.current"):
        with pytest.raises(errors.InsufficientPrivilege):
            _as_role(serving_db.url, role, forbidden)


def test_rollback_and_keep_versions(serving_db, duck):
    cfg = serving_db.config_path
    publish(serving_db.url, duck, config_path=cfg)
    build_serving_warehouse(duck, 20, tag="b")
    publish(serving_db.url, duck, config_path=cfg)
    build_serving_warehouse(duck, 25, tag="c")
    third = publish(serving_db.url, duck, config_path=cfg)
    assert third.dropped_schemas == ["cdp_v1"]
    assert rollback(serving_db.url, config_path=cfg) == 2
    assert current_version(serving_db.url, config_path=cfg) == 2
    with psycopg.connect(serving_db.url) as conn:
        assert conn.execute("SELECT count(*), min(build_tag), min(_publish_version) FROM cdp.customer_360").fetchone() == (20, "b", 2)
        assert conn.execute("SELECT count(*) FROM cdp_marketing.customer_360").fetchone() == (20,)
        assert conn.execute("SELECT status FROM cdp_admin.publish_log WHERE version = 3").fetchone() == ("rolled_back",)
    with pytest.raises(ServingError, match="no earlier version is kept"):
        rollback(serving_db.url, config_path=cfg)
    fourth = publish(serving_db.url, duck, config_path=cfg)
    assert fourth.version == 4 and sorted(fourth.dropped_schemas) == ["cdp_v3"]


def test_empty_table_is_refused_and_previous_stays(serving_db, duck):
    cfg = serving_db.config_path
    publish(serving_db.url, duck, config_path=cfg)
    duck.execute("DELETE FROM marts.escalations")
    with pytest.raises(PublishError, match=r"marts\.escalations .*served 6 rows"):
        publish(serving_db.url, duck, config_path=cfg)
    assert current_version(serving_db.url, config_path=cfg) == 1
    with psycopg.connect(serving_db.url) as conn:
        assert conn.execute("SELECT count(*) FROM cdp.escalations").fetchone() == (6,)


def test_missing_tables(serving_db, duck):
    duck.execute("DROP TABLE segments.membership")
    result = publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert result.row_counts["segment_membership"] == 0  # optional: published empty
    duck.execute("DROP TABLE marts.journeys")
    with pytest.raises(PublishError, match=r"marts\.journeys \(served as journeys\)"):
        publish(serving_db.url, duck, config_path=serving_db.config_path)


def test_duplicate_key_fails_cleanly(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    duck.execute("INSERT INTO marts.customer_sentiment SELECT * FROM marts.customer_sentiment LIMIT 1")
    with pytest.raises(PublishError, match=r"marts\.customer_sentiment: duplicate primary key"):
        publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        assert conn.execute("SELECT status FROM cdp_admin.publish_log WHERE version = 2").fetchone() == ("failed",)
        assert conn.execute("SELECT to_regnamespace('cdp_v2')").fetchone() == (None,)
    assert current_version(serving_db.url, config_path=serving_db.config_path) == 1


def test_changed_columns_recreate_views(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    duck.execute("ALTER TABLE marts.customer_360 DROP COLUMN build_tag")
    duck.execute("ALTER TABLE marts.customer_360 ALTER COLUMN lifetime_value TYPE VARCHAR")
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        cols = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'cdp' AND table_name = 'customer_360'").fetchall())
    assert "build_tag" not in cols and cols["lifetime_value"] == "text"
    assert _as_role(serving_db.url, serving_db.channel_role, "SELECT count(*) FROM cdp.customer_360") == [(20,)]


def test_unreachable_server_is_one_clear_line(tmp_path):
    url = "postgresql://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(ServingConnectionError) as info:
        init_serving(url)
    message = str(info.value)
    assert "127.0.0.1:1/nowhere" in message and "\n" not in message
    assert message.endswith(": Connection refused"), message


def test_connection_failure_reason_keeps_the_servers_words():
    refused = ('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
               '\tIs the server running on that host and accepting TCP/IP connections?')
    missing = ('connection failed: connection to server at "127.0.0.1", port 5432 failed: '
               'FATAL:  database "nope" does not exist')
    assert connection_failure_reason(Exception(refused)) == "Connection refused"
    assert connection_failure_reason(Exception(missing)) == 'FATAL: database "nope" does not exist'
    assert connection_failure_reason(Exception("timeout expired")) == "timeout expired"
    assert connection_failure_reason(Exception("")) == "Exception"


def test_published_tables_are_all_visible_and_analysed(serving_db, duck):
    """Every page of every served table is marked all-visible when the version goes live (index-only
    scans from the first lookup, no hint-bit writes by readers), and the planner has statistics."""
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        tables = conn.execute("""
            SELECT c.relname, c.relpages, c.relallvisible, c.reltuples, s.last_analyze IS NOT NULL
            FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE c.relnamespace = 'cdp_v1'::regnamespace AND c.relkind = 'r' ORDER BY 1""").fetchall()
    assert len(tables) == 8
    for name, pages, visible, tuples, analysed in tables:
        assert pages > 0 and visible == pages, (name, pages, visible)
        assert tuples > 0 and analysed, name


def test_tables_declared_load_in_key_order_are_stored_in_key_order(serving_db, duck):
    """identity_lookup (load_in_key_order in serving.yaml) is copied sorted by its key, so its
    rows lie in the heap in key order; the other tables keep the warehouse's order."""
    from cdp_pipelines.serving.config import load_config

    specs = {t.name: t for t in load_config(serving_db.config_path).tables}
    assert specs["identity_lookup"].load_in_key_order and not specs["customer_360"].load_in_key_order
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        stored = conn.execute("SELECT identifier_type, identifier_value, customer_id "
                              "FROM cdp_v1.identity_lookup ORDER BY ctid").fetchall()
    keys = [tuple(v.encode() for v in row) for row in stored]
    assert len(keys) > 100 and keys == sorted(keys)


def test_key_columns_compare_bytes_and_other_text_keeps_the_database_collation(serving_db, duck):
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    with psycopg.connect(serving_db.url) as conn:
        collations = {(t, c): coll for t, c, coll in conn.execute("""
            SELECT table_name, column_name, collation_name FROM information_schema.columns
            WHERE table_schema = 'cdp_v1' AND data_type = 'text'""").fetchall()}
    keyed = {("identity_lookup", "identifier_type"), ("identity_lookup", "identifier_value"),
             ("identity_lookup", "customer_id"), ("customer_360", "customer_id"), ("journeys", "journey_id"),
             ("customer_context", "customer_id"), ("segment_membership", "segment"), ("escalations", "customer_id")}
    assert keyed <= collations.keys()
    assert {k: collations[k] for k in keyed} == {k: "C" for k in keyed}
    assert collations[("customer_context", "doc")] is None  # not a key: the database's collation
    assert all(coll is None for (table, column), coll in collations.items() if (table, column) not in keyed
               and column != "customer_id"), collations


def test_views_follow_a_change_of_key_collation(serving_db, duck, monkeypatch):
    """A version published before keys were byte-ordered (columns in the database's collation) is
    replaced by one whose views carry "C": the swap re-creates views it cannot replace in place."""
    import importlib

    publish_module = importlib.import_module("cdp_pipelines.serving.publish")  # the module, not the function
    monkeypatch.setattr(publish_module, "column_type", lambda column, spec: column.pg_type)
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    monkeypatch.undo()
    result = publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert result.version == 2
    with psycopg.connect(serving_db.url) as conn:
        view_collations = dict(conn.execute("""
            SELECT column_name, coalesce(collation_name, 'default') FROM information_schema.columns
            WHERE table_schema = 'cdp' AND table_name = 'identity_lookup' AND data_type = 'text'""").fetchall())
        assert view_collations == {"identifier_type": "C", "identifier_value": "C", "customer_id": "C"}
        identifier_type, identifier_value = conn.execute(
            "SELECT identifier_type, identifier_value FROM cdp.identity_lookup LIMIT 1").fetchone()
        (found,) = conn.execute("SELECT count(*) FROM cdp.lookup_customers(%s, %s)",
                                [[identifier_type], [identifier_value]]).fetchone()
    assert found >= 1


def test_publish_reports_phase_seconds(serving_db, duck):
    result = publish(serving_db.url, duck, config_path=serving_db.config_path)
    phases = result.phase_seconds
    for name in ("plan", "load", "swap", "prune", "copy customer_context", "index customer_context",
                 "copy identity_lookup", "index identity_lookup", "analyze customer_360"):
        assert name in phases, (name, phases)
    assert all(s >= 0 for s in phases.values())
    assert phases["load"] >= phases["copy customer_context"] and phases["load"] <= result.seconds



def test_publisher_without_superuser_rights_publishes(serving_db, duck, postgres_server_url):
    """deadlock_timeout is superuser-only: a publisher role that owns the serving objects but is
    not a superuser still swaps versions (with the server's deadlock_timeout)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from cdp_pipelines.serving.versions import can_set_deadlock_timeout

    init_serving(serving_db.url, config_path=serving_db.config_path)
    publish(serving_db.url, duck, config_path=serving_db.config_path)
    publisher = f"{serving_db.channel_role}_publisher"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{publisher}" NOSUPERUSER NOCREATEROLE')
        conn.execute(f'GRANT postgres TO "{publisher}"')  # owns what postgres owns, nothing more
    try:
        info = conninfo_to_dict(serving_db.url)
        info["options"] = f"-c role={publisher}"
        publisher_url = make_conninfo(**info)
        with psycopg.connect(publisher_url) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == publisher
            assert not can_set_deadlock_timeout(conn)
        with psycopg.connect(serving_db.url) as conn:
            assert can_set_deadlock_timeout(conn)
        result = publish(publisher_url, duck, config_path=serving_db.config_path)
        assert current_version(serving_db.url, config_path=serving_db.config_path) == result.version == 2
    finally:
        with psycopg.connect(serving_db.url, autocommit=True) as db:
            db.execute(f'REASSIGN OWNED BY "{publisher}" TO postgres')
            db.execute(f'DROP OWNED BY "{publisher}"')
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{publisher}"')


def test_swap_yields_to_a_reader_then_retries_after_a_pause(serving_db, duck, monkeypatch):
    """A reader holding a view past lock_timeout makes every attempt yield, each retry after a
    pause; the publish then fails with one line and the previous version stays current."""
    import yaml

    from cdp_pipelines.serving import versions

    publish(serving_db.url, duck, config_path=serving_db.config_path)
    raw = yaml.safe_load(serving_db.config_path.read_text())
    raw["publish"].update(lock_timeout="100ms", swap_attempts=3)
    serving_db.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    pauses = []
    monkeypatch.setattr(versions.time, "sleep", pauses.append)
    with psycopg.connect(serving_db.url) as reader:
        reader.execute("SELECT count(*) FROM cdp.customer_360").fetchone()  # holds its lock until commit
        with pytest.raises(ServingError, match=r"could not switch views .*\(3 attempts"):
            publish(serving_db.url, duck, config_path=serving_db.config_path)
    assert len(pauses) == 2 and all(versions.RETRY_PAUSE_SECONDS[0] <= p <= versions.RETRY_PAUSE_SECONDS[1]
                                    for p in pauses)
    assert current_version(serving_db.url, config_path=serving_db.config_path) == 1
    assert publish(serving_db.url, duck, config_path=serving_db.config_path).version == 3
