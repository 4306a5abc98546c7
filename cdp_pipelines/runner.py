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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdp_pipelines import settings



@dataclass
class RunOutcome:
    success: bool
    run_id: str
    summary: dict = field(default_factory=dict)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    anchor = duckdb.connect(str(path))
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
    config = {"ops": ops, "loggers": {"console": {"config": {"log_level": "ERROR"}}}}
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
    watcher.start()
    try:
        with warehouse_kept_open(settings.warehouse_path()):
            result = execute_job_in_this_process(job, instance, run_config, run_id)
    finally:
        finished.set()
        watcher.join(timeout=5)
    failed_checks, check_warnings = split_check_failures(result.get_asset_check_evaluations())
    failed_steps = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    summary = {
        "run_id": run_id,
        "job": job.name,
        "success": result.success and not failed_checks,
        "seconds": round(time.perf_counter() - started, 1),
        "warehouse": str(settings.warehouse_path()),
        **warehouse_summary(settings.warehouse_path(), run_id),
        "failed_checks": failed_checks,
        "check_warnings": check_warnings,
        "failed_steps": failed_steps,
        "skipped_steps": skipped,
    }
    for check in failed_checks:
        console.print(f"[bold red]check failed[/] {check['asset']} {check['check']}: {check['description']}")
    for check in check_warnings:
        console.print(f"[yellow]check warning[/] {check['asset']} {check['check']}: {check['description']}")
    return RunOutcome(success=summary["success"] and not failed_steps and not skipped, run_id=run_id, summary=summary)


def warehouse_summary(path: Path, run_id: str | None = None) -> dict:
    """Records per source, customers resolved and tables written, read back from the warehouse."""
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name NOT IN ('main', 'identity_work') ORDER BY 1"
        ).fetchall()
        summary: dict = {"tables_written": len(tables)}
        names = {t for t, _ in tables}
        if "quality.ingest_runs" in names:
            rows = con.execute(
                "SELECT source, arg_max(rows_read, ingested_at), arg_max(rows_staged, ingested_at), "
                "arg_max(rows_quarantined, ingested_at) FROM quality.ingest_runs GROUP BY ALL ORDER BY 1"
            ).fetchall()
            summary["records_per_source"] = {s: {"read": r, "staged": st, "quarantined": q} for s, r, st, q in rows}
        if "quality.record_changes" in names and run_id:
            changes = con.execute(
                "SELECT source, change, count(*) FROM quality.record_changes WHERE run_id = ? GROUP BY ALL ORDER BY 1, 2",
                [run_id],
            ).fetchall()
            if changes:
                summary["record_changes"] = {}
                for source, change, count in changes:
                    summary["record_changes"].setdefault(source, {})[change] = int(count)
        if "identity.customer_xref" in names:
            summary["customers_resolved"] = con.execute(
                "SELECT count(DISTINCT customer_id) FROM identity.customer_xref"
            ).fetchall()[0][0]
        summary["tables"] = {t: int(n) for t, n in tables}
        return summary
    finally:
        con.close()
