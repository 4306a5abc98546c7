"""publish: copy the warehouse's serving tables into a fresh cdp_v<N> schema, then swap views.

Loading happens where no reader looks (a new schema the reader roles cannot use); only a
complete, indexed, analysed version is exposed, in one transaction (see versions.swap_views).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg
from psycopg import errors, sql

from cdp_pipelines.serving.config import VERSION_COLUMN, ServingConfig, TableSpec, load_config
from cdp_pipelines.serving.document import DOCUMENT_COLUMN, DOCUMENT_TABLE, PartSource, document_query
from cdp_pipelines.serving.duck_types import Column, columns_of, duck_ref, quote_ident, table_exists
from cdp_pipelines.serving.phases import PhaseClock
from cdp_pipelines.serving.postgres import ServingError, connect
from cdp_pipelines.serving.schema import init_serving
from cdp_pipelines.serving.transfer import copy_query
from cdp_pipelines.serving.versions import prune_versions, read_current, session_lock, swap_views


class PublishError(ServingError):
    """The publish was refused or failed; the previous version stays current."""


@dataclass(frozen=True)
class PublishResult:
    version: int
    schema: str
    row_counts: dict[str, int]
    seconds: float
    dropped_schemas: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds per phase (see phases.PhaseClock): "load" covers the parallel table
    loads, whose per-table "copy/index/analyze <table>" phases overlap."""


@dataclass(frozen=True)
class TablePlan:
    spec: TableSpec
    columns: list[Column]
    rows: int
    missing: bool  # optional source absent: published empty with its declared columns
    query: str | None = None  # DuckDB SELECT giving `columns`; default: the columns of spec.source

    def select_sql(self) -> str:
        if self.query is not None:
            return self.query
        select = "SELECT {} FROM {}".format(", ".join(c.export_sql for c in self.columns), duck_ref(self.spec.source))
        if self.spec.load_in_key_order:  # DuckDB's text order is byte order, as the keys' COLLATE "C"
            select += " ORDER BY " + ", ".join(quote_ident(k) for k in self.spec.primary_key)
        return select


def publish(
    url: str,
    duck: duckdb.DuckDBPyConnection,
    *,
    config_path: Path | None = None,
    keep_versions: int = 2,
) -> PublishResult:
    """Load every configured table into cdp_v<N>, index it, and atomically make it current."""
    started = time.perf_counter()
    clock = PhaseClock()
    cfg = load_config(config_path)
    with clock.phase("plan"):
        plans = plan_tables(duck, cfg)
        document = plan_document(cfg, plans)
        init_serving(url, config_path=config_path)
    with connect(url, autocommit=True) as conn, session_lock(conn):
        _refuse_empty_tables(conn, cfg, plans)
        version = _start_version(conn, cfg)
        schema = cfg.version_schema(version)
        try:
            with clock.phase("load"):
                row_counts = _load_all(url, duck, cfg, schema, version, [document, *plans], clock)
            seconds = round(time.perf_counter() - started, 3)
            with clock.phase("swap"):
                swap_views(conn, cfg, version, log_sql=_log(cfg, version, "published", row_counts, seconds))
        except BaseException as exc:
            _abandon(conn, cfg, version, schema, exc)
            if isinstance(exc, ServingError | KeyboardInterrupt):
                raise
            raise PublishError(f"publish of {schema} failed: {_one_line(exc)}") from exc
        with clock.phase("prune"):
            dropped = prune_versions(conn, cfg, keep_versions)
    return PublishResult(version, schema, row_counts, round(time.perf_counter() - started, 3), dropped,
                         clock.seconds())


def plan_tables(duck: duckdb.DuckDBPyConnection, cfg: ServingConfig) -> list[TablePlan]:
    """Check every source exists (clear error otherwise) and read its columns and row count."""
    plans, missing = [], []
    for spec in cfg.tables:
        if not table_exists(duck, spec.source):
            if spec.optional:
                cols = [Column(n, "", t, "") for n, t in spec.columns_when_missing.items()]
                plans.append(TablePlan(spec, cols, 0, missing=True))
            else:
                missing.append(f"{spec.source} (served as {spec.name})")
            continue
        (rows,) = duck.execute(f"SELECT count(*) FROM {duck_ref(spec.source)}").fetchone()
        plans.append(TablePlan(spec, columns_of(duck, spec.source), int(rows), missing=False))
    if missing:
        raise PublishError("warehouse table(s) missing, build them before publishing: " + ", ".join(missing))
    for plan in plans:
        names = {c.name for c in plan.columns}
        needed = set(plan.spec.primary_key) | {c for idx in plan.spec.indexes for c in idx}
        if absent := sorted(needed - names):
            raise PublishError(f"{plan.spec.source} lacks key/index column(s) {absent} required by serving.yaml")
        if VERSION_COLUMN in names:
            raise PublishError(f"{plan.spec.source} already has a column named {VERSION_COLUMN}")
    return plans


