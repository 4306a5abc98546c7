"""Run the whole graph in-process (what `cdp run` does), with progress and a short summary.

`cdp run` runs the `full_refresh` job; `cdp run --incremental` runs the `incremental` job, which
reads only files not ingested before (see docs/operations.md).

Runs are recorded in the Dagster instance at $DAGSTER_HOME (default data/dagster_home), so they
also appear in the UI started with the same DAGSTER_HOME.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.execution.job_execution_result import JobExecutionResult
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdp_pipelines import settings
from cdp_pipelines.errors import one_line, user_error_in_serialized
from cdp_pipelines.warehouse_access import open_warehouse_for_writing

IDENTITY_STEP = "identity_graph"
"""The step that writes identity.customer_xref, which `customers_resolved` counts."""


@dataclass(frozen=True)
class StepFailure:
    """Why a step failed: a mistake in the user's input (`user_error`), a blocking check that
    failed (`check`, already reported by the check's own line) or neither, a bug (`trace` then
    holds Dagster's serialized traceback)."""

    step: str
    error: str
    user_error: bool = False
    check: bool = False
    trace: str = ""


@dataclass
class RunOutcome:
    success: bool
    run_id: str
    summary: dict = field(default_factory=dict)
    step_failures: list[StepFailure] = field(default_factory=list)

    @property
    def stopped_by_user_error(self) -> bool:
        """A step stopped on a mistake the user can fix, and none on a bug: `cdp run` exits 2."""
        return (any(f.user_error for f in self.step_failures)
                and not any(not f.user_error and not f.check for f in self.step_failures))


LOCAL_INSTANCE_YAML = """\
# Local Dagster instance: run history, event logs and schedules in SQLite files under this
# folder, in Dagster's own layout. LocalDagsterInstance keeps the event log's database files
# open between events (cdp_pipelines/operations/local_instance.py). A `storage:` block here
# replaces that default; production uses PostgreSQL (docs/operations.md).
instance_class:
  module: cdp_pipelines.operations.local_instance
  class: LocalDagsterInstance
telemetry:
  enabled: false
"""
"""The dagster.yaml written into a DAGSTER_HOME that has none (and used by the benchmark)."""


def write_local_instance_config(home: Path) -> None:
    """Give a new DAGSTER_HOME the local instance configuration; an existing one is kept."""
    home.mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(LOCAL_INSTANCE_YAML)


def dagster_instance() -> dg.DagsterInstance:
    """The persistent local instance (run history visible in `dagster dev`)."""
    home = os.environ.get("DAGSTER_HOME") or str(settings.PROJECT_ROOT / "data" / "dagster_home")
    write_local_instance_config(Path(home))
    os.environ["DAGSTER_HOME"] = home
    return dg.DagsterInstance.get()


def load_definitions() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def _watch(instance: dg.DagsterInstance, run_id: str, total: int, finished: threading.Event, console: Console) -> None:
    """Follow step events with a cursor (never re-reading the whole run log) and show progress."""
    wanted = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
              dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("starting", total=total)
        cursor, completed = None, 0
        while True:
            done = finished.wait(1.0)
            if instance.has_run(run_id):
                page = instance.get_records_for_run(run_id, cursor=cursor, of_type=wanted)
                cursor = page.cursor
                for record in page.records:
                    event = record.event_log_entry.dagster_event
                    if event.event_type_value == "STEP_START":
                        progress.update(task, description=(event.step_key or "")[:48])
                    else:
                        completed += 1
                progress.update(task, completed=min(completed, total))
            if done:
                progress.update(task, completed=total, description="done")
                return


@contextmanager
def warehouse_kept_open(path: Path) -> Iterator[None]:
    """Hold one connection to the warehouse for the whole in-process run.

    DuckDB shares one database instance among the connections of a process, so while this one is
    open every step's own connection attaches to the loaded instance instead of reading the
    catalog from the file again (about 50 ms a step on a large warehouse) and checkpointing on
    close."""
    anchor = open_warehouse_for_writing(path)
    try:
        yield
    finally:
        anchor.close()


def run_full_refresh(retrain: bool = False, console: Console | None = None,
                     max_concurrent: int | None = None) -> RunOutcome:
    """Materialize every asset and run every check, returning success and a summary."""
    return run_pipeline(incremental=False, retrain=retrain, console=console, max_concurrent=max_concurrent)


def pipeline_run_config(incremental: bool, retrain: bool, max_concurrent: int | None = None) -> dict:
    """Run config of either job; the incremental job's defaults are repeated here because a run
    config given at launch replaces the job's defaults as a whole. `max_concurrent` overrides the
    executor's steps at once (default operations.threaded_executor.DEFAULT_MAX_CONCURRENT)."""
    from cdp_pipelines.operations.run_config import incremental_ops_config

    ops = incremental_ops_config(settings.sources_file()) if incremental else {}
    identity = dict(ops.get("identity_graph", {}).get("config", {}))
    identity["retrain"] = retrain
    ops["identity_graph"] = {"config": identity}
    # Dagster's console logger stays quiet: failures reach the terminal as run_pipeline reports
    # them (one line for a user's mistake), while the event log and the UI keep every trace.
    config = {"ops": ops, "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if max_concurrent is not None:
        config["execution"] = {"config": {"max_concurrent": max_concurrent}}
    return config


def split_check_failures(evaluations) -> tuple[list[dict], list[dict]]:
    """Failed checks that fail the run (severity ERROR) and those only reported (severity WARN)."""
    def describe(e) -> dict:
        return {"asset": e.asset_key.to_user_string(), "check": e.check_name, "description": e.description}

    failures = [e for e in evaluations if not e.passed]
    return ([describe(e) for e in failures if e.severity != dg.AssetCheckSeverity.WARN],
            [describe(e) for e in failures if e.severity == dg.AssetCheckSeverity.WARN])


def _root_cause(info):
    while info.cause is not None:
        info = info.cause
    return info


def describe_failure(step: str, info) -> StepFailure:
    """A failed step's serialized error (SerializableErrorInfo) as a StepFailure."""
    if info is None:
        return StepFailure(step=step, error="failed without an error recorded")
    message = user_error_in_serialized(info)
    if message is not None:
        return StepFailure(step=step, error=message, user_error=True)
    if info.cls_name == "DagsterAssetCheckFailedError":
        return StepFailure(step=step, error=one_line(info.message.partition(": ")[2] or info.message), check=True)
    return StepFailure(step=step, error=one_line(_root_cause(info).message), trace=info.to_string())


def step_failures(events) -> list[StepFailure]:
    """Why each failed step failed, from the run's events; a run that failed outside any step
    (its resources or executor could not start) is reported as step "run"."""
    failures = [describe_failure(e.step_key, e.step_failure_data.error)
                for e in events if e.event_type_value == "STEP_FAILURE"]
    if not failures:
        failures = [describe_failure("run", e.event_specific_data.error)
                    for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE and e.event_specific_data.error]
    return failures


def report_failures(console: Console, failed_checks: list[dict], check_warnings: list[dict],
                    failures: list[StepFailure]) -> None:
    """Failed checks and steps on the console: one line each, and a bug's traceback after its line."""
    for check in failed_checks:
        console.print(f"[bold red]check failed[/] {escape(check['asset'])} {escape(check['check'])}: "
                      f"{escape(str(check['description']))}", soft_wrap=True)
    for check in check_warnings:
        console.print(f"[yellow]check warning[/] {escape(check['asset'])} {escape(check['check'])}: "
                      f"{escape(str(check['description']))}", soft_wrap=True)
    for failure in failures:
        if failure.user_error:
            console.print(f"[bold red]error:[/] {escape(failure.step)}: {escape(failure.error)}", soft_wrap=True)
        elif not failure.check:
            console.print(f"[bold red]step failed[/] {escape(failure.step)}: {escape(failure.error)}", soft_wrap=True)
            if failure.trace:
                console.print(failure.trace, markup=False, highlight=False, soft_wrap=True)


def execute_job_in_this_process(job: dg.JobDefinition, instance: dg.DagsterInstance, run_config: dict,
                                run_id: str) -> JobExecutionResult:
    """Run a job in this process with the job's own executor (the definitions' threaded
    executor), which `execute_in_process` would replace by a one-step-at-a-time executor."""
    run = instance.create_run_for_job(job_def=job, run_id=run_id, run_config=run_config)
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)


def run_pipeline(incremental: bool = False, retrain: bool = False, console: Console | None = None,
                 max_concurrent: int | None = None) -> RunOutcome:
    """Run the full_refresh or incremental job in-process and summarize it."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    defs = load_definitions()
    job = defs.resolve_job_def("incremental" if incremental else "full_refresh")
    instance = dagster_instance()
    run_id = str(uuid.uuid4())
    run_config = pipeline_run_config(incremental, retrain, max_concurrent)
    finished = threading.Event()
    total = len(job.graph.nodes)
    watcher = threading.Thread(target=_watch, args=(instance, run_id, total, finished, console), daemon=True)
    with warehouse_kept_open(settings.warehouse_path()):  # opened first: no progress bar for a run never started
        watcher.start()
        try:
            result = execute_job_in_this_process(job, instance, run_config, run_id)
        finally:
            finished.set()
            watcher.join(timeout=5)
    failed_checks, check_warnings = split_check_failures(result.get_asset_check_evaluations())
    failures = step_failures(result.all_events)
    # Every step that never started: skipped, or after a failed one (the threaded executor
    # records no event for those).
    started_steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    skipped = sorted(node.name for node in job.graph.nodes if node.name not in started_steps)
    succeeded = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    summary = {
        "run_id": run_id,
        "job": job.name,
        "success": result.success and not failed_checks,
        "seconds": round(time.perf_counter() - started, 1),
        "warehouse": str(settings.warehouse_path()),
        **warehouse_summary(settings.warehouse_path(), run_id, identity_resolved=IDENTITY_STEP in succeeded,
                            every_step_ran=result.success and not skipped),
        "failed_checks": failed_checks,
        "check_warnings": check_warnings,
        "failed_steps": [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"],
        "step_errors": {f.step: f.error for f in failures},
        "skipped_steps": skipped,
    }
    report_failures(console, failed_checks, check_warnings, failures)
    return RunOutcome(success=summary["success"] and not failures and not skipped, run_id=run_id, summary=summary,
                      step_failures=failures)


def warehouse_summary(path: Path, run_id: str, identity_resolved: bool = True, every_step_ran: bool = True) -> dict:
    """What run `run_id` wrote, read back from the warehouse: records per source and record changes
    of this run's ingest; customers resolved only if this run's identity step succeeded; tables
    and their sizes only if every step ran, since otherwise some were left by earlier runs."""
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name NOT IN ('main', 'identity_work') ORDER BY 1"
        ).fetchall()
        summary: dict = {"tables_written": len(tables)} if every_step_ran else {}
        names = {t for t, _ in tables}
        if "quality.ingest_runs" in names:
            rows = con.execute(
                "SELECT source, rows_read, rows_staged, rows_quarantined FROM quality.ingest_runs "
                "WHERE run_id = ? ORDER BY 1", [run_id],
            ).fetchall()
            if rows:
                summary["records_per_source"] = {s: {"read": r, "staged": st, "quarantined": q}
                                                 for s, r, st, q in rows}
        if "quality.record_changes" in names:
            changes = con.execute(
                "SELECT source, change, count(*) FROM quality.record_changes WHERE run_id = ? GROUP BY ALL ORDER BY 1, 2",
                [run_id],
            ).fetchall()
            if changes:
                summary["record_changes"] = {}
                for source, change, count in changes:
                    summary["record_changes"].setdefault(source, {})[change] = int(count)
        if "identity.customer_xref" in names and identity_resolved:
            summary["customers_resolved"] = con.execute(
                "SELECT count(DISTINCT customer_id) FROM identity.customer_xref"
            ).fetchall()[0][0]
        if every_step_ran:
            summary["tables"] = {t: int(n) for t, n in tables}
        return summary
    finally:
        con.close()
