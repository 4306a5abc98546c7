"""Readers never see a half-written, empty or mixed version while publishes run."""

from __future__ import annotations

import threading
import time

import duckdb
import psycopg
import pytest

from cdp_pipelines.serving import lookup, publish

from postgres_fixtures import build_serving_warehouse

pytestmark = pytest.mark.postgres

# One statement, one snapshot: row counts and version markers of every view at once.
CONSISTENCY_SQL = """
SELECT (SELECT count(*) FROM cdp.customer_360),
       (SELECT count(*) FROM cdp.identity_lookup),
       ARRAY[(SELECT min(_publish_version) FROM cdp.customer_360),
             (SELECT max(_publish_version) FROM cdp.customer_360),
             (SELECT min(_publish_version) FROM cdp.contact_context),
             (SELECT max(_publish_version) FROM cdp.journeys),
             (SELECT min(_publish_version) FROM cdp.customer_sentiment),
             (SELECT max(_publish_version) FROM cdp.escalations),
             (SELECT min(_publish_version) FROM cdp.segment_membership),
             (SELECT max(_publish_version) FROM cdp.identity_lookup)]
"""


def test_readers_see_whole_versions_during_publishes(serving_db):
    customers = {1: 20, 2: 30, 3: 40, 4: 50}
    duck = duckdb.connect()
    build_serving_warehouse(duck, customers[1])
    publish(serving_db.url, duck, config_path=serving_db.config_path)

    problems: list[str] = []
    seen: dict[int, int] = {}
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(serving_db.url, autocommit=True) as conn:
            conn.execute(f'SET ROLE "{serving_db.channel_role}"')
            while not stop.is_set():
                try:
                    n_customers, n_identifiers, versions = conn.execute(CONSISTENCY_SQL).fetchone()
                    hits = lookup(conn, card="LC000001")
                except psycopg.Error as exc:
                    problems.append(f"error: {exc}")
                    return
                version = versions[0]
                if len(set(versions)) != 1:
                    problems.append(f"mixed versions {versions}")
                elif n_customers != customers.get(version) or n_identifiers != 8 * customers[version]:
                    problems.append(f"version {version}: {n_customers} customers, {n_identifiers} identifiers")
                elif len(hits) != 1 or hits[0]["version"] not in customers:
                    problems.append(f"lookup returned {hits}")
                seen[version] = seen.get(version, 0) + 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for version in (2, 3, 4):
            time.sleep(0.2)
            build_serving_warehouse(duck, customers[version])
            assert publish(serving_db.url, duck, config_path=serving_db.config_path).version == version
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not problems, problems[:5]
    assert set(seen) >= {1, 4} and len(seen) >= 3, seen