def plan_document(cfg: ServingConfig, plans: list[TablePlan]) -> TablePlan:
    """The lookup documents as one more table to load: customer id, document text (see document.py).

    Loaded like the other tables and in parallel with them; first, since at several hundred
    bytes per customer it is the longest COPY.
    """
    by_name = {p.spec.name: p for p in plans}
    sources = {name: PartSource(None if p.missing else p.spec.source, p.columns) for name, p in by_name.items()}
    for part in cfg.document.parts:
        names = {c.name for c in by_name[part.table].columns}
        needed = {cfg.document.key} | ({part.column} if part.column else set())
        if absent := sorted(needed - names):
            raise PublishError(f"{by_name[part.table].spec.source} lacks column(s) {absent} "
                               f"needed by lookup_document part {part.name!r}")
    key = cfg.document.key
    spec = TableSpec(name=DOCUMENT_TABLE, source=f"lookup_document (one per {cfg.document.customers} row)",
                     primary_key=(key,))
    columns = [Column(key, "VARCHAR", "text", quote_ident(key)),
               Column(DOCUMENT_COLUMN, "VARCHAR", "text", DOCUMENT_COLUMN)]
    customers = by_name[cfg.document.customers]
    return TablePlan(spec, columns, customers.rows, missing=False, query=document_query(cfg.document, sources))


def _refuse_empty_tables(conn: psycopg.Connection, cfg: ServingConfig, plans: list[TablePlan]) -> None:
    if not cfg.refuse_empty:
        return
    current = read_current(conn, cfg)
    if current is None:
        return
    row = conn.execute(
        sql.SQL("SELECT row_counts FROM {}.publish_log WHERE version = %s").format(
            sql.Identifier(cfg.admin_schema)
        ),
        [current],
    ).fetchone()
    previous = row[0] if row else {}
    empty = [
        f"{p.spec.source} (version {current} served {previous[p.spec.name]} rows)"
        for p in plans
        if p.rows == 0 and not p.missing and not p.spec.allow_empty and previous.get(p.spec.name, 0) > 0
    ]
    if empty:
        raise PublishError(
            "refusing to publish empty table(s) that had rows before: " + ", ".join(empty)
            + " — set allow_empty for the table or refuse_empty_when_previous_had_rows: false"
        )


def _start_version(conn: psycopg.Connection, cfg: ServingConfig) -> int:
    admin = sql.Identifier(cfg.admin_schema)
    with conn.transaction():
        (version,) = conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) + 1 FROM {}.publish_log").format(admin)
        ).fetchone()
        conn.execute(
            sql.SQL("INSERT INTO {}.publish_log (version, status) VALUES (%s, 'loading')").format(admin),
            [version],
        )
        schema = sql.Identifier(cfg.version_schema(version))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    return version


def _load_all(url, duck, cfg: ServingConfig, schema: str, version: int, plans: list[TablePlan],
              clock: PhaseClock) -> dict[str, int]:
    """Load tables in parallel, one PostgreSQL connection and one DuckDB cursor per worker."""
    # Largest first so the longest load starts immediately (the documents, then by rows).
    ordered = sorted(plans, key=lambda p: (p.spec.name != DOCUMENT_TABLE, -p.rows))
    with ThreadPoolExecutor(max_workers=cfg.load_workers) as pool:
        futures = [pool.submit(_load_table, url, duck.cursor(), schema, version, p, clock) for p in ordered]
        failed = [(p, f.exception()) for p, f in zip(ordered, futures) if f.exception() is not None]
    if failed:
        # A duplicate key in a table also breaks the documents built from it: name the table.
        raise next((exc for p, exc in failed if p.spec.name != DOCUMENT_TABLE), failed[0][1])
    counts = {p.spec.name: f.result() for p, f in zip(ordered, futures)}
    for p in plans:
        if counts[p.spec.name] != p.rows:
            raise PublishError(f"{p.spec.name}: copied {counts[p.spec.name]} rows, warehouse has {p.rows}")
    return {p.spec.name: counts[p.spec.name] for p in plans}


