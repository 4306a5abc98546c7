"""The serving layout read from config/serving.yaml, so tables, keys and exposure are data."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cdp_pipelines import settings

VERSION_COLUMN = "_publish_version"
"""Added to every published table: lets any reader prove which version a row came from."""


class ServingConfigError(ValueError):
    """The serving YAML is missing or malformed."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    source: str
    primary_key: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    marketing: bool = True
    optional: bool = False
    allow_empty: bool = False
    columns_when_missing: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServingConfig:
    stable_schema: str
    marketing_schema: str
    admin_schema: str
    version_prefix: str
    channel_role: str
    marketing_role: str
    refuse_empty: bool
    load_workers: int
    lock_timeout: str
    swap_attempts: int
    marketing_excluded: tuple[str, ...]
    tables: tuple[TableSpec, ...]

    def version_schema(self, version: int) -> str:
        return f"{self.version_prefix}{int(version)}"

    def marketing_may_see(self, column: str) -> bool:
        name = column.lower()
        return not any(fnmatch.fnmatchcase(name, p.lower()) for p in self.marketing_excluded)


def default_config_path() -> Path:
    return settings.config_dir() / "serving.yaml"


def load_config(path: Path | None = None) -> ServingConfig:
    """Read and validate the serving YAML (default: <config dir>/serving.yaml)."""
    path = Path(path) if path else default_config_path()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ServingConfigError(f"serving config not found: {path}") from None
    try:
        schemas, roles = raw.get("schemas", {}), raw.get("roles", {})
        pub = raw.get("publish", {})
        tables = tuple(_table(name, spec or {}) for name, spec in raw["tables"].items())
        return ServingConfig(
            stable_schema=schemas.get("stable", "cdp"),
            marketing_schema=schemas.get("marketing", "cdp_marketing"),
            admin_schema=schemas.get("admin", "cdp_admin"),
            version_prefix=schemas.get("version_prefix", "cdp_v"),
            channel_role=roles.get("channel_reader", "cdp_channel_reader"),
            marketing_role=roles.get("marketing_reader", "cdp_marketing_reader"),
            refuse_empty=bool(pub.get("refuse_empty_when_previous_had_rows", True)),
            load_workers=max(1, int(pub.get("load_workers", 2))),
            lock_timeout=str(pub.get("lock_timeout", "5s")),
            swap_attempts=max(1, int(pub.get("swap_attempts", 5))),
            marketing_excluded=tuple(raw.get("marketing_excluded_columns", [])),
            tables=tables,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ServingConfigError(f"invalid serving config {path}: {exc!r}") from None


def _table(name: str, spec: dict) -> TableSpec:
    if "source" not in spec:
        raise ServingConfigError(f"serving table {name!r} has no 'source'")
    return TableSpec(
        name=name,
        source=spec["source"],
        primary_key=tuple(spec.get("primary_key", ())),
        indexes=tuple(tuple(cols) for cols in spec.get("indexes", ())),
        marketing=bool(spec.get("marketing", True)),
        optional=bool(spec.get("optional", False)),
        allow_empty=bool(spec.get("allow_empty", False)),
        columns_when_missing=dict(spec.get("columns_when_missing", {})),
    )
