"""Where things live: project paths and the environment variables that override them.

Every path a user may want to change has one environment variable, read here and nowhere else,
so the CLI, the Dagster resources and the tests agree on what "the default" means.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ENV_DATA_DIR = "CDP_DATA_DIR"
ENV_SOURCES_FILE = "CDP_SOURCES_FILE"
ENV_WAREHOUSE = "CDP_WAREHOUSE"
ENV_CONFIG_DIR = "CDP_CONFIG_DIR"
ENV_ARTIFACTS_DIR = "CDP_ARTIFACTS_DIR"
ENV_SERVING_URL = "CDP_SERVING_URL"
ENV_EXPORT_DIR = "CDP_EXPORT_DIR"
ENV_SHOW_PII = "CDP_SHOW_PII"
ENV_SUPPRESSION_FILE = "CDP_SUPPRESSION_FILE"
ENV_WAREHOUSE_COMPACT_TEXT = "CDP_WAREHOUSE_COMPACT_TEXT"


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Folder holding the source files named in the sources file (default: the committed sample)."""
    return _path_from_env(ENV_DATA_DIR, PROJECT_ROOT / "data" / "sample")


def sources_file() -> Path:
    """The declarative list of sources (see data/sources.yaml)."""
    return _path_from_env(ENV_SOURCES_FILE, PROJECT_ROOT / "data" / "sources.yaml")


def warehouse_path() -> Path:
    """The embedded DuckDB warehouse file every stage reads and writes."""
    return _path_from_env(ENV_WAREHOUSE, PROJECT_ROOT / "data" / "warehouse.duckdb")


def config_dir() -> Path:
    """Declarative configuration: identity, survivorship, context rules, segments, serving."""
    return _path_from_env(ENV_CONFIG_DIR, PROJECT_ROOT / "config")


def artifacts_dir() -> Path:
    """Model files, charts and reports written by runs (linked from asset metadata)."""
    return _path_from_env(ENV_ARTIFACTS_DIR, PROJECT_ROOT / "data" / "artifacts")


def export_dir() -> Path:
    """Where segment exports are written."""
    return _path_from_env(ENV_EXPORT_DIR, PROJECT_ROOT / "data" / "exports")


def suppression_file() -> Path:
    """Erasure requests (hashed identifiers only) applied on every run."""
    return _path_from_env(ENV_SUPPRESSION_FILE, PROJECT_ROOT / "data" / "suppression" / "erasure_requests.csv")


def serving_url() -> str | None:
    """PostgreSQL URL of the serving store; publishing is skipped when it is not set."""
    return os.environ.get(ENV_SERVING_URL, "").strip() or None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def warehouse_compact_text() -> bool:
    """Whether the warehouse compresses text with DuckDB's dictionary+FSST scheme (smaller file,
    slower writes; see WarehouseResource.compact_text)."""
    return _flag(ENV_WAREHOUSE_COMPACT_TEXT)


def show_pii() -> bool:
    """Whether previews and logs may show personal data unmasked (off unless asked for)."""
    return _flag(ENV_SHOW_PII)


SQL_MODELS_DIR = PROJECT_ROOT / "dbt_like_sql"
