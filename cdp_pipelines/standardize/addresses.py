"""Address lines and cities in one comparable form: "Flat 3, 12 High St." -> "flat 3 12 high street"."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import Status, is_blank, is_placeholder

_DROPPED = re.compile(r"['\u2019\u2018`]")
# Punctuation becomes a space, except "-" and "/" between digits ("12-14", "3/5").
_PUNCTUATION = re.compile(r"(?<!\d)[-/]|[-/](?!\d)|[^\w\s\-/]|_")
_SPACES = re.compile(r"\s+")


def _fold(value: str) -> str:
    """NFKC, lower-case, accents removed, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", value).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _PUNCTUATION.sub(" ", _DROPPED.sub("", text))
    return _SPACES.sub(" ", text).strip()


def unify_address_words(folded: str, config: StandardizeConfig) -> str:
    """Expand configured abbreviations; "st" before another word reads as its before_word form."""
    tokens = folded.split(" ")
    unified = []
    for position, token in enumerate(tokens):
        following = tokens[position + 1] if position + 1 < len(tokens) else ""
        if token in config.address_before_word and following.isalpha():
            unified.append(config.address_before_word[token])
        else:
            unified.append(config.address_abbreviations.get(token, token))
    return " ".join(unified)


def classify_address_line(value: str | None, config: StandardizeConfig | None = None) -> tuple[str | None, Status]:
    """Normalised address line and what happened (junk: "N/A", "no fixed abode")."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    if is_placeholder(value, "address_line", config):
        return None, Status.JUNK
    folded = _fold(str(value))
    return (unify_address_words(folded, config), Status.OK) if folded else (None, Status.INVALID)


@lru_cache(maxsize=65536)
def normalize_address_line(value: str | None) -> str | None:
    """Lower-case, punctuation stripped, abbreviations unified (st -> street, apt -> flat)."""
    return classify_address_line(value)[0]


def classify_city(value: str | None, config: StandardizeConfig | None = None) -> tuple[str | None, Status]:
    """Normalised city and what happened; "St Albans" and "st. albans" both become "saint albans"."""
    if is_blank(value):
        return None, Status.MISSING
    config = config or default_config()
    if is_placeholder(value, "city", config):
        return None, Status.JUNK
    folded = _fold(str(value))
    if not folded:
        return None, Status.INVALID
    return " ".join(config.city_abbreviations.get(t, t) for t in folded.split(" ")), Status.OK


@lru_cache(maxsize=65536)
def normalize_city(value: str | None) -> str | None:
    """City in the same lower-case folded form as address lines."""
    return classify_city(value)[0]
