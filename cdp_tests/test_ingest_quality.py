"""Quality gates: suites from config/quality.yaml applied with Great Expectations 1.x.

GX is slow to import, so each scenario validates once (module-scoped fixtures) and several tests
read the same report.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from cdp_pipelines.ingest.quality import QualityReport, validate_frame
from cdp_pipelines.privacy import mask_value
from cdp_pipelines.ingest.quality_suites import QualityConfigError, get_suite, load_suites
from cdp_pipelines.settings import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "config" / "quality.yaml"
RAW_COLUMNS = {"email": "Email Address", "date_of_birth": ["DOB"], "full_name": ["first", "last"]}


def raw_profile_frame(rows: int = 200) -> pd.DataFrame:
    """A raw table as ingest writes it: every original column as text, plus lineage columns."""
    return pd.DataFrame(
        {
            "_record_id": [f"crm-{i}" for i in range(rows)],
            "_file": "crm_accounts.csv",
            "_row_number": [str(i + 2) for i in range(rows)],
            "account_id": [f"A{i:05d}" for i in range(rows)],
            "Email Address": [f"person{i}@example.com" if i % 5 else "" for i in range(rows)],
            "DOB": [f"19{50 + i % 50}-0{1 + i % 9}-15" for i in range(rows)],
            "updated_at": [f"2024-03-{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(rows)],
        }
    )


def validate_profile(df: pd.DataFrame, **overrides) -> QualityReport:
    arguments = dict(
        suite_name="profile",
        source_name="crm_accounts",
        record_id_column="account_id",
        timestamp_column="updated_at",
        required_columns=["account_id", "Email Address"],
        config_path=CONFIG,
        column_map=RAW_COLUMNS,
    )
    return validate_frame(df, **{**arguments, **overrides})


@pytest.fixture(scope="module")
def clean_report() -> QualityReport:
    return validate_profile(raw_profile_frame())


@pytest.fixture(scope="module")
def duplicate_report() -> QualityReport:
    df = raw_profile_frame()
    df.loc[10:19, "account_id"] = "A00001"
    return validate_profile(df)


@pytest.fixture(scope="module")
def warning_report() -> QualityReport:
    df = raw_profile_frame()
    df.loc[0:59, "Email Address"] = [f"Person {i} at example.com" for i in range(60)]
    return validate_profile(df)


def test_clean_frame_passes(clean_report):
    assert clean_report.passed_blocking and clean_report.success
    assert clean_report.failures == []
    stats = clean_report.statistics
    assert stats["unsuccessful_expectations"] == 0
    assert stats["evaluated_expectations"] == stats["successful_expectations"] >= 6
    assert stats["success_percent"] == 100.0
    assert "crm_accounts" in clean_report.message and "passed" in clean_report.message


def test_duplicate_ids_fail_blocking_and_name_the_column(duplicate_report):
    assert not duplicate_report.passed_blocking
    [failure] = duplicate_report.blocking_failures
    assert failure["expectation"] == "expect_column_values_to_be_unique"
    assert failure["column"] == "account_id"
    assert failure["unexpected_count"] == 11  # ten copies and the original
    assert failure["sample"] == ["A00001"]
    assert duplicate_report.message.startswith(
        "crm_accounts: column 'account_id' has 11 duplicate values (5.5%)"
    )


def test_missing_required_column_is_reported_without_gx_error():
    df = raw_profile_frame().drop(columns=["Email Address"])
    report = validate_profile(df, required_columns=["account_id", "Email Address", "segment"])
    assert not report.passed_blocking
    [failure] = report.blocking_failures
    assert failure["expectation"] == "expect_table_columns_to_include"
    assert failure["observed_value"]["missing"] == ["Email Address", "segment"]
    assert "account_id" in failure["observed_value"]["found"]
    assert "missing required columns 'Email Address', 'segment'" in report.message
    assert "found: _record_id" in report.message
    skipped = report.skipped[0]
    assert skipped["column"] == "Email Address" and skipped["reason"] == "column not in table"


def test_empty_frame_is_a_blocking_no_rows_failure():
    report = validate_profile(raw_profile_frame().iloc[0:0])
    assert not report.passed_blocking and report.row_count == 0
    assert [f["problem"] for f in report.failures] == ["table has no rows"]
    assert "no rows" in report.message
    assert report.statistics["unsuccessful_expectations"] == 1


def test_mostly_unparseable_timestamps_fail_the_event_suite():
    rows = 100
    df = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(rows)],
            "event_time": [
                "2024-05-01T12:00:00Z" if i % 4 == 0 else f"yesterday-{i}" for i in range(rows)
            ],
        }
    )
    report = validate_frame(
        df,
        suite_name="event",
        source_name="web_events",
        record_id_column="event_id",
        timestamp_column="event_time",
        required_columns=[],
        config_path=CONFIG,
    )
    assert not report.passed_blocking
    [failure] = report.blocking_failures
    assert failure["expectation"] == "expect_column_values_to_be_dateutil_parseable"
    assert failure["unexpected_count"] == 75
    assert failure["sample"][0] == "yesterday-1"
    expected = "column 'event_time' has 75 values that do not parse as timestamps (75%"
    assert expected in report.message
    assert "at most 5% allowed" in report.message
    assert {s["column"] for s in report.skipped} == {"email"}  # optional column absent here


def test_warning_failure_leaves_blocking_gate_passed(warning_report):
    assert warning_report.passed_blocking and not warning_report.success
    [failure] = warning_report.warning_failures
    assert failure["column"] == "Email Address" and failure["severity"] == "warning"
    assert failure["unexpected_count"] == 60
    assert len(failure["sample"]) == 5
    assert "1 warning: column 'Email Address' has 60 values that are not email addresses" in (
        warning_report.message
    )


def test_metadata_is_json_and_masks_samples(duplicate_report, warning_report):
    metadata = duplicate_report.to_metadata()
    assert json.loads(json.dumps(metadata)) == metadata
    assert metadata["passed_blocking"] is False and metadata["blocking_failures"] == 1
    assert metadata["failures"][0]["sample"] == ["***"]
    masked = warning_report.to_metadata()["failures"][0]["sample"]
    assert all(value == "***" for value in masked)  # no '@', so nothing is kept
    raw = warning_report.to_metadata(mask=False)["failures"][0]["sample"]
    assert raw[0] == "Person 0 at example.com"


def test_mask_value_keeps_only_what_identifies_the_problem():
    assert mask_value("jane.doe@Example.com") == "j***@Example.com"
    assert mask_value("+44 7946 000123") == "***23"
    assert mask_value(447946000123, column="phone") == "***23"
    assert mask_value("Jane") == "***"
    assert mask_value(None) is None


def test_standardized_suite_checks_canonical_forms():
    rows = 50
    df = pd.DataFrame(
        {
            "source": "crm_accounts",
            "source_record_id": [f"r{i}" for i in range(rows)],
            "email": [f"p{i}@example.com" for i in range(rows)],
            "phone": ["+447946000123"] * rows,
            "phone_kind": ["mobile"] * rows,
            "country": ["GB"] * rows,
            "postcode": [None] * 40 + ["SW1A 1AA"] * 10,
            "date_of_birth": [dt.date(1980, 1, 1)] * (rows - 1) + [dt.date(1850, 1, 1)],
            "observed_at": pd.Timestamp("2024-01-01"),
        }
    )
    df.loc[3, "phone"] = "07946 000123"
    df.loc[4, "email"] = "Upper@Example.com"
    report = validate_frame(
        df,
        suite_name="standardized_profile",
        source_name="crm_accounts",
        record_id_column="source_record_id",
        timestamp_column="observed_at",
        required_columns=[],
        config_path=CONFIG,
    )
    blocking = {f["column"] for f in report.blocking_failures}
    warning = {f["column"] for f in report.warning_failures}
    assert blocking == {"phone", "email"}
    assert warning == {"postcode", "date_of_birth"}
    assert "column 'phone' has 1 phone numbers not in E.164 form (2%)" in report.message
    email = next(f for f in report.failures if f["column"] == "email")
    masked = report.to_metadata()["failures"][report.failures.index(email)]
    assert masked["sample"] == ["U***@Example.com"]


def test_suites_come_from_yaml_with_severities_and_inheritance():
    suites = load_suites(CONFIG)
    assert {"profile", "event", "standardized", "standardized_profile"} <= set(suites)
    child, parent = suites["standardized_profile"], suites["standardized"]
    assert child.rules[: len(parent.rules)] == parent.rules
    severities = {rule.severity for suite in suites.values() for rule in suite.rules}
    assert severities == {"blocking", "warning"}
    with pytest.raises(QualityConfigError, match="unknown quality suite 'nope'"):
        get_suite("nope", CONFIG)


def test_malformed_yaml_is_rejected_with_its_location(tmp_path: Path):
    path = tmp_path / "quality.yaml"
    path.write_text(
        "suites:\n  profile:\n    expectations:\n"
        "      - expectation: expect_column_values_to_be_unique\n        column: id\n"
        "        severity: fatal\n"
    )
    with pytest.raises(QualityConfigError, match="suite 'profile', expectation #1: severity"):
        load_suites(path)


def test_expectation_that_cannot_run_is_a_clean_failure(tmp_path: Path):
    path = tmp_path / "quality.yaml"
    path.write_text(
        "suites:\n  mixed:\n    expectations:\n"
        "      - expectation: expect_column_values_to_be_between\n        column: score\n"
        "        min_value: 1\n        severity: blocking\n"
    )
    df = pd.DataFrame({"id": ["1", "2"], "score": ["high", 3]})
    report = validate_frame(
        df, suite_name="mixed", source_name="survey", record_id_column="id",
        timestamp_column=None, required_columns=[], config_path=path,
    )
    [failure] = report.blocking_failures
    assert "could not be evaluated" in failure["problem"] and "Traceback" not in failure["error"]
    assert report.message.startswith("survey: column 'score': expect_column_values_to_be_between")


def test_validations_on_threads_report_what_they_report_one_at_a_time():
    """Steps run on threads (the threaded executor), so two validations may run at once: each
    must still report on its own table only."""
    import threading

    clean, duplicated = raw_profile_frame(), raw_profile_frame()
    duplicated.loc[10:19, "account_id"] = "A00001"
    expected = {"clean": validate_profile(clean).failures, "duplicated": validate_profile(duplicated).failures}
    assert expected["clean"] != expected["duplicated"]
    seen, errors = [], []

    def validate(name, frame):
        try:
            for _ in range(3):
                seen.append((name, validate_profile(frame).failures))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(error))

    threads = [threading.Thread(target=validate, args=("clean", clean)),
               threading.Thread(target=validate, args=("duplicated", duplicated))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen) == 6 and all(failures == expected[name] for name, failures in seen)


def test_great_expectations_is_imported_once_in_the_background():
    """In a fresh interpreter: starting the import twice makes one background thread, the
    caller is not held up by it, and a validation right after still reports correctly."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, threading, time
        import pandas as pd
        from cdp_pipelines.ingest import quality
        assert "great_expectations" not in sys.modules
        started = time.perf_counter()
        quality.start_importing_great_expectations()
        quality.start_importing_great_expectations()
        returned_after = time.perf_counter() - started
        importers = [t for t in threading.enumerate() if t.name == "great-expectations-import"]
        frame = pd.DataFrame({"account_id": ["A1", "A1"], "updated_at": ["2024-01-01", "2024-01-02"]})
        report = quality.validate_frame(frame, suite_name="profile", source_name="s", record_id_column="account_id",
                                        timestamp_column="updated_at", required_columns=["account_id"],
                                        config_path=sys.argv[1])
        print(len(importers), returned_after < 0.5, "great_expectations" in sys.modules, report.passed_blocking)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(CONFIG)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "True", "False"]  # duplicate ids fail the blocking gate


