"""Consent by construction: whatever the rule says, members and exports only ever contain
customers holding the opt-in the channel needs in profiles.consent."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import duckdb
import pytest

from cdp_pipelines.segments.build import build_segment, members_without_consent
from cdp_pipelines.segments.config import load_segments
from cdp_pipelines.segments.export import export_all, export_segment

try:
    from cdp_tests.test_segments_fixtures import (
        CONSENTED_EMAIL, CONSENTED_SMS, OPTED_OUT_EMAIL, build_warehouse, write_segments)
except ImportError:
    from test_segments_fixtures import (
        CONSENTED_EMAIL, CONSENTED_SMS, OPTED_OUT_EMAIL, build_warehouse, write_segments)


@pytest.fixture()
def warehouse(tmp_path: Path):
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    yield con
    con.close()


@pytest.fixture()
def config(tmp_path: Path):
    return load_segments(write_segments(tmp_path))


def members(con, segment: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT customer_id FROM segments.membership WHERE segment = ?", [segment]).fetchall()}


@pytest.mark.parametrize("rule", [
    "TRUE",
    "email_consent = 'opt_out'",
    "customer_id IN ('C2', 'C3', 'C5', 'C6')",
    "customer_id IN (SELECT customer_id FROM profiles.consent WHERE status = 'opt_out')",
    "TRUE OR customer_id IN (SELECT customer_id FROM profiles.consent)",
])
def test_no_rule_can_reach_customers_without_email_opt_in(warehouse, tmp_path, rule):
    config = load_segments(write_segments(tmp_path, f"""
        segments:
          - {{name: probe, description: d, owner: team:x, channel: email, rule: "{rule}"}}
          - {{name: probe_ads, description: d, owner: team:x, channel: ads, rule: "{rule}"}}
    """))
    for segment in config.segments:
        build_segment(warehouse, segment, config)
        assert members(warehouse, segment.name) <= CONSENTED_EMAIL
        assert members(warehouse, segment.name).isdisjoint(OPTED_OUT_EMAIL)
        assert members_without_consent(warehouse, segment.name, ("email",)) == 0
    results = export_all(warehouse, tmp_path / "exports", config, day=date(2026, 11, 1))
    email_rows = list(csv.DictReader(results[0].path.open()))
    assert {row["customer_id"] for row in email_rows} <= CONSENTED_EMAIL


def test_consent_table_wins_over_the_customer_360_column(warehouse, config):
    result = build_segment(warehouse, config.get("everyone_email"), config)
    # C2 and C5 say opt_in in customer_360.email_consent but not in profiles.consent.
    assert members(warehouse, "everyone_email") == CONSENTED_EMAIL
    assert (result.matched, result.members, result.excluded_by_consent) == (6, 2, 4)


def test_each_channel_needs_its_own_opt_in(warehouse, config):
    build_segment(warehouse, config.get("everyone_sms"), config)
    assert members(warehouse, "everyone_sms") == CONSENTED_SMS
    build_segment(warehouse, config.get("opted_out_email"), config)
    assert members(warehouse, "opted_out_email") == set()


def test_ads_and_direct_mail_consent_is_configurable(warehouse, tmp_path):
    config = load_segments(write_segments(tmp_path, """
        consent: {ads: [email, sms]}
        segments:
          - {name: strict_ads, description: d, owner: team:x, channel: ads, rule: "TRUE"}
          - {name: mail, description: d, owner: team:x, channel: direct_mail, rule: "TRUE"}
    """))
    build_segment(warehouse, config.get("strict_ads"), config)
    assert members(warehouse, "strict_ads") == CONSENTED_EMAIL & CONSENTED_SMS
    build_segment(warehouse, config.get("mail"), config)
    assert members(warehouse, "mail") == CONSENTED_EMAIL


def test_rebuild_reports_added_and_removed_and_keeps_added_at(warehouse, config):
    segment = config.get("everyone_email")
    first = build_segment(warehouse, segment, config, run_id="r1")
    assert (first.added, first.removed) == (2, 0)
    added_at = warehouse.execute(
        "SELECT added_at FROM segments.membership WHERE segment = 'everyone_email' AND customer_id = 'C1'").fetchone()
    # C4 opts out, C5 opts in.
    warehouse.execute("UPDATE profiles.consent SET status = 'opt_out' WHERE customer_id = 'C4' AND channel = 'email'")
    warehouse.execute("INSERT INTO profiles.consent VALUES ('C5', 'email', 'opt_in', now(), 'crm_accounts', 'A5')")
    second = build_segment(warehouse, segment, config, run_id="r2")
    assert (second.members, second.added, second.removed) == (2, 1, 1)
    assert members(warehouse, "everyone_email") == {"C1", "C5"}
    assert warehouse.execute(
        "SELECT added_at FROM segments.membership WHERE segment = 'everyone_email' AND customer_id = 'C1'"
    ).fetchone() == added_at
    changes = warehouse.execute(
        "SELECT customer_id, change FROM segments.membership_changes WHERE run_id = 'r2' ORDER BY 1").fetchall()
    assert changes == [("C4", "removed"), ("C5", "added")]


def test_export_rechecks_consent_given_after_the_build(warehouse, config, tmp_path):
    build_segment(warehouse, config.get("everyone_email"), config)
    warehouse.execute("UPDATE profiles.consent SET status = 'opt_out' WHERE customer_id = 'C4'")
    result = export_segment(warehouse, config.get("everyone_email"), config, tmp_path / "e.csv")
    assert [row["customer_id"] for row in csv.DictReader(result.path.open())] == ["C1"]


def test_consent_limited_to_some_customers_is_the_whole_answer_intersected(warehouse):
    """`among` narrows the aggregation, never the meaning: the same opt-ins, for those customers."""
    from cdp_pipelines.segments.build import consented_sql

    def answer(sql: str) -> set[str]:
        return {r[0] for r in warehouse.execute(sql).fetchall()}

    among = "SELECT customer_id FROM (VALUES ('C1'), ('C2'), ('C3'), ('C9')) t(customer_id)"
    for channels in [("email",), ("sms",), ("email", "sms")]:
        whole = answer(consented_sql(channels))
        limited = answer(consented_sql(channels, among=among))
        assert limited == whole & {"C1", "C2", "C3", "C9"}
    assert answer(consented_sql(("email",), among=among))  # the probe holds at least one opt-in
