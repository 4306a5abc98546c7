"""Re-pointing the stable views at a version schema, rollback, and pruning old versions.

The swap happens in one transaction: readers see either every view on the old version or every
view on the new one, never a mix and never a half-loaded table.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import psycopg
from psycopg import errors, sql

from cdp_pipelines.serving.config import ServingConfig, load_config
from cdp_pipelines.serving.document import DOCUMENT_TABLE
from cdp_pipelines.serving.postgres import ServingError, connect
from cdp_pipelines.serving.schema import ADVISORY_LOCK_KEY

RETRY_PAUSE_SECONDS = (0.05, 0.25)
"""A swap that yielded to readers waits a random moment in this range before trying again, so
it does not meet the same reader (or a deadlock with it) at once again."""


def current_version(url: str, *, config_path: Path | None = None) -> int | None:
    """The version the stable views point at, or None before the first publish."""
    cfg = load_config(config_path)
    with connect(url, autocommit=True) as conn:
        return read_current(conn, cfg)


def read_current(conn: psycopg.Connection, cfg: ServingConfig) -> int | None:
    try:
        row = conn.execute(
            sql.SQL("SELECT version FROM {}.current").format(sql.Identifier(cfg.admin_schema))
        ).fetchone()
    except errors.UndefinedTable:
        raise ServingError("serving store is not initialised: run `cdp serving init` first") from None
    return row[0] if row else None


def rollback(url: str, *, config_path: Path | None = None) -> int:
    """Point the views back at the newest kept version older than the current one."""
    cfg = load_config(config_path)
    with connect(url, autocommit=True) as conn:
        with session_lock(conn):
            current = read_current(conn, cfg)
            if current is None:
                raise ServingError("nothing to roll back: no version has been published")
            earlier = [v for v in kept_published_versions(conn, cfg) if v < current]
            if not earlier:
                raise ServingError(
                    f"cannot roll back from version {current}: no earlier version is kept "
                    f"(raise keep_versions to keep more)"
                )
            target = max(earlier)
            swap_views(conn, cfg, target, log_sql=_mark_rolled_back(cfg, current))
            return target


def _mark_rolled_back(cfg: ServingConfig, version: int) -> sql.Composed:
    return sql.SQL(
        "UPDATE {}.publish_log SET status = 'rolled_back', detail = 'rolled back' "
        "WHERE version = {}"
    ).format(sql.Identifier(cfg.admin_schema), sql.Literal(version))


class session_lock:
    """Holds the serving advisory lock for the duration of a with-block (autocommit conn)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [ADVISORY_LOCK_KEY])
        return self

    def __exit__(self, *exc):
        if not self.conn.closed:
            self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [ADVISORY_LOCK_KEY])


def version_schemas(conn: psycopg.Connection, cfg: ServingConfig) -> dict[int, str]:
    pattern = "^" + re.escape(cfg.version_prefix) + "[0-9]+$"
    rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname ~ %s", [pattern]).fetchall()
    return {int(name[len(cfg.version_prefix):]): name for (name,) in rows}


def kept_published_versions(conn: psycopg.Connection, cfg: ServingConfig) -> list[int]:
    """Versions that published successfully and whose schema still exists, newest first."""
    existing = version_schemas(conn, cfg)
    rows = conn.execute(
        sql.SQL(
            "SELECT version FROM {}.publish_log WHERE status = 'published' ORDER BY version DESC"
        ).format(sql.Identifier(cfg.admin_schema))
    ).fetchall()
    return [v for (v,) in rows if v in existing]


