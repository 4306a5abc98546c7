"""Phones to E.164 and canonical emails, on the formats real forms produce."""

import pytest

from cdp_pipelines.standardize.emails import canonical_email, classify_email
from cdp_pipelines.standardize.junk import Status
from cdp_pipelines.standardize.phones import classify_phone, normalize_phone, phone_kind


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+44 7700 900123", "+447700900123"),
        ("07700-900-123", "+447700900123"),
        ("07700900123", "+447700900123"),
        ("+44(0)7700 900 123", "+447700900123"),
        ("(0)20 7946 0958", "+442079460958"),
        ("020 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("07911 123456", "+447911123456"),
        ("0044 7911 123456", "+447911123456"),
        ("tel:+44-7911-123456", "+447911123456"),
        ("+1 (212) 555-0100", "+12125550100"),
    ],
)
def test_normalize_phone_formats(raw, expected):
    assert normalize_phone(raw) == expected


def test_default_region_reads_national_numbers():
    assert normalize_phone("(212) 555-0100", "US") == "+12125550100"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize("raw", ["00000000000", "1234567890", "0123456789", "07777777777", "N/A", "-", "none"])
def test_junk_phones(raw):
    assert normalize_phone(raw) is None
    assert classify_phone(raw)[1] is Status.JUNK


@pytest.mark.parametrize("raw", ["12", "call me", "0770090", "+44 1 2", "07700 900123 900123 12"])
def test_invalid_phones(raw):
    assert normalize_phone(raw) is None
    assert classify_phone(raw)[1] is Status.INVALID


def test_missing_phone():
    assert normalize_phone(None) is None
    assert classify_phone("  ")[1] is Status.MISSING


def test_phone_kind():
    assert phone_kind("+447911123456") == "mobile"
    assert phone_kind("+442079460958") == "landline"
    assert phone_kind("+447700900123") == "mobile"  # configured fictional (drama) range
    assert phone_kind("+12125550100") == "other"  # US: fixed line or mobile


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("John.Smith@Gmail.com", "johnsmith@gmail.com"),
        ("  j.o.h.n.smith+newsletter@googlemail.com ", "johnsmith@gmail.com"),
        ("JohnSmith@gmail.com", "johnsmith@gmail.com"),
        ("jane.doe+shop@outlook.com", "jane.doe@outlook.com"),
        ("jane.doe+shop@btinternet.com", "jane.doe+shop@btinternet.com"),
        ("Jane.Doe@Company.CO.UK", "jane.doe@company.co.uk"),
        ("mailto:jane@acme.io", "jane@acme.io"),
        ("<jane@acme.io>", "jane@acme.io"),
    ],
)
def test_canonical_email(raw, expected):
    assert canonical_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["test@test.com", "noreply@shop.com", "no-reply@brand.co.uk", "someone@example.com", "n/a", "none@none.com"]
)
def test_junk_emails(raw):
    assert canonical_email(raw) is None
    assert classify_email(raw)[1] is Status.JUNK


@pytest.mark.parametrize("raw", ["john.smith", "john@", "@gmail.com", "john smith@gmail.com", "john@@gmail.com", "+tag@gmail.com"])
def test_invalid_emails(raw):
    assert canonical_email(raw) is None
    assert classify_email(raw)[1] is Status.INVALID


def test_a_local_part_repeating_the_domain_name_is_junk():
    from cdp_pipelines.standardize.emails import canonical_email

    assert canonical_email("x@x.com") is None
    assert canonical_email("MAIL@mail.co.uk") is None
    assert canonical_email("john@smith.com") == "john@smith.com"


def _validate_email_whole(text):
    """email-validator's own answer: (lower-cased local part, domain) or "invalid"."""
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return "invalid"
    return checked.local_part.lower(), checked.domain


def _validated_parts_or_invalid(text):
    from email_validator import EmailNotValidError

    from cdp_pipelines.standardize.emails import validated_parts

    try:
        local_part, domain = validated_parts(text)
    except EmailNotValidError:
        return "invalid"
    return local_part.lower(), domain


