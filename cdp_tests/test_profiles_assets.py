"""The profiles assets materialize with Dagster on a small warehouse, checks pass, metadata is useful."""

from __future__ import annotations

import dagster as dg
import pytest

from cdp_pipelines.profiles.suppression import ENV_SUPPRESSION_FILE
from test_profiles_support import load_inputs, materialize_profiles, profile_definitions, query

RECORDS = [
    dict(source="crm_accounts", source_record_id="A1", customer_id="C1", observed_at="2023-01-01 00:00:00",
         first_name="anna", last_name="berg", src_first_name="Anna", src_last_name="Berg", email="anna@fastmail.org",
         phone="+447700900111", country="GB", account_id="A1", src_email_consent="yes", src_sms_consent="no",
         src_consent_updated_at="2023-01-01 00:00:00"),
    dict(source="web_events", source_record_id="W1", customer_id="C1", observed_at="2024-01-01 00:00:00",
         email="anna@fastmail.org", cookie_id="CK1", web_user_id="U1", src_consent_email="no", src_event_type="form_submit"),
    dict(source="pos_transactions", source_record_id="P1", customer_id="C2", observed_at="2024-02-01 00:00:00",
         first_name="bo", last_name="lund", email="bo@fastmail.org", loyalty_card="LC2"),
    dict(source="crm_cases", source_record_id="K1", customer_id="C2", observed_at="2024-02-02 00:00:00",
         order_number="O1", account_id="A9"),
]


@pytest.fixture()
def run(tmp_path, monkeypatch):
    erasure = tmp_path / "erasure_requests.csv"
    erasure.write_text("request_id,identifier_type,identifier_hash,requested_at\n")
    monkeypatch.setenv(ENV_SUPPRESSION_FILE, str(erasure))
    load_inputs(tmp_path / "warehouse.duckdb", RECORDS)
    return materialize_profiles(tmp_path)


def columns(tmp_path, table: str) -> list[str]:
    schema, name = table.split(".")
    return [c for (c,) in query(tmp_path, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                          "AND table_name = ? ORDER BY ordinal_position", [schema, name])]


def test_every_asset_materializes_and_every_check_passes(run):
    assert run.success
    keys = {tuple(m.asset_key.path) for m in run.get_asset_materialization_events() for m in [m.materialization]}
    assert keys == {("profiles", t) for t in ("suppressed_customers", "erasure_audit", "active_xref", "golden_profile",
                                             "customer_identifiers", "consent", "consent_signals")}
    evaluations = [e.event_specific_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(evaluations) == 8 and all(e.passed for e in evaluations)


def test_table_schemas(run, tmp_path):
    assert columns(tmp_path, "profiles.customer_identifiers") == [
        "customer_id", "identifier_type", "identifier_value", "first_seen", "last_seen", "records", "sources"]
    assert columns(tmp_path, "profiles.consent") == [
        "customer_id", "channel", "status", "decided_at", "source", "source_record_id"]
    assert columns(tmp_path, "profiles.suppressed_customers") == [
        "customer_id", "request_id", "matched_identifier_type", "suppressed_at"]
    assert columns(tmp_path, "profiles.erasure_audit") == [
        "request_id", "identifier_type", "customers_suppressed", "records_suppressed", "first_applied_at", "last_applied_at"]
    golden = columns(tmp_path, "profiles.golden_profile")
    assert golden[:5] == ["customer_id", "records", "sources", "first_seen", "last_seen"]
    assert golden[5:10] == ["first_name", "first_name_display", "first_name_source", "first_name_record_id",
                            "first_name_observed_at"]


def test_identifiers_cover_every_known_identifier(run, tmp_path):
    rows = set(query(tmp_path, "SELECT customer_id, identifier_type, identifier_value, records FROM profiles.customer_identifiers"))
    assert rows == {
        ("C1", "email", "anna@fastmail.org", 2), ("C1", "phone", "+447700900111", 1), ("C1", "account_id", "A1", 1),
        ("C1", "cookie_id", "CK1", 1), ("C1", "web_user_id", "U1", 1), ("C2", "email", "bo@fastmail.org", 1),
        ("C2", "loyalty_card", "LC2", 1), ("C2", "order_number", "O1", 1), ("C2", "account_id", "A9", 1),
    }


def test_metadata_has_fill_rates_winning_sources_and_masked_previews(run):
    golden = run.asset_materializations_for_node("profiles__golden_profile")[0].metadata
    assert golden["dagster/row_count"].value == 2
    assert golden["fill_rates"].value["email"] == 1.0
    assert golden["winning_source_shares"].value["email"] == {"crm_accounts": 0.5, "pos_transactions": 0.5}
    assert "anna@" not in golden["preview"].value
    identifiers = run.asset_materializations_for_node("profiles__customer_identifiers")[0].metadata
    assert "anna@" not in identifiers["preview"].value and "900111" not in identifiers["preview"].value
    consent = next(m for m in run.get_asset_materialization_events()
                   if m.materialization.asset_key == dg.AssetKey(["profiles", "consent"])).materialization.metadata
    assert consent["status_by_channel"].value == {"email": {"opt_out": 1, "unknown": 1}, "sms": {"opt_out": 1, "unknown": 1}}


def test_assets_are_grouped_and_owned():
    for definition in profile_definitions():
        if isinstance(definition, dg.AssetsDefinition):
            for spec in definition.specs:
                assert spec.group_name == "profiles" and spec.owners and "duckdb" in spec.kinds


def test_golden_profile_coverage_gaps_count_both_directions():
    import duckdb

    from cdp_pipelines.profiles.checks import coverage_gaps

    con = duckdb.connect()
    con.execute("CREATE SCHEMA profiles")
    con.execute("CREATE TABLE profiles.active_xref AS SELECT * FROM (VALUES ('C1', 'crm', '1'), ('C1', 'web', '2'), "
                "('C2', 'crm', '3'), ('C3', 'crm', '4')) t(customer_id, source, source_record_id)")
    con.execute("CREATE TABLE profiles.golden_profile AS SELECT * FROM (VALUES ('C1'), ('C2'), ('C3')) t(customer_id)")
    assert coverage_gaps(con) == (0, 0)
    con.execute("DELETE FROM profiles.golden_profile WHERE customer_id = 'C2'")
    con.execute("INSERT INTO profiles.golden_profile VALUES ('C9'), (NULL)")
    assert coverage_gaps(con) == (1, 2)  # C2 lacks a profile; C9 and the NULL row are nobody's
    con.close()
