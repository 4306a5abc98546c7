"""Erasure: the list holds only hashes, and an erased customer stays out of every profile table."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp_pipelines.profiles.cli import app
from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.profiles.suppression import ENV_SUPPRESSION_FILE, add_erasure_request, normalise_identifier
from cdp_pipelines.settings import PROJECT_ROOT
from cdp_pipelines.standardize.emails import canonical_email
from test_profiles_support import load_inputs, materialize_profiles, query

HEADER = "request_id,identifier_type,identifier_hash,requested_at\n"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def people(extra: list[dict] | None = None) -> list[dict]:
    return [
        dict(source="crm_accounts", source_record_id="A1", customer_id="C1", observed_at="2023-01-01 00:00:00",
             first_name="jane", last_name="doe", src_first_name="Jane", src_last_name="Doe", email="jane.doe@fastmail.org", phone="+447700900123",
             loyalty_card="LC100", account_id="A1", src_email_consent="yes", src_sms_consent="yes",
             src_consent_updated_at="2023-01-01"),
        dict(source="pos_transactions", source_record_id="P1", customer_id="C1", observed_at="2023-02-01 00:00:00",
             email="jane.doe@fastmail.org", loyalty_card="LC100"),
        dict(source="crm_accounts", source_record_id="A2", customer_id="C2", observed_at="2023-01-01 00:00:00",
             first_name="john", last_name="roe", src_first_name="John", src_last_name="Roe", email="john@fastmail.org", account_id="A2",
             src_email_consent="no", src_sms_consent="", src_consent_updated_at="2023-01-01"),
        *(extra or []),
    ]


@pytest.fixture()
def erasure_list(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "suppression" / "erasure_requests.csv"
    path.parent.mkdir()
    path.write_text(HEADER)
    monkeypatch.setenv(ENV_SUPPRESSION_FILE, str(path))
    return path


def customers_in(tmp_path: Path, table: str) -> set[str]:
    return {c for (c,) in query(tmp_path, f"SELECT DISTINCT customer_id FROM {table}")}


def test_list_holds_hashes_of_normalised_identifiers_only(erasure_list):
    add_erasure_request("email", "  Jane.Doe@FastMail.ORG ", "REQ-1", path=erasure_list)
    add_erasure_request("phone", "07700 900123", "REQ-1", path=erasure_list)
    add_erasure_request("loyalty_card", " lc 100 ", "REQ-2", path=erasure_list)
    add_erasure_request("email", "jane.doe@fastmail.org", "REQ-1", path=erasure_list)  # same again: no new row
    text = erasure_list.read_text()
    lines = text.splitlines()
    assert lines[0] == HEADER.strip() and len(lines) == 4
    for raw in ("jane", "Jane", "fastmail", "7700", "900123", "LC100", "lc 100"):
        assert raw not in text
    hashes = [line.split(",")[2] for line in lines[1:]]
    assert hashes == [sha(canonical_email("Jane.Doe@FastMail.ORG")), sha("+447700900123"), sha("LC100")]


def test_invalid_identifiers_are_refused(erasure_list):
    with pytest.raises(ProfilesConfigError, match="not a valid email"):
        add_erasure_request("email", "not-an-email", "REQ-1", path=erasure_list)
    with pytest.raises(ProfilesConfigError, match="unknown identifier type"):
        normalise_identifier("passport", "X1")
    assert erasure_list.read_text() == HEADER


def test_cli_records_hashes(erasure_list):
    runner = CliRunner()
    result = runner.invoke(app, ["--email", "Jane.Doe@fastmail.org", "--card", "LC100", "--request-id", "REQ-9"])
    assert result.exit_code == 0, result.output
    assert "jane" not in erasure_list.read_text().lower()
    assert len(erasure_list.read_text().splitlines()) == 3
    assert runner.invoke(app, ["--request-id", "REQ-9"]).exit_code == 2
    assert runner.invoke(app, ["--email", "nope", "--request-id", "REQ-9"]).exit_code == 2


def test_erased_customer_disappears_and_stays_out(tmp_path, erasure_list):
    load_inputs(tmp_path / "warehouse.duckdb", people())
    assert materialize_profiles(tmp_path).success
    assert customers_in(tmp_path, "profiles.golden_profile") == {"C1", "C2"}

    add_erasure_request("email", "Jane.Doe@fastmail.org", "REQ-1", path=erasure_list)
    result = materialize_profiles(tmp_path)
    assert result.success
    for table in ("profiles.golden_profile", "profiles.customer_identifiers", "profiles.consent", "profiles.active_xref"):
        assert customers_in(tmp_path, table) == {"C2"}, table
    assert query(tmp_path, "SELECT customer_id, request_id, matched_identifier_type FROM profiles.suppressed_customers") == [
        ("C1", "REQ-1", "email")]
    (first_audit,) = query(tmp_path, "SELECT * FROM profiles.erasure_audit")
    assert first_audit[:4] == ("REQ-1", "email", 1, 2)

    # A later run: a new web sign-up with the same address, resolved to a brand-new customer id.
    new_record = dict(source="web_events", source_record_id="W9", customer_id="C9", observed_at="2024-05-01 00:00:00",
                      email="jane.doe@fastmail.org", cookie_id="CK9", src_consent_email="yes", src_event_type="form_submit")
    load_inputs(tmp_path / "warehouse.duckdb", people([new_record]))
    assert materialize_profiles(tmp_path).success
    for table in ("profiles.golden_profile", "profiles.customer_identifiers", "profiles.consent"):
        assert customers_in(tmp_path, table) == {"C2"}, table
    assert customers_in(tmp_path, "profiles.suppressed_customers") == {"C1", "C9"}
    (audit,) = query(tmp_path, "SELECT * FROM profiles.erasure_audit")
    assert audit[:4] == ("REQ-1", "email", 2, 3)
    assert audit[4] == first_audit[4] and audit[5] > first_audit[5]
    suppressed_at = dict(query(tmp_path, "SELECT customer_id, suppressed_at FROM profiles.suppressed_customers"))
    assert suppressed_at["C1"] < suppressed_at["C9"]  # kept from the run that first suppressed C1


def test_audit_and_suppression_tables_hold_no_personal_data(tmp_path, erasure_list):
    add_erasure_request("email", "jane.doe@fastmail.org", "REQ-1", path=erasure_list)
    load_inputs(tmp_path / "warehouse.duckdb", people())
    assert materialize_profiles(tmp_path).success
    for table in ("profiles.erasure_audit", "profiles.suppressed_customers"):
        text = str(query(tmp_path, f"SELECT * FROM {table}"))
        assert "jane" not in text and "fastmail.org" not in text


def test_missing_or_raw_lists_fail_the_run_readably(tmp_path, erasure_list):
    load_inputs(tmp_path / "warehouse.duckdb", people())
    erasure_list.write_text(HEADER + "REQ-1,email,jane.doe@fastmail.org,2024-01-01T00:00:00Z\n")
    result = materialize_profiles(tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "never the identifier itself" in str(failure.event_specific_data.error)
    erasure_list.unlink()
    result = materialize_profiles(tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "not found" in str(failure.event_specific_data.error)


def _refused_by_erase(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert len(lines) == 1 and message in lines[0], result.output


def test_erase_refuses_a_list_the_pipeline_would_refuse(tmp_path):
    garbage = tmp_path / "s.csv"
    garbage.write_bytes(b"garbage\x00,,\n")
    _refused_by_erase(["--email", "jane@fastmail.org", "--request-id", "R9", "--suppression-file", str(garbage)],
                      "header must be request_id,identifier_type,identifier_hash,requested_at")
    assert garbage.read_bytes() == b"garbage\x00,,\n"
    raw = tmp_path / "raw.csv"
    raw.write_text(HEADER + "REQ-1,email,jane@fastmail.org,\n")
    _refused_by_erase(["--email", "john@fastmail.org", "--request-id", "R9", "--suppression-file", str(raw)],
                      "never the identifier itself")


def test_erase_refuses_list_paths_it_cannot_write(tmp_path):
    _refused_by_erase(["--email", "jane@fastmail.org", "--request-id", "R", "--suppression-file", str(tmp_path)],
                      "is a folder; give a CSV file")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _refused_by_erase(["--email", "jane@fastmail.org", "--request-id", "R",
                       "--suppression-file", str(a_file / "list.csv")], "cannot write erasure list")


def test_erase_tells_a_placeholder_from_an_invalid_identifier(erasure_list):
    _refused_by_erase(["--email", "ann@example.com", "--request-id", "R"],
                      "the email given is a placeholder or junk email address")
    _refused_by_erase(["--email", "ann@", "--request-id", "R"], "the email given is not a valid email address")
    _refused_by_erase(["--phone", "07919 021122", "--region", "XX", "--request-id", "R"], "unknown region 'XX'")
    assert erasure_list.read_text() == HEADER


def test_every_documented_erase_example_records_a_request(tmp_path):
    documented = [line for doc in (PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")))
                  for line in doc.read_text().splitlines() if line.strip().startswith("cdp erase ")]
    assert documented
    for line in documented:
        args = shlex.split(line.split("#", 1)[0])[2:]
        result = CliRunner().invoke(app, [*args, "--suppression-file", str(tmp_path / "list.csv")])
        assert result.exit_code == 0, (line, result.output)
