"""Turn what a channel system typed into the form identity_lookup stores.

Phones and emails use the standardization stage's own functions, so a lookup matches exactly
what the pipeline wrote. Codes printed on cards, receipts and accounts are case-insensitive in
practice: trimmed and upper-cased. Cookies and web user ids are opaque: trimmed, case kept.
"""

from __future__ import annotations

from collections.abc import Callable

from cdp_pipelines.standardize.emails import canonical_email
from cdp_pipelines.standardize.phones import normalize_phone

# keyword accepted by lookup() → identifier_type stored in identity_lookup
IDENTIFIER_TYPES = {
    "phone": "phone",
    "email": "email",
    "card": "loyalty_card",
    "cookie": "cookie_id",
    "order": "order_number",
    "account": "account_id",
    "web_user": "web_user_id",
    "social": "social_handle",
}


def _phone(value: str, default_region: str) -> str | None:
    return normalize_phone(value, default_region)


def _email(value: str, default_region: str) -> str | None:
    return canonical_email(value)


def _code(value: str, default_region: str) -> str | None:
    return value.strip().upper() or None


def _opaque(value: str, default_region: str) -> str | None:
    return value.strip() or None


def _handle(value: str, default_region: str) -> str | None:
    return value.strip().lstrip("@").lower() or None


NORMALIZERS: dict[str, Callable[[str, str], str | None]] = {
    "phone": _phone,
    "email": _email,
    "loyalty_card": _code,
    "order_number": _code,
    "account_id": _code,
    "cookie_id": _opaque,
    "web_user_id": _opaque,
    "social_handle": _handle,
}


def normalize_identifiers(values: dict[str, str | None], default_region: str = "GB") -> list[tuple[str, str]]:
    """(identifier_type, normalised value) pairs for the given keyword → raw value mapping.

    Values that normalise to nothing (junk phone numbers, empty strings) are dropped.
    """
    pairs = []
    for keyword, raw in values.items():
        if raw is None:
            continue
        kind = IDENTIFIER_TYPES[keyword]
        normalised = NORMALIZERS[kind](str(raw), default_region)
        if normalised:
            pairs.append((kind, normalised))
    return pairs
