"""Identity settings from config/identity.yaml and the overrides file, validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from cdp_pipelines.config_files import load_yaml_model
from cdp_pipelines.vocabulary import IDENTIFIER_TYPES

STRONG_IDENTIFIERS = IDENTIFIER_TYPES
COMPARABLE_COLUMNS = (
    "given_name",
    "first_name",
    "last_name",
    "full_name",
    "date_of_birth",
    "email",
    "phone",
    "postcode",
    "city",
    "address_line",
    "social_handle",
)


class IdentityConfigError(ValueError):
    """A readable problem with the identity configuration (no traceback for users)."""


class IdentifierRule(BaseModel):
    max_people: int = Field(1, ge=1)
    people_by: str = "given_name"
    phone_kinds: list[Literal["mobile", "landline", "other"]] | None = None


class DeterministicConfig(BaseModel):
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


class CustomLevel(BaseModel):
    """One level of a custom comparison: a SQL condition over `<column>_l` / `<column>_r`."""

    label: str
    sql: str
    null: bool = False


class ComparisonSpec(BaseModel):
    """A Splink comparison_library class by name, or `custom` with SQL levels (settings as data)."""

    type: str
    column: str
    tf: bool = False
    args: dict = Field(default_factory=dict)
    levels: list[CustomLevel] = Field(default_factory=list)

    @field_validator("column")
    @classmethod
    def _comparable(cls, value: str, info) -> str:
        if info.data.get("type") != "custom" and value not in COMPARABLE_COLUMNS:
            raise ValueError(f"column {value!r} is not comparable; allowed: {list(COMPARABLE_COLUMNS)}")
        return value


class TrainingConfig(BaseModel):
    prior_rules: list[list[str]]
    prior_recall: float = Field(0.7, gt=0, le=1)
    u_max_pairs: float = 2e6
    seed: int = 42
    em_blocking_rules: list[list[str]]


class ProbabilisticConfig(BaseModel):
    comparisons: list[ComparisonSpec]
    blocking_rules: list[list[str]]
    training: TrainingConfig
    keep_probability: float = Field(0.5, ge=0, le=1)
    match_probability: float = Field(0.95, gt=0, le=1)
    weak_record_probability: float = Field(0.995, gt=0, le=1)


class ClusteringConfig(BaseModel):
    conflict_attributes: list[Literal["date_of_birth", "account_id", "given_name"]] = [
        "date_of_birth", "account_id", "given_name"]
    overwhelming_match_weight: float = 20.0
    overwhelming_match_weight_by_attribute: dict[Literal["date_of_birth", "account_id", "given_name"], float] = {}
    max_cluster_records: int = Field(1000, ge=2)


class IdentityConfig(BaseModel):
    deterministic: DeterministicConfig
    probabilistic: ProbabilisticConfig
    clustering: ClusteringConfig = ClusteringConfig()
    overrides_file: str = "identity_overrides.yaml"


class OverridePair(BaseModel):
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


class Overrides(BaseModel):
    must_link: list[OverridePair] = Field(default_factory=list)
    cannot_link: list[OverridePair] = Field(default_factory=list)


def load_identity_config(path: Path) -> IdentityConfig:
    return load_yaml_model(path, IdentityConfig, IdentityConfigError)


def load_overrides(path: Path) -> Overrides:
    """Manual must-link / cannot-link decisions; none when the file does not exist."""
    if not path.exists():
        return Overrides()
    return load_yaml_model(path, Overrides, IdentityConfigError)
