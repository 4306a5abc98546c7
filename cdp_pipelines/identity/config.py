"""Identity settings from config/identity.yaml and the overrides file, validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import sqlglot
from pydantic import Field, field_validator, model_validator

from cdp_pipelines.config_files import StrictModel, load_yaml_model
from cdp_pipelines.vocabulary import IDENTIFIER_TYPES, STANDARDIZED_COLUMNS

STRONG_IDENTIFIERS = IDENTIFIER_TYPES
NODE_COLUMNS = ("given_name", "first_name", "last_name", "date_of_birth", "email", "phone", "postcode", "city",
                "address_line")
"""The attributes of an identity node: all that Splink's comparisons and blocking rules can read."""


class IdentityConfigError(ValueError):
    """A readable problem with the identity configuration (no traceback for users)."""


class IdentifierRule(StrictModel):
    max_people: int = Field(1, ge=1)
    people_by: str = "given_name"
    phone_kinds: list[Literal["mobile", "landline", "other"]] | None = None

    @field_validator("people_by")
    @classmethod
    def _record_column(cls, value: str) -> str:
        if value not in STANDARDIZED_COLUMNS:
            raise ValueError(f"unknown column {value!r}; allowed: {list(STANDARDIZED_COLUMNS)}")
        return value


class DeterministicConfig(StrictModel):
    identifiers: dict[str, IdentifierRule]
    same_person_name_similarity: float = Field(0.85, gt=0, le=1)
    same_person_name_variants: bool = True
    distinct_people_also_by: list[str] = Field(default_factory=list)

    @field_validator("identifiers")
    @classmethod
    def _known_identifiers(cls, value: dict[str, IdentifierRule]) -> dict[str, IdentifierRule]:
        unknown = sorted(set(value) - set(STRONG_IDENTIFIERS))
        if unknown:
            raise ValueError(f"unknown identifier(s) {unknown}; allowed: {list(STRONG_IDENTIFIERS)}")
        return value

    @field_validator("distinct_people_also_by")
    @classmethod
    def _known_hints(cls, value: list[str]) -> list[str]:
        allowed = [*STRONG_IDENTIFIERS, "date_of_birth"]
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; allowed: {allowed}")
        return value


class CustomLevel(StrictModel):
    """One level of a custom comparison: a SQL condition over `<column>_l` / `<column>_r`."""

    label: str
    sql: str
    null: bool = False

    @model_validator(mode="before")
    @classmethod
    def _null_key(cls, value: object) -> object:
        """YAML reads an unquoted `null:` key as no key at all (None); it means this setting."""
        if isinstance(value, dict) and None in value:
            value = {("null" if k is None else k): v for k, v in value.items()}
        return value

    @field_validator("sql")
    @classmethod
    def _reads_node_columns(cls, value: str) -> str:
        """The condition reads `<node column>_l` / `_r` only: Splink would fail on anything else mid-run."""
        if value.strip().upper() == "ELSE":
            return value
        try:
            condition = sqlglot.condition(value, dialect="duckdb")
        except sqlglot.errors.ParseError as problem:
            raise ValueError(f"not a SQL condition: {str(problem).splitlines()[0]}") from None
        allowed = [f"{c}_{side}" for c in NODE_COLUMNS for side in ("l", "r")]
        unknown = sorted({c.sql() for c in condition.find_all(sqlglot.exp.Column)
                          if c.name not in allowed and not (c.table in ("l", "r") and c.name in NODE_COLUMNS)})
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; allowed: {allowed}")
        return value


class ComparisonSpec(StrictModel):
    """A Splink comparison_library class by name, or `custom` with SQL levels (settings as data)."""

    type: str
    column: str
    tf: bool = False
    args: dict = Field(default_factory=dict)
    levels: list[CustomLevel] = Field(default_factory=list)

    @field_validator("column")
    @classmethod
    def _comparable(cls, value: str, info) -> str:
        if info.data.get("type") != "custom" and value not in NODE_COLUMNS:
            raise ValueError(f"column {value!r} is not comparable; allowed: {list(NODE_COLUMNS)}")
        return value


def _node_columns_only(rules: list[list[str]]) -> list[list[str]]:
    """Blocking rules name node columns: a typo would otherwise surface as Splink's SQL error mid-run."""
    for rule in rules:
        if not rule:
            raise ValueError("a rule needs at least one column")
        unknown = [c for c in rule if c not in NODE_COLUMNS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown} in rule {rule}; allowed: {list(NODE_COLUMNS)}")
    return rules


class TrainingConfig(StrictModel):
    prior_rules: list[list[str]]
    prior_recall: float = Field(0.7, gt=0, le=1)
    u_max_pairs: float = 2e6
    seed: int = 42
    em_blocking_rules: list[list[str]]

    _rules = field_validator("prior_rules", "em_blocking_rules")(_node_columns_only)


class ProbabilisticConfig(StrictModel):
    comparisons: list[ComparisonSpec]
    blocking_rules: list[list[str]]
    training: TrainingConfig
    keep_probability: float = Field(0.5, ge=0, le=1)
    match_probability: float = Field(0.95, gt=0, le=1)
    weak_record_probability: float = Field(0.995, gt=0, le=1)

    _rules = field_validator("blocking_rules")(_node_columns_only)


class ClusteringConfig(StrictModel):
    conflict_attributes: list[Literal["date_of_birth", "account_id", "given_name"]] = [
        "date_of_birth", "account_id", "given_name"]
    overwhelming_match_weight: float = 20.0
    overwhelming_match_weight_by_attribute: dict[Literal["date_of_birth", "account_id", "given_name"], float] = {}
    max_cluster_records: int = Field(1000, ge=2)


class IdentityConfig(StrictModel):
    deterministic: DeterministicConfig
    probabilistic: ProbabilisticConfig
    clustering: ClusteringConfig = ClusteringConfig()
    overrides_file: str = "identity_overrides.yaml"


class OverridePair(StrictModel):
    a: str
    b: str
    reason: str = ""
    by: str = ""

    @field_validator("a", "b")
    @classmethod
    def _record_ref(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError(f"{value!r} must be written as '<source>:<source_record_id>'")
        return value

    def records(self) -> tuple[tuple[str, str], tuple[str, str]]:
        a_source, a_id = self.a.split(":", 1)
        b_source, b_id = self.b.split(":", 1)
        return (a_source, a_id), (b_source, b_id)


class Overrides(StrictModel):
    must_link: list[OverridePair] = Field(default_factory=list)
    cannot_link: list[OverridePair] = Field(default_factory=list)


def load_identity_config(path: Path) -> IdentityConfig:
    return load_yaml_model(path, IdentityConfig, IdentityConfigError)


def load_overrides(path: Path) -> Overrides:
    """Manual must-link / cannot-link decisions; none when the file does not exist."""
    if not path.exists():
        return Overrides()
    return load_yaml_model(path, Overrides, IdentityConfigError)