def test_validation_waits_for_a_background_import_still_running():
    """GX must never be imported by two threads at once: a validation started while the
    background import runs waits for it to end (a one-second stand-in for the import here)."""
    import threading
    import time

    from cdp_pipelines.ingest import quality

    pending = threading.Thread(target=time.sleep, args=(1.0,), name="great-expectations-import")
    quality._gx_import = pending
    try:
        pending.start()
        started = time.perf_counter()
        report = validate_profile(raw_profile_frame(20))
        waited = time.perf_counter() - started
    finally:
        quality._gx_import = None
    assert not pending.is_alive()
    assert waited >= 0.9
    assert report.passed_blocking


def test_great_expectations_gets_only_the_columns_its_expectations_read():
    from cdp_pipelines.ingest.quality import _columns_read_by, _Planned

    frame = pd.DataFrame({"email": ["a@b.co"], "phone": ["+447700900123"], "notes": ["x"], "_record_id": ["1"]})
    row_count = _Planned(None, "expect_table_row_count_to_be_between", None, {"min_value": 1})
    email = _Planned(None, "expect_column_values_to_not_be_null", "email", {})
    phone = _Planned(None, "expect_column_values_to_match_regex", "phone", {"regex": r"^\+"})
    assert list(_columns_read_by([row_count, email, phone, email], frame).columns) == ["email", "phone"]
    # Expectations that may read other columns get the whole frame.
    conditional = _Planned(None, "expect_column_values_to_not_be_null", "email",
                           {"row_condition": 'notes=="x"', "condition_parser": "pandas"})
    pair = _Planned(None, "expect_column_pair_values_to_be_equal", None, {"column_A": "email", "column_B": "notes"})
    for plans in ([email, conditional], [pair, email]):
        assert list(_columns_read_by(plans, frame).columns) == list(frame.columns)