def table_columns(conn: psycopg.Connection, schema: str) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
        [schema],
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def swap_views(
    conn: psycopg.Connection, cfg: ServingConfig, version: int, *, log_sql: sql.Composable
) -> None:
    """In one transaction: every stable and marketing view → cdp_v<version>, current updated.

    All existing views are locked first, in config order (identity_lookup first: the order the
    lookup function reads them), so the lookup and single-view readers can never deadlock with
    the swap. A reader joining views in another order can; a short deadlock_timeout makes the
    swap the one that yields, and it retries after a short random pause. Setting it needs a
    superuser or `GRANT SET ON PARAMETER deadlock_timeout` (PostgreSQL 15+); a publisher without
    either keeps the server's deadlock_timeout, so a deadlock is found later, never missed.
    """
    source = cfg.version_schema(version)
    shorten_deadlock_timeout = can_set_deadlock_timeout(conn)
    columns = table_columns(conn, source)
    wanted = [t.name for t in cfg.tables if t.name in columns] + [DOCUMENT_TABLE] * (DOCUMENT_TABLE in columns)
    last_error: Exception | None = None
    for attempt in range(cfg.swap_attempts):
        if attempt:
            time.sleep(random.uniform(*RETRY_PAUSE_SECONDS))  # let the reader that won finish
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(cfg.lock_timeout)))
                if shorten_deadlock_timeout:
                    conn.execute("SET LOCAL deadlock_timeout = '50ms'")
                _lock_existing_views(conn, cfg)
                for spec in cfg.tables:
                    if spec.name not in columns:
                        continue
                    cols = columns[spec.name]
                    _point_view(conn, cfg.stable_schema, spec.name, source, cols, cfg.channel_role)
                    if spec.marketing:
                        visible = [c for c in cols if cfg.marketing_may_see(c)]
                        _point_view(conn, cfg.marketing_schema, spec.name, source, visible, cfg.marketing_role)
                    else:
                        _drop_view(conn, cfg.marketing_schema, spec.name)
                if DOCUMENT_TABLE in columns:  # channel readers only: it holds notes and dates of birth
                    _point_view(conn, cfg.stable_schema, DOCUMENT_TABLE, source, columns[DOCUMENT_TABLE], cfg.channel_role)
                _drop_stale_views(conn, cfg.stable_schema, wanted)
                _drop_stale_views(conn, cfg.marketing_schema, [t.name for t in cfg.tables if t.marketing])
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.current (one_row, version) VALUES (true, {}) "
                        "ON CONFLICT (one_row) DO UPDATE SET version = EXCLUDED.version"
                    ).format(sql.Identifier(cfg.admin_schema), sql.Literal(version))
                )
                conn.execute(log_sql)
            return
        except (errors.LockNotAvailable, errors.DeadlockDetected) as exc:
            last_error = exc
    raise ServingError(
        f"could not switch views to {source}: readers held locks for too long "
        f"({cfg.swap_attempts} attempts, lock_timeout {cfg.lock_timeout}): {last_error}"
    )


def can_set_deadlock_timeout(conn: psycopg.Connection) -> bool:
    """Whether the session's role may change deadlock_timeout (a superuser-only setting unless
    granted with SET ON PARAMETER, which PostgreSQL 15 introduced)."""
    if conn.info.server_version >= 150000:
        query = "SELECT has_parameter_privilege('deadlock_timeout', 'SET')"
    else:
        query = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    row = conn.execute(query).fetchone()
    return bool(row and row[0])


def _lock_existing_views(conn, cfg: ServingConfig) -> None:
    # The lookup reads identity_lookup (first in the config), then customer_context: same order here.
    stable = [t.name for t in cfg.tables]
    names = [(cfg.stable_schema, n) for n in [*stable[:1], DOCUMENT_TABLE, *stable[1:]]]
    names += [(cfg.marketing_schema, t.name) for t in cfg.tables]
    existing = {
        (schema, name)
        for schema, name in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.views WHERE table_schema = ANY(%s)",
            [[cfg.stable_schema, cfg.marketing_schema]],
        )
    }
    ordered = [sql.Identifier(*n) for n in names if n in existing]
    if ordered:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(ordered)))


def _point_view(conn, schema: str, view: str, source: str, cols: list[str], role: str) -> None:
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.Identifier(source, view)
    )
    target = sql.Identifier(schema, view)
    try:
        with conn.transaction():  # savepoint: OR REPLACE fails when columns were removed/changed
            conn.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(target, select))
    except (errors.InvalidTableDefinition, errors.DatatypeMismatch, errors.FeatureNotSupported):
        conn.execute(sql.SQL("DROP VIEW {}").format(target))
        conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(target, select))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(target, sql.Identifier(role)))


def _drop_view(conn, schema: str, view: str) -> None:
    conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, view)))


def _drop_stale_views(conn, schema: str, keep: list[str]) -> None:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.views WHERE table_schema = %s", [schema]
    ).fetchall()
    for (name,) in rows:
        if name not in keep:
            _drop_view(conn, schema, name)


def prune_versions(conn: psycopg.Connection, cfg: ServingConfig, keep_versions: int) -> list[str]:
    """Drop version schemas beyond the current one plus keep_versions-1 earlier published ones.

    Best effort: a schema still locked by a long reader is left for the next publish.
    """
    current = read_current(conn, cfg)
    earlier = [v for v in kept_published_versions(conn, cfg) if current is None or v < current]
    keep = set(earlier[: max(keep_versions - 1, 0)]) | ({current} if current is not None else set())
    dropped = []
    for version, schema in sorted(version_schemas(conn, cfg).items()):
        if version in keep:
            continue
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(cfg.lock_timeout)))
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            dropped.append(schema)
        except (errors.LockNotAvailable, errors.DeadlockDetected):
            continue
    return dropped
