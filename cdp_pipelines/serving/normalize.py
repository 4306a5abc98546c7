"""Turn what a channel system typed into the form identity_lookup stores.

Every value goes through the standardization stage's own per-value rules
(cdp_pipelines.standardize.identifiers), so a lookup matches exactly what the pipeline stored:
E.164 phones, canonical emails, codes (cards, orders, accounts, cookies, web logins) without
spaces and upper-cased, handles lower-cased without "@".
"""

from __future__ import annotations

from cdp_pipelines.standardize.identifiers import normalize_identifier

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


def normalize_identifiers(values: dict[str, str | None], default_region: str = "GB") -> list[tuple[str, str]]:
    """(identifier_type, normalised value) pairs for the given keyword → raw value mapping.

    Values that normalise to nothing (junk phone numbers, empty strings) are dropped.
    """
    pairs = []
    for keyword, raw in values.items():
        if raw is None:
            continue
        kind = IDENTIFIER_TYPES[keyword]
        normalised = normalize_identifier(kind, str(raw), default_region)
        if normalised:
            pairs.append((kind, normalised))
    return pairs
