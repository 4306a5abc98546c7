"""The incoming-files sensor, the jobs and the schedule in the code location, and `cdp run --help`."""

from __future__ import annotations

import json
import os

import dagster as dg
from typer.testing import CliRunner

from cdp_pipelines import settings
from cdp_pipelines.cli import app
from cdp_pipelines.defs.operations import incoming_files_sensor
from cdp_pipelines.operations.incoming import new_or_modified, run_key
from cdp_pipelines.runner import load_definitions

SOURCES = """
version: 1
sources:
  - name: shop
    path: shop*.csv
    format: csv
    record_id: id
    kind: profile
    mapping: {email: email}
  - name: events
    path: events/*.jsonl
    format: jsonl
    record_id: id
    kind: event
    timestamp: ts
    mapping: {email: email}
"""


def evaluate(cursor):
    context = dg.build_sensor_context(cursor=cursor)
    result = incoming_files_sensor(context)
    return result, context.cursor


def test_new_file_requests_an_incremental_run_once(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "sources.yaml").write_text(SOURCES)
    monkeypatch.setenv(settings.ENV_DATA_DIR, str(data))
    monkeypatch.setenv(settings.ENV_SOURCES_FILE, str(tmp_path / "sources.yaml"))
    (data / "shop_1.csv").write_text("id,email\n1,a@x.com\n")
    (data / "notes.txt").write_text("not a source file")

    first, cursor = evaluate(None)
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("incoming-")
    assert list(json.loads(cursor)) == [str(data / "shop_1.csv")]

    same, same_cursor = evaluate(cursor)
    assert isinstance(same, dg.SkipReason) and same_cursor == cursor

    (data / "events").mkdir()
    (data / "events" / "day1.jsonl").write_text('{"id": "e1", "ts": "2024-03-01"}\n')
    second, cursor2 = evaluate(cursor)
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key
    assert set(json.loads(cursor2)) == {str(data / "shop_1.csv"), str(data / "events" / "day1.jsonl")}

    # Modified in place (size and time change): a new request with a different key.
    path = data / "shop_1.csv"
    path.write_text("id,email\n1,a@x.com\n2,b@x.com\n")
    os.utime(path, (1_900_000_000, 1_900_000_000))
    third, _ = evaluate(cursor2)
    assert isinstance(third, dg.RunRequest) and third.run_key not in {first.run_key, second.run_key}


def test_unreadable_sources_file_is_a_skip_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.ENV_SOURCES_FILE, str(tmp_path / "missing.yaml"))
    result, _ = evaluate(None)
    assert isinstance(result, dg.SkipReason) and "sources file" in result.skip_message


def test_run_key_depends_only_on_the_changed_files_and_their_stamps():
    current = {"/d/a.csv": [10, 1.0], "/d/b.csv": [20, 2.0]}
    assert new_or_modified({"/d/a.csv": [10, 1.0]}, current) == ["/d/b.csv"]
    assert run_key(["/d/b.csv"], current) == run_key(["/d/b.csv"], dict(current))
    assert run_key(["/d/b.csv"], current) != run_key(["/d/b.csv"], {**current, "/d/b.csv": [21, 2.0]})


def test_jobs_schedule_and_sensor_are_in_the_definitions(monkeypatch):
    monkeypatch.setenv("CDP_INCREMENTAL_CRON", "30 3 * * *")
    defs = load_definitions()
    assert defs.resolve_job_def("full_refresh") and defs.resolve_job_def("incremental")
    schedule = defs.resolve_schedule_def("incremental_daily")
    assert schedule.job_name == "incremental" and schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    sensor = defs.resolve_sensor_def("incoming_files_sensor")
    assert sensor.job_name == "incremental" and sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_incremental_job_sets_incremental_on_every_ingest_and_standardize_step():
    from cdp_pipelines.identity.assets import IdentityRunConfig
    from cdp_pipelines.operations.run_config import incremental_ops_config
    from cdp_pipelines.runner import pipeline_run_config

    ops = incremental_ops_config(settings.sources_file())
    names = {op for op in ops}
    assert {"raw__crm_accounts", "standardized__crm_accounts", "standardized__identity_records"} <= names
    assert ("identity_graph" in ops) == ("incremental" in IdentityRunConfig.model_fields)
    full = pipeline_run_config(incremental=False, retrain=True)
    assert full["ops"] == {"identity_graph": {"config": {"retrain": True}}}
    defs = load_definitions()
    job = defs.resolve_job_def("incremental")
    assert dg.validate_run_config(job, pipeline_run_config(incremental=True, retrain=False))


def test_cdp_run_help_explains_incremental():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--incremental" in text and "Read only files not ingested before" in text
    assert "full_refresh" in text and "DAGSTER_HOME" in text
