"""Quality suites as declared in config/quality.yaml, resolved for one concrete table.

The YAML names expectations by their Great Expectations type and gives each a severity, so the
contract lives in configuration and the code only knows how to apply it. Column names may be
placeholders (`{record_id}`, `{timestamp}`, or a canonical attribute such as `{email}`) that are
filled per table, which lets one suite serve every source of a kind.

This module does not import Great Expectations: loading and resolving suites stays cheap for the
Dagster code location; only `quality.validate_frame` pays the GX import.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict

from cdp_pipelines import settings
from cdp_pipelines.config_files import StrictModel, keys_model, read_yaml_mapping, validate_mapping

SEVERITIES = ("blocking", "warning")
PARSE_MODES = ("date", "datetime")
# Keys of a YAML expectation entry that are ours; every other key is passed to the expectation.
RESERVED_KEYS = {"expectation", "column", "severity", "parse", "problem"}
_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")


def default_config_path() -> Path:
    """The project's quality configuration (follows CDP_CONFIG_DIR)."""
    return settings.config_dir() / "quality.yaml"


@dataclass(frozen=True)
class RuleSpec:
    """One expectation as written in the YAML, before placeholders are filled."""

    expectation: str
    severity: str
    column: str | None = None
    parse: str | None = None
    problem: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteSpec:
    """A named suite: the columns a table must have and the expectations it must meet."""

    name: str
    description: str
    required_columns: tuple[str, ...]
    rules: tuple[RuleSpec, ...]


@dataclass(frozen=True)
class ResolvedRule:
    """A rule bound to a real column of the frame under validation."""

    index: int
    spec: RuleSpec
    column: str | None
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class SkippedRule:
    """A rule that does not apply to this table, and why (reported, never silent)."""

    expectation: str
    column: str | None
    severity: str
    reason: str


class QualityConfigError(ValueError):
    """The quality YAML is malformed; the message says where."""


def _file_version(config_path: Path | None) -> tuple[str, tuple[int, int]]:
    """The file's resolved path, modification time and size: what the caches below are keyed by,
    so an edited file is read again while an unchanged one is parsed once per process."""
    path = Path(config_path) if config_path else default_config_path()
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (0, 0)  # reading it names the problem in one line
    return str(path.resolve()), version


def load_suites(config_path: Path | None = None) -> dict[str, SuiteSpec]:
    """All suites of the YAML file, with `extends` already merged."""
    return _load_suites_cached(*_file_version(config_path))


def get_suite(suite_name: str, config_path: Path | None = None) -> SuiteSpec:
    """One suite by name; unknown names list what is declared."""
    suites = load_suites(config_path)
    if suite_name not in suites:
        raise QualityConfigError(
            f"unknown quality suite {suite_name!r}; declared suites: {', '.join(sorted(suites))}"
        )
    return suites[suite_name]


def max_rows_validated(config_path: Path | None = None) -> int:
    """How many rows a check hands to Great Expectations at most (a sample beyond that)."""
    return _settings(*_file_version(config_path)).max_rows_validated


QUARANTINE_RATIO_KEY = "max_quarantined_row_ratio"
Share = Annotated[float, Strict(), Field(ge=0, le=1)]


class QuarantineRatios(StrictModel):
    """Shares of a source's rows read in a run that may be quarantined before its contract check
    warns (`warning`) or fails (`blocking`); None: no such limit."""

    model_config = ConfigDict(frozen=True)
    warning: Share | None = 0.05
    blocking: Share | None = None


def max_quarantined_row_ratio(config_path: Path | None = None) -> QuarantineRatios:
    """The `max_quarantined_row_ratio` thresholds, the defaults filling what is not given."""
    ratios = _settings(*_file_version(config_path)).max_quarantined_row_ratio
    return ratios or QuarantineRatios()


def rows_to_validate_sql(select: str, limit: int) -> str:
    """`select`, or a reproducible sample of `limit` of its rows."""
    return f"SELECT * FROM ({select}) USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (42)"


_SUITE_KEYS = keys_model("SuiteKeys", {"description": None, "extends": None, "required_columns": None,
                                          "expectations": None})


class QualitySettings(StrictModel):
    """What quality.yaml may hold. Suites are read by `_build_suite`; an expectation's own keys are
    its Great Expectations arguments, which Great Expectations checks."""

    max_rows_validated: Annotated[int, Strict(), Field(ge=1)] = 50_000
    max_quarantined_row_ratio: QuarantineRatios | None = None
    suites: dict[str, _SUITE_KEYS | None] | None = None


def _read_quality_file(path: Path) -> tuple[dict, QualitySettings]:
    """The file as read, and its settings; keys it cannot hold and bad values are refused."""
    document = read_yaml_mapping(path, QualityConfigError)
    return document, validate_mapping(path, document, QualitySettings, QualityConfigError)


