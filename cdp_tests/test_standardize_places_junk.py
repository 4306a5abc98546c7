"""Postcodes, countries, address lines and placeholder junk."""

import pytest

from cdp_pipelines.standardize.addresses import normalize_address_line, normalize_city
from cdp_pipelines.standardize.config import load_config
from cdp_pipelines.standardize.junk import is_placeholder
from cdp_pipelines.standardize.postcodes import classify_postcode, normalize_country, normalize_postcode
from cdp_pipelines.standardize.junk import Status


@pytest.mark.parametrize(
    "raw, country, expected",
    [
        ("sw1a1aa", "GB", "SW1A 1AA"),
        (" SW1A  1AA ", "GB", "SW1A 1AA"),
        ("ec1a-1bb", "GB", "EC1A 1BB"),
        ("m11ae", "GB", "M1 1AE"),
        ("GIR 0AA", "GB", "GIR 0AA"),
        ("im1 1aa", "IM", "IM1 1AA"),
        ("d02x285", "IE", "D02 X285"),
        ("12345-6789", "US", "12345"),
        ("02134", "US", "02134"),
        ("75008", "FR", "75008"),
        ("1234 ab", "NL", "1234 AB"),
    ],
)
def test_normalize_postcode(raw, country, expected):
    assert normalize_postcode(raw, country) == expected


def test_postcode_without_country_uses_default_rules_only_when_they_fit():
    assert normalize_postcode("sw1a1aa", None, default_country="GB") == "SW1A 1AA"
    assert normalize_postcode("10115", None, default_country="GB") == "10115"
    assert normalize_postcode("sw1a1aa", None) == "SW1A1AA"


@pytest.mark.parametrize("raw, country", [("XX1 1XX", "GB"), ("SW1A", "GB"), ("1234", "US"), ("Z99 1234", "IE")])
def test_invalid_postcodes(raw, country):
    assert classify_postcode(raw, country) == (None, Status.INVALID)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("United Kingdom", "GB"), ("UK", "GB"), ("U.K.", "GB"), ("England", "GB"), ("gb", "GB"),
        ("GBR", "GB"), ("Ireland", "IE"), ("Eire", "IE"), ("USA", "US"), ("United States", "US"),
        ("Germany", "DE"), ("deutschland", "DE"), ("Narnia", None), ("N/A", None), (None, None),
    ],
)
def test_normalize_country(raw, expected):
    assert normalize_country(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Flat 3, 12 High St.", "flat 3 12 high street"),
        ("12-14 St John's Rd", "12-14 saint johns road"),
        ("Apt. 5B, 221b Baker Street", "flat 5b 221b baker street"),
        ("  1   Rue   de la Paix ", "1 rue de la paix"),
        ("3/5 Main Ave", "3/5 main avenue"),
        ("Château-Gaillard Ln", "chateau gaillard lane"),
        ("N/A", None),
        ("---", None),
    ],
)
def test_normalize_address_line(raw, expected):
    assert normalize_address_line(raw) == expected


def test_normalize_city():
    assert normalize_city("St. Albans") == normalize_city("ST ALBANS") == "saint albans"
    assert normalize_city("Saint-Étienne") == "saint etienne"


@pytest.mark.parametrize("raw", ["N/A", "n/a", "NA", "unknown", "None", "null", "-", "--", "?", "test", "xxx", "XXXX", "0000000000", "TBC"])
def test_placeholders(raw):
    assert is_placeholder(raw)


@pytest.mark.parametrize("raw", [None, "", "  ", "Smith", "Nash", "SW1A 1AA", "07700900123"])
def test_not_placeholders(raw):
    assert not is_placeholder(raw)


def test_attribute_exemptions_and_extras():
    assert not is_placeholder("Na", "last_name")
    assert is_placeholder("Na", "first_name")
    assert is_placeholder("Surname", "last_name")
    assert not is_placeholder("Surname", "city")


