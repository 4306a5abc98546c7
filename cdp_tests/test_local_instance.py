"""The local instance keeps its event log's SQLite files open, and stays Dagster's own format.

A fresh DAGSTER_HOME gets LocalDagsterInstance from `dagster_instance()`; what its pooled event
log writes is read back identically by Dagster's plain SQLite storage (which the files must stay
compatible with); a storage block in dagster.yaml still wins; the event log serves two threads at
once, closes run files past its limit, and survives a wipe.
"""

from __future__ import annotations

import threading
import time

import dagster as dg
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from cdp_pipelines.operations import local_instance
from cdp_pipelines.operations.local_instance import (
    OPEN_RUN_SHARDS,
    LocalDagsterInstance,
    PooledSqliteEventLogStorage,
)
from cdp_pipelines.runner import LOCAL_INSTANCE_YAML, dagster_instance


def _log(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(error_info=None, level="INFO", user_message=message, run_id=run_id,
                         timestamp=time.time(), step_key=None, job_name="job", dagster_event=None)


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=numbers)
def numbers_present() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_a_new_dagster_home_gets_the_pooled_event_log_and_dagster_reads_its_files(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dagster_instance()
    assert (home / "dagster.yaml").read_text() == LOCAL_INSTANCE_YAML
    assert isinstance(instance, LocalDagsterInstance)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)

    result = dg.materialize([numbers], instance=instance, selection=[numbers])
    checks = dg.materialize([numbers, numbers_present], instance=instance)
    assert result.success and checks.success

    plain = SqliteEventLogStorage(str(home / "history" / "runs"))
    for run in (result, checks):
        written = [e.dagster_event_type for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        read = [e.dagster_event_type for e in plain.get_logs_for_run(run.run_id) if e.is_dagster_event]
        assert written == read and dg.DagsterEventType.RUN_SUCCESS in read
    latest = plain.get_latest_materialization_events([dg.AssetKey("numbers")])[dg.AssetKey("numbers")]
    assert latest.run_id == checks.run_id
    assert latest.asset_materialization.metadata["rows"].value == 3
    evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_present")])
    assert next(iter(evaluation.values())).run_id == checks.run_id
    instance.dispose()

    # Opened from its folder alone (no DAGSTER_HOME), the instance finds the same history.
    monkeypatch.delenv("DAGSTER_HOME")
    reopened = dg.DagsterInstance.from_config(str(home))
    assert isinstance(reopened, LocalDagsterInstance)
    assert isinstance(reopened.event_log_storage, PooledSqliteEventLogStorage)
    assert {r.run_id for r in reopened.get_runs()} == {result.run_id, checks.run_id}
    assert len(reopened.all_logs(checks.run_id)) == len(plain.get_logs_for_run(checks.run_id))
    reopened.dispose()


def test_a_storage_block_in_dagster_yaml_replaces_the_default(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML + f"storage:\n  sqlite:\n    base_dir: {elsewhere}\n")
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance, LocalDagsterInstance)
    assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert dg.materialize([numbers], instance=instance).success
    assert list((elsewhere / "history" / "runs").glob("*.db")) and not (home / "history").exists()
    instance.dispose()


def test_an_existing_dagster_yaml_is_left_as_the_user_wrote_it(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dagster_instance()
    assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    instance.dispose()


def test_one_connection_per_file_is_reused_and_run_files_past_the_limit_are_closed(tmp_path, monkeypatch):
    created = []
    real_create_engine = local_instance.db.create_engine
    monkeypatch.setattr(local_instance.db, "create_engine",
                        lambda *a, **k: created.append(a[0]) or real_create_engine(*a, **k))
    storage = PooledSqliteEventLogStorage(str(tmp_path / "runs"))
    for _ in range(50):
        storage.store_event(_log("run-a", "hello"))
    assert created.count(storage.conn_string_for_shard("run-a")) == 1

    runs = [f"run-{i}" for i in range(OPEN_RUN_SHARDS + 5)]
    for run_id in runs:
        storage.store_event(_log(run_id, "hello"))
    open_runs = [shard for shard in storage._engines if shard != "index"]
    assert open_runs == runs[-OPEN_RUN_SHARDS:]
    # A closed file is opened again when needed, and nothing was lost meanwhile.
    assert [e.user_message for e in storage.get_logs_for_run("run-a")] == ["hello"] * 50
    assert all(len(storage.get_logs_for_run(run_id)) == 1 for run_id in runs)
    storage.dispose()


def test_two_threads_store_events_at_once_without_losing_any(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path / "runs"))
    errors = []

    def write(run_id: str) -> None:
        try:
            for i in range(200):
                storage.store_event(_log(run_id, f"{run_id} {i}"))
                if i % 50 == 0:
                    storage.get_logs_for_run("shared")
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(run_id,)) for run_id in ("shared", "other", "shared")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(storage.get_logs_for_run("shared")) == 400
    assert len(storage.get_logs_for_run("other")) == 200
    storage.dispose()


def test_a_wipe_closes_the_files_it_deletes_and_the_storage_still_works(tmp_path):
    base = tmp_path / "runs"
    storage = PooledSqliteEventLogStorage(str(base))
    storage.store_event(_log("run-a", "before"))
    storage.wipe()
    assert not (base / "run-a.db").exists()
    assert storage.get_logs_for_run("run-a") == []
    storage.store_event(_log("run-a", "after"))
    assert [e.user_message for e in storage.get_logs_for_run("run-a")] == ["after"]
    storage.dispose()


def test_the_committed_dagster_home_configures_the_instance_a_new_home_gets():
    """data/dagster_home/dagster.yaml (the default DAGSTER_HOME, committed) and the file written
    into a new home must not drift apart."""
    import yaml

    from cdp_pipelines.settings import PROJECT_ROOT

    committed = PROJECT_ROOT / "data" / "dagster_home" / "dagster.yaml"
    assert yaml.safe_load(committed.read_text()) == yaml.safe_load(LOCAL_INSTANCE_YAML)


def test_events_are_committed_in_wal_mode_without_a_flush_per_commit(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path / "runs"))
    storage.store_event(_log("run-a", "hello"))
    with storage._connect("run-a") as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (journal, synchronous) == ("wal", 1)  # 1 is NORMAL; SQLite's default FULL is 2
    # Dagster's plain storage, opening the same file anew, reads what was committed.
    plain = SqliteEventLogStorage(str(tmp_path / "runs"))
    assert [e.user_message for e in plain.get_logs_for_run("run-a")] == ["hello"]
    storage.dispose()
    plain.dispose()
