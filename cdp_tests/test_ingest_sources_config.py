"""The sources file: the committed one loads, and every kind of mistake gets a readable message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdp_pipelines.ingest.errors import SourceContractError, SourcesConfigError
from cdp_pipelines.ingest.sources_config import (
    CANONICAL_ATTRIBUTES,
    SourceConfig,
    load_sources,
    resolve_source_files,
)
from cdp_pipelines.settings import PROJECT_ROOT

GOOD_ENTRY = """
  - name: crm_accounts
    description: accounts
    path: crm.csv
    format: csv
    record_id: account_id
    kind: profile
    mapping:
      email: email
"""


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> str:
    path = write_yaml(tmp_path, text)
    with pytest.raises(SourcesConfigError) as caught:
        load_sources(path)
    message = str(caught.value)
    assert str(path) in message
    assert "errors.pydantic.dev" not in message and "Traceback" not in message
    return message


def test_project_sources_file_declares_the_six_generator_sources():
    config = load_sources(PROJECT_ROOT / "data" / "sources.yaml")
    assert config.names() == [
        "crm_accounts", "crm_cases", "web_events", "pos_transactions", "reviews", "social_posts",
    ]
    accounts = config.get("crm_accounts")
    assert accounts.kind == "profile" and accounts.timestamp == "updated_at"
    assert accounts.mapping["address_line"] == ["address_line1", "address_line2"]
    assert accounts.mapping["account_id"] == "account_id"
    assert config.get("web_events").format == "jsonl"
    assert config.get("web_events").mapping["web_user_id"] == "user_id"
    assert config.get("pos_transactions").mapping["full_name"] == "customer_name"
    assert config.get("social_posts").mapping == {
        "social_handle": "handle", "full_name": "display_name", "city": "location",
    }
    for source in config.sources:
        assert source.default_region == "GB"
        assert source.max_duplicate_id_ratio == 0.01
        assert source.max_unparseable_timestamp_ratio == 0.2
        assert set(source.mapping) <= set(CANONICAL_ATTRIBUTES)


def test_default_required_columns_are_record_id_timestamp_and_mapped_columns():
    reviews = load_sources(PROJECT_ROOT / "data" / "sources.yaml").get("reviews")
    assert reviews.required_column_names() == [
        "review_id", "created_at", "display_name", "email", "order_number",
    ]


def test_explicit_required_columns_still_include_record_id():
    source = SourceConfig(name="s", path="s.csv", format="csv", record_id="id", kind="profile",
                          required_columns=["email"], mapping={"email": "email", "phone": "tel"})
    assert source.required_column_names() == ["id", "email"]


def test_unknown_canonical_attribute_lists_the_allowed_ones(tmp_path):
    message = config_error(tmp_path, """
        sources:
          - name: web
            path: web.jsonl
            format: jsonl
            record_id: id
            kind: event
            timestamp: ts
            mapping:
              emial: email
    """)
    assert "source 'web' (entry 1)" in message
    assert "field 'mapping'" in message
    assert "'emial'" in message
    assert ", ".join(CANONICAL_ATTRIBUTES) in message


def test_duplicate_source_names_are_rejected(tmp_path):
    message = config_error(tmp_path, "sources:" + GOOD_ENTRY + GOOD_ENTRY)
    assert "'crm_accounts' is used by entries 1 and 2" in message


def test_missing_and_misspelled_fields_name_the_entry_and_field(tmp_path):
    message = config_error(tmp_path, """
        sources:
          - name: first
            path: a.csv
            format: csv
            record_id: id
            kind: profile
          - name: second
            path: b.csv
            format: xml
            kind: profile
            timestamp_format: ["%d.%m.%Y"]
    """)
    assert "source 'second' (entry 2), field 'record_id': required but missing" in message
    assert "source 'second' (entry 2), field 'format'" in message and "'xml'" in message
    assert "field 'timestamp_format': unknown field" in message
    assert "'first'" not in message


def test_non_snake_case_name_and_event_without_timestamp(tmp_path):
    message = config_error(tmp_path, """
        sources:
          - name: Web-Events
            path: web.jsonl
            format: jsonl
            record_id: id
            kind: event
            timestamp: ts
          - name: web_events
            path: web.jsonl
            format: jsonl
            record_id: id
            kind: event
    """)
    assert "source 'Web-Events' (entry 1), field 'name'" in message and "snake_case" in message
    assert ("source 'web_events' (entry 2): an event source must name its 'timestamp' column"
            in message)


def test_only_address_line_may_map_to_several_columns(tmp_path):
    message = config_error(tmp_path, """
        sources:
          - name: crm
            path: crm.csv
            format: csv
            record_id: id
            kind: profile
            mapping:
              email: [email1, email2]
    """)
    assert "'email' must map to a column name" in message


def test_csv_options_are_checked(tmp_path):
    message = config_error(tmp_path, """
        sources:
          - name: crm
            path: crm.csv
            format: csv
            record_id: id
            kind: profile
            csv: {delimiter: ";;", encoding: klingon}
    """)
    assert "field 'csv.delimiter'" in message and "exactly one character" in message
    assert "field 'csv.encoding'" in message and "unknown text encoding" in message


def test_invalid_yaml_and_missing_file_and_wrong_shape(tmp_path):
    message = config_error(tmp_path, "sources:\n  - name: [unclosed\n")
    assert "not valid YAML" in message
    message = config_error(tmp_path, "- name: x\n")
    assert "top-level 'sources:'" in message
    with pytest.raises(SourcesConfigError, match="sources file not found"):
        load_sources(tmp_path / "nope.yaml")


def test_resolve_source_files_sorts_glob_matches(tmp_path):
    for name in ["b.csv", "a.csv", "c.txt"]:
        (tmp_path / name).write_text("id\n1\n")
    source = SourceConfig(name="s", path="*.csv", format="csv", record_id="id", kind="profile")
    assert resolve_source_files(source, tmp_path) == [tmp_path / "a.csv", tmp_path / "b.csv"]


def test_resolve_source_files_names_a_missing_path(tmp_path):
    missing = SourceConfig(name="s", path="gone.csv", format="csv", record_id="id", kind="profile")
    with pytest.raises(SourceContractError, match="gone.csv does not exist"):
        resolve_source_files(missing, tmp_path)
    no_match = missing.model_copy(update={"path": "daily/*.csv"})
    with pytest.raises(SourceContractError, match=r"no files match 'daily/\*.csv'"):
        resolve_source_files(no_match, tmp_path)
