"""SQL models: one SELECT per file under dbt_like_sql/<layer>/, table `<layer>.<file stem>`.

The tables a model reads are found by parsing its SQL with sqlglot, so dependencies never have
to be declared twice. A model's leading `--` comment is its description; two directive lines in
it are read as well:

    -- key: customer_id, rule        columns that identify a row (checked for uniqueness)
    -- freshness: last_contact_at    timestamp column whose maximum is reported as freshness
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from graphlib import TopologicalSorter
from pathlib import Path

import sqlglot
from sqlglot import exp

LAYERS = ("staging", "intermediate", "marts")
VAR_PATTERN = re.compile(r"\{\{\s*var\(\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\)\s*\}\}")
_DIRECTIVE = re.compile(r"^(key|freshness)\s*:\s*(.+)$", re.IGNORECASE)


class ModelError(ValueError):
    """A model file that cannot be used: unparseable, unqualified table, unknown layer."""


@dataclass(frozen=True)
class SqlModel:
    layer: str
    name: str
    path: Path
    sql: str
    description: str
    deps: tuple[tuple[str, str], ...]
    variables: tuple[str, ...]
    key: tuple[str, ...] = field(default=())
    freshness: str | None = None

    @property
    def table(self) -> str:
        return f"{self.layer}.{self.name}"


def leading_comment(sql: str) -> tuple[str, dict[str, str]]:
    """The description and directives from the `--` lines before the first statement line."""
    lines, directives = [], {}
    for raw in sql.splitlines():
        line = raw.strip()
        if not line:
            if lines:
                lines.append("")
            continue
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        match = _DIRECTIVE.match(text)
        if match:
            directives[match.group(1).lower()] = match.group(2).strip()
        else:
            lines.append(text)
    description = re.sub(r"(?<!\n)\n(?!\n)", " ", "\n".join(lines).strip())
    return description, directives


@lru_cache(maxsize=256)
def referenced_tables(sql: str) -> frozenset[tuple[str, str]]:
    """Schema-qualified tables a SELECT reads; CTE names are not tables.

    Variables are replaced by NULL first: only the shape of the query matters here. Remembered
    per SQL text: loading the definitions reads every model twice (the assets, and the
    incremental job's configuration), and parsing them took a quarter of a second each time.
    """
    try:
        tree = sqlglot.parse_one(VAR_PATTERN.sub("NULL", sql), read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"cannot parse SQL: {exc}") from exc
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables: set[tuple[str, str]] = set()
    for table in tree.find_all(exp.Table):
        schema, name = table.db, table.name
        if not name:
            continue
        if not schema:
            if name.lower() in cte_names:
                continue
            raise ModelError(f"table '{name}' is neither a CTE nor schema-qualified (write <schema>.{name})")
        tables.add((schema.lower(), name.lower()))
    return frozenset(tables)


def load_model(path: Path, layer: str) -> SqlModel:
    sql = path.read_text(encoding="utf-8")
    description, directives = leading_comment(sql)
    try:
        deps = referenced_tables(sql)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    key = tuple(c.strip() for c in directives.get("key", "").split(",") if c.strip())
    return SqlModel(
        layer=layer, name=path.stem, path=path, sql=sql, description=description,
        deps=tuple(sorted(deps)), variables=tuple(sorted(set(VAR_PATTERN.findall(sql)))),
        key=key, freshness=directives.get("freshness"),
    )


def discover_models(models_dir: Path) -> list[SqlModel]:
    """Every model under models_dir, in an order where each model comes after what it reads."""
    models = []
    for layer in LAYERS:
        for path in sorted((models_dir / layer).glob("*.sql")):
            models.append(load_model(path, layer))
    unknown = sorted(p.parent.name for p in models_dir.glob("*/*.sql") if p.parent.name not in LAYERS)
    if unknown:
        raise ModelError(f"SQL files in unknown layers {unknown}; layers are {list(LAYERS)}")
    return topological_order(models)


def topological_order(models: list[SqlModel]) -> list[SqlModel]:
    by_table = {(m.layer, m.name): m for m in models}
    graph = {key: {d for d in m.deps if d in by_table} for key, m in by_table.items()}
    return [by_table[key] for key in TopologicalSorter(graph).static_order()]
