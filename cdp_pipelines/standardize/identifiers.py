"""One identifier value in its standardized form: what the warehouse stores, and so what a
lookup, an erasure request or any other single value must be turned into to match it."""

from __future__ import annotations

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.emails import canonical_email
from cdp_pipelines.standardize.frame import _classify_identifier, _classify_social_handle
from cdp_pipelines.standardize.phones import normalize_phone
from cdp_pipelines.vocabulary import CODE_IDENTIFIERS, IDENTIFIER_TYPES


def normalize_identifier(
    identifier_type: str, value: str | None, default_region: str = "GB", config: StandardizeConfig | None = None
) -> str | None:
    """The standardized value, or None when it is missing, junk or invalid (same rules as the frame)."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise ValueError(f"unknown identifier type {identifier_type!r}; allowed: {list(IDENTIFIER_TYPES)}")
    if value is None:
        return None
    config = config or default_config()
    if identifier_type == "email":
        return canonical_email(value)
    if identifier_type == "phone":
        return normalize_phone(value, default_region)
    if identifier_type == "social_handle":
        return _classify_social_handle(value, config)[0]
    assert identifier_type in CODE_IDENTIFIERS
    return _classify_identifier(value, identifier_type, config)[0]
