"""End-to-end benchmark: the whole graph at scale, measured against bare Splink on the same input.

One benchmark run:

1. generates ``--persons`` people (about four source records each) into ``WORKDIR/data``, or
   reuses a generation already there with the same persons and seed;
2. runs the ``full_refresh`` job in this process on a fresh warehouse, artifacts folder, Dagster
   instance and (unless ``--no-serving``) a fresh PostgreSQL database that is dropped afterwards;
3. reads per-step wall time from the Dagster event log (STEP_START to STEP_SUCCESS/FAILURE) and
   groups steps by stage (asset group), records peak RSS of this process and its children, CPU
   time, load average, records per second and comparisons per blocking rule;
4. in a child process, on the warehouse's ``identity.nodes`` just written, trains and predicts
   with bare Splink exactly as ``cdp_pipelines/identity/splink_model.py`` does (same settings,
   same training calls, same connection settings) and reports the pipeline's Splink time over
   bare Splink's, and the share of total time spent outside Splink;
5. evaluates accuracy against the generated ground truth;
6. prints a table and writes the figures as JSON (``WORKDIR/bench.json`` unless ``--json``).

Usage::

    python benchmarks/pipeline_bench.py --persons 250000 --workdir /tmp/cdp-bench/p250000
    cdp bench --persons 250000          # the same, when the command is mounted
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_SERVING_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GENERATION_MARKER = "generation.json"


# ----------------------------------------------------------------------------------------------
# measurement helpers


def peak_rss_bytes() -> dict[str, int]:
    """Peak resident set size of this process and of its largest waited-for child (Linux: KiB)."""
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"self": self_kib * 1024, "children": children_kib * 1024, "max": max(self_kib, children_kib) * 1024}


def file_bytes(path: Path) -> int:
    """Size of a DuckDB database on disk: the file and its write-ahead log, if any."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}.wal")) if p.exists())


def own_peak_rss_bytes() -> int:
    """This process's own high-water resident size (VmHWM), falling back to ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, stolen) core-seconds of the whole machine since boot, from /proc/stat; None where
    that file does not exist. Busy counts every process (the standardize workers, PostgreSQL's
    backends, anything else running), so it tells whether the cores were saturated; stolen is
    time the hypervisor gave this machine's cores to others, the usual cause of noisy runs."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 8:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


class LoadSampler:
    """Samples the 1-minute load average, this process's RSS and CPU time (all threads, DuckDB's
    included) and the whole machine's busy and stolen core-seconds every half second, so each
    step's CPU seconds, and how busy the machine was meanwhile, can be read off afterwards: CPU
    seconds do not grow when other work on the machine slows the run down."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        # (epoch, load1, rss, cpu, machine busy, machine stolen); the last two None off Linux
        self.samples: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _sample(self) -> None:
        machine = machine_cpu_seconds() or (None, None)
        self.samples.append((time.time(), os.getloadavg()[0], self._rss(), cpu_seconds(), *machine))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _at(self, epoch: float, field: int) -> float | None:
        """A cumulative field at a moment, interpolated between samples."""
        points = [(s[0], s[field]) for s in self.samples if s[field] is not None]
        if not points or epoch < points[0][0] or epoch > points[-1][0]:
            return None
        for (t0, c0), (t1, c1) in zip(points, points[1:]):
            if t0 <= epoch <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (epoch - t0) / (t1 - t0)
        return points[-1][1]

    def cpu_at(self, epoch: float) -> float | None:
        """This process's CPU seconds at a moment, interpolated between samples."""
        return self._at(epoch, 3)

    def machine_cores(self, start: float, end: float) -> dict | None:
        """Cores the whole machine kept busy, and cores stolen from it, on average between two
        moments (None when not sampled)."""
        if end <= start:
            return None
        values = [self._at(start, f) for f in (4, 5)] + [self._at(end, f) for f in (4, 5)]
        if any(v is None for v in values):
            return None
        busy0, stolen0, busy1, stolen1 = values
        return {"busy": round((busy1 - busy0) / (end - start), 2), "stolen": round((stolen1 - stolen0) / (end - start), 2)}

    def summary(self) -> dict:
        loads = [s[1] for s in self.samples] or [os.getloadavg()[0]]
        return {"load1_mean": round(sum(loads) / len(loads), 2), "load1_max": round(max(loads), 2),
                "samples": len(self.samples)}