_EDGE_EMAILS = [
    "jane@acme.io", "Jane.Doe@Company.CO.UK", "a@b.co", "postmaster@acme.io", "POSTMASTER@acme.io",
    "x@localhost", "x@acme.test", "x@acme.local", "x@acme.invalid", "x@acme.onion", "x@acme.arpa",
    "x@123.com", "x@acme.123", "x@-acme.com", "x@acme-.com", "x@acme..com", "x@.acme.com", "x@acme.com.",
    "x@acme", "x@[127.0.0.1]", "x@xn--bcher-kva.example", "x@xn--zz.com", "x@bücher.de", "x@BÜCHER.de",
    "x@ａcme.com", "x@acme.com\u0338", "x@\u0338acme.com", "x@acme_corp.com", "x@acme corp.com",
    "x@a@b.com", "x@@b.com", "x.@acme.com", ".x@acme.com", "x..y@acme.com", "x+tag@acme.com",
    "\"x y\"@acme.com", "\"x\"@acme.com", "Jane <jane@acme.io>", "<jane@acme.io>", "jane@acme.io>",
    "jöhn@acme.com", "ｊane@acme.com", "x@" + "a" * 63 + ".com", "x@" + "a" * 64 + ".com",
    "a" * 64 + "@acme.com", "a" * 65 + "@acme.com", "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".com",
    "a" * 40 + "@" + ".".join(["b" * 60] * 3) + ".com", "a" * 20 + "@" + ".".join(["b" * 60] * 3) + ".com",
    "a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".com", "a" * 58 + "@" + ".".join(["b" * 62] * 3) + ".com",
    "x@" + ".".join(["b" * 62] * 4), "x@" + ".".join(["c" * 61] * 4) + ".io", "x@bücher" + "b" * 240 + ".de",
    "x@acme.com\n", "x@acme.com ", "x@ acme.com", "x@acme.c", "x@acme.co1", "x@acme.c-m", "x@acme.xn--p1ai",
    "!#$%&'*+/=?^_`{|}~-@acme.com", "x@ACME.COM", "x@acme.COM", "x@a.b.c.d.e.f.g.com", "@acme.com", "x@",
]


@pytest.mark.parametrize("text", _EDGE_EMAILS)
def test_validated_parts_agrees_with_email_validator_on_edge_cases(text):
    """The per-domain shortcut must give email-validator's own verdict and normal form."""
    assert _validated_parts_or_invalid(text) == _validate_email_whole(text)


def test_validated_parts_agrees_with_email_validator_on_random_addresses():
    import random

    rng = random.Random(20261124)
    plain, local_specials, domain_specials = "abcXYZ019", "._+-'!~\"@ ü", ".-_ ü@"

    def text_of(specials, length):
        return "".join(rng.choice(specials if rng.random() < 0.1 else plain) for _ in range(length))

    tlds = ["com", "co.uk", "io", "test", "local", "123", "c", "xn--p1ai", ""]
    checked = invalid = 0
    for _ in range(5000):
        local_part, domain = text_of(local_specials, rng.randint(0, 12)), text_of(domain_specials, rng.randint(0, 12))
        text = f"{local_part}@{domain}.{rng.choice(tlds)}" if rng.random() < 0.9 else local_part + domain
        expected = _validate_email_whole(text)
        assert _validated_parts_or_invalid(text) == expected, text
        checked += 1
        invalid += expected == "invalid"
    assert 0.2 * checked < invalid < 0.9 * checked  # both verdicts were exercised


def test_phonenumbers_keeps_its_compiled_patterns_once_phones_is_imported():
    """Importing the phones module (as every standardize worker does) turns on phonenumbers'
    pattern cache, so regions' metadata patterns are compiled once per process."""
    from phonenumbers import re_util

    from cdp_pipelines.standardize import phones

    assert phones.classify_phone("+44 7700 900123")[0] == "+447700900123"
    assert re_util._COMPILED_PATTERNS, "phonenumbers is recompiling its patterns on every call"
