"""The declarative list of sources (``data/sources.yaml``) as validated pydantic models.

Adding a channel should be a change to configuration, not to code: each entry names the files,
their format, the record id and timestamp columns, and how source columns map onto the canonical
identity attributes. Mistakes are reported with the file, the source entry and the field, so the
person editing the YAML can fix them without reading a traceback.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipelines.config_files import load_yaml, yaml_problem
from cdp_pipelines.ingest.errors import SourceContractError, SourcesConfigError
from cdp_pipelines.vocabulary import MAPPABLE_ATTRIBUTES

CANONICAL_ATTRIBUTES: tuple[str, ...] = MAPPABLE_ATTRIBUTES
"""Attributes a source column may map onto (see docs/architecture.md)."""

MULTI_COLUMN_ATTRIBUTES: frozenset[str] = frozenset({"address_line"})
"""Attributes that may be built from several source columns, joined with ", "."""

ADDRESS_JOINER = ", "

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class CsvOptions(BaseModel):
    """How to split a delimited text file; defaults fit a plain UTF-8, comma-separated export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: str = ","
    encoding: str = "utf-8"
    quotechar: str = '"'

    @field_validator("delimiter", "quotechar")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"must be exactly one character, got {value!r}")
        if value in "\r\n":
            raise ValueError("may not be a line break")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}") from None
        return value


