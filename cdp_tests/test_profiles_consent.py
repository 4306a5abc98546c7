"""Consent is resolved conservatively: latest explicit choice wins, implicit signals never opt in."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cdp_pipelines.profiles.consent import build_consent, load_consent_config, overridden_opt_outs
from test_profiles_support import CONFIG_DIR, load_inputs


def crm(record_id, customer, email_consent="", sms_consent="", updated="", observed="2023-01-01 00:00:00"):
    return dict(source="crm_accounts", source_record_id=record_id, customer_id=customer, observed_at=observed,
                src_email_consent=email_consent, src_sms_consent=sms_consent, src_consent_updated_at=updated)


def web(record_id, customer, consent, observed, event_type="form_submit"):
    return dict(source="web_events", source_record_id=record_id, customer_id=customer, observed_at=observed,
                src_consent_email=consent, src_event_type=event_type)


def pos(record_id, customer, observed="2024-06-01 00:00:00"):
    return dict(source="pos_transactions", source_record_id=record_id, customer_id=customer, observed_at=observed,
                email=f"{customer.lower()}@example.com", src_receipt_email=f"{customer.lower()}@example.com")


def resolve(tmp_path: Path, records: list[dict], summary: dict | None = None) -> dict[tuple[str, str], tuple]:
    path = tmp_path / "warehouse.duckdb"
    load_inputs(path, records)
    con = duckdb.connect(str(path))
    try:
        outcome = build_consent(con, load_consent_config(CONFIG_DIR / "consent.yaml"), "identity.customer_xref",
                                fixed_columns={"crm_accounts"})
        if summary is not None:
            summary.update(outcome)
        assert overridden_opt_outs(con) == 0
        rows = con.execute("SELECT customer_id, channel, status, decided_at, source, source_record_id "
                           "FROM profiles.consent").fetchall()
    finally:
        con.close()
    return {(c, ch): (status, str(decided) if decided else None, source, record) for c, ch, status, decided, source, record in rows}


def test_recent_opt_out_beats_older_opt_in(tmp_path):
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="yes", updated="2023-01-01T10:00:00Z"),
        web("W1", "C1", "no", "2024-02-01 09:00:00"),
    ])
    assert consent[("C1", "email")] == ("opt_out", "2024-02-01 09:00:00", "web_events", "W1")


def test_recent_explicit_opt_in_beats_older_opt_out(tmp_path):
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="no", updated="2022-05-01 08:00:00"),
        web("W1", "C1", "yes", "2024-02-01 09:00:00"),
    ])
    assert consent[("C1", "email")] == ("opt_in", "2024-02-01 09:00:00", "web_events", "W1")


def test_older_opt_in_never_overrides_opt_out(tmp_path):
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="no", updated="2024-03-01 00:00:00"),
        web("W1", "C1", "yes", "2023-02-01 09:00:00"),
    ])
    assert consent[("C1", "email")][:1] == ("opt_out",)


def test_implicit_signals_never_opt_in(tmp_path):
    consent = resolve(tmp_path, [
        pos("P1", "C1"),                                                   # e-receipt email at the till
        web("W1", "C1", "yes", "2024-02-01 09:00:00", event_type="page_view"),  # not a form submission
        crm("A2", "C2", email_consent="", sms_consent="maybe"),           # no explicit choice
    ])
    for key in [("C1", "email"), ("C1", "sms"), ("C2", "email"), ("C2", "sms")]:
        assert consent[key] == ("unknown", None, None, None)


def test_every_customer_gets_a_row_per_channel(tmp_path):
    consent = resolve(tmp_path, [crm("A1", "C1", sms_consent="yes", updated="2023-01-01"), pos("P1", "C2")])
    assert set(consent) == {("C1", "email"), ("C1", "sms"), ("C2", "email"), ("C2", "sms")}
    assert consent[("C1", "sms")][:3] == ("opt_in", "2023-01-01 00:00:00", "crm_accounts")
    assert consent[("C1", "email")][0] == "unknown"


def test_opt_out_wins_a_tie(tmp_path):
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="yes", updated="2024-01-01 12:00:00"),
        web("W1", "C1", "no", "2024-01-01 12:00:00"),
    ])
    assert consent[("C1", "email")][0] == "opt_out"


def test_undated_choices(tmp_path):
    # Unparseable consent time and no record time: an opt-in cannot be shown to be the latest
    # choice and is ignored (and counted as ignored); an opt-out counts as the latest.
    summary: dict = {}
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="yes", updated="sometime", observed=None),
        crm("A2", "C2", email_consent="no", updated="", observed=None),
        web("W2", "C2", "yes", "2024-02-01 09:00:00"),
    ], summary)
    assert consent[("C1", "email")][0] == "unknown"
    assert consent[("C2", "email")][0] == "opt_out"
    assert summary["undated_opt_ins_ignored"] == 1


def test_consent_time_falls_back_to_the_record_time_and_reads_configured_formats(tmp_path):
    consent = resolve(tmp_path, [
        crm("A1", "C1", email_consent="YES ", updated="", observed="2023-04-05 06:07:08"),
        crm("A2", "C2", sms_consent="No", updated="05/04/2023 06:07"),
    ])
    assert consent[("C1", "email")][:2] == ("opt_in", "2023-04-05 06:07:08")
    assert consent[("C2", "sms")][:2] == ("opt_out", "2023-04-05 06:07:00")


def test_unknown_channel_in_config_is_reported(tmp_path):
    path = tmp_path / "consent.yaml"
    path.write_text("channels: [email]\nvalues: {opt_in: ['yes'], opt_out: ['no']}\n"
                    "signals: [{source: crm_accounts, channel: sms, column: src_sms_consent}]\n")
    from cdp_pipelines.profiles.config_files import ProfilesConfigError

    with pytest.raises(ProfilesConfigError, match=r"channel\(s\) \['sms'\] not listed"):
        load_consent_config(path)
    path.write_text("channels: [email]\nvalues: {opt_in: [yes], opt_out: [no]}\nsignals: []\n")
    with pytest.raises(ProfilesConfigError, match="write every value in quotes"):
        load_consent_config(path)


def test_signal_columns_absent_from_a_source_resolve_to_unknown(tmp_path):
    # web_events here never carried consent_email: the signal is skipped, nobody is opted in.
    consent = resolve(tmp_path, [crm("A1", "C1"), dict(source="web_events", source_record_id="W1",
                                                       customer_id="C1", observed_at="2024-01-01 00:00:00")])
    assert consent[("C1", "email")][0] == "unknown"


def test_a_signal_column_missing_from_a_csv_source_is_refused_naming_it(tmp_path):
    # A typo in consent.yaml must not turn every customer's sms consent into `unknown`.
    from cdp_pipelines.profiles.config_files import ProfilesConfigError

    path = tmp_path / "consent.yaml"
    path.write_text((CONFIG_DIR / "consent.yaml").read_text().replace("column: src_sms_consent", "column: src_sms_consnt"))
    load_inputs(tmp_path / "warehouse.duckdb", [crm("A1", "C1", sms_consent="yes", updated="2023-01-01")])
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        with pytest.raises(ProfilesConfigError, match=(
                r"consent.yaml: signals.1 \(crm_accounts, sms\): column\(s\) 'src_sms_consnt' \(did you mean "
                r"'src_sms_consent'\?\) not in standardized.crm_accounts; its original columns: ")):
            build_consent(con, load_consent_config(path), "identity.customer_xref", fixed_columns={"crm_accounts"})
    finally:
        con.close()


def test_only_declared_sources_other_than_json_lines_have_fixed_columns():
    from cdp_pipelines.profiles.assets import sources_with_fixed_columns
    from cdp_pipelines.settings import PROJECT_ROOT

    fixed = sources_with_fixed_columns(PROJECT_ROOT / "data" / "sources.yaml")
    assert {"crm_accounts", "pos_transactions", "reviews"} <= fixed
    assert not fixed & {"web_events", "social_posts"}
