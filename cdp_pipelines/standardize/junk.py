"""Placeholder detection: values typed to fill a field rather than to describe anyone.

Junk is told apart from invalid values so data-quality reports can say "the form was filled
with N/A" separately from "the value was malformed".
"""

from __future__ import annotations

import re
from enum import Enum

import numpy as np
import pandas as pd

from cdp_pipelines.standardize.config import StandardizeConfig, default_config


class Status(str, Enum):
    """What happened to one raw value during standardization."""

    OK = "ok"
    MISSING = "missing"
    JUNK = "junk"
    INVALID = "invalid"


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")

WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
              "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
"""The characters of Python's \\s (those str.isspace() accepts), as the characters themselves.
pandas hands a column pattern holding \\s to Python's re, one value at a time (RE2's \\s is
narrower), but runs a class of these characters in Arrow, on the whole column at once."""

_IGNORED_IN_KEY_PATTERN = f"[{WHITESPACE}./\\\\_\\-]+"  # whitespace, dots, slashes, underscores, hyphens
_IGNORED_IN_KEY = re.compile(_IGNORED_IN_KEY_PATTERN)


def placeholder_key(value: str) -> str:
    """Comparison form of a value: case-folded, without spaces, dots, slashes, underscores, hyphens."""
    return _IGNORED_IN_KEY.sub("", value).casefold()


def is_blank(value: object) -> bool:
    """None, NaN and whitespace-only strings are simply missing, not junk."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


def is_placeholder(value: str | None, attribute: str | None = None, config: StandardizeConfig | None = None) -> bool:
    """True for filler such as "N/A", "unknown", "-", "xxxx" (lists in config/standardize.yaml)."""
    if is_blank(value):
        return False
    return _is_placeholder(str(value), attribute, config or default_config())


def _is_placeholder(value: str, attribute: str | None, config: StandardizeConfig) -> bool:
    """Called once per distinct value of a column (standardize_frame), so it is not cached:
    with mostly distinct values a cache costs more than it saves."""
    text = value.strip()
    # A leading letter or digit settles the first rule without the regex ([^\W_] is exactly
    # str.isalnum), and most values start with one.
    if not text[:1].isalnum() and not _LETTER_OR_DIGIT.search(text):
        return True
    key = placeholder_key(text)
    if attribute and key in config.placeholder_exemptions.get(attribute, ()):
        return False
    if key in config.placeholders or (attribute and key in config.placeholders_by_attribute.get(attribute, ())):
        return True
    length = len(key)
    return length >= config.repeated_char_min_length and length > 0 and key.count(key[0]) == length


def placeholder_mask(values: "pd.Series", attribute: str | None, config: StandardizeConfig | None = None) -> "np.ndarray":
    """is_placeholder for a whole column of text at once (same rules, vectorised)."""
    config = config or default_config()
    text = values.astype("str").str.strip()
    key = _casefold(text.str.replace(_IGNORED_IN_KEY_PATTERN, "", regex=True))
    no_letters_or_digits = ~text.str.contains(r"[^\W_]", regex=True)
    exempt = key.isin(config.placeholder_exemptions.get(attribute, ())) if attribute else False
    listed = key.isin(config.placeholders)
    if attribute:
        listed |= key.isin(config.placeholders_by_attribute.get(attribute, ()))
    # One character repeated: the key equals itself shifted by one character (a backreference
    # such as (.)\1* would send every value through Python's re).
    repeated = (key.str.len() >= config.repeated_char_min_length) & (key.str[1:] == key.str[:-1])
    return (no_letters_or_digits | (~exempt & (listed | repeated))).to_numpy(dtype=bool)


def _casefold(text: "pd.Series") -> "pd.Series":
    """str.casefold of a text column: for ASCII it is lower-casing, which Arrow does for the
    whole column; only the other values are folded by Python, one at a time."""
    folded = text.str.lower()
    other = ~text.str.isascii().fillna(True).astype(bool)
    if other.any():
        folded[other] = text[other].map(str.casefold)
    return folded


def is_sequential_digits(digits: str) -> bool:
    """Digit runs such as 1234567 or 9876543 (wrapping 9->0 allowed), typed to pass a form."""
    if len(digits) < 6 or not digits.isdigit():
        return False
    repeats = len(digits) // 10 + 2  # every run of this length starts within the first cycle
    return digits in "0123456789" * repeats or digits in "9876543210" * repeats


def is_junk_phone_digits(digits: str, config: StandardizeConfig | None = None) -> bool:
    """A phone digit string that is configured junk, one repeated digit, or a digit run."""
    config = config or default_config()
    if not digits:
        return False
    if digits in config.phone_junk_numbers or len(set(digits)) == 1:
        return True
    return config.phone_reject_sequences and is_sequential_digits(digits)


def is_junk_email(local_part: str, domain: str, config: StandardizeConfig | None = None) -> bool:
    """Configured junk addresses, local parts (noreply, test) and domains (example.com)."""
    config = config or default_config()
    local_part, domain = local_part.lower(), domain.lower()
    if f"{local_part}@{domain}" in config.email_junk_addresses:
        return True
    if local_part in config.email_junk_local_parts or placeholder_key(local_part) in config.placeholders:
        return True
    # x@x.com, abc@abc.com, mail@mail.co.uk: a local part that merely repeats the domain's name
    # is typed to get past a form, not an address anyone reads.
    if local_part == domain.split(".", 1)[0]:
        return True
    return domain in config.email_junk_domains or domain.rsplit(".", 1)[-1] in config.email_junk_domains