class CollectorTimer:
    """Python's garbage collections in this process while open: count and seconds per generation,
    and the longest. A collection holds the GIL, so every step's Python waits while it runs."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self._started: float | None = None

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:  # a collection started before the timer was added has no start
            took = time.perf_counter() - self._started
            self._started = None
            self.collections[info["generation"]] += 1
            self.seconds[info["generation"]] += took
            self.longest = max(self.longest, took)

    def __enter__(self) -> "CollectorTimer":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict:
        return {"seconds": round(sum(self.seconds), 2), "collections_by_generation": self.collections,
                "seconds_by_generation": [round(x, 2) for x in self.seconds], "longest_seconds": round(self.longest, 3)}


def source_tree() -> dict:
    """Which code was measured: the tree's path and, when it is a git checkout, its commit and
    whether it had uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    info: dict = {"path": str(root)}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                        check=True).stdout.strip()
        # Code changes only: results written by earlier runs of a series do not make the tree dirty.
        info["dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                             ":(exclude)benchmarks/results"], cwd=root,
                                            capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        marker = root / "COMMIT"
        info["commit"] = marker.read_text().strip() if marker.exists() else None
    return info


def gib(n: float) -> float:
    return round(n / 2**30, 2)


# ----------------------------------------------------------------------------------------------
# data and environment


def ensure_generation(data_dir: Path, persons: int, seed: int) -> dict:
    """Generate the source files, or reuse a complete generation with the same persons and seed."""
    marker = data_dir / GENERATION_MARKER
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous.get("persons") == persons and previous.get("seed") == seed:
            return {**previous, "reused": True}
    from cdp_pipelines.synthetic import generate_dataset

    if data_dir.exists():
        shutil.rmtree(data_dir)
    started = time.perf_counter()
    summary = generate_dataset(persons=persons, seed=seed, out_dir=data_dir)
    info = {"persons": persons, "seed": seed, "counts": dict(summary.counts),
            "seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info, indent=2))
    return {**info, "reused": False}


def fresh_environment(workdir: Path, data_dir: Path) -> dict[str, Path]:
    """Empty warehouse, artifacts, exports and Dagster instance under workdir, wired through env."""
    from cdp_pipelines.runner import write_local_instance_config

    paths = {
        "warehouse": workdir / "warehouse.duckdb",
        "artifacts": workdir / "artifacts",
        "exports": workdir / "exports",
        "dagster_home": workdir / "dagster_home",
    }
    for suffix in ("", ".wal"):
        Path(str(paths["warehouse"]) + suffix).unlink(missing_ok=True)
    for key in ("artifacts", "exports", "dagster_home"):
        shutil.rmtree(paths[key], ignore_errors=True)
        paths[key].mkdir(parents=True)
    write_local_instance_config(paths["dagster_home"])  # the instance `cdp run` gets by default
    os.environ.update({
        "CDP_DATA_DIR": str(data_dir),
        "CDP_WAREHOUSE": str(paths["warehouse"]),
        "CDP_ARTIFACTS_DIR": str(paths["artifacts"]),
        "CDP_EXPORT_DIR": str(paths["exports"]),
        "DAGSTER_HOME": str(paths["dagster_home"]),
    })
    return paths


class BenchmarkError(Exception):
    """A problem with the benchmark's inputs the user can fix; printed as one line, no traceback."""


WORKDIR_MARKER = ".cdp-bench-workdir"
"""Written into every workdir the benchmark uses: only such a folder's contents are its to delete."""


def usable_workdir(workdir: Path, *, empty: bool = False) -> Path:
    """The workdir, created, writable and the benchmark's own, before minutes are spent generating.

    A run deletes and rewrites what is in the workdir (`empty`: all of it), so a folder holding
    anything else (the project itself, say) is refused rather than emptied. A folder of an
    earlier run, marked or holding a generation, is reused."""
    workdir = workdir.resolve()
    ours = (workdir / WORKDIR_MARKER).is_file() or (workdir / "data" / GENERATION_MARKER).is_file()
    try:
        if workdir.is_dir() and not ours and any(workdir.iterdir()):
            raise BenchmarkError(
                f"workdir {workdir} is not empty and is not a benchmark workdir; a run deletes and "
                "rewrites the files in it, so pass a new or empty folder")
        if empty and workdir.is_dir():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / WORKDIR_MARKER).write_text("A cdp benchmark workdir: its contents are rewritten by each run.\n")
    except OSError as error:
        raise BenchmarkError(f"cannot use workdir {workdir}: {error.strerror or error}; "
                             "pass --workdir with a writable folder") from None
    return workdir


class ServingDatabase:
    """A fresh PostgreSQL database for one benchmark run, dropped on exit unless `keep`."""

    def __init__(self, admin_url: str, name: str,
                 remedy: str = "pass --serving-url, or measure without publishing with --no-serving",
                 keep: bool = False) -> None:
        self.admin_url = admin_url
        self.name = name
        self.remedy = remedy
        self.keep = keep
        self.url: str | None = None

    def _admin(self):
        """Autocommit connection to the admin database; unreachable or refused is a BenchmarkError."""
        from cdp_pipelines.serving.postgres import ServingConnectionError, connect

        try:
            return connect(self.admin_url, autocommit=True)
        except ServingConnectionError as error:
            raise BenchmarkError(f"{error}; start PostgreSQL or {self.remedy}") from None

    def _execute(self, *statements: str) -> None:
        """Run statements (with {} for the database's quoted name) on one admin connection."""
        import psycopg
        from psycopg import sql

        with self._admin() as con:
            try:
                for statement in statements:
                    con.execute(sql.SQL(statement).format(sql.Identifier(self.name)))
            except psycopg.Error as error:
                raise BenchmarkError(f"PostgreSQL refused to prepare the benchmark database {self.name}: "
                                     f"{str(error).strip().splitlines()[0]}") from None

    def check(self) -> None:
        """Fail now, not after the data is generated, when the server cannot be used."""
        self._admin().close()

    def __enter__(self) -> "ServingDatabase":
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}")
        self.url = make_conninfo(**{**conninfo_to_dict(self.admin_url), "dbname": self.name})
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")