def test_a_check_fetches_only_the_columns_its_suite_reads_and_reports_the_same(tmp_path: Path):
    """columns_read names what a check must fetch; validating those with the table's column
    names (columns_present) reports what validating the whole table reports, missing columns
    included."""
    from cdp_pipelines.ingest.quality import columns_read

    path = tmp_path / "quality.yaml"
    path.write_text(
        "suites:\n  narrow:\n    required_columns: ['{email}', 'phone_number']\n    expectations:\n"
        "      - expectation: expect_column_values_to_not_be_null\n        column: '{email}'\n"
        "        severity: blocking\n"
        "      - expectation: expect_table_row_count_to_be_between\n        min_value: 1\n"
        "        severity: blocking\n"
    )
    df = pd.DataFrame({"id": ["1", "2", "2"], "Email": ["a@b.co", None, "c@d.co"], "notes": ["x", "y", "z"],
                       "city": ["Leeds", "York", "Hull"]})
    kwargs = dict(suite_name="narrow", record_id_column="id", timestamp_column=None, config_path=path,
                  column_map={"email": "Email"})
    read = columns_read(list(df.columns), **kwargs)
    assert read == ["Email"]
    whole = validate_frame(df, source_name="shop", required_columns=["id"], **kwargs)
    narrow = validate_frame(df[read], source_name="shop", required_columns=["id"], columns_present=list(df.columns),
                            **kwargs)
    assert [f["problem"] for f in whole.failures] == [f["problem"] for f in narrow.failures]
    assert len(whole.failures) == 2  # phone_number missing, Email null
    assert whole.to_metadata(mask=False) | {"duration_seconds": 0} == narrow.to_metadata(mask=False) | {"duration_seconds": 0}
    # A row_condition may read any column: the check fetches them all.
    path.write_text(path.read_text() + "        row_condition: 'city==\"Leeds\"'\n        condition_parser: pandas\n")
    assert columns_read(list(df.columns), **kwargs) == list(df.columns)