def test_custom_config_file_replaces_the_lists(tmp_path):
    path = tmp_path / "standardize.yaml"
    path.write_text("placeholders:\n  generic: [zzz]\n", encoding="utf-8")
    config = load_config(path)
    assert is_placeholder("ZZZ", config=config)
    assert not is_placeholder("unknown", config=config)


def _sequential_by_definition(digits: str) -> bool:
    """Each digit one more (or one less) than the previous, 9 wrapping to 0."""
    if len(digits) < 6 or not digits.isdigit():
        return False
    steps = {(int(b) - int(a)) % 10 for a, b in zip(digits, digits[1:])}
    return steps in ({1}, {9})


def test_sequential_digit_runs_match_their_definition():
    import random

    from cdp_pipelines.standardize.junk import is_sequential_digits

    rng = random.Random(7)
    cases = ["123456", "987654", "890123", "2109876", "12345", "123457", "000000", "12345678901234567890123",
             "9876543210987654321098", "1234567890123456789013", "", "12a456"]
    for length in range(1, 25):
        start = rng.randrange(10)
        for step in (1, 9):
            cases.append("".join(str((start + step * i) % 10) for i in range(length)))
        cases.extend("".join(rng.choice("0123456789") for _ in range(length)) for _ in range(20))
    for digits in cases:
        assert is_sequential_digits(digits) == _sequential_by_definition(digits), digits


@pytest.mark.parametrize("raw, expected", [
    ("_", True), ("__", True), ("_smith", False), ("-x", False), ("…", True), ("\u0300", True),
    ("\u0300a", False), ("²", False), ("٣", False), ("Ⅻ", False), ("é", False), (" ·· ", True),
    ("ß" * 6, True), ("aaaa", True), ("aAaA", True), ("a.a.a.a", True), ("ab", False),
])
def test_a_value_without_any_letter_or_digit_is_filler_whatever_its_first_character(raw, expected):
    """Letters and digits are what str.isalnum accepts (the regex's [^\\W_]): an underscore,
    punctuation or a lone combining mark is none, a superscript or Arabic-Indic digit is one."""
    assert is_placeholder(raw) is expected


def test_whitespace_constant_is_pythons_backslash_s():
    import re
    import sys

    from cdp_pipelines.standardize.junk import WHITESPACE

    assert set(WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if re.match(r"\s", c)}


TRICKY_VALUES = [
    "N/A", "n.a.", "N\u00a0/\u00a0A", "n\u2003a", "NULL", "nUlL", "Unknown", "UNKNOWN", "unk", "x\u3000x\u3000x",
    "xxxx", "XXXX", "xx", "aaa", "ǅǅǅ", "ǆǅǅ", "ßß", "SSSS", "ΣΣΣ", "σςσ", "İİİ", "iii", "ﬀﬀ", "ΩΩΩΩ", "ΩΩΩω",
    "----", "__", "...", "\x1c\x1d", " - ", "0000", "1234", "123", "abc", "ABC", "a-b-c", "a_b_c", "a\x0bb\x0bc",
    "Ω123", "lc 0012 34", "tok_9f", "W 12 3", "tEsT", "TÉST", "test\u2028", "\u00a0na\u00a0", "Straße", "STRASSE",
    "ﬁle", "FILE", "", "  ", "\u3000",
]


@pytest.mark.parametrize("attribute", [None, "first_name", "email", "cookie_id"])
def test_column_wise_placeholder_mask_matches_the_per_value_rule(attribute):
    import pandas as pd

    from cdp_pipelines.standardize.config import default_config
    from cdp_pipelines.standardize.junk import _is_placeholder, placeholder_mask

    config = default_config()
    values = [v for v in TRICKY_VALUES if v.strip()]  # blanks never reach either rule
    expected = [_is_placeholder(v, attribute, config) for v in values]
    assert any(expected) and not all(expected)
    got = placeholder_mask(pd.Series(values, dtype="str"), attribute, config).tolist()
    assert dict(zip(values, got)) == dict(zip(values, expected))
