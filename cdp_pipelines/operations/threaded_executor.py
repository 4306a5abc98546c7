"""The `threaded` executor: a run's steps in one process, several at a time, on threads.

Why: the embedded DuckDB warehouse takes one writing process, so Dagster's multiprocess executor
cannot be used, and the in-process executor runs one step at a time, leaving the second core of
a small machine idle while a step waits on pandas or a single-threaded library. DuckDB lets
many connections of one process write different tables at once and releases the GIL while it
works, so independent steps (one source's ingest beside another's standardization, the context
models beside the profiles) overlap well on threads.

It is the in-process executor with one change: where that one executes the next ready step and
waits for it, this one keeps up to `max_concurrent` ready steps running, each on its own thread
with its own step context, and passes their events on as they come. The run's resources, log
manager and log capture are set up once, as in the in-process executor. Dependencies, retries,
skips and the `dagster/priority` tag are honoured by Dagster's own `ActiveExecution`. A running
step is never killed: on interruption no new step starts and the run waits for those running.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor
from dagster._utils.error import SerializableErrorInfo, serializable_error_info_from_exc_info

DEFAULT_MAX_CONCURRENT = 2
"""Steps at once: the two cores of the reference machine (see docs/performance.md)."""

DEFAULT_SWITCH_INTERVAL_MS = 1.0
"""How long a thread may hold the GIL while another waits for it, during a run (Python's default
is 5 ms). A step returning from a DuckDB statement, which ran without the GIL, waits for it while
the other step runs Python (pandas, Great Expectations, Dagster's events); a step issuing hundreds
of small statements paid up to 5 ms after each one. In alternated 1M incremental runs, 1 ms was
shorter in every pair (about 8% on average); the measurement is in docs/operations.md."""

DEFAULT_GC_THRESHOLD = 100_000
"""Python's first garbage-collection threshold during a run (its default is 700). A run
allocates millions of short-lived containers (unpickled standardize results, pandas and
Dagster's events), and at 700 the collector ran about 3,300 times at 1M records, 12 or 13 of
them full collections of up to 0.6 s that hold the GIL, so every other step waits: 5.4-6.0 s of
collection per run. With the objects that exist before the run frozen (`gc.freeze`: Dagster,
the definitions) and this threshold, 1.1-1.3 s, peak memory unchanged (docs/operations.md)."""

_POLL_SECONDS = 0.05


class _StepFinished:
    """Queued by a step's thread after its last event, with the events (for hooks) and the
    error that ended the thread, if the step machinery itself failed."""

    def __init__(self, step_key: str, events: list[DagsterEvent], error: SerializableErrorInfo | None) -> None:
        self.step_key = step_key
        self.events = events
        self.error = error


def _run_step(step_context, events: queue.Queue) -> None:
    """The body of a step's thread: its events into the queue, then a _StepFinished."""
    produced: list[DagsterEvent] = []
    error = None
    try:
        for event in dagster_event_sequence_for_step(step_context):
            produced.append(event)
            events.put(event)
    except BaseException:  # the step's own errors are events already; this is the machinery failing
        error = serializable_error_info_from_exc_info(sys.exc_info())
    events.put(_StepFinished(step_context.step.key, produced, error))


class ThreadedExecutor(Executor):
    """Dagster's in-process executor, with up to `max_concurrent` steps running at once."""

    def __init__(self, retries: RetryMode, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
                 switch_interval_ms: float = DEFAULT_SWITCH_INTERVAL_MS,
                 gc_threshold: int = DEFAULT_GC_THRESHOLD) -> None:
        if max_concurrent < 1:
            raise dg.DagsterInvariantViolationError(
                f"threaded executor: max_concurrent must be at least 1, not {max_concurrent}")
        if not 0 < switch_interval_ms <= 1000:
            raise dg.DagsterInvariantViolationError(
                f"threaded executor: switch_interval_ms must be above 0 and at most 1000, not {switch_interval_ms}")
        if gc_threshold < 0:
            raise dg.DagsterInvariantViolationError(
                f"threaded executor: gc_threshold must be 0 (Python's own) or above, not {gc_threshold}")
        self._retries = retries
        self.max_concurrent = max_concurrent
        self.switch_interval_ms = switch_interval_ms
        self.gc_threshold = gc_threshold

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in process (pid: {os.getpid()}) on up to {self.max_concurrent} threads",
            event_specific_data=EngineEventData.in_process(os.getpid(), execution_plan.step_keys_to_execute),
        )

        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=self._run_steps,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        )

    def _run_steps(self, job_context: PlanExecutionContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        """Dagster's `inner_plan_execution_iterator`, keeping up to `max_concurrent` steps running."""
        log_manager = job_context.instance.compute_log_manager
        log_key = log_manager.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
        step_keys = [step.key for step in execution_plan.get_steps_to_execute_in_topo_order()]
        events: queue.Queue = queue.Queue()
        running: dict[str, tuple[threading.Thread, StepExecutionContext]] = {}
        with InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency, \
                execution_plan.start(retry_mode=job_context.retry_mode, instance_concurrency_context=concurrency,
                                     step_dependency_config=job_context.step_dependency_config) as active, \
                log_manager.capture_logs(log_key) as log_context, \
                self._interpreter_tuned():
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            try:
                while not active.is_complete or running:
                    yield from self._start_ready_steps(job_context, active, running, events)
                    try:
                        item = events.get(timeout=_POLL_SECONDS)
                    except queue.Empty:
                        continue
                    if isinstance(item, DagsterEvent):
                        yield item  # logged now; handled once the step's thread is done (below)
                    else:
                        yield from self._finish_step(job_context, active, running, item)
            except BaseException as stop:
                # Interrupted (or the orchestration failed): start nothing more, let running steps end.
                if running and not isinstance(stop, GeneratorExit):  # a closed generator may not yield
                    yield DagsterEvent.engine_event(
                        job_context, f"Waiting for the running steps to finish: {sorted(running)}",
                        EngineEventData.interrupted(sorted(running)))
                for thread, _ in running.values():
                    thread.join()
                raise

    @contextmanager
    def _interpreter_tuned(self) -> Iterator[None]:
        """While the steps run: the thread switch interval (DEFAULT_SWITCH_INTERVAL_MS) and, unless
        gc_threshold is 0, the raised first collection threshold with what exists before the run
        frozen (DEFAULT_GC_THRESHOLD); all restored after. A process that froze objects itself keeps
        them frozen, and nothing is thawed for it."""
        interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
        froze = bool(self.gc_threshold) and gc.get_freeze_count() == 0
        sys.setswitchinterval(self.switch_interval_ms / 1000)
        if froze:
            gc.freeze()
        if self.gc_threshold:
            gc.set_threshold(self.gc_threshold, *thresholds[1:])
        try:
            yield
        finally:
            sys.setswitchinterval(interval)
            gc.set_threshold(*thresholds)
            if froze:
                gc.unfreeze()

    def _start_ready_steps(self, job_context: PlanExecutionContext, active: ActiveExecution,
                           running: dict, events: queue.Queue) -> Iterator[DagsterEvent]:
        while len(running) < self.max_concurrent:
            steps = active.get_steps_to_execute(limit=self.max_concurrent - len(running))
            yield from active.concurrency_event_iterator(job_context)
            if not steps:
                return
            for step in steps:
                step_context = job_context.for_step(step, active.get_known_state())
                thread = threading.Thread(target=_run_step, args=(step_context, events),
                                          name=f"step {step.key}", daemon=True)
                running[step.key] = (thread, step_context)
                thread.start()

    def _finish_step(self, job_context: PlanExecutionContext, active: ActiveExecution, running: dict,
                     finished: _StepFinished) -> Iterator[DagsterEvent]:
        thread, step_context = running.pop(finished.step_key)
        thread.join()
        # Only now may the plan learn the step's outcome: were a retry or a dependent started
        # earlier, it could overlap the end of this very thread.
        for event in finished.events:
            active.handle_event(event)
        if finished.error is not None:
            failure = self.log_failure_or_retry_event_after_error(step_context, finished.error, active.get_known_state())
            finished.events.append(failure)
            yield failure
            active.handle_event(failure)
        active.verify_complete(job_context, finished.step_key)
        for event in active.plan_events_iterator(job_context):
            finished.events.append(event)
            yield event
        yield from _trigger_hook(step_context, finished.events)


@dg.executor(
    name="threaded",
    config_schema={
        "retries": get_retries_config(),
        "max_concurrent": dg.Field(int, default_value=DEFAULT_MAX_CONCURRENT,
                                   description="Steps running at once (1 runs them one after another)."),
        "switch_interval_ms": dg.Field(float, default_value=DEFAULT_SWITCH_INTERVAL_MS,
                                       description="Python's thread switch interval while the steps run "
                                                   "(sys.setswitchinterval), in milliseconds; restored after."),
        "gc_threshold": dg.Field(int, default_value=DEFAULT_GC_THRESHOLD,
                                 description="Python's first garbage-collection threshold while the steps run, "
                                             "with the objects made before the run frozen (gc.freeze); "
                                             "restored after. 0 leaves the collector as it is."),
    },
)
def threaded_executor(init_context: dg.InitExecutorContext) -> ThreadedExecutor:
    """Steps of a run on threads of the run's process, up to `max_concurrent` at once."""
    config = init_context.executor_config
    return ThreadedExecutor(retries=RetryMode.from_config(config["retries"]),  # type: ignore[arg-type]
                            max_concurrent=int(config["max_concurrent"]),
                            switch_interval_ms=float(config["switch_interval_ms"]),
                            gc_threshold=int(config["gc_threshold"]))
