"""A failing `cdp run` says why: one line per step stopped by the user's input (exit code 2), a
traceback only for a bug (exit code 1), the reasons in the JSON summary, and no figures in the
summary that an earlier run produced."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._utils.error import SerializableErrorInfo, serializable_error_info_from_exc_info

from cdp_pipelines import settings
from cdp_pipelines.errors import user_error_in_serialized
from cdp_pipelines.operations.threaded_executor import threaded_executor
from cdp_pipelines.profiles.config_files import ProfilesConfigError
from cdp_pipelines.runner import (
    RunOutcome,
    StepFailure,
    execute_job_in_this_process,
    step_failures,
    warehouse_kept_open,
    warehouse_summary,
)
from cdp_pipelines.serving.postgres import ServingConnectionError
from cdp_pipelines.warehouse_access import WarehouseAccessError

SAMPLE = settings.PROJECT_ROOT / "data" / "sample"


def _error_of(error: BaseException) -> SerializableErrorInfo:
    """An exception serialized as Dagster records a step's error: wrapped, with it as the cause."""
    try:
        try:
            raise error
        except BaseException as inner:
            raise RuntimeError('Error occurred while executing op "tiny"') from inner
    except RuntimeError:
        return serializable_error_info_from_exc_info(sys.exc_info())


def test_a_project_user_error_is_found_in_the_serialized_cause_chain():
    info = _error_of(ProfilesConfigError("survivorship.yaml: attributes.country.rule: unknown rule\n  (see docs)"))
    assert user_error_in_serialized(info) == "survivorship.yaml: attributes.country.rule: unknown rule (see docs)"


def test_an_unreachable_serving_store_is_a_user_error():
    info = _error_of(ServingConnectionError("cannot connect to PostgreSQL at db:5432/cdp: Connection refused"))
    assert user_error_in_serialized(info) == "cannot connect to PostgreSQL at db:5432/cdp: Connection refused"


def test_other_errors_are_not_user_errors():
    assert user_error_in_serialized(_error_of(ValueError("a plain ValueError is a bug"))) is None
    assert user_error_in_serialized(_error_of(ZeroDivisionError("division by zero"))) is None


def _run_tiny_job():
    @dg.asset
    def misconfigured():
        raise ProfilesConfigError("config/tiny.yaml: rule: Input should be 'most_recent'")

    @dg.asset
    def buggy():
        return 1 / 0

    @dg.asset
    def checked():
        return 1

    @dg.asset_check(asset=checked, blocking=True)
    def always_fails():
        return dg.AssetCheckResult(passed=False, description="rows do not reconcile")

    defs = dg.Definitions(assets=[misconfigured, buggy, checked], asset_checks=[always_fails],
                          executor=threaded_executor,
                          jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())])
    with dg.DagsterInstance.ephemeral() as instance:
        return execute_job_in_this_process(defs.resolve_job_def("all"), instance, {}, str(uuid.uuid4()))


def test_each_failed_step_says_why():
    failures = {f.step: f for f in step_failures(_run_tiny_job().all_events)}
    assert set(failures) == {"misconfigured", "buggy", "checked_always_fails"}
    mistake = failures["misconfigured"]
    assert mistake.user_error and mistake.error == "config/tiny.yaml: rule: Input should be 'most_recent'"
    assert mistake.trace == ""
    bug = failures["buggy"]
    assert not bug.user_error and not bug.check
    assert bug.error == "ZeroDivisionError: division by zero" and "Stack Trace" in bug.trace
    check = failures["checked_always_fails"]
    assert check.check and not check.user_error and "always_fails" in check.error


def test_a_run_that_fails_before_any_step_says_why():
    from cdp_pipelines.identity.config import IdentityConfigError

    @dg.resource
    def misconfigured(_):
        raise IdentityConfigError("identity.yaml: thresholds: match must be above 0")

    @dg.asset(required_resource_keys={"needs_config"})
    def needs_it():
        return 1

    defs = dg.Definitions(assets=[needs_it], resources={"needs_config": misconfigured}, executor=threaded_executor,
                          jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())])
    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_job_in_this_process(defs.resolve_job_def("all"), instance, {}, str(uuid.uuid4()))
    assert step_failures(result.all_events) == [
        StepFailure("run", "identity.yaml: thresholds: match must be above 0", user_error=True)]


def test_exit_code_two_only_when_no_step_failed_on_a_bug():
    mistake = StepFailure("identity_graph", "identity.yaml: not valid YAML", user_error=True)
    check = StepFailure("raw__reviews", "blocking check failed", check=True)
    bug = StepFailure("golden_profile", "KeyError: 'x'", trace="Stack Trace: ...")
    assert RunOutcome(False, "r", step_failures=[mistake, check]).stopped_by_user_error
    assert not RunOutcome(False, "r", step_failures=[mistake, bug]).stopped_by_user_error
    assert not RunOutcome(False, "r", step_failures=[check]).stopped_by_user_error


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# not a database\n" * 100)
    with pytest.raises(WarehouseAccessError, match=r"^\S*notes\.md is not a DuckDB warehouse file$"):
        with warehouse_kept_open(notes):
            pass


