"""Segment definitions from config/segments.yaml, validated on load.

Segments are configuration: a marketer adds an entry, the pipeline turns it into an asset.
Every problem is reported as one readable line naming the segment and what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipelines.config_files import read_yaml_mapping

Channel = Literal["email", "sms", "ads", "direct_mail"]
ConsentChannel = Literal["email", "sms"]
CHANNELS: tuple[str, ...] = ("email", "sms", "ads", "direct_mail")

SEGMENTS_FILE = "segments.yaml"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# Dagster owners: an email address or "team:<name>".
# Names of the stage's own tables and assets, which a segment may not take.
RESERVED_NAMES = frozenset({"membership", "membership_changes", "builds", "exports"})
OWNER_PATTERN = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")

# Hashed identifiers for ad platforms' customer-list uploads; the only columns an ads export has.
ADS_COLUMNS: tuple[str, ...] = ("email_sha256", "phone_sha256")

# What each channel exports when a segment does not list columns: the minimum to reach the person.
DEFAULT_EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("customer_id", "first_name", "email"),
    "sms": ("customer_id", "first_name", "phone"),
    "ads": ADS_COLUMNS,
    "direct_mail": ("customer_id", "first_name", "last_name", "address_line", "city", "postcode", "country"),
}

# Which resolved consents (profiles.consent, status opt_in) a channel needs; all listed must hold.
DEFAULT_CONSENT_FOR_CHANNEL: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("sms",),
    "ads": ("email",),
    "direct_mail": ("email",),
}


class SegmentConfigError(ValueError):
    """A readable problem with a segment definition (shown without a traceback)."""


class SegmentDefinition(BaseModel):
    """One audience: who is in it (rule), who owns it, and how it may be exported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1)
    owner: str
    channel: Channel
    rule: str = Field(min_length=1, max_length=10_000)
    export_columns: tuple[str, ...] | None = None
    schedule_folder: str | None = None
    """Sub-folder of the export folder for scheduled exports (default: the segment's name)."""

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"name {value!r} must be snake_case (lower-case letters, digits, underscores)")
        if value in RESERVED_NAMES:
            raise ValueError(f"name {value!r} is reserved; reserved names: {sorted(RESERVED_NAMES)}")
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not OWNER_PATTERN.fullmatch(value.strip()):
            raise ValueError(f"owner {value!r} must be an email address or 'team:<name>'")
        return value.strip()

    @field_validator("schedule_folder")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", value) or ".." in value.split("/"):
            raise ValueError(f"schedule_folder {value!r} must be a relative folder name (letters, digits, _ . -)")
        return value

    @model_validator(mode="after")
    def _export_columns(self) -> SegmentDefinition:
        if self.export_columns is None:
            return self
        if not self.export_columns:
            raise ValueError("export_columns is empty; leave it out to use the channel's default columns")
        bad = [c for c in self.export_columns if not re.fullmatch(r"[a-z_][a-z0-9_]*", c)]
        if bad:
            raise ValueError(f"export_columns {bad} are not plain column names")
        if self.channel == "ads" and set(self.export_columns) - set(ADS_COLUMNS):
            raise ValueError(f"ads exports may only contain the hashed columns {list(ADS_COLUMNS)}")
        if self.channel != "ads" and set(self.export_columns) & set(ADS_COLUMNS):
            raise ValueError(f"hashed columns {list(ADS_COLUMNS)} are only for the ads channel")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this segment exports."""
        return self.export_columns or DEFAULT_EXPORT_COLUMNS[self.channel]

    @property
    def folder(self) -> str:
        return self.schedule_folder or self.name


class SegmentsConfig(BaseModel):
    """The whole segments file: consent needed per channel, then the segments."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    consent: dict[Channel, tuple[ConsentChannel, ...]] = Field(default_factory=dict)
    """Overrides of DEFAULT_CONSENT_FOR_CHANNEL, e.g. `ads: [email, sms]`."""
    segments: list[SegmentDefinition] = Field(default_factory=list)

    @field_validator("consent")
    @classmethod
    def _consent_never_empty(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        empty = [channel for channel, needed in value.items() if not needed]
        if empty:
            raise ValueError(f"consent for {empty} is empty; every channel needs at least one opt-in")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> SegmentsConfig:
        seen: set[str] = set()
        for segment in self.segments:
            if segment.name in seen:
                raise ValueError(f"segment {segment.name!r} is declared twice")
            seen.add(segment.name)
        return self

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def get(self, name: str) -> SegmentDefinition:
        for segment in self.segments:
            if segment.name == name:
                return segment
        known = ", ".join(self.names) or "none"
        raise SegmentConfigError(f"no segment named {name!r}; declared segments: {known}")

    def consent_channels(self, channel: str) -> tuple[str, ...]:
        """Consents (all opt_in) a customer needs before a segment of `channel` may contact them."""
        return tuple(sorted(set(self.consent.get(channel) or DEFAULT_CONSENT_FOR_CHANNEL[channel])))


def _explain(path: Path, raw: dict, error: ValidationError) -> SegmentConfigError:
    problems = []
    for item in error.errors():
        location = list(item["loc"])
        where = ".".join(str(p) for p in location)
        if len(location) >= 2 and location[0] == "segments" and isinstance(location[1], int):
            entries = raw.get("segments") or []
            entry = entries[location[1]] if location[1] < len(entries) else {}
            name = entry.get("name") if isinstance(entry, dict) else None
            field = ".".join(str(p) for p in location[2:]) or "entry"
            where = f"segment {name!r}" if name else f"segment #{location[1] + 1}"
            where += f" ({field})"
        message = item["msg"].removeprefix("Value error, ")
        # Checks of the whole file (e.g. a name declared twice) have no location to name.
        problems.append(f"{where}: {message}" if where else message)
    return SegmentConfigError(f"{path}: " + "; ".join(problems))


def load_segments(path: Path) -> SegmentsConfig:
    """Read and check the segments file (structure only; rules are checked by validation.py)."""
    raw = read_yaml_mapping(path, SegmentConfigError)
    try:
        return SegmentsConfig.model_validate(raw)
    except ValidationError as error:
        raise _explain(path, raw, error) from None
