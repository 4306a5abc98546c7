"""The canonical identity vocabulary every stage shares (see docs/architecture.md).

Sources map their columns onto MAPPABLE_ATTRIBUTES; standardization writes STANDARDIZED_COLUMNS;
identity links on IDENTIFIER_TYPES; profiles keep every identifier per customer. Defined once
here so adding an attribute is one change.
"""

MAPPABLE_ATTRIBUTES: tuple[str, ...] = (
    "first_name", "last_name", "full_name", "email", "phone", "date_of_birth", "address_line",
    "city", "postcode", "country", "loyalty_card", "payment_token", "web_user_id", "cookie_id",
    "social_handle", "order_number", "account_id",
)
"""Attributes a source column may map onto in the sources file."""

CODE_IDENTIFIERS: tuple[str, ...] = (
    "loyalty_card", "payment_token", "web_user_id", "cookie_id", "account_id", "order_number",
)
"""Opaque codes: trimmed, inner spaces removed, upper-cased, junk removed."""

IDENTIFIER_TYPES: tuple[str, ...] = (
    "email", "phone", "loyalty_card", "payment_token", "web_user_id", "cookie_id", "social_handle",
    "order_number", "account_id",
)
"""Values that identify one customer (unless shared by more people than allowed)."""

STANDARDIZED_COLUMNS: tuple[str, ...] = (
    "first_name", "last_name", "full_name", "given_name", "email", "phone", "phone_kind",
    "date_of_birth", "address_line", "city", "postcode", "country", "loyalty_card",
    "payment_token", "web_user_id", "cookie_id", "social_handle", "order_number", "account_id",
)
"""Canonical columns of every standardized table, in order (observed_at follows)."""