class SourceConfig(BaseModel):
    """One source: where its files are, how to read them and what its columns mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    path: str
    format: Literal["csv", "jsonl", "parquet"]
    record_id: str
    kind: Literal["profile", "event"]
    timestamp: str | None = None
    timestamp_formats: list[str] = Field(default_factory=list)
    date_formats: list[str] = Field(default_factory=list)
    default_region: str = "GB"
    csv: CsvOptions | None = None
    required_columns: list[str] | None = None
    mapping: dict[str, str | list[str]] = Field(default_factory=dict)
    max_duplicate_id_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    max_unparseable_timestamp_ratio: float = Field(default=0.2, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _snake_case_name(cls, value: str) -> str:
        if not _SNAKE_CASE.match(value):
            raise ValueError(
                f"{value!r} is not snake_case (lower-case letters, digits and underscores, "
                "starting with a letter); it becomes the table names raw.<name> and "
                "standardized.<name>"
            )
        return value

    @field_validator("path", "record_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("may not be blank")
        return value

    @field_validator("timestamp_formats", "date_formats")
    @classmethod
    def _strptime_formats(cls, value: list[str]) -> list[str]:
        for fmt in value:
            if "%" not in fmt:
                raise ValueError(f"{fmt!r} is not a strptime format (for example '%d.%m.%Y')")
        return value

    @field_validator("default_region")
    @classmethod
    def _region_code(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"{value!r} is not a two-letter upper-case region code such as 'GB'")
        return value

    @field_validator("mapping", mode="before")
    @classmethod
    def _canonical_mapping(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of canonical attribute -> source column")
        unknown = [str(key) for key in value if key not in CANONICAL_ATTRIBUTES]
        if unknown:
            raise ValueError(
                f"unknown canonical attribute(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(CANONICAL_ATTRIBUTES)}"
            )
        for attribute, column in value.items():
            if isinstance(column, str) and column.strip():
                continue
            if attribute in MULTI_COLUMN_ATTRIBUTES and isinstance(column, list):
                if column and all(isinstance(c, str) and c.strip() for c in column):
                    continue
                raise ValueError(f"{attribute!r} must list one or more column names")
            allowed = "a column name" + (
                " or a list of column names" if attribute in MULTI_COLUMN_ATTRIBUTES else ""
            )
            raise ValueError(f"{attribute!r} must map to {allowed}, got {column!r}")
        return dict(value)

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        if self.kind == "event" and not self.timestamp:
            raise ValueError("an event source must name its 'timestamp' column")
        if self.csv is not None and self.format != "csv":
            raise ValueError(f"'csv' options only apply to format csv, not {self.format}")
        return self

    def csv_options(self) -> CsvOptions:
        """The CSV options, with defaults when the entry gives none."""
        return self.csv or CsvOptions()

    def mapped_columns(self) -> list[str]:
        """Source columns used by the mapping, in mapping order, without repeats."""
        columns: list[str] = []
        for column in self.mapping.values():
            for name in [column] if isinstance(column, str) else column:
                if name not in columns:
                    columns.append(name)
        return columns

    def required_column_names(self) -> list[str]:
        """Columns every file must have: the declared list, or record id + mapped columns.

        The record id and timestamp columns are always required: rows cannot be checked
        without them.
        """
        declared = self.required_columns
        if declared is None:
            declared = [self.record_id, *self.mapped_columns()]
        columns = [self.record_id, *([self.timestamp] if self.timestamp else []), *declared]
        return list(dict.fromkeys(columns))

    def declared_columns(self) -> set[str]:
        """Every column the entry mentions; anything else in a file is an extra column."""
        return {*self.required_column_names(), *self.mapped_columns()}

    def timestamp_parse_formats(self) -> list[str]:
        """strptime formats tried after ISO 8601 for the timestamp column."""
        return [*self.timestamp_formats, *self.date_formats]


class SourcesConfig(BaseModel):
    """The whole sources file: a list of uniquely named sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    sources: list[SourceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesConfig:
        first_entry: dict[str, int] = {}
        for index, source in enumerate(self.sources, start=1):
            if source.name in first_entry:
                raise ValueError(
                    f"source name {source.name!r} is used by entries {first_entry[source.name]} "
                    f"and {index}; names must be unique"
                )
            first_entry[source.name] = index
        return self

    def get(self, name: str) -> SourceConfig:
        """The source called ``name``; KeyError lists the names that exist."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"no source named {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [source.name for source in self.sources]


def load_sources(path: Path) -> SourcesConfig:
    """Read and validate the sources file; every problem becomes a SourcesConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourcesConfigError(f"{path}: sources file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourcesConfigError(f"{path}: cannot read sources file: {exc}") from None
    try:
        document = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SourcesConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(document, dict) or "sources" not in document:
        raise SourcesConfigError(
            f"{path}: expected a mapping with a top-level 'sources:' list of source entries"
        )
    try:
        return SourcesConfig.model_validate(document)
    except ValidationError as exc:
        raise SourcesConfigError(_describe_validation_error(path, document, exc)) from None


def _describe_validation_error(path: Path, document: dict, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the sources file:"]
    raw_sources = document.get("sources")
    for detail in error.errors():
        loc = list(detail["loc"])
        where = "sources file"
        if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
            index = loc[1]
            entry = raw_sources[index] if isinstance(raw_sources, list) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"source {name!r} (entry {index + 1})" if name else f"source entry {index + 1}"
            loc = loc[2:]
        elif loc:
            where = "top level"
        field = ".".join(str(part) for part in loc)
        field_part = f", field {field!r}" if field else ""
        lines.append(f"  - {where}{field_part}: {_message(detail)}")
    return "\n".join(lines)


def _message(detail: dict) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "required but missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling)"
    message = str(detail["msg"]).removeprefix("Value error, ")
    if kind != "value_error" and not isinstance(detail.get("input"), (dict, list)):
        message += f" (got {str(detail.get('input'))[:80]!r})"
    return message


def resolve_source_files(source: SourceConfig, data_dir: Path) -> list[Path]:
    """The files a source reads, sorted; no match is a contract error naming the path."""
    data_dir = Path(data_dir)
    pattern = source.path
    if _GLOB_CHARS.search(pattern):
        if Path(pattern).is_absolute():
            anchor = Path(Path(pattern).anchor)
            matches = anchor.glob(str(Path(pattern).relative_to(anchor)))
        else:
            matches = data_dir.glob(pattern)
        files = sorted(p for p in matches if p.is_file())
        if not files:
            raise SourceContractError(
                f"source {source.name!r}: no files match {pattern!r} in {data_dir}",
                source=source.name,
                file=pattern,
            )
        return files
    file = data_dir / pattern
    if not file.is_file():
        problem = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise SourceContractError(
            f"source {source.name!r}: file {file} {problem}", source=source.name, file=str(file)
        )
    return [file]