# ----------------------------------------------------------------------------------------------
# the pipeline run and its event log


def step_groups(instance, run_id: str) -> dict[str, str]:
    """step key -> asset group, from the materializations and check evaluations of the run."""
    from cdp_pipelines.runner import load_definitions

    graph = load_definitions().resolve_asset_graph()
    groups: dict[str, str] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        key = None
        if event.event_type_value == "ASSET_MATERIALIZATION":
            key = event.asset_key
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            key = event.event_specific_data.asset_key
        if key is not None and record.step_key not in groups and graph.has(key):
            groups[record.step_key] = graph.get(key).group_name or "default"
    return groups


def step_timings(instance, run_id: str) -> list[dict]:
    """Per step: start, end and wall seconds (relative to the run's first step start)."""
    starts: dict[str, float] = {}
    ends: dict[str, tuple[float, str]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            starts[record.step_key] = record.timestamp
        elif kind in {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}:
            ends[record.step_key] = (record.timestamp, kind)
    if not starts:
        return []
    origin = min(starts.values())
    groups = step_groups(instance, run_id)
    rows = []
    for step, start in sorted(starts.items(), key=lambda kv: kv[1]):
        end, kind = ends.get(step, (start, "UNFINISHED"))
        rows.append({"step": step, "group": groups.get(step, "other"), "status": kind,
                     "start": round(start - origin, 3), "end": round(end - origin, 3),
                     "seconds": round(end - start, 3), "epoch_start": start, "epoch_end": end})
    return rows


def running_seconds(steps: list[dict]) -> float:
    """Wall seconds during which at least one step ran (steps overlap on the threaded executor)."""
    total, reach = 0.0, None
    for row in sorted(steps, key=lambda r: r["start"]):
        if reach is None or row["start"] > reach:
            total += row["end"] - row["start"]
            reach = row["end"]
        elif row["end"] > reach:
            total += row["end"] - reach
            reach = row["end"]
    return total


def most_running(steps: list[dict]) -> int:
    """The most steps that ran at the same moment (one ending as another starts do not overlap)."""
    edges = sorted([(row["start"], 1) for row in steps] + [(row["end"], -1) for row in steps])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def stage_table(steps: list[dict]) -> dict[str, dict]:
    """Per stage: summed step seconds, span from first start to last end, and step count."""
    stages: dict[str, dict] = {}
    for row in steps:
        s = stages.setdefault(row["group"], {"seconds": 0.0, "first_start": row["start"], "last_end": row["end"], "steps": 0})
        s["seconds"] += row["seconds"]
        s["first_start"] = min(s["first_start"], row["start"])
        s["last_end"] = max(s["last_end"], row["end"])
        s["steps"] += 1
        if row.get("cpu_seconds") is not None:
            s["cpu_seconds"] = s.get("cpu_seconds", 0.0) + row["cpu_seconds"]
    for s in stages.values():
        if "cpu_seconds" in s:
            s["cpu_seconds"] = round(s["cpu_seconds"], 2)
        s["seconds"] = round(s["seconds"], 2)
        s["span"] = round(s["last_end"] - s["first_start"], 2)
    return dict(sorted(stages.items(), key=lambda kv: kv[1]["first_start"]))


def run_pipeline(console, sampler: "LoadSampler | None" = None, max_concurrent: int | None = None) -> dict:
    from cdp_pipelines.runner import dagster_instance, run_full_refresh

    cpu0, wall0, epoch0 = cpu_seconds(), time.perf_counter(), time.time()
    with CollectorTimer() as collector:
        outcome = run_full_refresh(retrain=True, console=console, max_concurrent=max_concurrent)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    instance = dagster_instance()
    steps = step_timings(instance, outcome.run_id)
    machine = None
    if sampler is not None:
        sampler._sample()
        for row in steps:
            a, b = sampler.cpu_at(row["epoch_start"]), sampler.cpu_at(row["epoch_end"])
            row["cpu_seconds"] = round(b - a, 3) if a is not None and b is not None else None
            row["machine_cores"] = sampler.machine_cores(row["epoch_start"], row["epoch_end"])
    stages = stage_table(steps)  # after the steps' CPU seconds, which it sums per stage
    if sampler is not None:
        for name, stage in stages.items():
            rows = [r for r in steps if r["group"] == name]
            stage["machine_cores"] = sampler.machine_cores(min(r["epoch_start"] for r in rows),
                                                           max(r["epoch_end"] for r in rows))
        machine = sampler.machine_cores(epoch0, epoch0 + wall)
    return {"outcome": outcome, "wall": wall, "cpu": cpu, "steps": steps, "stages": stages, "machine_cores": machine,
            "publish": publish_figures(instance, outcome.run_id), "garbage_collection": collector.summary()}


def publish_figures(instance, run_id: str) -> dict | None:
    """What the run's publish to PostgreSQL recorded: its seconds, rows per table and the seconds
    of each phase (docs/serving.md), slowest first; None when the run published nothing."""
    from cdp_pipelines.serving.assets import PUBLISHED

    event = instance.get_latest_materialization_event(PUBLISHED)
    if event is None or event.run_id != run_id:
        return None
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    if not metadata.get("published"):
        return None
    phases = metadata.get("phase_seconds") or {}
    return {"seconds": metadata.get("seconds"), "row_counts": metadata.get("row_counts"),
            "phase_seconds": dict(sorted(phases.items(), key=lambda item: -item[1]))}


# ----------------------------------------------------------------------------------------------
# bare Splink, in a child process on the warehouse just written


def bare_splink(warehouse: Path, config_dir: Path) -> dict:
    """Train and predict with Splink directly on identity.nodes, as splink_model.py does."""
    import duckdb
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    from cdp_pipelines import settings
    from cdp_pipelines.identity.config import load_identity_config
    from cdp_pipelines.identity.splink_model import NODE_COLUMNS, blocking_rule_sql, settings_dict
    from cdp_pipelines.resources import configure_warehouse_connection

    config = load_identity_config(config_dir / "identity.yaml").probabilistic
    schema = "bench_bare_splink"
    con = duckdb.connect(str(warehouse))
    # The same connection settings as WarehouseResource.connect gives the pipeline.
    configure_warehouse_connection(con, compact_text=settings.warehouse_compact_text())
    con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    con.execute(f"CREATE SCHEMA {schema}")
    seconds: dict[str, float] = {}
    clock = time.perf_counter
    cpu_start = cpu_seconds()
    try:
        t = clock()
        api = DuckDBAPI(con, output_schema=schema)
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM identity.nodes ORDER BY 1").fetchall()]
        columns = ", ".join(("node_id", "component", "strong", *NODE_COLUMNS))
        frames = [api.register(con.sql(f"SELECT {columns} FROM identity.nodes WHERE source = '{s}'"),
                               table_name=f"bare_nodes_{s}") for s in sources]
        linker = Linker(frames, settings_dict(config), log_level=logging.ERROR)
        seconds["setup"] = clock() - t

        t = clock()
        linker.training.estimate_probability_two_random_records_match(
            [blocking_rule_sql(r, across_components=False) for r in config.training.prior_rules],
            recall=config.training.prior_recall)
        seconds["prior"] = clock() - t
        t = clock()
        linker.training.estimate_u_using_random_sampling(max_pairs=config.training.u_max_pairs, seed=config.training.seed)
        seconds["u"] = clock() - t
        em = []
        for rule in config.training.em_blocking_rules:
            t = clock()
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    blocking_rule_sql(rule, across_components=False), fix_u_probabilities=True)
                converged = True
            except ValueError:
                converged = False
            em.append({"blocking": "+".join(rule), "seconds": round(clock() - t, 2), "converged": converged})
        seconds["em"] = sum(e["seconds"] for e in em)
        t = clock()
        predictions = linker.inference.predict(threshold_match_probability=config.keep_probability)
        seconds["predict"] = clock() - t
        pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()[0][0]
        train_predict = sum(seconds[k] for k in ("setup", "prior", "u", "em", "predict"))
        train_predict_cpu = cpu_seconds() - cpu_start

        # Not part of bare train-and-predict: what the pipeline does on top, timed for attribution.
        extra: dict[str, float] = {}
        t = clock()
        records = linker.blocking_analysis.count_comparisons_from_blocking_rules(
            [blocking_rule_sql(r) for r in config.blocking_rules], record_sample_proportion=1.0)
        extra["count_comparisons"] = clock() - t
        t = clock()
        con.execute(f"CREATE TABLE {schema}.edges_copy AS SELECT * FROM {predictions.physical_name}")
        extra["copy_predictions"] = clock() - t
        t = clock()
        tmp_model = warehouse.parent / "bare_model.json"
        linker.misc.save_model_to_json(str(tmp_model), overwrite=True)
        tmp_model.unlink(missing_ok=True)
        extra["save_model"] = clock() - t
        comparisons = [{"rule": "+".join(rule), "comparisons": int(r["marginal_comparison_count"])}
                       for rule, r in zip(config.blocking_rules, records)]
    finally:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.close()
    return {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "train_predict_seconds": round(train_predict, 2),
        "train_predict_cpu_seconds": round(train_predict_cpu, 2),
        "em_sessions": em,
        "pairs_kept": int(pairs),
        "comparisons_by_rule": comparisons,
        "pipeline_extras_seconds": {k: round(v, 2) for k, v in extra.items()},
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child's
        # ru_maxrss starts at its parent's resident size.
        "peak_rss_bytes": own_peak_rss_bytes(),
    }


