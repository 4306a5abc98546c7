"""Shared PostgreSQL fixtures: a fresh database and fresh reader roles per test.

The server URL comes from CDP_TEST_POSTGRES_URL. Without it the tests skip — except under
CI=true, where a missing server is a failure, so CI can never silently skip them. Databases and
roles get a random cdp_test_<hex> prefix so parallel workers (pytest-xdist) never collide.
Import the fixtures from conftest.py:  from cdp_tests.postgres_fixtures import *  # noqa
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cdp_pipelines import settings
from cdp_pipelines.serving.postgres import ServingConnectionError, connect

ENV_TEST_URL = "CDP_TEST_POSTGRES_URL"

__all__ = ["postgres_server_url", "serving_db", "ServingTestDB", "fresh_database"]


@dataclass(frozen=True)
class ServingTestDB:
    url: str
    config_path: Path
    channel_role: str
    marketing_role: str


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The maintenance URL of the test server (skip, or fail under CI=true, when unset)."""
    url = os.environ.get(ENV_TEST_URL, "").strip()
    if not url:
        message = f"{ENV_TEST_URL} is not set: PostgreSQL tests need a server"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message + " (CI=true, so this is a failure, not a skip)")
        pytest.skip(message)
    try:
        connect(url).close()
    except ServingConnectionError as exc:
        pytest.fail(f"{ENV_TEST_URL}: {exc}")
    return url


class fresh_database:
    """Context manager: CREATE DATABASE <name> on the server, yield its URL, drop it (FORCE)."""

    def __init__(self, server_url: str, name: str):
        self.server_url, self.name = server_url, name

    def __enter__(self) -> str:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        info = conninfo_to_dict(self.server_url)
        info["dbname"] = self.name
        return make_conninfo(**info)

    def __exit__(self, *exc) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def _drop_roles(server_url: str, roles: list[str]) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def serving_db(postgres_server_url: str, tmp_path: Path):
    """A throw-away database plus a serving.yaml whose roles are unique to this test."""
    prefix = f"cdp_test_{uuid.uuid4().hex[:12]}"
    raw = yaml.safe_load((settings.PROJECT_ROOT / "config" / "serving.yaml").read_text())
    raw["roles"] = {"channel_reader": f"{prefix}_channel", "marketing_reader": f"{prefix}_marketing"}
    config_path = tmp_path / "serving.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    roles = list(raw["roles"].values())
    try:
        with fresh_database(postgres_server_url, prefix) as url:
            yield ServingTestDB(url, config_path, roles[0], roles[1])
    finally:
        _drop_roles(postgres_server_url, roles)


def build_serving_warehouse(duck, customers: int = 20, *, tag: str = "a") -> None:
    """Small marts/segments/serving tables shaped like the pipeline's, for publish tests.

    `tag` goes into a text column so tests can tell two publishes apart. Customer 1 and 2 share
    a phone number (a household), which lookups must report as two candidates.
    """
    duck.execute("CREATE SCHEMA IF NOT EXISTS marts; CREATE SCHEMA IF NOT EXISTS segments; "
                 "CREATE SCHEMA IF NOT EXISTS serving")
    cid = "printf('C%06d', i)"
    duck.execute(f"""
        CREATE OR REPLACE TABLE marts.customer_360 AS
        SELECT {cid} AS customer_id, 'First' || i AS first_name, 'Last' || i AS last_name,
               'cust' || i || '@mail.co.uk' AS email, DATE '1980-01-01' + i::INTEGER AS date_of_birth,
               (i * 10.5)::DOUBLE AS lifetime_value, i % 2 = 0 AS is_vip,
               TIMESTAMP '2024-05-01 09:00:00' + to_minutes(i) AS last_seen_at,
               ['web', 'store'] AS channels, {{'city': 'Leeds', 'postcode': 'LS1 1AA'}} AS address,
               'prefers email; said "call back"' AS agent_notes, '{tag}' AS build_tag
        FROM range(1, {customers} + 1) t(i)""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE marts.contact_context AS
        SELECT {cid} AS customer_id, TIMESTAMP '2024-06-01 10:00:00' AS last_contact_at,
               (i % 3)::INTEGER AS open_cases, CASE WHEN i % 4 = 0 THEN NULL ELSE 'note ' || i END AS notes,
               '' AS empty_text, 'offer_' || (i % 5) AS next_best_action
        FROM range(1, {customers} + 1) t(i)""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE marts.journeys AS
        SELECT 'J' || i || '-' || k AS journey_id, {cid} AS customer_id, 'stage_' || k AS stage
        FROM range(1, {customers} + 1) t(i), range(2) s(k)""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE marts.customer_sentiment AS
        SELECT {cid} AS customer_id, (i % 7) / 7.0 - 0.5 AS score, 'neutral' AS label
        FROM range(1, {customers} + 1) t(i)""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE marts.escalations AS
        SELECT 'E' || i AS escalation_id, {cid} AS customer_id, 'late delivery' AS reason,
               'customer angry' AS agent_comment
        FROM range(1, {customers} + 1) t(i) WHERE i % 3 = 0""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE segments.membership AS
        SELECT seg AS segment, {cid} AS customer_id
        FROM range(1, {customers} + 1) t(i), (VALUES ('all'), ('even')) s(seg)
        WHERE seg = 'all' OR i % 2 = 0""")
    duck.execute(f"""
        CREATE OR REPLACE TABLE serving.identity_lookup AS
        SELECT * FROM (
          SELECT 'email' AS identifier_type, 'cust' || i || '@mail.co.uk' AS identifier_value, {cid} AS customer_id FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'phone', '+447700900' || printf('%03d', CASE WHEN i = 2 THEN 1 ELSE i END), {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'loyalty_card', printf('LC%06d', i), {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'cookie_id', 'CK-' || i || '-ABC', {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'order_number', 'ORD-' || i, {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'account_id', 'ACC' || i, {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'web_user_id', 'WU_' || i, {cid} FROM range(1, {customers} + 1) t(i)
          UNION ALL SELECT 'social_handle', 'handle_' || i, {cid} FROM range(1, {customers} + 1) t(i)
        )""")
