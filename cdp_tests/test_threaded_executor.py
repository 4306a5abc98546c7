"""The threaded executor runs independent steps at once, keeps dependencies, limits and failures
as Dagster's own executors do, and records every event in the instance."""

import gc
import sys
import threading
import time
import uuid

import dagster as dg
import duckdb
import pytest

from cdp_pipelines.bench import most_running, running_seconds
from cdp_pipelines.metadata import BACKGROUND_STEP_TAGS
from cdp_pipelines.operations.shared_tables import create_shared_tables
from cdp_pipelines.operations.threaded_executor import threaded_executor
from cdp_pipelines.runner import execute_job_in_this_process


def _run(assets, max_concurrent=2, checks=(), **execution):
    defs = dg.Definitions(assets=assets, asset_checks=list(checks), executor=threaded_executor,
                          jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())])
    job = defs.resolve_job_def("all")
    instance = dg.DagsterInstance.ephemeral()
    config = {"execution": {"config": {"max_concurrent": max_concurrent, **execution}}}
    return execute_job_in_this_process(job, instance, config, str(uuid.uuid4())), instance


def _meeting_assets(parties: int):
    """Assets that each wait for all the others to be running: only a concurrent run passes."""
    barrier = threading.Barrier(parties, timeout=5)

    def build(name):
        @dg.asset(name=name)
        def _asset() -> dg.MaterializeResult:
            barrier.wait()
            return dg.MaterializeResult(metadata={"thread": threading.current_thread().name})
        return _asset

    return [build(f"meets_{i}") for i in range(parties)]


def test_independent_steps_run_at_the_same_time():
    result, instance = _run(_meeting_assets(2))
    assert result.success
    for i in range(2):
        event = instance.get_latest_materialization_event(dg.AssetKey(f"meets_{i}"))
        assert event is not None
        assert event.asset_materialization.metadata["thread"].value == f"step meets_{i}"


def test_one_at_a_time_when_max_concurrent_is_one():
    result, _ = _run(_meeting_assets(2), max_concurrent=1)
    assert not result.success  # the barrier times out: the two steps never ran together


def _recording_assets(log: list, lock: threading.Lock):
    def build(name, deps=()):
        @dg.asset(name=name, deps=list(deps))
        def _asset() -> None:
            with lock:
                log.append(("start", name, time.perf_counter()))
            time.sleep(0.2)
            with lock:
                log.append(("end", name, time.perf_counter()))
        return _asset

    return [build("a"), build("b"), build("c"), build("d", deps=["a", "b", "c"])]


def test_never_more_than_max_concurrent_and_dependencies_wait():
    log, lock = [], threading.Lock()
    result, _ = _run(_recording_assets(log, lock), max_concurrent=2)
    assert result.success
    at = {(kind, name): t for kind, name, t in log}
    assert most_running([{"start": at[("start", n)], "end": at[("end", n)]} for n in "abcd"]) == 2
    assert at[("start", "d")] >= max(at[("end", n)] for n in "abc")


def test_a_background_check_waits_for_every_other_ready_step():
    """A non-blocking check tagged BACKGROUND_STEP_TAGS is ready as soon as its asset is, but
    starts only when no other step is ready to run."""
    log, lock = [], threading.Lock()
    first, *others = _recording_assets(log, lock)[:3]

    @dg.asset_check(asset=first, op_tags=BACKGROUND_STEP_TAGS)
    def background_check() -> dg.AssetCheckResult:
        with lock:
            log.append(("start", "check", time.perf_counter()))
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=first)
    def ordinary_check() -> dg.AssetCheckResult:
        with lock:
            log.append(("start", "ordinary", time.perf_counter()))
        return dg.AssetCheckResult(passed=True)

    result, _ = _run([first, *others], max_concurrent=1, checks=[background_check, ordinary_check])
    assert result.success
    started = [name for kind, name, _ in log if kind == "start"]
    assert started[-1] == "check", started
    assert set(started) == {"a", "b", "c", "check", "ordinary"}


def test_a_failing_step_fails_the_run_skips_its_dependents_and_spares_the_rest():
    @dg.asset
    def broken() -> None:
        raise ValueError("bad input")

    @dg.asset(deps=["broken"])
    def downstream() -> None:
        pass

    @dg.asset
    def independent() -> None:
        pass

    result, instance = _run([broken, downstream, independent])
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    assert failed == {"broken"}
    assert instance.get_latest_materialization_event(dg.AssetKey("independent")) is not None
    assert instance.get_latest_materialization_event(dg.AssetKey("downstream")) is None
    message = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    assert "bad input" in message.to_string()


def test_retries_and_asset_checks_work_on_threads():
    attempts = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    @dg.asset_check(asset=flaky, blocking=True)
    def flaky_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    result, _ = _run([flaky], checks=[flaky_check])
    assert result.success
    assert len(attempts) == 2
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]


def test_max_concurrent_below_one_is_refused():
    result, _ = _run(_meeting_assets(1), max_concurrent=0)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    assert "max_concurrent must be at least 1" in failure.job_failure_data.error.to_string()