def run_bare_in_child(warehouse: Path, config_dir: Path) -> dict:
    # The child imports the same source tree as this process (a checkout or a snapshot of one).
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "cdp_pipelines.bench", "_bare", str(warehouse), str(config_dir)],
        capture_output=True, text=True, check=False, env=env,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# the benchmark


def evaluate_accuracy(warehouse: Path, truth: Path) -> dict:
    import duckdb

    from cdp_pipelines.identity.evaluation import evaluate

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        report = evaluate(con, truth, by_source_pair=False)
    finally:
        con.close()
    return {k: v for k, v in report.items() if k != "by_source_pair"}


def benchmark(persons: int, workdir: Path, seed: int = 42, serving_admin_url: str | None = DEFAULT_SERVING_ADMIN_URL,
              bare: bool = True, evaluate: bool = True, config_dir: Path | None = None, bare_repeats: int = 2,
              max_concurrent: int | None = None) -> dict:
    from rich.console import Console

    from cdp_pipelines import settings
    from cdp_pipelines.operations.threaded_executor import DEFAULT_MAX_CONCURRENT

    console = Console(stderr=True)
    workdir = usable_workdir(workdir)
    if config_dir is not None and not config_dir.is_dir():
        raise BenchmarkError(f"configuration folder {config_dir} does not exist")
    serving = ServingDatabase(serving_admin_url, f"cdp_bench_{persons}_{os.getpid()}") if serving_admin_url else None
    if serving is not None:
        serving.check()
    data_dir = workdir / "data"
    load_before = os.getloadavg()
    t = time.perf_counter()
    generation = ensure_generation(data_dir, persons, seed)
    generation_seconds = time.perf_counter() - t
    paths = fresh_environment(workdir, data_dir)
    if config_dir is not None:
        os.environ[settings.ENV_CONFIG_DIR] = str(config_dir.resolve())

    result: dict = {
        "persons": persons, "seed": seed, "workdir": str(workdir), "source_tree": source_tree(),
        "config_dir": str(config_dir.resolve()) if config_dir else None,
        "max_concurrent": max_concurrent or DEFAULT_MAX_CONCURRENT,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "memory_gib": gib(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))},
        "generation": {**generation, "wall_seconds": round(generation_seconds, 1)},
        "load_average_before": [round(x, 2) for x in load_before],
    }
    rss_before = peak_rss_bytes()
    with LoadSampler() as sampler:
        with serving if serving is not None else nullcontext():
            if serving is not None:
                os.environ[settings.ENV_SERVING_URL] = serving.url
            else:
                os.environ.pop(settings.ENV_SERVING_URL, None)
            run = run_pipeline(console, sampler, max_concurrent)
        pipeline_rss = peak_rss_bytes()
        warehouse_bytes = file_bytes(paths["warehouse"])  # before bare Splink adds its own tables
        rss_trace = [sample[2] for sample in sampler.samples]
        # Bare Splink is repeated (fresh child each time) and the fastest run kept: on a shared
        # machine one run says little about noise.
        bare_runs = [run_bare_in_child(paths["warehouse"], settings.config_dir()) for _ in range(bare_repeats)] if bare else []
        timed = [b for b in bare_runs if "train_predict_seconds" in b]
        bare_result = (min(timed, key=lambda b: b["train_predict_seconds"]) if timed else bare_runs[0]) if bare_runs else None
        if bare_result is not None:
            bare_result = {**bare_result, "repeats_train_predict_seconds": [b.get("train_predict_seconds") for b in bare_runs]}
    result["load_average"] = {**sampler.summary(), "after": [round(x, 2) for x in os.getloadavg()]}

    outcome = run["outcome"]
    identity_summary_path = paths["artifacts"] / "identity" / "last_run_summary.json"
    identity = json.loads(identity_summary_path.read_text()) if identity_summary_path.exists() else {}
    per_source = outcome.summary.get("records_per_source", {})
    records_read = sum(v["read"] for v in per_source.values())
    comparisons = sum(r["comparisons"] for r in identity.get("comparisons_by_rule", []))
    id_seconds = identity.get("seconds", {})
    pipeline_splink = id_seconds.get("splink_train", 0.0) + id_seconds.get("splink_predict", 0.0)
    steps_total = sum(r["seconds"] for r in run["steps"])
    steps_running = running_seconds(run["steps"])
    identity_step = sum(r["seconds"] for r in run["steps"] if r["step"] == "identity_graph")

    result.update({
        "success": outcome.success,
        "failed_checks": outcome.summary.get("failed_checks", []),
        "failed_steps": outcome.summary.get("failed_steps", []),
        "records_read": records_read,
        "records_per_source": per_source,
        "customers": outcome.summary.get("customers_resolved"),
        "wall_seconds": round(run["wall"], 2),
        "steps_seconds": round(steps_total, 2),
        "steps_running_seconds": round(steps_running, 2),
        "step_concurrency": round(steps_total / steps_running, 2) if steps_running else None,
        "most_steps_running": most_running(run["steps"]),
        "outside_steps_seconds": round(run["wall"] - steps_running, 2),
        "cpu_seconds": round(run["cpu"], 1),
        "cpu_utilisation": round(run["cpu"] / run["wall"], 2) if run["wall"] else None,
        "machine_cores": run.get("machine_cores"),
        "records_per_second": round(records_read / run["wall"], 1) if run["wall"] else None,
        "stages": run["stages"],
        "steps": run["steps"],
        "peak_rss": {k: gib(v) for k, v in pipeline_rss.items()},
        "peak_rss_sampled_gib": gib(max(rss_trace)) if rss_trace else None,
        "peak_rss_before_run_gib": gib(rss_before["max"]),
        "warehouse_file_bytes": warehouse_bytes,
        "identity": {
            "records": identity.get("records"), "splink_nodes": identity.get("splink_nodes"),
            "seconds": id_seconds, "identity_step_seconds": round(identity_step, 2),
            "identity_unaccounted_seconds": round(identity_step - sum(id_seconds.values()), 2),
            "comparisons_by_rule": identity.get("comparisons_by_rule", []),
            "comparisons": comparisons,
            "comparisons_per_second_predict": round(comparisons / id_seconds["splink_predict"], 1)
            if id_seconds.get("splink_predict") else None,
            "probabilistic_edges": identity.get("probabilistic_edges"),
            "links_accepted": identity.get("links_accepted"),
        },
        "pipeline_splink_seconds": round(pipeline_splink, 2),
        "publish": run["publish"],
        "garbage_collection": run["garbage_collection"],
    })
    if bare_result is not None:
        result["bare_splink"] = bare_result
        bare_seconds = bare_result.get("train_predict_seconds")
        if bare_seconds:
            result["splink_ratio_pipeline_over_bare"] = round(pipeline_splink / bare_seconds, 2)
            result["share_outside_bare_splink"] = round(1 - bare_seconds / run["wall"], 3)
            result["peak_rss"]["bare_splink_child"] = gib(bare_result["peak_rss_bytes"])
    result["share_outside_pipeline_splink"] = round(1 - pipeline_splink / run["wall"], 3) if run["wall"] else None
    # The same share within the identity step: what resolution adds around Splink.
    result["identity"]["share_outside_pipeline_splink"] = (
        round(1 - pipeline_splink / identity_step, 3) if identity_step else None)
    if evaluate and (data_dir / "ground_truth.csv").exists() and paths["warehouse"].exists():
        result["accuracy"] = evaluate_accuracy(paths["warehouse"], data_dir / "ground_truth.csv")
    return result


