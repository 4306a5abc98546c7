"""The serving layout read from config/serving.yaml, so tables, keys and exposure are data."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from cdp_pipelines import settings
from cdp_pipelines.config_files import Named, keys_model, read_yaml_mapping, validate_mapping

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
    load_in_key_order: bool = False
    """Rows are copied sorted by the primary key: PostgreSQL then builds the key's index from
    presorted input, and rows with neighbouring keys share pages (lookups by key read fewer)."""


DOCUMENT_SHAPES = ("row", "rows", "values")
RESERVED_DOCUMENT_KEYS = ("customer_id", "matched_on", "candidates", "version")
"""Keys the lookup function adds to every document per call; no part may use them."""


@dataclass(frozen=True)
class DocumentPart:
    name: str  # key in the document
    table: str  # a served table's name
    shape: str  # one of DOCUMENT_SHAPES
    column: str | None = None  # for shape "values"


@dataclass(frozen=True)
class DocumentSpec:
    """The per-customer lookup document: parts of served tables, joined on `key`."""

    key: str
    customers: str  # served table holding one row per customer: one document each
    parts: tuple[DocumentPart, ...]


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
    document: DocumentSpec

    def version_schema(self, version: int) -> str:
        return f"{self.version_prefix}{int(version)}"

    def marketing_may_see(self, column: str) -> bool:
        name = column.lower()
        return not any(fnmatch.fnmatchcase(name, p.lower()) for p in self.marketing_excluded)


def default_config_path() -> Path:
    return settings.config_dir() / "serving.yaml"


SERVING_KEYS = keys_model("ServingKeys", {
    "schemas": {"stable": None, "marketing": None, "admin": None, "version_prefix": None},
    "roles": {"channel_reader": None, "marketing_reader": None},
    "publish": {"refuse_empty_when_previous_had_rows": None, "load_workers": None, "lock_timeout": None,
                "swap_attempts": None},
    "marketing_excluded_columns": None,
    "tables": Named({"source": None, "primary_key": None, "indexes": None, "marketing": None, "optional": None,
                     "allow_empty": None, "columns_when_missing": None, "load_in_key_order": None}),
    "lookup_document": {"key": None, "customers": None, "parts": Named({"table": None, "shape": None, "column": None})},
})
"""The keys serving.yaml may hold: a misspelled one would otherwise fall back to a default
silently. Values are checked as the layout is built."""


def load_config(path: Path | None = None) -> ServingConfig:
    """Read and validate the serving YAML (default: <config dir>/serving.yaml)."""
    path = Path(path) if path else default_config_path()
    raw = read_yaml_mapping(path, ServingConfigError)
    validate_mapping(path, raw, SERVING_KEYS, ServingConfigError)
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
            document=_document(raw["lookup_document"], tables),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ServingConfigError(f"invalid serving config {path}: {exc!r}") from None


def _document(raw: dict, tables: tuple[TableSpec, ...]) -> DocumentSpec:
    """Validate lookup_document against the served tables, so a publish cannot build a document
    that duplicates customers or collides with the keys the lookup adds."""
    by_name = {t.name: t for t in tables}
    key, customers = raw["key"], raw["customers"]
    if by_name.get(customers) is None or by_name[customers].primary_key != (key,):
        raise ServingConfigError(f"lookup_document.customers {customers!r} must be a served table keyed by [{key}]")
    parts = []
    for name, spec in (raw.get("parts") or {}).items():
        part = DocumentPart(name, spec["table"], spec["shape"], spec.get("column"))
        table = by_name.get(part.table)
        problem = (
            "uses a reserved key" if name in RESERVED_DOCUMENT_KEYS
            else f"unknown table {part.table!r}" if table is None
            else f"shape must be one of {DOCUMENT_SHAPES}" if part.shape not in DOCUMENT_SHAPES
            else f"shape row needs a table keyed by [{key}]" if part.shape == "row" and table.primary_key != (key,)
            else "shape values needs a column" if part.shape == "values" and not part.column
            else None
        )
        if problem:
            raise ServingConfigError(f"lookup_document part {name!r}: {problem}")
        parts.append(part)
    if not parts:
        raise ServingConfigError("lookup_document needs at least one part")
    return DocumentSpec(key, customers, tuple(parts))


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
        load_in_key_order=_load_in_key_order(name, spec),
    )


def _load_in_key_order(name: str, spec: dict) -> bool:
    ordered = spec.get("load_in_key_order", False)
    if not isinstance(ordered, bool):
        raise ServingConfigError(f"serving table {name!r}: load_in_key_order must be true or false")
    if ordered and not spec.get("primary_key"):
        raise ServingConfigError(f"serving table {name!r}: load_in_key_order needs a primary_key")
    return ordered