def test_shared_tables_let_steps_create_their_tables_at_once(tmp_path):
    """Without the shared schemas and tables made first, two steps creating the quality tables at
    once collide in DuckDB's catalog; with them, every step's own IF NOT EXISTS is a no-op."""
    from cdp_pipelines.ingest.assets import ensure_quality_tables
    from cdp_pipelines.operations.tracking import ensure_tracking_tables

    path = str(tmp_path / "w.duckdb")
    anchor = duckdb.connect(path)
    create_shared_tables(anchor)
    errors = []

    def step():
        for _ in range(100):
            con = duckdb.connect(path)
            try:
                con.execute("BEGIN")
                ensure_quality_tables(con)
                ensure_tracking_tables(con)
                con.execute("COMMIT")
            except duckdb.Error as error:
                errors.append(error)
            finally:
                con.close()

    threads = [threading.Thread(target=step) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    anchor.close()
    assert errors == []


def test_most_running_counts_steps_that_overlap_not_those_that_touch():
    steps = [{"start": 0.0, "end": 4.0}, {"start": 1.0, "end": 3.0}, {"start": 2.0, "end": 2.5},
             {"start": 4.0, "end": 5.0}]
    assert most_running(steps) == 3
    assert most_running(steps[3:]) == 1
    assert most_running([]) == 0


def test_running_seconds_counts_overlapping_steps_once():
    steps = [{"start": 0.0, "end": 4.0}, {"start": 1.0, "end": 3.0}, {"start": 3.5, "end": 6.0},
             {"start": 8.0, "end": 9.0}]
    assert running_seconds(steps) == pytest.approx(7.0)
    assert running_seconds([]) == 0.0


def test_the_run_config_sets_the_steps_at_once_only_when_asked():
    from cdp_pipelines.runner import pipeline_run_config

    assert "execution" not in pipeline_run_config(incremental=False, retrain=False)
    assert pipeline_run_config(False, False, max_concurrent=1)["execution"] == {"config": {"max_concurrent": 1}}


def test_stopping_the_run_waits_for_the_running_steps_and_starts_no_more():
    """Closing the run's event stream (what an interrupted run does) lets the running step end
    cleanly instead of abandoning it mid-write, and starts nothing after it."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run_iterator

    finished = []

    @dg.asset
    def slow() -> None:
        time.sleep(0.5)
        finished.append("slow")

    @dg.asset(deps=["slow"])
    def after() -> None:
        finished.append("after")

    defs = dg.Definitions(assets=[slow, after], executor=threaded_executor,
                          jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())])
    job = defs.resolve_job_def("all")
    instance = dg.DagsterInstance.ephemeral()
    run = instance.create_run_for_job(job_def=job)
    events = execute_run_iterator(InMemoryJob(job), run, instance)
    for event in events:
        if event.event_type_value == "STEP_START" and event.step_key == "slow":
            break
    events.close()
    assert finished == ["slow"]


def _meeting_job() -> dg.JobDefinition:
    """Module-level, so Dagster can rebuild it by name, as a run launched from the UI does."""
    defs = dg.Definitions(assets=_meeting_assets(2), executor=threaded_executor,
                          jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all())])
    return defs.resolve_job_def("all")


def test_a_run_rebuilt_from_its_code_location_runs_steps_at_once():
    """Runs launched from the UI or by the daemon rebuild the job from code (a reconstructable
    job) before the executor runs it; the steps must still meet at their barrier."""
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.execute_job(dg.reconstructable(_meeting_job), instance=instance) as result:
            assert result.success
            assert {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"} == {
                "meets_0", "meets_1"}


def _interval_asset():
    @dg.asset
    def interval() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"switch_interval": sys.getswitchinterval()})
    return interval


@pytest.mark.parametrize("execution, expected", [({}, 0.001), ({"switch_interval_ms": 0.5}, 0.0005)])
def test_steps_run_with_the_configured_switch_interval_which_is_restored_after(execution, expected):
    before = sys.getswitchinterval()
    assert before != pytest.approx(expected)
    result, instance = _run([_interval_asset()], **execution)
    assert result.success
    seen = instance.get_latest_materialization_event(dg.AssetKey("interval")).asset_materialization.metadata
    assert seen["switch_interval"].value == pytest.approx(expected)
    assert sys.getswitchinterval() == before


def test_a_switch_interval_out_of_range_is_refused():
    result, _ = _run([_interval_asset()], switch_interval_ms=0.0)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    assert "switch_interval_ms must be above 0" in failure.job_failure_data.error.to_string()


def _collector_asset():
    @dg.asset(name="collector")
    def collector() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()})
    return collector


@pytest.mark.parametrize("execution, threshold", [({}, 100_000), ({"gc_threshold": 5_000}, 5_000)])
def test_steps_run_with_the_earlier_objects_frozen_and_the_raised_collector_threshold_restored_after(
        execution, threshold):
    before = gc.get_threshold()
    assert before[0] != threshold and gc.get_freeze_count() == 0
    result, instance = _run([_collector_asset()], **execution)
    assert result.success
    seen = instance.get_latest_materialization_event(dg.AssetKey("collector")).asset_materialization.metadata
    assert seen["threshold"].value == threshold
    assert seen["frozen"].value > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_collector_threshold_of_zero_leaves_the_collector_alone_and_a_caller_s_freeze_stays():
    before = gc.get_threshold()
    result, instance = _run([_collector_asset()], gc_threshold=0)
    seen = instance.get_latest_materialization_event(dg.AssetKey("collector")).asset_materialization.metadata
    assert result.success and seen["threshold"].value == before[0] and seen["frozen"].value == 0

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        result, _ = _run([_collector_asset()])
        assert result.success
        assert gc.get_freeze_count() > frozen // 2  # the caller's freeze is not undone (unfreeze: 0)
        assert gc.get_threshold() == before
    finally:
        gc.unfreeze()


def test_a_negative_collector_threshold_is_refused():
    result, _ = _run([_collector_asset()], gc_threshold=-1)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    assert "gc_threshold must be 0 (Python's own) or above" in failure.job_failure_data.error.to_string()
