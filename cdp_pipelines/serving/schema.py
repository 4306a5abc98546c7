"""init_serving: the schemas, control tables, roles and lookup function publishing relies on.

Idempotent, so deployment scripts and the publish asset can both call it every time.
"""

from __future__ import annotations

from pathlib import Path

from psycopg import sql

from cdp_pipelines.serving.config import ServingConfig, load_config
from cdp_pipelines.serving.lookup_sql import FUNCTION_NAME, create_function_sql, drop_other_return_type_sql
from cdp_pipelines.serving.postgres import connect

ADVISORY_LOCK_KEY = "cdp_serving"
"""Serialises init, publish and rollback within one database."""


def init_serving(url: str, *, config_path: Path | None = None) -> None:
    """Create (if missing) schemas, cdp_admin tables, NOLOGIN reader roles and grants."""
    cfg = load_config(config_path)
    with connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [ADVISORY_LOCK_KEY])
        for statement in init_statements(cfg):
            conn.execute(statement)


def _create_role(role: str) -> sql.Composed:
    # DO blocks cannot take parameters; the role name is quoted by psycopg before being embedded.
    create = sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)).as_string(None)
    return sql.SQL(
        "DO {body}"
    ).format(
        body=sql.Literal(
            "BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {sql.Literal(role).as_string(None)}) "
            f"THEN {create}; END IF; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "
            "END"
        )
    )


def init_statements(cfg: ServingConfig) -> list[sql.Composable]:
    stable, marketing, admin = (
        sql.Identifier(cfg.stable_schema),
        sql.Identifier(cfg.marketing_schema),
        sql.Identifier(cfg.admin_schema),
    )
    reader, mreader = sql.Identifier(cfg.channel_role), sql.Identifier(cfg.marketing_role)
    fn = sql.Identifier(cfg.stable_schema, FUNCTION_NAME)
    q = sql.SQL
    return [
        q("CREATE SCHEMA IF NOT EXISTS {}").format(stable),
        q("CREATE SCHEMA IF NOT EXISTS {}").format(marketing),
        q("CREATE SCHEMA IF NOT EXISTS {}").format(admin),
        q(
            "CREATE TABLE IF NOT EXISTS {}.publish_log ("
            " version integer PRIMARY KEY,"
            " published_at timestamptz NOT NULL DEFAULT now(),"
            " status text NOT NULL CHECK (status IN ('loading','published','failed','rolled_back')),"
            " row_counts jsonb NOT NULL DEFAULT '{{}}'::jsonb,"
            " seconds double precision,"
            " detail text)"
        ).format(admin),
        q(
            "CREATE TABLE IF NOT EXISTS {}.current ("
            " one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),"
            " version integer NOT NULL)"
        ).format(admin),
        _create_role(cfg.channel_role),
        _create_role(cfg.marketing_role),
        q("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(admin),
        q("REVOKE CREATE ON SCHEMA {}, {} FROM PUBLIC").format(stable, marketing),
        q("GRANT USAGE ON SCHEMA {} TO {}").format(stable, reader),
        q("GRANT USAGE ON SCHEMA {} TO {}").format(marketing, mreader),
        q("SET LOCAL check_function_bodies = off"),  # views appear on first publish
        drop_other_return_type_sql(cfg.stable_schema),
        create_function_sql(cfg.stable_schema),
        q("REVOKE ALL ON FUNCTION {}(text[], text[]) FROM PUBLIC").format(fn),
        q("GRANT EXECUTE ON FUNCTION {}(text[], text[]) TO {}").format(fn, reader),
    ]
