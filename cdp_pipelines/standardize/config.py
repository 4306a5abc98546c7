"""Standardization rules loaded from config/standardize.yaml.

Junk lists, provider rules, abbreviations and formats are data that users tune per deployment,
so they live in YAML; this module turns that file into one immutable object the functions share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from cdp_pipelines import settings
from cdp_pipelines.config_files import keys_model, read_yaml_mapping, validate_mapping

CONFIG_FILE_NAME = "standardize.yaml"


def _lower_set(values: Any) -> frozenset[str]:
    return frozenset(str(v).strip().lower() for v in values or ())


def _lower_map(values: Any) -> Mapping[str, str]:
    return MappingProxyType({str(k).strip().lower(): str(v).strip() for k, v in (values or {}).items()})


@dataclass(frozen=True, eq=False)
class StandardizeConfig:
    """Every tunable rule of standardization; hashed by identity so it can key caches."""

    placeholders: frozenset[str]
    repeated_char_min_length: int
    placeholders_by_attribute: Mapping[str, frozenset[str]]
    placeholder_exemptions: Mapping[str, frozenset[str]]
    default_region: str
    phone_junk_numbers: frozenset[str]
    phone_reject_sequences: bool
    accept_fictional_phones: bool
    fictional_phone_length: int
    fictional_phone_ranges: tuple[tuple[str, str], ...]
    email_provider_aliases: Mapping[str, str]
    email_remove_dots: frozenset[str]
    email_remove_plus_tags: frozenset[str]
    email_junk_addresses: frozenset[str]
    email_junk_local_parts: frozenset[str]
    email_junk_domains: frozenset[str]
    given_name_overrides: Mapping[str, str]
    dayfirst_date_formats: tuple[str, ...]
    monthfirst_date_formats: tuple[str, ...]
    earliest_birth_year: int
    timestamp_formats: tuple[str, ...]
    accept_epoch_timestamps: bool
    earliest_timestamp: datetime
    gb_format_countries: frozenset[str]
    gb_postcode: re.Pattern[str]
    ie_postcode: re.Pattern[str]
    us_postcode: re.Pattern[str]
    country_aliases: Mapping[str, str]
    address_abbreviations: Mapping[str, str]
    address_before_word: Mapping[str, str]
    city_abbreviations: Mapping[str, str]
    social_handle: re.Pattern[str]
    source: Mapping[str, Any]

    def __reduce__(self):
        """Pickle as the parsed YAML it came from, so worker processes can rebuild it."""
        return (config_from_dict, (self.source,))

    def date_formats(self, dayfirst: bool = True) -> tuple[str, ...]:
        return self.dayfirst_date_formats if dayfirst else self.monthfirst_date_formats


def config_from_dict(raw: Mapping[str, Any]) -> StandardizeConfig:
    """Build the config from parsed YAML; missing sections fall back to empty rules."""
    placeholders = raw.get("placeholders") or {}
    phones = raw.get("phones") or {}
    fictional = phones.get("fictional_ranges") or {}
    emails = raw.get("emails") or {}
    names = raw.get("names") or {}
    dates = raw.get("dates") or {}
    timestamps = raw.get("timestamps") or {}
    postcodes = raw.get("postcodes") or {}
    countries = raw.get("countries") or {}
    addresses = raw.get("addresses") or {}
    identifiers = raw.get("identifiers") or {}
    return StandardizeConfig(
        placeholders=_lower_set(placeholders.get("generic")),
        repeated_char_min_length=int(placeholders.get("repeated_char_min_length", 3)),
        placeholders_by_attribute=MappingProxyType(
            {k: _lower_set(v) for k, v in (placeholders.get("by_attribute") or {}).items()}
        ),
        placeholder_exemptions=MappingProxyType(
            {k: _lower_set(v) for k, v in (placeholders.get("exempt_by_attribute") or {}).items()}
        ),
        default_region=str(phones.get("default_region", "GB")).upper(),
        phone_junk_numbers=frozenset(str(v) for v in phones.get("junk_numbers") or ()),
        phone_reject_sequences=bool(phones.get("reject_sequences", True)),
        accept_fictional_phones=bool(fictional.get("accept", False)),
        fictional_phone_length=int(fictional.get("length", 0)),
        fictional_phone_ranges=tuple(
            (str(prefix), str(kind)) for prefix, kind in (fictional.get("ranges") or {}).items()
        ),
        email_provider_aliases=_lower_map(emails.get("provider_aliases")),
        email_remove_dots=_lower_set(emails.get("remove_dots")),
        email_remove_plus_tags=_lower_set(emails.get("remove_plus_tags")),
        email_junk_addresses=_lower_set(emails.get("junk_addresses")),
        email_junk_local_parts=_lower_set(emails.get("junk_local_parts")),
        email_junk_domains=_lower_set(emails.get("junk_domains")),
        given_name_overrides=MappingProxyType(
            {k: v.lower() for k, v in _lower_map(names.get("given_name_overrides")).items()}
        ),
        dayfirst_date_formats=tuple(dates.get("dayfirst_formats") or ("%Y-%m-%d", "%d/%m/%Y")),
        monthfirst_date_formats=tuple(dates.get("monthfirst_formats") or ("%Y-%m-%d", "%m/%d/%Y")),
        earliest_birth_year=int(dates.get("earliest_birth_year", 1900)),
        timestamp_formats=tuple(timestamps.get("formats") or ()),
        accept_epoch_timestamps=bool(timestamps.get("accept_epoch", False)),
        earliest_timestamp=datetime.fromisoformat(str(timestamps.get("earliest", "1970-01-01"))),
        gb_format_countries=frozenset(str(c).upper() for c in postcodes.get("gb_format_countries") or ("GB",)),
        gb_postcode=re.compile(postcodes.get("gb_pattern", r"^$")),
        ie_postcode=re.compile(postcodes.get("ie_pattern", r"^$")),
        us_postcode=re.compile(postcodes.get("us_pattern", r"^([0-9]{5})(?:[0-9]{4})?$")),
        country_aliases=MappingProxyType(
            {k: v.upper() for k, v in _lower_map(countries.get("aliases")).items()}
        ),
        address_abbreviations=_lower_map(addresses.get("abbreviations")),
        address_before_word=_lower_map(addresses.get("before_word")),
        city_abbreviations=_lower_map(addresses.get("city_abbreviations")),
        social_handle=re.compile(identifiers.get("social_handle_pattern", r"^[a-z0-9_.]{1,30}$")),
        source=dict(raw),
    )


class StandardizeConfigError(ValueError):
    """A readable problem with standardize.yaml (no traceback for users)."""


STANDARDIZE_KEYS = keys_model("StandardizeKeys", {
    "placeholders": {"generic": None, "repeated_char_min_length": None, "by_attribute": None,
                     "exempt_by_attribute": None},
    "phones": {"default_region": None, "junk_numbers": None, "reject_sequences": None,
               "fictional_ranges": {"accept": None, "length": None, "ranges": None}},
    "emails": {"provider_aliases": None, "remove_dots": None, "remove_plus_tags": None, "junk_addresses": None,
               "junk_local_parts": None, "junk_domains": None},
    "names": {"given_name_overrides": None},
    "dates": {"dayfirst_formats": None, "monthfirst_formats": None, "earliest_birth_year": None},
    "timestamps": {"formats": None, "accept_epoch": None, "earliest": None},
    "postcodes": {"gb_format_countries": None, "gb_pattern": None, "ie_pattern": None, "us_pattern": None},
    "countries": {"aliases": None},
    "addresses": {"abbreviations": None, "before_word": None, "city_abbreviations": None},
    "identifiers": {"social_handle_pattern": None},
})
"""The keys standardize.yaml may hold (every one optional): a misspelled section or setting would
otherwise drop its rules silently. Values are read by `config_from_dict`."""


def load_config(path: Path | None = None) -> StandardizeConfig:
    """Read the YAML rules (default: <config dir>/standardize.yaml), refusing unknown keys."""
    path = path or settings.config_dir() / CONFIG_FILE_NAME
    raw = read_yaml_mapping(path, StandardizeConfigError)
    validate_mapping(path, raw, STANDARDIZE_KEYS, StandardizeConfigError)
    return config_from_dict(raw)


@lru_cache(maxsize=1)
def default_config() -> StandardizeConfig:
    """The deployment's rules, read once per process; the scalar functions use these."""
    return load_config()