def format_cores(machine: dict | None) -> str:
    """"1.68 (0.00 stolen)": busy and stolen cores of the whole machine, "" when not sampled."""
    return f"{machine['busy']:.2f} ({machine['stolen']:.2f} stolen)" if machine else ""


def steps_alone(steps: list[dict]) -> list[dict]:
    """Steps during which no other step ran: their machine figures are their own."""
    return [row for row in steps
            if not any(o is not row and o["start"] < row["end"] and o["end"] > row["start"] for o in steps)]


def format_report(r: dict) -> str:
    lines = [f"persons {r['persons']:,}  records {r['records_read']:,}  customers {r.get('customers') or 0:,}  "
             f"success {r['success']}",
             f"load average before {r['load_average_before']}  during mean {r['load_average']['load1_mean']} "
             f"max {r['load_average']['load1_max']}",
             "",
             "(step s: the stage's step durations summed; CPU s: the process's CPU while they ran. "
             "Steps overlap, so both count shared time once per step. Machine cores: the whole "
             "machine's busy cores during the stage's span, every process included, and cores stolen by "
             "the hypervisor)",
             f"{'stage':<14}{'steps':>6}{'step s':>10}{'span s':>10}{'CPU s':>9}  machine cores"]
    for name, s in r["stages"].items():
        cpu = f"{s['cpu_seconds']:>9.1f}" if s.get("cpu_seconds") is not None else f"{'':>9}"
        lines.append(f"{name:<14}{s['steps']:>6}{s['seconds']:>10.1f}{s['span']:>10.1f}{cpu}"
                     f"  {format_cores(s.get('machine_cores'))}".rstrip())
    lines.append(f"{'(no step running)':<20}{r['outside_steps_seconds']:>10.1f}")
    lines.append(f"{'total':<20}{r['wall_seconds']:>10.1f}   "
                 f"({r['steps_seconds']:.1f} step s in {r['steps_running_seconds']:.1f} s: "
                 f"{r['step_concurrency']} steps running on average, at most {r['most_steps_running']})")
    ident = r["identity"]
    lines += ["",
              f"records/s {r['records_per_second']:,}   CPU {r['cpu_seconds']} s "
              f"({r['cpu_utilisation']} cores busy on average; the whole machine "
              f"{format_cores(r.get('machine_cores')) or 'not sampled'})",
              *(f"  ran alone: {row['step']} {row['seconds']:.1f} s, machine {format_cores(row.get('machine_cores'))}"
                for row in steps_alone(r["steps"]) if row["seconds"] >= 5),
              *([f"publish {pub['seconds']} s: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                         list(pub["phase_seconds"].items())[:6])]
                if (pub := r.get("publish")) else []),
              *([f"garbage collection {gcs['seconds']} s in this process ({sum(gcs['collections_by_generation']):,} "
                 f"collections, {gcs['collections_by_generation'][2]} full; longest {gcs['longest_seconds']} s)"]
                if (gcs := r.get("garbage_collection")) else []),
              f"peak RSS {r['peak_rss']['max']} GiB (self {r['peak_rss']['self']}, children {r['peak_rss']['children']})"
              f"  warehouse file {gib(r['warehouse_file_bytes'])} GiB",
              f"identity seconds {ident['seconds']}  (identity step {ident['identity_step_seconds']} s)",
              f"splink nodes {ident['splink_nodes']:,}  comparisons {ident['comparisons']:,}  "
              f"per second of predict {ident['comparisons_per_second_predict']:,}"]
    for row in ident["comparisons_by_rule"]:
        lines.append(f"  {row['rule']:<28}{row['comparisons']:>14,}")
    bare = r.get("bare_splink")
    if bare and "train_predict_seconds" in bare:
        lines += [f"bare Splink train+predict {bare['train_predict_seconds']} s {bare['seconds']} "
                  f"(fastest of {bare.get('repeats_train_predict_seconds')})",
                  f"pipeline Splink {r['pipeline_splink_seconds']} s  ratio pipeline/bare "
                  f"{r['splink_ratio_pipeline_over_bare']}",
                  f"share of total outside bare Splink {r['share_outside_bare_splink']:.0%}, outside pipeline "
                  f"Splink {r['share_outside_pipeline_splink']:.0%}",
                  f"share of the identity step outside pipeline Splink "
                  f"{ident['share_outside_pipeline_splink']:.0%}" if ident.get("share_outside_pipeline_splink") is not None
                  else "share of the identity step outside pipeline Splink unknown",
                  f"pipeline extras (timed bare) {bare['pipeline_extras_seconds']}"]
    elif bare:
        lines.append(f"bare Splink failed: {bare.get('error', '')[-300:]}")
    acc = r.get("accuracy")
    if acc:
        lines.append("accuracy " + json.dumps({k: v for k, v in acc.items() if k in ("pairwise", "bcubed")}))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_bare"]:
        print(json.dumps(bare_splink(Path(argv[1]), Path(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description="Whole-graph benchmark against bare Splink.")
    parser.add_argument("--persons", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None, help="default /tmp/cdp-bench/p<persons>")
    parser.add_argument("--serving-url", default=DEFAULT_SERVING_ADMIN_URL,
                        help="PostgreSQL URL of an existing database used to create and drop the benchmark's own")
    parser.add_argument("--no-serving", action="store_true", help="do not publish to PostgreSQL")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Splink comparison")
    parser.add_argument("--bare-repeats", type=int, default=2, help="bare Splink runs; the fastest is reported")
    parser.add_argument("--no-evaluate", action="store_true")
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="configuration folder to use instead of the project's config/ (CDP_CONFIG_DIR)")
    parser.add_argument("--json", type=Path, default=None, help="default WORKDIR/bench.json")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="steps running at once (default 2; 1: one after another)")
    args = parser.parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        parser.error("--max-concurrent must be at least 1")
    if args.persons < 1:
        parser.error("--persons must be at least 1")
    workdir = args.workdir or Path("/tmp/cdp-bench") / f"p{args.persons}"
    out = args.json or workdir / "bench.json"
    try:
        result = benchmark(args.persons, workdir, seed=args.seed,
                           serving_admin_url=None if args.no_serving else args.serving_url,
                           bare=not args.no_bare, evaluate=not args.no_evaluate, config_dir=args.config_dir,
                           bare_repeats=max(1, args.bare_repeats), max_concurrent=args.max_concurrent)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str))
    except OSError as error:  # the figures are still printed below; only the file is missing
        print(f"error: cannot write {out}: {error.strerror or error}", file=sys.stderr)
        print(format_report(result))
        return 2
    print(format_report(result))
    print(f"\nJSON: {out}")
    return 0 if result["success"] else 1


