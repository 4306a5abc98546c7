"""Person names: split with nameparser, folded to a match form, nicknames resolved.

Two forms exist on purpose. The display form (display_name_part) keeps accents and capitals
for people to read. The match form (clean_name_part) is what the canonical name columns hold
and what identity resolution compares: NFKC-normalised, lower-case, Latin letters folded to
ASCII ("Zoë" -> "zoe", "Łukasz" -> "lukasz"), apostrophes and dots dropped ("O'Neil" ->
"oneil"), hyphens and other separators turned into single spaces ("Smith-Jones" ->
"smith jones"), digits and symbols removed. Letters of other scripts are kept, lower-cased.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from nameparser import HumanName
from nameparser.config import CONSTANTS
from nicknames import NickNamer

from cdp_pipelines.standardize.config import StandardizeConfig, default_config
from cdp_pipelines.standardize.junk import Status, is_blank, is_placeholder

NameParts = tuple[str | None, str | None, str | None, str | None, str | None]
"""(title, first, middle, last, suffix) in display form."""

_EMPTY_PARTS: NameParts = (None, None, None, None, None)
_SPACES = re.compile(r"\s+")
_DROPPED = re.compile(r"['\u2019\u2018`\u00b4.]")
_NOT_LETTER = re.compile(r"[^\w ]|[\d_]")
# Latin letters that Unicode decomposition does not reduce to ASCII.
_LATIN_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h"})
_FAST_PATH_BLOCKERS = re.compile(r"[,.()\"'&/\u2019]")


def display_name_part(value: str | None) -> str | None:
    """Readable form: NFKC, trimmed, single spaces; all-upper or all-lower text gets capitals."""
    if is_blank(value):
        return None
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(value))).strip()
    if text.isupper() or text.islower():
        text = text.title()
    return text or None


@lru_cache(maxsize=65536)
def clean_name_part(value: str | None) -> str | None:
    """Match form of a name or name part (see module docstring); None when no letters remain."""
    if is_blank(value):
        return None
    text = unicodedata.normalize("NFKC", str(value)).casefold()
    text = _DROPPED.sub("", text).translate(_LATIN_FOLD)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = _SPACES.sub(" ", _NOT_LETTER.sub(" ", text)).strip()
    return text or None


def _is_plain_token(token: str, initial_allowed: bool = False) -> bool:
    """A token nameparser would read as an ordinary given or family name (or, where allowed,
    an initial: a letter that is not also a conjunction or roman-numeral suffix)."""
    lower = token.lower()
    if len(token) == 1 and not (initial_allowed and token.isascii() and token.isalpha()):
        return False
    return not (
        lower in CONSTANTS.titles
        or lower in CONSTANTS.suffix_acronyms
        or lower in CONSTANTS.suffix_not_acronyms
        or lower in CONSTANTS.prefixes
        or lower in CONSTANTS.conjunctions
    )


_PLAIN_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr"})
"""Titles read without nameparser when they open a name ("MR K BARTON", as tills print names)."""


def _split_plain(text: str) -> NameParts | None:
    """"[Title] First [Middle…] Last" with initials allowed but no other titles, suffixes,
    particles or punctuation, without nameparser.

    nameparser costs ~100 µs a name; most names are plain, and for them this gives the same
    answer (checked in the tests against nameparser for every letter and title), so millions
    of rows stay fast.
    """
    if _FAST_PATH_BLOCKERS.search(text):
        return None
    tokens = text.split(" ")
    title = None
    if len(tokens) > 1 and tokens[0].lower() in _PLAIN_TITLES:
        title, tokens = tokens[0], tokens[1:]
    # Initials before the last name only: a final letter may be a suffix ("John Smith V").
    if not (_is_plain_token(tokens[-1]) and all(_is_plain_token(token, True) for token in tokens[:-1])):
        return None
    if len(tokens) == 1:
        parts = (title, None, None, tokens[0], None) if title else (None, tokens[0], None, None, None)
    else:
        parts = (title, tokens[0], " ".join(tokens[1:-1]) or None, tokens[-1], None)
    return tuple(display_name_part(part) for part in parts)  # type: ignore[return-value]


@lru_cache(maxsize=65536)
def split_name(full: str | None) -> NameParts:
    """(title, first, middle, last, suffix) in display form; handles "Smith, John" and "Dr J Smith Jr"."""
    text = display_name_part(full)
    if text is None:
        return _EMPTY_PARTS
    plain = _split_plain(text)
    if plain is not None:
        return plain
    parsed = HumanName(text)
    return tuple(  # type: ignore[return-value]
        display_name_part(part) for part in (parsed.title, parsed.first, parsed.middle, parsed.last, parsed.suffix)
    )


def classify_name_part(
    value: str | None, attribute: str, config: StandardizeConfig | None = None
) -> tuple[str | None, Status]:
    """Match form of a first/last name and what happened (junk: "N/A", "Test"; invalid: no letters)."""
    if is_blank(value):
        return None, Status.MISSING
    if is_placeholder(value, attribute, config or default_config()):
        return None, Status.JUNK
    cleaned = clean_name_part(value)
    return (cleaned, Status.OK) if cleaned else (None, Status.INVALID)


@lru_cache(maxsize=1)
def _nicknamer() -> NickNamer:
    return NickNamer()


def resolve_nickname(name: str, config: StandardizeConfig | None = None) -> str:
    """Given name for a match-form first name; unknown names come back unchanged.

    Order: the configured overrides; a name the nicknames package lists with nicknames of its
    own is a given name and is kept ("jane" is not rewritten to "virginia"); otherwise the
    package's canonical names that are longer than the nickname (its data also lists "bill"
    under "robert"), preferring the one with most nicknames of its own (the most established
    name), then alphabetical order, so the answer never depends on set ordering.
    """
    config = config or default_config()
    if name in config.given_name_overrides:
        return config.given_name_overrides[name]
    namer = _nicknamer()
    if namer.nicknames_of(name):
        return name
    candidates = [c for c in namer.canonicals_of(name) if len(c) > len(name)]
    if not candidates:
        return name
    return min(candidates, key=lambda c: (-len(namer.nicknames_of(c)), c))


@lru_cache(maxsize=1)
def name_variant_pairs() -> tuple[tuple[str, str], ...]:
    """Every (name, variant) pair the nicknames package relates, in match form and both ways
    round ("debbie" ~ "deborah", "ron" ~ "aaron"). Resolution keeps one given name per first
    name; these pairs let identity resolution tell that two first names may be one person."""
    pairs: set[tuple[str, str]] = set()
    for canonical, nicknames in _nicknamer().nickname_lookup.items():
        for nickname in nicknames:
            a, b = clean_name_part(canonical), clean_name_part(nickname)
            if a and b and a != b:
                pairs.update(((a, b), (b, a)))
    return tuple(sorted(pairs))


@lru_cache(maxsize=65536)
def canonical_given_name(first: str | None) -> str | None:
    """Nickname-resolved given name in match form ("Bob" -> "robert", "Liz" -> "elizabeth")."""
    cleaned = clean_name_part(first)
    return resolve_nickname(cleaned) if cleaned else None
