"""Postcodes per country rules and countries as ISO 3166 alpha-2 codes (pycountry)."""

from __future__ import annotations

import re
from functools import lru_cache

import pycountry

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import Status, is_blank, is_placeholder

_SEPARATORS = re.compile(r"[\s\-.]+")
_SPACES = re.compile(r"\s+")


def _gb(compact: str, config: StandardizeConfig) -> str | None:
    """UK format: validated, one space before the three-character inward code ("SW1A 1AA")."""
    return f"{compact[:-3]} {compact[-3:]}" if config.gb_postcode.match(compact) else None


def _ie(compact: str, config: StandardizeConfig) -> str | None:
    """Eircode: routing key, space, unique identifier ("D02 X285")."""
    return f"{compact[:3]} {compact[3:]}" if config.ie_postcode.match(compact) else None


def _us(compact: str, config: StandardizeConfig) -> str | None:
    """ZIP5, and ZIP+4 cut to ZIP5, since the +4 part is often missing elsewhere."""
    match = config.us_postcode.match(compact)
    return match.group(1) if match else None


def _rule_for(country: str | None, config: StandardizeConfig):
    if country in config.gb_format_countries:
        return _gb
    return {"IE": _ie, "US": _us}.get(country or "")


def classify_postcode(
    value: str | None,
    country: str | None,
    *,
    default_country: str | None = None,
    config: StandardizeConfig | None = None,
) -> tuple[str | None, Status]:
    """Postcode and what happened. With no country, the default country's rule is used when the
    value fits it; otherwise the value is only upper-cased and trimmed, never rejected."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    text = str(value)
    if is_placeholder(text, "postcode", config):
        return None, Status.JUNK
    compact = _SEPARATORS.sub("", text).upper()
    rule = _rule_for(country, config)
    if rule is not None:
        formatted = rule(compact, config)
        return (formatted, Status.OK) if formatted else (None, Status.INVALID)
    fallback = _rule_for(default_country, config) if country is None else None
    formatted = fallback(compact, config) if fallback is not None else None
    return formatted or _SPACES.sub(" ", text).strip().upper(), Status.OK


@lru_cache(maxsize=65536)
def normalize_postcode(value: str | None, country: str | None, *, default_country: str | None = None) -> str | None:
    """GB "sw1a1aa" -> "SW1A 1AA"; IE Eircode; US ZIP+4 -> ZIP5; others upper-cased and trimmed."""
    return classify_postcode(value, country, default_country=default_country)[0]


def classify_country(value: str | None, config: StandardizeConfig | None = None) -> tuple[str | None, Status]:
    """ISO alpha-2 code and what happened: configured aliases first, then pycountry's lookup."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    text = _SPACES.sub(" ", str(value).replace(".", "")).strip()
    if is_placeholder(text, "country", config):
        return None, Status.JUNK
    alias = config.country_aliases.get(text.lower())
    if alias:
        return alias, Status.OK
    try:
        return pycountry.countries.lookup(text).alpha_2, Status.OK
    except LookupError:
        return None, Status.INVALID


@lru_cache(maxsize=4096)
def normalize_country(value: str | None) -> str | None:
    """"United Kingdom", "UK", "England", "gb", "GBR" -> "GB"; None when unknown."""
    return classify_country(value)[0]
