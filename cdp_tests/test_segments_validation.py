"""Segment rules: statements, foreign tables, file-reading functions and unknown columns are refused
with a message naming the segment; the starter rules pass."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cdp_pipelines.segments.config import SegmentConfigError, load_segments
from cdp_pipelines.segments.build import build_segment, validate_segment
from cdp_pipelines.segments.validation import validate_rule, warehouse_schema
from cdp_pipelines.settings import PROJECT_ROOT

try:
    from cdp_tests.test_segments_fixtures import build_warehouse, write_segments
except ImportError:
    from test_segments_fixtures import build_warehouse, write_segments


def refused(rule: str, schema=None) -> str:
    with pytest.raises(SegmentConfigError) as caught:
        validate_rule("my_segment", rule, schema)
    message = str(caught.value)
    assert message.startswith("segment 'my_segment': ")
    return message


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("1=1; DROP TABLE x", "';'"),
        ("DROP TABLE x", "not a statement"),
        ("SELECT customer_id FROM marts.customer_360", "not a statement"),
        ("(SELECT * FROM raw.crm_accounts)", "'raw.crm_accounts', which is not allowed"),
        ("read_csv('/etc/passwd') IS NOT NULL", "read_csv()"),
        ("customer_id IN (SELECT customer_id FROM read_parquet('x.parquet'))", "READ_PARQUET"),
        ("customer_id IN (SELECT customer_id FROM 'x.csv')", "'x.csv', which is not allowed"),
        ("EXISTS (SELECT 1 FROM secret.table_x)", "'secret.table_x', which is not allowed"),
        ("EXISTS (SELECT 1 FROM customer_360)", "'customer_360', which is not allowed"),
        ("EXISTS (SELECT 1 FROM other_db.marts.escalations)", "not allowed"),
        ("getenv('HOME') = 'x'", "getenv()"),
        ("current_setting('threads') > 1", "current_setting()"),
        ("EXISTS (SELECT * FROM query('SELECT 1'))", "QUERY"),
        ("nextval('seq') > 0", "nextval()"),
        ("customer_id IN (WITH a AS (SELECT 'C1' AS customer_id) SELECT * FROM a)", "WITH"),
        ("customer_id = ?", "parameter"),
        ("lifetime_value >", "not a single SQL boolean expression"),
    ],
)
def test_dangerous_or_malformed_rules_are_refused(rule, problem):
    assert problem in refused(rule)


def test_line_comments_cannot_smuggle_statements():
    validated = validate_rule("s", "1=1 -- */ ; DROP TABLE x /*\n")
    assert "DROP" not in validated.sql and "/*" not in validated.sql


def test_unknown_columns_are_refused_when_the_schema_is_known(tmp_path: Path):
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    schema = warehouse_schema(con)
    assert "unknown column 'lifetme_value'" in refused("lifetme_value > 10", schema)
    assert "unknown column 'rul'" in refused(
        "customer_id IN (SELECT customer_id FROM marts.escalations WHERE rul = 'x')", schema)
    assert "unknown column 'nope'" in refused(
        "EXISTS (SELECT 1 FROM marts.escalations e WHERE e.customer_id = customer_360.nope)", schema)
    con.close()


def test_rules_that_do_not_bind_name_the_segment(tmp_path: Path):
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    config = load_segments(write_segments(tmp_path, """
        segments:
          - {name: typo, description: d, owner: team:x, channel: email, rule: "lifetime_value + city > 1"}
    """))
    with pytest.raises(SegmentConfigError, match="segment 'typo': rule does not run on the warehouse"):
        validate_segment(con, config.get("typo"))
    con.close()


def test_rules_that_fail_only_when_evaluated_are_refused_at_validation(tmp_path: Path):
    # DuckDB binds and plans `lifetime_value >= 'abc'` (LIMIT 0 passes); the conversion fails on
    # the first row, so a check that only binds would pass a rule the build then fails on.
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    config = load_segments(write_segments(tmp_path, """
        segments:
          - {name: bad_value, description: d, owner: team:x, channel: email, rule: "lifetime_value >= 'abc'"}
    """))
    expected = ("segment 'bad_value': rule does not run on the warehouse: Conversion Error: "
                "Could not convert string \"abc\"")
    with pytest.raises(SegmentConfigError) as caught:
        validate_segment(con, config.get("bad_value"))
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    with pytest.raises(SegmentConfigError) as caught:
        build_segment(con, config.get("bad_value"), config)
    assert str(caught.value).startswith(expected)
    con.close()


def test_starter_segments_are_valid_and_bind_to_the_documented_columns(tmp_path: Path):
    config = load_segments(PROJECT_ROOT / "config" / "segments.yaml")
    assert config.names == ["frustrated_across_channels", "lapsed_high_value_store",
                            "happy_reviewers_referral", "abandoned_cart_known_visitors"]
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    for segment in config.segments:
        validate_rule(segment.name, segment.rule)
        validate_segment(con, segment)
    con.close()


def test_allowed_subqueries_over_the_marts_and_consent_pass():
    validated = validate_rule("s", """
        lifetime_value > 100
        AND EXISTS (SELECT 1 FROM marts.escalations e WHERE e.customer_id = customer_360.customer_id)
        AND customer_id IN (SELECT customer_id FROM profiles.consent WHERE channel = 'sms' AND status = 'opt_in')
        AND last_seen >= (SELECT max(occurred_at) FROM marts.interaction_timeline) - INTERVAL 30 DAY
        AND lower(trim(city)) LIKE 'lee%'
    """)
    assert validated.tables == ("marts.customer_profile", "marts.escalations", "marts.interaction_timeline",
                                "profiles.consent")


def test_rules_read_the_base_profile_not_the_mart_built_from_segments():
    assert "built from the segments; read marts.customer_profile" in refused(
        "customer_id IN (SELECT customer_id FROM marts.customer_360 WHERE lifetime_value > 1)")
    validated = validate_rule("s", "EXISTS (SELECT 1 FROM marts.customer_profile p "
                                   "WHERE p.customer_id = customer_360.customer_id AND p.order_count > 1)")
    assert validated.tables == ("marts.customer_profile",)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{name: Bad-Name, description: d, owner: team:x, channel: email, rule: 'TRUE'}", "snake_case"),
        ("{name: ok, description: d, owner: team:x, channel: fax, rule: 'TRUE'}", "channel"),
        ("{name: ok, description: d, owner: somebody, channel: email, rule: 'TRUE'}", "owner"),
        ("{name: ok, description: d, owner: team:x, channel: ads, rule: 'TRUE', export_columns: [email]}",
         "hashed columns"),
        ("{name: ok, description: d, owner: team:x, channel: email, rule: 'TRUE', schedule_folder: ../up}",
         "schedule_folder"),
        ("{name: exports, description: d, owner: team:x, channel: email, rule: 'TRUE'}", "reserved"),
        ("{name: ok, description: d, owner: team:x, channel: email}", "rule"),
    ],
)
def test_bad_definitions_name_the_segment_and_the_problem(tmp_path: Path, entry, problem):
    path = write_segments(tmp_path, f"segments:\n  - {entry}\n")
    with pytest.raises(SegmentConfigError) as caught:
        load_segments(path)
    message = str(caught.value)
    assert problem in message and "segment " in message
    assert "errors.pydantic.dev" not in message


def test_duplicate_names_and_empty_consent_are_refused(tmp_path: Path):
    entry = "{name: twice, description: d, owner: team:x, channel: email, rule: 'TRUE'}"
    with pytest.raises(SegmentConfigError, match="'twice' is declared twice"):
        load_segments(write_segments(tmp_path, f"segments:\n  - {entry}\n  - {entry}\n"))
    with pytest.raises(SegmentConfigError, match="at least one opt-in"):
        load_segments(write_segments(tmp_path, "consent: {ads: []}\nsegments: []\n"))


def test_a_name_declared_twice_reads_as_one_clause_after_the_file(tmp_path: Path):
    entry = "{name: twice, description: d, owner: team:x, channel: email, rule: 'TRUE'}"
    path = write_segments(tmp_path, f"segments:\n  - {entry}\n  - {entry}\n")
    with pytest.raises(SegmentConfigError) as caught:
        load_segments(path)
    assert str(caught.value) == f"{path}: segment 'twice' is declared twice"


def test_starter_segments_pick_the_intended_customers(tmp_path: Path):
    from cdp_pipelines.segments.build import build_segment

    config = load_segments(PROJECT_ROOT / "config" / "segments.yaml")
    con = duckdb.connect(str(build_warehouse(tmp_path / "w.duckdb")))
    picked = {}
    for segment in config.segments:
        build_segment(con, segment, config)
        picked[segment.name] = {r[0] for r in con.execute(
            "SELECT customer_id FROM segments.membership WHERE segment = ?", [segment.name]).fetchall()}
    con.close()
    # C2 also matches the first and third rules but opted out of email.
    assert picked == {"frustrated_across_channels": {"C1"}, "lapsed_high_value_store": {"C4"},
                      "happy_reviewers_referral": {"C1"}, "abandoned_cart_known_visitors": {"C1"}}
