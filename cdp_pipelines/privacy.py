"""Personal data stays masked in previews, metadata and logs unless CDP_SHOW_PII allows it."""

from __future__ import annotations

import math
import re
from typing import Any

from cdp_pipelines import settings

# Columns (canonical or source) that hold personal data; matched by exact name or by fragment.
PII_FRAGMENTS = (
    "email", "phone", "birth", "dob", "address", "postcode", "first_name", "last_name",
    "full_name", "given_name", "customer_name", "display_name", "handle", "note", "body", "text",
    "card", "location",
)


def is_pii_column(column: str) -> bool:
    name = column.lower()
    return any(fragment in name for fragment in PII_FRAGMENTS)


def mask_value(value: Any, column: str | None = None) -> Any:
    """Hide personal data but keep enough to recognise a problem.

    Emails keep their first character and domain, phones their last two digits, everything
    else becomes '***'. Missing values and booleans pass unchanged.
    """
    if value is None or isinstance(value, bool) or (isinstance(value, float) and math.isnan(value)):
        return value
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local[:1]}***@{domain}"
    digits = re.sub(r"\D", "", text)
    looks_like_phone = re.fullmatch(r"[\d\s+().-]+", text) is not None and len(digits) >= 6
    if digits and (looks_like_phone or "phone" in (column or "").lower()):
        return "***" + digits[-2:]
    return "***"