def test_a_warehouse_locked_by_another_process_is_a_one_line_error(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('open', flush=True); "
                               "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseAccessError) as raised:
            with warehouse_kept_open(path):
                pass
        message = str(raised.value)
        assert message.startswith(f"warehouse {path} is in use by another process") and "\n" not in message
    finally:
        holder.communicate("")


def _warehouse_of_two_runs(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA quality; CREATE SCHEMA identity")
    con.execute("CREATE TABLE quality.ingest_runs (run_id VARCHAR, source VARCHAR, ingested_at TIMESTAMP, "
                "rows_read BIGINT, rows_staged BIGINT, rows_quarantined BIGINT)")
    con.execute("INSERT INTO quality.ingest_runs VALUES ('earlier', 'crm_accounts', now() - INTERVAL 1 DAY, 9, 9, 0), "
                "('earlier', 'reviews', now() - INTERVAL 1 DAY, 5, 4, 1), ('this', 'crm_accounts', now(), 3, 2, 1)")
    con.execute("CREATE TABLE identity.customer_xref AS SELECT 'c1' AS customer_id")
    con.close()


def test_a_failed_run_reports_only_what_it_produced(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    _warehouse_of_two_runs(path)
    summary = warehouse_summary(path, "this", identity_resolved=False, every_step_ran=False)
    assert summary == {"records_per_source": {"crm_accounts": {"read": 3, "staged": 2, "quarantined": 1}}}
    complete = warehouse_summary(path, "this", identity_resolved=True, every_step_ran=True)
    assert complete["customers_resolved"] == 1 and complete["tables_written"] == 2
    assert set(complete["tables"]) == {"quality.ingest_runs", "identity.customer_xref"}


# --- `cdp run` as a user runs it ---------------------------------------------------------------

def _cdp_run(root: Path, *args: str, env: dict | None = None, code: str | None = None):
    """`cdp run` in a child process with its warehouse, artifacts and instance under `root`; `code`
    runs first in the child (to put a bug into a step)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in (settings.ENV_SERVING_URL, settings.ENV_SOURCES_FILE, settings.ENV_SUPPRESSION_FILE)}
    environment.update({
        settings.ENV_DATA_DIR: str(SAMPLE),
        settings.ENV_WAREHOUSE: str(root / "warehouse.duckdb"),
        settings.ENV_ARTIFACTS_DIR: str(root / "artifacts"),
        settings.ENV_EXPORT_DIR: str(root / "exports"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        **(env or {}),
    })
    script = textwrap.dedent(code or "") + textwrap.dedent("""
        import sys
        from cdp_pipelines.cli import main
        sys.argv = ["cdp", "run", *sys.argv[1:]]
        main()
    """)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=environment,
                          cwd=settings.PROJECT_ROOT, timeout=600)


def _config_copy(root: Path) -> Path:
    config = root / "config"
    shutil.copytree(settings.PROJECT_ROOT / "config", config)
    return config


def _assert_one_line_error(done: subprocess.CompletedProcess, expected: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Stack Trace" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], done.stderr[-3000:]


@pytest.mark.slow
def test_a_configuration_error_found_while_running_is_one_line_and_exit_code_two(tmp_path):
    config = _config_copy(tmp_path)
    with (config / "identity.yaml").open("a") as handle:
        handle.write("blocking: [unclosed\n")
    done = _cdp_run(tmp_path, env={settings.ENV_CONFIG_DIR: str(config)})
    _assert_one_line_error(done, f"error: identity_graph: {config / 'identity.yaml'}: not valid YAML")
    summary = json.loads(done.stdout)
    assert summary["failed_steps"] == ["identity_graph"]
    assert summary["step_errors"]["identity_graph"].startswith(f"{config / 'identity.yaml'}: not valid YAML")
    assert "customers_resolved" not in summary and "tables_written" not in summary
    # the steps downstream of identity never ran, and say so; the upstream ones did
    assert {"profiles__golden_profile", "serving__published"} <= set(summary["skipped_steps"])
    assert "raw__crm_accounts" not in summary["skipped_steps"]


@pytest.mark.slow
def test_a_column_typo_in_a_blocking_rule_is_one_line_without_exit_noise(tmp_path):
    config = _config_copy(tmp_path)
    text = (config / "identity.yaml").read_text()
    (config / "identity.yaml").write_text(text.replace("- [address_line]", "- [adress_line]", 1))
    done = _cdp_run(tmp_path, env={settings.ENV_CONFIG_DIR: str(config)})
    _assert_one_line_error(done, "error: identity_graph: ")
    assert "adress_line" in done.stderr and "leaked" not in done.stderr, done.stderr[-3000:]


@pytest.mark.slow
def test_an_unreachable_serving_store_is_one_line_and_exit_code_two(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _cdp_run(tmp_path, env={settings.ENV_SERVING_URL: f"postgresql://postgres@127.0.0.1:{port}/x"})
    _assert_one_line_error(done, f"error: serving__published: cannot connect to PostgreSQL at 127.0.0.1:{port}/x")
    summary = json.loads(done.stdout)
    assert summary["step_errors"] == {"serving__published": f"cannot connect to PostgreSQL at 127.0.0.1:{port}/x: "
                                                            "Connection refused"}


def test_a_warehouse_that_is_not_a_database_is_one_line_and_exit_code_two(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# not a database\n" * 100)
    done = _cdp_run(tmp_path, "--warehouse", str(notes))
    _assert_one_line_error(done, f"error: {notes} is not a DuckDB warehouse file")
    assert done.stdout == ""


@pytest.mark.slow
def test_a_bug_in_a_step_still_shows_its_traceback_and_exits_one(tmp_path):
    bug = """
        import cdp_pipelines.identity.assets as identity_assets
        def broken(path):
            raise KeyError("blocking_rules")
        identity_assets.load_identity_config = broken
    """
    done = _cdp_run(tmp_path, code=bug)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "step failed identity_graph: KeyError: 'blocking_rules'" in done.stderr, done.stderr[-3000:]
    assert "Stack Trace" in done.stderr and "in broken" in done.stderr
    assert json.loads(done.stdout)["step_errors"] == {"identity_graph": "KeyError: 'blocking_rules'"}
