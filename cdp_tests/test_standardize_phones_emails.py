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
