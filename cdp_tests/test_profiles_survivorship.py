"""Survivorship rules pick the right record per attribute and say where each value came from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import yaml

from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.profiles.identifiers import records_sql
from cdp_pipelines.profiles.survivorship import build_golden_profile, load_survivorship_config
from test_profiles_support import CONFIG_DIR, load_inputs


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


RECORDS = [
    # C1: two CRM accounts (older and newer), a newer till receipt, a social post.
    dict(source="crm_accounts", source_record_id="A-old", customer_id="C1", observed_at="2022-01-01 00:00:00",
         first_name="zoe", last_name="oneil", email="zoe.old@example.com", address_line="1 high st",
         src_first_name="ZOË", src_last_name="O'Neil", loyalty_card="LC-1", date_of_birth="1980-02-03", country="GB"),
    dict(source="crm_accounts", source_record_id="A-new", customer_id="C1", observed_at="2023-06-01 00:00:00",
         first_name="zoe", email="zoe@example.com", address_line="1 high street, flat 2",
         src_first_name="Zoë", src_last_name="", date_of_birth="1980-02-03", country="GB"),
    dict(source="pos_transactions", source_record_id="P-1", customer_id="C1", observed_at="2024-03-01 00:00:00",
         first_name="zoey", last_name="oneill", email="zoe.till@example.com", loyalty_card="LC-2",
         date_of_birth="1981-01-01", country="IE"),
    dict(source="social_posts", source_record_id="S-1", customer_id="C1", observed_at="2024-05-01 00:00:00",
         first_name="zed", city="dublin"),
    # C2: only a review and a web event: no CRM, so lower-priority sources win.
    dict(source="reviews", source_record_id="R-1", customer_id="C2", observed_at="2024-01-01 00:00:00",
         first_name="mary ann", last_name="jones", email="maj@example.com"),
    dict(source="web_events", source_record_id="W-1", customer_id="C2", observed_at="2024-02-01 00:00:00",
         email="mary@example.com", cookie_id="CK1"),
]


@pytest.fixture()
def warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    path = tmp_path / "warehouse.duckdb"
    load_inputs(path, RECORDS)
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA profiles")
    yield con
    con.close()


def golden(con, config_path: Path = CONFIG_DIR / "survivorship.yaml") -> dict[str, dict]:
    build_golden_profile(con, load_survivorship_config(config_path), records_sql("identity.customer_xref"))
    frame = con.execute("SELECT * FROM profiles.golden_profile").df()
    return {row["customer_id"]: row for row in frame.to_dict("records")}


def test_source_priority_prefers_crm_and_most_recent_crm_record(warehouse):
    c1 = golden(warehouse)["C1"]
    assert c1["email"] == "zoe@example.com"
    assert (c1["email_source"], c1["email_record_id"], c1["email_observed_at"]) == (
        "crm_accounts", "A-new", ts("2023-06-01"))
    # last_name only on the older CRM record: still beats the newer till record.
    assert (c1["last_name"], c1["last_name_record_id"]) == ("oneil", "A-old")


def test_source_priority_falls_back_and_excluded_sources_never_win(warehouse):
    profiles = golden(warehouse)
    c2 = profiles["C2"]
    assert (c2["first_name"], c2["first_name_source"]) == ("mary ann", "reviews")
    assert (c2["email"], c2["email_source"]) == ("mary@example.com", "web_events")
    assert profiles["C1"]["first_name_source"] == "crm_accounts"  # never the newer social post "zed"


def test_display_names_come_from_the_winning_record(warehouse):
    profiles = golden(warehouse)
    assert profiles["C1"]["first_name_display"] == "Zoë"          # original of A-new, the winner
    assert profiles["C1"]["last_name_display"] == "O'Neil"        # original of A-old
    assert profiles["C2"]["first_name_display"] == "Mary Ann"     # no original: match form with capitals


def test_most_recent(warehouse):
    c1 = golden(warehouse)["C1"]
    assert (c1["loyalty_card"], c1["loyalty_card_source"], c1["loyalty_card_record_id"]) == (
        "LC-2", "pos_transactions", "P-1")


def test_most_frequent_names_the_latest_record_carrying_the_value(warehouse):
    c1 = golden(warehouse)["C1"]
    assert str(c1["date_of_birth"])[:10] == "1980-02-03"
    kind = warehouse.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = 'profiles' "
                             "AND table_name = 'golden_profile' AND column_name = 'date_of_birth'").fetchall()
    assert kind == [("DATE",)]
    assert (c1["date_of_birth_record_id"], c1["date_of_birth_observed_at"]) == ("A-new", ts("2023-06-01"))
    assert (c1["country"], c1["country_record_id"]) == ("GB", "A-new")


def test_most_complete(warehouse, tmp_path):
    config = tmp_path / "survivorship.yaml"
    config.write_text(yaml.safe_dump({"attributes": {"address_line": {"rule": "most_complete"}}}))
    c1 = golden(warehouse, config)["C1"]
    assert (c1["address_line"], c1["address_line_record_id"]) == ("1 high street, flat 2", "A-new")


def test_record_counts_sources_and_dates(warehouse):
    c1 = golden(warehouse)["C1"]
    assert c1["records"] == 4
    assert list(c1["sources"]) == ["crm_accounts", "pos_transactions", "social_posts"]
    assert (c1["first_seen"], c1["last_seen"]) == (ts("2022-01-01"), ts("2024-05-01"))


def test_provenance_columns_for_every_attribute(warehouse):
    columns = set(golden(warehouse)["C1"])
    for attribute in load_survivorship_config(CONFIG_DIR / "survivorship.yaml").attributes:
        assert {attribute, f"{attribute}_source", f"{attribute}_record_id", f"{attribute}_observed_at"} <= columns


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"attributes": {"shoe_size": {"rule": "most_recent"}}}, "unknown attribute"),
        ({"attributes": {"email": {"rule": "source_priority"}}}, "needs an ordered `sources` list"),
        ({"attributes": {"email": {"rule": "best_guess"}}}, "attributes.email.rule"),
    ],
)
def test_config_errors_are_readable(tmp_path, content, message):
    path = tmp_path / "survivorship.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ProfilesConfigError, match=message) as error:
        load_survivorship_config(path)
    assert str(path) in str(error.value)


def test_missing_display_column_is_reported(warehouse, tmp_path):
    path = tmp_path / "survivorship.yaml"
    path.write_text(yaml.safe_dump({"attributes": {"first_name": {
        "rule": "most_recent", "display": {"crm_accounts": "src_given"}}}}))
    with pytest.raises(ProfilesConfigError, match="standardized.crm_accounts has no such column"):
        golden(warehouse, path)


def test_ties_and_extreme_times_order_as_rank_then_time_then_source_and_record(tmp_path):
    """The packed ordering key keeps the order of (rank, time, source, record id): an undated
    record loses to any dated one, year 9999 beats year 1, and among equals the greatest
    (source, source_record_id) wins, whatever the number of digits in the id."""
    rows = [
        dict(source="crm_accounts", source_record_id="9", customer_id="T1", observed_at=None, email="undated@x.io"),
        dict(source="crm_accounts", source_record_id="10", customer_id="T1", observed_at="0001-01-02 00:00:00",
             email="year-one@x.io"),
        dict(source="reviews", source_record_id="R-2", customer_id="T2", observed_at="2024-01-01 00:00:00",
             email="r2@x.io"),
        dict(source="reviews", source_record_id="R-10", customer_id="T2", observed_at="2024-01-01 00:00:00",
             email="r10@x.io"),
        dict(source="web_events", source_record_id="A", customer_id="T3", observed_at="2024-01-01 00:00:00",
             cookie_id="C", email="web@x.io"),
        dict(source="web_events", source_record_id="B", customer_id="T3", observed_at="9999-12-31 23:59:59",
             email="future@x.io"),
        dict(source="web_events", source_record_id="C", customer_id="T3", observed_at=None, email="none@x.io"),
    ]
    path = tmp_path / "warehouse.duckdb"
    load_inputs(path, rows)
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA profiles")
    config = tmp_path / "survivorship.yaml"
    config.write_text(yaml.safe_dump({"attributes": {"email": {"rule": "most_recent"}}}))
    profiles = golden(con, config)
    assert profiles["T1"]["email"] == "year-one@x.io"       # dated (even year 1) beats undated
    assert profiles["T2"]["email"] == "r2@x.io"             # same time: "R-2" > "R-10" as text
    assert profiles["T3"]["email"] == "future@x.io"
    config.write_text(yaml.safe_dump({"attributes": {"email": {"rule": "source_priority",
                                                               "sources": ["reviews", "web_events"]}}}))
    profiles = golden(con, config)
    assert profiles["T3"]["email"] == "future@x.io"         # rank ties: recency decides
    con.close()


def test_fill_rates_and_winning_source_shares(tmp_path):
    from types import SimpleNamespace

    from cdp_pipelines.profiles.survivorship import fill_rates_and_winning_sources

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA profiles")
    con.execute("CREATE TABLE profiles.golden_profile (customer_id VARCHAR, email_source VARCHAR, "
                "phone_source VARCHAR, city_source VARCHAR)")
    con.execute("INSERT INTO profiles.golden_profile VALUES ('C1', 'crm', 'pos', NULL), ('C2', 'web', NULL, NULL), "
                "('C3', 'crm', NULL, NULL), ('C4', NULL, 'pos', NULL)")
    config = SimpleNamespace(attributes={"email": None, "phone": None, "city": None})
    fill, shares = fill_rates_and_winning_sources(con, config)
    assert fill == {"email": 0.75, "phone": 0.5, "city": 0.0}
    assert shares == {"email": {"crm": 0.6667, "web": 0.3333}, "phone": {"pos": 1.0}, "city": {}}
    assert list(shares["email"]) == ["crm", "web"]  # most winning first
    con.execute("DELETE FROM profiles.golden_profile")
    assert fill_rates_and_winning_sources(con, config) == ({"email": 0.0, "phone": 0.0, "city": 0.0},
                                                           {"email": {}, "phone": {}, "city": {}})
