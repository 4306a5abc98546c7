"""Bad paths and values given to explain, evaluate, generate, lookup, serving and bench: one line,
exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cdp_pipelines.cli import app
from cdp_pipelines.serving.postgres import ServingConnectionError, connect
from cdp_pipelines.standardize.identifiers import UnusableIdentifierError, standardized_identifier
from cdp_pipelines.synthetic import generator
from cdp_pipelines.warehouse_access import WarehouseAccessError, open_warehouse_read_only

runner = CliRunner()


def refused(args: list[str], message: str, **kwargs) -> None:
    """The command exits with 2 and prints `message` on its single output line."""
    result = runner.invoke(app, args, **kwargs)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.fixture()
def not_a_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text("# not a database\n")
    return path


@pytest.fixture()
def empty_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    return path


@pytest.fixture()
def other_warehouse(tmp_path: Path) -> Path:
    """Identity results for records no truth file of the sample mentions."""
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA identity")
    con.execute("CREATE TABLE identity.customer_xref AS "
                "SELECT 'crm_accounts' AS source, 'ZZ-1' AS source_record_id, 'C1' AS customer_id")
    con.close()
    return path


@pytest.fixture()
def truth_file(tmp_path: Path) -> Path:
    path = tmp_path / "truth.csv"
    path.write_text("source,source_record_id,person_id\ncrm_accounts,A-1,P1\n")
    return path


@pytest.mark.parametrize("command", [["explain", "C1"], ["evaluate", "--truth", "TRUTH"],
                                     ["serving", "publish", "--url", "postgresql://localhost/x"]])
def test_a_file_that_is_not_a_warehouse_is_one_line(command, not_a_warehouse, truth_file):
    args = [str(truth_file) if a == "TRUTH" else a for a in command]
    refused([*args, "--warehouse", str(not_a_warehouse)], f"{not_a_warehouse} is not a DuckDB warehouse file")


def test_a_folder_given_as_warehouse_is_one_line(tmp_path):
    refused(["explain", "C1", "--warehouse", str(tmp_path)], "is a folder; give the DuckDB warehouse file")


def test_a_warehouse_locked_by_a_running_pipeline_is_one_line(empty_warehouse):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
         "sys.stdin.read()", str(empty_warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseAccessError, match="is in use by another process"):
            open_warehouse_read_only(empty_warehouse)
        refused(["explain", "C1", "--warehouse", str(empty_warehouse)], "is in use by another process")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_explain_on_a_warehouse_without_identity_results(empty_warehouse):
    refused(["explain", "C1", "--warehouse", str(empty_warehouse)],
            "holds no identity results; run `cdp run` first")


def test_evaluate_refuses_a_truth_file_matching_no_record(other_warehouse, truth_file):
    refused(["evaluate", "--truth", str(truth_file), "--warehouse", str(other_warehouse)],
            "none of the 1 truth records")


def test_evaluate_wants_a_truth_csv_not_a_folder(other_warehouse, tmp_path):
    refused(["evaluate", "--truth", str(tmp_path), "--warehouse", str(other_warehouse)],
            "is a folder; give the ground-truth CSV file")


def test_generate_refuses_paths_it_cannot_write(tmp_path, not_a_warehouse):
    refused(["generate", "--out", str(not_a_warehouse)], "is a file; give a folder")
    refused(["generate", "--out", str(tmp_path / "out"), "--truth-out", str(tmp_path)],
            "is a folder; give the path of the ground-truth CSV file")
    refused(["generate", "--out", str(not_a_warehouse / "below")], f"cannot write {not_a_warehouse}")


def test_generate_refuses_populations_too_small_for_every_source(tmp_path):
    refused(["generate", "--persons", "5", "--out", str(tmp_path / "out")], "--persons must be at least 100")
    assert not (tmp_path / "out").exists()


def test_generate_says_when_a_source_got_no_records(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "SMALLEST_USABLE_POPULATION", 1)
    result = runner.invoke(app, ["generate", "--persons", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "the pipeline refuses a source file without records" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--phone", "12"], "the phone given is not a valid phone number"),
    (["--phone", "0000 000000"], "the phone given is a placeholder or junk phone number"),
    (["--email", "ann@example.com"], "the email given is a placeholder or junk email address"),
    (["--phone", "07919 021122", "--region", "XX"], "unknown region 'XX'"),
])
def test_lookup_refuses_identifiers_it_cannot_use(args, message):
    refused(["lookup", *args, "--url", "postgresql://localhost/x"], message)


def test_identifiers_tell_placeholders_from_invalid_values():
    assert standardized_identifier("phone", "07700 900123") == "+447700900123"
    with pytest.raises(UnusableIdentifierError, match="is a placeholder or junk email address"):
        standardized_identifier("email", "ann@example.com")
    with pytest.raises(UnusableIdentifierError, match="is not a valid email address"):
        standardized_identifier("email", "ann@")
    with pytest.raises(UnusableIdentifierError, match="unknown region 'XX'"):
        standardized_identifier("phone", "07919 021122", "XX")


@pytest.mark.parametrize("command", [["serving", "status"], ["serving", "init"], ["serving", "rollback"],
                                     ["lookup", "--phone", "07700 900123"]])
def test_a_malformed_serving_url_is_one_line_without_the_url(command):
    refused([*command, "--url", "notaurl secret"], "the serving URL is not a valid PostgreSQL URL")
    with pytest.raises(ServingConnectionError) as caught:
        connect("notaurl secret")
    assert "secret" not in str(caught.value)


def test_status_of_an_uninitialised_store_names_the_command(serving_db):
    refused(["serving", "status", "--url", serving_db.url], "run `cdp serving init` first")


def test_help_shows_only_the_intended_flags_and_usage():
    bench = runner.invoke(app, ["bench", "--help"], terminal_width=200).output
    assert "--no-serving" in bench and "--no-no-serving" not in bench and "--no-no-bare" not in bench
    assert "Mount with" not in bench
    erase = runner.invoke(app, ["erase", "--help"], prog_name="cdp", terminal_width=200).output
    assert "Usage: cdp erase [OPTIONS]" in " ".join(erase.split()) and "COMMAND" not in erase