@lru_cache(maxsize=8)
def _settings(path: str, _version: tuple[int, int]) -> QualitySettings:
    return _read_quality_file(Path(path))[1]


@lru_cache(maxsize=8)
def _load_suites_cached(path: str, _version: tuple[int, int]) -> dict[str, SuiteSpec]:
    document, _ = _read_quality_file(Path(path))
    raw_suites = document.get("suites")
    if not isinstance(raw_suites, dict) or not raw_suites:
        raise QualityConfigError(f"{path}: expected a non-empty 'suites' mapping")
    return {name: _build_suite(path, name, raw_suites, ()) for name in raw_suites}


def _build_suite(path: str, name: str, raw_suites: dict, chain: tuple[str, ...]) -> SuiteSpec:
    if name in chain:
        raise QualityConfigError(f"{path}: suite {name!r} extends itself via {' -> '.join(chain)}")
    if name not in raw_suites:
        raise QualityConfigError(f"{path}: suite {chain[-1]!r} extends unknown suite {name!r}")
    body = raw_suites[name] or {}
    parent = body.get("extends")
    base = _build_suite(path, parent, raw_suites, (*chain, name)) if parent else None
    rules = tuple(
        _build_rule(path, name, position, entry)
        for position, entry in enumerate(body.get("expectations") or [], start=1)
    )
    required = tuple(str(column) for column in body.get("required_columns") or [])
    return SuiteSpec(
        name=name,
        description=str(body.get("description", "")).strip(),
        required_columns=(base.required_columns if base else ()) + required,
        rules=(base.rules if base else ()) + rules,
    )


def _build_rule(path: str, suite: str, position: int, entry: Any) -> RuleSpec:
    where = f"{path}: suite {suite!r}, expectation #{position}"
    if not isinstance(entry, dict) or not entry.get("expectation"):
        raise QualityConfigError(f"{where}: needs an 'expectation' key")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise QualityConfigError(f"{where}: severity must be one of {SEVERITIES}, got {severity!r}")
    parse = entry.get("parse")
    if parse is not None and parse not in PARSE_MODES:
        raise QualityConfigError(f"{where}: parse must be one of {PARSE_MODES}, got {parse!r}")
    return RuleSpec(
        expectation=str(entry["expectation"]),
        severity=severity,
        column=str(entry["column"]) if entry.get("column") is not None else None,
        parse=parse,
        problem=entry.get("problem"),
        kwargs={key: value for key, value in entry.items() if key not in RESERVED_KEYS},
    )


def placeholder_values(
    record_id_column: str,
    timestamp_column: str | None,
    column_map: Mapping[str, str | list[str]] | None,
) -> dict[str, str | None]:
    """What each `{name}` stands for in this table; canonical names default to themselves.

    `column_map` may be a source's `mapping` from sources.yaml as is: an attribute built from
    several columns (e.g. a full name from two) has no single column to check, so it is skipped.
    """
    values: dict[str, str | None] = {}
    for attribute, columns in (column_map or {}).items():
        if isinstance(columns, str):
            values[attribute] = columns
        else:
            values[attribute] = columns[0] if len(columns) == 1 else None
    values["record_id"] = record_id_column
    values["timestamp"] = timestamp_column
    return values


def resolve_column(name: str, placeholders: Mapping[str, str | None]) -> str | None:
    """`{email}` -> the table's email column; None when the placeholder has no column here."""
    match = _PLACEHOLDER.match(name)
    if not match:
        return name
    key = match.group(1)
    return placeholders[key] if key in placeholders else key


def resolve_value(value: Any, today: dt.date) -> Any:
    """Fill `{today}` in expectation arguments (e.g. the upper bound of a birth date)."""
    if value == "{today}":
        return today
    if isinstance(value, list):
        return [resolve_value(item, today) for item in value]
    return value


def resolve_rules(
    suite: SuiteSpec,
    placeholders: Mapping[str, str | None],
    present_columns: set[str],
    today: dt.date,
) -> tuple[list[ResolvedRule], list[SkippedRule]]:
    """Bind each rule to a column of the frame, skipping rules whose column is absent."""
    resolved: list[ResolvedRule] = []
    skipped: list[SkippedRule] = []
    for index, spec in enumerate(suite.rules):
        column = resolve_column(spec.column, placeholders) if spec.column else None
        if spec.column and column is None:
            skipped.append(_skip(spec, spec.column, f"no column given for {spec.column}"))
            continue
        if column is not None and column not in present_columns:
            skipped.append(_skip(spec, column, "column not in table"))
            continue
        kwargs = {key: resolve_value(value, today) for key, value in spec.kwargs.items()}
        resolved.append(ResolvedRule(index=index, spec=spec, column=column, kwargs=kwargs))
    return resolved, skipped


def _skip(spec: RuleSpec, column: str, reason: str) -> SkippedRule:
    return SkippedRule(spec.expectation, column, spec.severity, reason)