def _load_table(url: str, duck: duckdb.DuckDBPyConnection, schema: str, version: int, plan: TablePlan,
                clock: PhaseClock) -> int:
    spec, target = plan.spec, sql.Identifier(schema, plan.spec.name)
    try:
        with connect(url) as pg:
            pg.execute("SET synchronous_commit = off")
            pg.execute("SET maintenance_work_mem = '512MB'")
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(column_type(c, spec))) for c in plan.columns
            )
            pg.execute(
                sql.SQL("CREATE TABLE {} ({}, {} integer NOT NULL DEFAULT {})").format(
                    target, columns, sql.Identifier(VERSION_COLUMN), sql.Literal(version)
                )
            )
            rows = 0
            if not plan.missing:
                # Frozen rows on all-visible pages from the start: index-only scans for the first
                # lookups, no hint bits for readers to write, and nothing for an insert-triggered
                # autovacuum to scan under live lookups. A VACUUM afterwards cannot do this: with
                # synchronous_commit off, it runs before the load's commit is flushed and leaves
                # every page unmarked.
                with clock.phase(f"copy {spec.name}"):
                    rows = copy_query(duck, plan.select_sql(), pg, target, plan.columns, freeze=True)
            with clock.phase(f"index {spec.name}"):
                if spec.primary_key:
                    pg.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                        target, sql.SQL(", ").join(map(sql.Identifier, spec.primary_key))))
                for cols in spec.indexes:
                    pg.execute(sql.SQL("CREATE INDEX ON {} ({})").format(
                        target, sql.SQL(", ").join(map(sql.Identifier, cols))))
                pg.commit()
            pg.autocommit = True
            with clock.phase(f"analyze {spec.name}"):  # planner statistics before channels query it
                pg.execute(sql.SQL("ANALYZE {}").format(target))
            return rows
    except errors.UniqueViolation as exc:
        raise PublishError(
            f"{spec.source}: duplicate primary key {list(spec.primary_key)} ({_one_line(exc)})"
        ) from None
    except psycopg.Error as exc:
        raise PublishError(f"loading {spec.source} into {schema}.{spec.name} failed: {_one_line(exc)}") from None
    finally:
        duck.close()


def column_type(column: Column, spec: TableSpec) -> str:
    """The column's PostgreSQL type; text in a key or index is compared byte by byte (COLLATE "C").

    Keys and identifiers are only ever matched for equality, so the database's linguistic
    collation buys nothing there and costs index builds and look-ups its slower comparisons; and
    an index in byte order cannot be corrupted by an operating-system upgrade that changes the
    collation's rules (as glibc 2.28 did)."""
    keyed = set(spec.primary_key) | {c for cols in spec.indexes for c in cols}
    return f'{column.pg_type} COLLATE "C"' if column.pg_type == "text" and column.name in keyed else column.pg_type


def _log(cfg: ServingConfig, version: int, status: str, counts: dict, seconds: float) -> sql.Composed:
    return sql.SQL(
        "UPDATE {}.publish_log SET status = {}, row_counts = {}::jsonb, seconds = {}, "
        "published_at = now() WHERE version = {}"
    ).format(
        sql.Identifier(cfg.admin_schema), sql.Literal(status), sql.Literal(json.dumps(counts)),
        sql.Literal(seconds), sql.Literal(version),
    )


def _abandon(conn: psycopg.Connection, cfg: ServingConfig, version: int, schema: str, exc: BaseException) -> None:
    """Drop the half-built schema and log the failure; the current version is untouched."""
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("UPDATE {}.publish_log SET status = 'failed', detail = %s WHERE version = %s").format(
                sql.Identifier(cfg.admin_schema)
            ),
            [_one_line(exc)[:2000], version],
        )
    except psycopg.Error:
        pass  # the original error matters more; a leftover schema is pruned by the next publish


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
