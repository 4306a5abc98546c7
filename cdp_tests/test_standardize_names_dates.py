"""Names (split, match form, nicknames) and dates/timestamps."""

from datetime import date, datetime

import pytest
from nameparser import HumanName

from cdp_pipelines.standardize.dates import classify_date, parse_date, parse_timestamp
from cdp_pipelines.standardize.junk import Status
from cdp_pipelines.standardize.names import (
    canonical_given_name,
    classify_name_part,
    clean_name_part,
    display_name_part,
    split_name,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Mary-Jane  O’Neil ", "mary jane oneil"),
        ("ZOË", "zoe"),
        ("Łukasz Øster", "lukasz oster"),
        ("José\u00a0García", "jose garcia"),
        ("ｊｏｈｎ", "john"),
        ("John2", "john"),
        ("123", None),
        (None, None),
    ],
)
def test_clean_name_part(raw, expected):
    assert clean_name_part(raw) == expected


def test_display_form_keeps_accents():
    assert display_name_part("  zoë   o'neil ") == "Zoë O'Neil"
    assert display_name_part("McDonald") == "McDonald"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("John Smith", (None, "John", None, "Smith", None)),
        ("JOHN SMITH", (None, "John", None, "Smith", None)),
        ("Smith, John", (None, "John", None, "Smith", None)),
        ("Mr. John Q. Smith Jr.", ("Mr.", "John", "Q.", "Smith", "Jr.")),
        ("Dr Jane Ann Doe", ("Dr", "Jane", "Ann", "Doe", None)),
        ("Ludwig van Beethoven", (None, "Ludwig", None, "van Beethoven", None)),
        ("Cher", (None, "Cher", None, None, None)),
        ("", (None, None, None, None, None)),
    ],
)
def test_split_name(raw, expected):
    assert split_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["Anne Marie Smith", "Oliver Twist", "Amelia Khan", "Harry Potter", "Sophie Wright-Evans", "Wei Chen"]
)
def test_plain_name_fast_path_agrees_with_nameparser(raw):
    parsed = HumanName(raw)
    assert split_name(raw)[1:4] == (parsed.first or None, parsed.middle or None, parsed.last or None)


def _split_by_nameparser(text):
    from cdp_pipelines.standardize.names import display_name_part

    parsed = HumanName(display_name_part(text))
    return tuple(display_name_part(p) for p in (parsed.title, parsed.first, parsed.middle, parsed.last, parsed.suffix))


def test_fast_path_with_titles_and_initials_agrees_with_nameparser_for_every_letter():
    """Till receipts print "MR K BARTON": every title the fast path reads, every letter as an
    initial in every position before the last name, in both cases, parse as nameparser does;
    a final letter (maybe a suffix: "John Smith V") is left to nameparser."""
    import string

    from cdp_pipelines.standardize.names import _PLAIN_TITLES, _split_plain, display_name_part

    read_fast = 0
    for title in ["", *sorted(_PLAIN_TITLES), "MR", "Mrs"]:
        for a in string.ascii_uppercase:
            layouts = [f"{a} BARTON", f"{a} K Barton", f"Ann {a} Li", f"{a} Marie Jones", f"{a.lower()} smith",
                       *(f"{a} {b} Barton" for b in string.ascii_uppercase)]
            for layout in layouts:
                text = f"{title} {layout}".strip()
                fast = _split_plain(display_name_part(text))
                if fast is not None:
                    read_fast += 1
                    assert fast == _split_by_nameparser(text), text
            assert _split_plain(display_name_part(f"{title} John Smith {a}".strip())) is None
    assert read_fast > 3000  # most layouts are read without nameparser


@pytest.mark.parametrize("raw", ["MR K BARTON", "J JONES", "Miss S Parker", "Dr A B Smith", "ms v gilbert"])
def test_split_name_reads_till_style_names(raw):
    assert split_name(raw) == _split_by_nameparser(raw)
    assert split_name(raw)[3] is not None


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Bob", "robert"),
        ("bobby", "robert"),
        ("Liz", "elizabeth"),
        ("Bill", "william"),
        ("Peggy", "margaret"),
        ("Mike", "michael"),
        ("Robert", "robert"),
        ("John", "john"),
        ("Sam", "sam"),  # Samuel or Samantha: kept as written
        ("Xanthippe", "xanthippe"),
        (None, None),
    ],
)
def test_canonical_given_name(raw, expected):
    assert canonical_given_name(raw) == expected


def test_nickname_choice_without_override_comes_from_package_data():
    assert canonical_given_name("Becky") == canonical_given_name(" BECKY ") == "rebecca"
    assert canonical_given_name("Jane") == "jane"  # listed with nicknames of its own: kept


def test_name_junk():
    assert classify_name_part("N/A", "first_name")[1] is Status.JUNK
    assert classify_name_part("Unknown", "last_name")[1] is Status.JUNK
    assert classify_name_part("Na", "last_name") == ("na", Status.OK)
    assert classify_name_part("1234!", "first_name")[1] is Status.INVALID


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1985-03-12", date(1985, 3, 12)),
        ("12/03/1985", date(1985, 3, 12)),
        ("12-03-1985", date(1985, 3, 12)),
        ("1985/03/12", date(1985, 3, 12)),
        ("12 Mar 1985", date(1985, 3, 12)),
        ("12 March 1985", date(1985, 3, 12)),
        ("March 12, 1985", date(1985, 3, 12)),
        ("1985-03-12T00:00:00Z", date(1985, 3, 12)),
        ("1/3/1985", date(1985, 3, 1)),
    ],
)
def test_parse_date_formats(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["1985-02-30", "31/04/1985", "12/13/1985", "1899-12-31", "2999-01-01", "yesterday"])
def test_impossible_or_implausible_dates(raw):
    assert parse_date(raw) is None
    assert classify_date(raw)[1] is Status.INVALID


def test_month_first_and_reference():
    assert parse_date("03/12/1985", dayfirst=False) == date(1985, 3, 12)
    assert parse_date("03/12/1985", ("%m/%d/%Y",)) == date(1985, 3, 12)
    assert parse_date("2020-01-01", reference=date(2019, 1, 1)) is None
    assert parse_date(date(1990, 5, 4)) == date(1990, 5, 4)
    assert classify_date("unknown")[1] is Status.JUNK


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10)),
        ("2024-03-01T10:00:00+02:00", datetime(2024, 3, 1, 8)),
        ("2024-03-01 10:00:00", datetime(2024, 3, 1, 10)),
        ("01/03/2024 10:05", datetime(2024, 3, 1, 10, 5)),
        ("1709287200", datetime(2024, 3, 1, 10)),
        ("garbage", None),
        ("", None),
    ],
)
def test_parse_timestamp(raw, expected):
    assert parse_timestamp(raw) == expected
