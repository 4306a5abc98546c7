"""Hand-made warehouse inputs for the profiles tests (standardized tables and the identity xref)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.settings import PROJECT_ROOT
from cdp_pipelines.vocabulary import STANDARDIZED_COLUMNS

CANONICAL = {column: "DATE" if column == "date_of_birth" else "VARCHAR" for column in STANDARDIZED_COLUMNS}
SOURCES = ("crm_accounts", "crm_cases", "web_events", "pos_transactions", "reviews", "social_posts")
CONFIG_DIR = PROJECT_ROOT / "config"


def load_inputs(warehouse: Path, records: list[dict]) -> None:
    """(Re)create standardized.<source>, standardized.identity_records and identity.customer_xref.

    Each record is a dict with source, source_record_id, customer_id, observed_at (ISO text or
    None), any canonical attributes and any src_<column> originals.
    """
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS standardized")
        con.execute("CREATE SCHEMA IF NOT EXISTS identity")
        head = ["source VARCHAR", "source_record_id VARCHAR", "observed_at TIMESTAMP"]
        head += [f"{c} {t}" for c, t in CANONICAL.items()]
        for source in SOURCES:
            rows = [r for r in records if r["source"] == source]
            originals = sorted({k for r in rows for k in r if k.startswith("src_")})
            columns = head + [f"{c} VARCHAR" for c in originals]
            con.execute(f"CREATE OR REPLACE TABLE standardized.{source} ({', '.join(columns)})")
            names = ["source", "source_record_id", "observed_at", *CANONICAL, *originals]
            if rows:
                con.executemany(
                    f"INSERT INTO standardized.{source} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                    [[r.get(n) for n in names] for r in rows],
                )
        union = " UNION ALL ".join(
            f"SELECT source, source_record_id, observed_at, {', '.join(CANONICAL)} FROM standardized.{s}" for s in SOURCES
        )
        con.execute(f"CREATE OR REPLACE TABLE standardized.identity_records AS {union}")
        con.execute(
            "CREATE OR REPLACE TABLE identity.customer_xref (source VARCHAR, source_record_id VARCHAR, customer_id VARCHAR, "
            "match_kind VARCHAR, match_probability DOUBLE, component VARCHAR, cluster VARCHAR)"
        )
        con.executemany(
            "INSERT INTO identity.customer_xref VALUES (?, ?, ?, 'deterministic', 1.0, ?, ?)",
            [[r["source"], r["source_record_id"], r["customer_id"], r["customer_id"], r["customer_id"]] for r in records],
        )
    finally:
        con.close()


def resources(tmp_path: Path) -> dict:
    return {
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), memory_limit="1GB"),
        "paths": ProjectPathsResource(
            data_dir=str(tmp_path / "data"), sources_file=str(PROJECT_ROOT / "data" / "sources.yaml"),
            config_dir=str(CONFIG_DIR), artifacts_dir=str(tmp_path / "artifacts"), export_dir=str(tmp_path / "exports"),
        ),
    }


def profile_definitions() -> list:
    """Every asset and check of the profiles stage, as the defs module exposes them."""
    import cdp_pipelines.defs.profiles as module

    return [v for v in vars(module).values() if isinstance(v, (dg.AssetsDefinition, dg.AssetChecksDefinition))]


def materialize_profiles(tmp_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(profile_definitions(), resources=resources(tmp_path), raise_on_error=False)


def query(tmp_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