if __name__ == "__main__":
    sys.exit(main())


def bench_command(
    persons: Annotated[int, typer.Option(min=1, help="People to generate (about four source records each).")],
    workdir: Annotated[Optional[Path], typer.Option(help="Data, warehouse and results (default /tmp/cdp-bench/p<persons>).")] = None,
    serving_url: Annotated[str, typer.Option(help="PostgreSQL database used to create and drop the run's own.")] = DEFAULT_SERVING_ADMIN_URL,
    no_serving: Annotated[bool, typer.Option("--no-serving", help="Do not publish to PostgreSQL.")] = False,
    no_bare: Annotated[bool, typer.Option("--no-bare", help="Skip the bare Splink comparison.")] = False,
    bare_repeats: Annotated[int, typer.Option(min=1, help="Bare Splink runs; the fastest is reported.")] = 2,
    config_dir: Annotated[Optional[Path], typer.Option(help="Configuration folder instead of config/.")] = None,
    json_out: Annotated[Optional[Path], typer.Option(help="Results JSON (default WORKDIR/bench.json).")] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1, help="Steps running at once (default 2).")] = None,
) -> None:
    """Run the whole graph at scale and compare its Splink time with bare Splink's (docs/performance.md).

    Exits with 1 when the run or a check failed.
    """
    # Mounted by the main CLI as `cdp bench` (app.command("bench")(bench_command)).
    argv = ["--persons", str(persons), "--serving-url", serving_url, "--bare-repeats", str(bare_repeats)]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    if no_serving:
        argv.append("--no-serving")
    if no_bare:
        argv.append("--no-bare")
    if config_dir is not None:
        argv += ["--config-dir", str(config_dir)]
    if json_out is not None:
        argv += ["--json", str(json_out)]
    if max_concurrent is not None:
        argv += ["--max-concurrent", str(max_concurrent)]
    code = main(argv)
    if code:
        raise typer.Exit(code)
