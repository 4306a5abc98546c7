"""`cdp segments list | validate | export` through the main CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cdp_pipelines.cli import app
from cdp_pipelines.segments.build import build_segment
from cdp_pipelines.segments.config import load_segments

try:
    from cdp_tests.test_segments_fixtures import build_warehouse, write_segments
except ImportError:
    from test_segments_fixtures import build_warehouse, write_segments

runner = CliRunner()


@pytest.fixture()
def setup(tmp_path: Path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    config_path = write_segments(tmp_path)
    config = load_segments(config_path)
    con = duckdb.connect(str(warehouse))
    for name in ("everyone_email", "everyone_sms"):
        build_segment(con, config.get(name), config)
    con.close()
    return warehouse, config_path


def listed_rows(output: str) -> dict[str, list[str]]:
    """`segments list` table rows by segment name: [name, channel, owner, members, status]."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.count("│") >= 5]
    return {row[0]: row for row in rows if row[0]}


def test_list_shows_name_channel_owner_members_and_status(setup):
    warehouse, config_path = setup
    result = runner.invoke(app, ["segments", "list", "--config", str(config_path), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    rows = listed_rows(result.output)
    assert rows["everyone_email"] == ["everyone_email", "email", "team:growth", "2", "current"]
    assert rows["everyone_sms"][3:] == ["1", "current"]
    assert rows["high_value"][3:] == ["-", "not built"]


def changed_rule(config_path: Path, folder: Path, rule: str) -> Path:
    """A copy of the segments file in `folder` with everyone_email's rule replaced."""
    folder.mkdir()
    text = config_path.read_text().replace('rule: "TRUE"', f'rule: "{rule}"', 1)
    return write_segments(folder, text)


def test_list_marks_changed_and_unbindable_rules_and_exits_1(setup, tmp_path):
    warehouse, config_path = setup
    stale = changed_rule(config_path, tmp_path / "stale", "lifetime_value > 100000000")
    result = runner.invoke(app, ["segments", "list", "--config", str(stale), "--warehouse", str(warehouse)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "stale: the segment's rule changed since it was built at" in text
    assert "1 segment(s) stale or invalid (everyone_email)" in text
    assert listed_rows(result.output)["everyone_sms"][4] == "current"
    invalid = changed_rule(config_path, tmp_path / "invalid", "lifetime_value + city > 1")
    result = runner.invoke(app, ["segments", "list", "--config", str(invalid), "--warehouse", str(warehouse)])
    assert result.exit_code == 1, result.output
    assert "invalid: rule does not run on the warehouse" in " ".join(result.output.split())


def test_export_refuses_members_built_from_another_definition(setup, tmp_path):
    warehouse, config_path = setup
    stale = changed_rule(config_path, tmp_path / "stale", "lifetime_value > 100000000")
    out = tmp_path / "e.csv"
    result = runner.invoke(app, ["segments", "export", "everyone_email", "--out", str(out),
                                 "--warehouse", str(warehouse), "--config", str(stale)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "segment 'everyone_email': the segment's rule changed since it was built at" in text
    assert "run `cdp run` to rebuild" in text and "Traceback" not in text
    assert not out.exists()
    # Layout and comments are not a change: the validated rule is what is compared.
    same = changed_rule(config_path, tmp_path / "same", "  true  -- everyone")
    result = runner.invoke(app, ["segments", "export", "everyone_email", "--out", str(out),
                                 "--warehouse", str(warehouse), "--config", str(same)])
    assert result.exit_code == 0, result.output


def test_list_reads_the_config_folder_from_the_environment(setup, tmp_path):
    warehouse, _ = setup
    result = runner.invoke(app, ["segments", "list", "--warehouse", str(tmp_path / "absent.duckdb")],
                           env={"CDP_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "everyone_ads" in result.output


def test_export_csv_and_parquet(setup, tmp_path):
    warehouse, config_path = setup
    out = tmp_path / "out" / "everyone.csv"
    result = runner.invoke(app, ["segments", "export", "everyone_email", "--format", "csv", "--out", str(out),
                                 "--warehouse", str(warehouse), "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "customer_id,first_name,email"
    assert "2 row(s)" in result.output
    out = tmp_path / "sms.parquet"
    result = runner.invoke(app, ["segments", "export", "everyone_sms", "--format", "parquet", "--out", str(out),
                                 "--warehouse", str(warehouse), "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("customer_id").to_pylist() == ["C1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "no_such_segment"], "no segment named 'no_such_segment'"),
        (["export", "high_value"], "segment 'high_value' has not been built yet"),
        (["export", "everyone_email", "--format", "xlsx"], "unknown format 'xlsx'"),
    ],
)
def test_user_errors_exit_2_with_one_readable_line(setup, tmp_path, args, message):
    warehouse, config_path = setup
    command = ["segments", *args, "--out", str(tmp_path / "x.csv"), "--warehouse", str(warehouse),
               "--config", str(config_path)]
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_definition_exits_2_naming_the_segment(tmp_path):
    config_path = write_segments(tmp_path, """
        segments:
          - {name: sneaky, description: d, owner: team:x, channel: email, rule: "1=1; DROP TABLE x"}
    """)
    result = runner.invoke(app, ["segments", "list", "--config", str(config_path)])
    assert result.exit_code == 2
    assert "segment 'sneaky'" in result.output and "';'" in result.output
    assert "Traceback" not in result.output


def test_validate_checks_rules_against_the_warehouse(setup, tmp_path):
    warehouse, config_path = setup
    result = runner.invoke(app, ["segments", "validate", "--config", str(config_path), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    assert "5 segment(s) valid: against the warehouse" in result.output
    (tmp_path / "bad").mkdir()
    bad = write_segments(tmp_path / "bad", """
        segments:
          - {name: typo, description: d, owner: team:x, channel: email, rule: "lifetme_value > 1"}
    """)
    result = runner.invoke(app, ["segments", "validate", "--config", str(bad), "--warehouse", str(warehouse)])
    assert result.exit_code == 2
    assert "segment 'typo': rule uses unknown column 'lifetme_value'" in " ".join(result.output.split())


def test_export_to_a_folder_exits_2_and_leaves_no_partial_file(setup, tmp_path):
    warehouse, config_path = setup
    folder = tmp_path / "w"
    folder.mkdir()
    result = runner.invoke(app, ["segments", "export", "everyone_email", "--out", str(folder),
                                 "--warehouse", str(warehouse), "--config", str(config_path)])
    assert result.exit_code == 2, result.output
    assert "is a folder; give the file to write" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "w.partial").exists() and list(folder.iterdir()) == []


def test_validate_evaluates_rules_so_a_bad_value_fails_before_the_run(setup, tmp_path):
    warehouse, _ = setup
    (tmp_path / "bad").mkdir()
    config_path = write_segments(tmp_path / "bad", """
        segments:
          - {name: bad_value, description: d, owner: team:x, channel: email, rule: "lifetime_value >= 'abc'"}
    """)
    result = runner.invoke(app, ["segments", "validate", "--config", str(config_path), "--warehouse", str(warehouse)])
    assert result.exit_code == 2, result.output
    assert "segment 'bad_value': rule does not run on the warehouse: Conversion Error" in " ".join(result.output.split())
    assert "Traceback" not in result.output
