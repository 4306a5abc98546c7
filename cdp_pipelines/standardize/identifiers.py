"""One identifier value in its standardized form: what the warehouse stores, and so what a
lookup, an erasure request or any other single value must be turned into to match it."""

from __future__ import annotations

import phonenumbers

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.emails import classify_email
from cdp_pipelines.standardize.frame import _classify_identifier, _classify_social_handle
from cdp_pipelines.standardize.junk import Status
from cdp_pipelines.standardize.phones import classify_phone
from cdp_pipelines.vocabulary import CODE_IDENTIFIERS, IDENTIFIER_TYPES


def normalize_identifier(
    identifier_type: str, value: str | None, default_region: str = "GB", config: StandardizeConfig | None = None
) -> str | None:
    """The standardized value, or None when it is missing, junk or invalid (same rules as the frame)."""
    return classify_identifier(identifier_type, value, default_region, config)[0]


class UnusableIdentifierError(ValueError):
    """One identifier a user typed that standardization would discard; the message says why."""


_LABELS = {"email": "email address", "phone": "phone number", "loyalty_card": "loyalty card number",
           "account_id": "account id", "order_number": "order number", "cookie_id": "cookie id",
           "web_user_id": "web user id", "social_handle": "social handle"}


def classify_identifier(
    identifier_type: str, value: str | None, default_region: str = "GB", config: StandardizeConfig | None = None
) -> tuple[str | None, Status]:
    """The standardized value and what happened to it (missing, junk, invalid or ok)."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise ValueError(f"unknown identifier type {identifier_type!r}; allowed: {list(IDENTIFIER_TYPES)}")
    config = config or default_config()
    if identifier_type == "email":
        return classify_email(value, config)
    if identifier_type == "phone":
        return classify_phone(value, default_region, config)
    if identifier_type == "social_handle":
        return _classify_social_handle(value, config)
    assert identifier_type in CODE_IDENTIFIERS
    return _classify_identifier(value, identifier_type, config)


def standardized_identifier(identifier_type: str, value: str | None, default_region: str = "GB") -> str:
    """The standardized value of one identifier a user typed (an erasure, a lookup), or an
    UnusableIdentifierError telling a placeholder (never stored, so it can match nobody) from a
    malformed value, and naming an unknown phone region."""
    label = _LABELS.get(identifier_type, identifier_type)
    if identifier_type == "phone" and default_region and default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise UnusableIdentifierError(f"unknown region {default_region!r}; give a two-letter country code such as GB")
    normalised, status = classify_identifier(identifier_type, value, default_region)
    if normalised:
        return normalised
    if status is Status.JUNK:
        raise UnusableIdentifierError(
            f"the {identifier_type} given is a placeholder or junk {label} (config/standardize.yaml), "
            "which the warehouse never stores"
        )
    if status is Status.MISSING:
        raise UnusableIdentifierError(f"the {identifier_type} given is empty")
    raise UnusableIdentifierError(f"the {identifier_type} given is not a valid {label}")
