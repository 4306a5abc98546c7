"""The whole-graph benchmark (benchmarks/pipeline_bench.py), run for real on a small population:
it must generate, run every stage with a PostgreSQL publish, time bare Splink on the same nodes
and report the figures issue 9 asks for, consistently with each other."""

import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time

import pytest

from cdp_pipelines.bench import (
    BenchmarkError, CollectorTimer, LoadSampler, ServingDatabase, format_cores, machine_cpu_seconds, main,
    steps_alone, usable_workdir,
)
from cdp_pipelines.settings import PROJECT_ROOT

BENCH_TABLE = PROJECT_ROOT / "benchmarks" / "bench_table.py"

STAGES = {"ingest", "standardize", "identity", "context", "profiles", "serving", "segments"}


def test_benchmark_reports_stages_memory_rates_and_bare_splink(tmp_path, postgres_server_url):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "pipeline_bench.py"), "--persons", "400",
         "--workdir", str(tmp_path / "work"), "--serving-url", postgres_server_url, "--bare-repeats", "1",
         "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert usable_workdir(tmp_path / "work") == (tmp_path / "work").resolve()  # a run's own workdir is reused
    table = subprocess.run([sys.executable, str(BENCH_TABLE), str(out)], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    assert f"| **whole graph, wall s** | {r['wall_seconds']:,.1f} |" in table.stdout

    assert r["success"] and not r["failed_checks"]
    assert r["max_concurrent"] == 2
    assert 1 <= r["most_steps_running"] <= 2
    generated = json.loads((tmp_path / "work" / "data" / "generation.json").read_text())["counts"]
    assert r["records_read"] == sum(generated.values())
    assert set(r["stages"]) == STAGES
    assert all(s["seconds"] > 0 for s in r["stages"].values())
    assert abs(sum(s["seconds"] for s in r["stages"].values()) - r["steps_seconds"]) < 0.1
    assert r["steps_running_seconds"] <= r["wall_seconds"]
    assert r["steps_running_seconds"] <= r["steps_seconds"] + 0.1
    assert r["outside_steps_seconds"] == pytest.approx(r["wall_seconds"] - r["steps_running_seconds"], abs=0.02)
    # The JSON rounds wall seconds, so derived figures agree to rounding only.
    assert r["records_per_second"] == pytest.approx(r["records_read"] / r["wall_seconds"], rel=1e-3)
    assert 0 < r["peak_rss"]["self"] < 8
    warehouse = tmp_path / "work" / "warehouse.duckdb"  # bare Splink's tables come after the figure
    assert 0 < r["warehouse_file_bytes"] <= warehouse.stat().st_size
    # The whole machine's busy cores, sampled from /proc/stat, for the run and every stage.
    cores = r["machine"]["cpus"]
    assert 0 < r["machine_cores"]["busy"] <= cores + 0.1 and 0 <= r["machine_cores"]["stolen"] <= cores
    assert all(0 <= s["machine_cores"]["busy"] <= cores + 0.1 for s in r["stages"].values())
    assert all(s["cpu_seconds"] > 0 for s in r["stages"].values())
    assert sum(s["cpu_seconds"] for s in r["stages"].values()) == pytest.approx(
        sum(row["cpu_seconds"] for row in r["steps"]), abs=0.1)

    identity = r["identity"]
    rules = [row["rule"] for row in identity["comparisons_by_rule"]]
    assert rules[:3] == ["email", "phone", "given_name+last_name"]
    assert identity["comparisons"] == sum(row["comparisons"] for row in identity["comparisons_by_rule"]) > 0
    assert identity["comparisons_per_second_predict"] > 0

    bare = r["bare_splink"]
    assert bare["train_predict_seconds"] > 0
    # The same linkage input and settings: bare Splink generates exactly the pipeline's pairs.
    assert [(c["rule"], c["comparisons"]) for c in bare["comparisons_by_rule"]] == \
        [(c["rule"], c["comparisons"]) for c in identity["comparisons_by_rule"]]
    assert r["share_outside_bare_splink"] == pytest.approx(1 - bare["train_predict_seconds"] / r["wall_seconds"], abs=2e-3)
    assert 0 < identity["share_outside_pipeline_splink"] < 1
    assert r["accuracy"]["records_evaluated"] == r["records_read"]
    # The publish's own record: rows per served table and where its seconds went.
    publish = r["publish"]
    assert publish["row_counts"]["customer_360"] == r["customers"]
    assert 0 < publish["seconds"] <= r["stages"]["serving"]["seconds"]
    phases = list(publish["phase_seconds"].values())
    assert "copy customer_context" in publish["phase_seconds"] and phases == sorted(phases, reverse=True)
    # The run's garbage collections, counted while it ran.
    collected = r["garbage_collection"]
    assert sum(collected["collections_by_generation"]) > 0
    assert collected["seconds"] == pytest.approx(sum(collected["seconds_by_generation"]), abs=0.02)

    for line in ("stage", "machine cores", "the whole machine", "records/s", "publish ", "garbage collection",
                 "peak RSS", "warehouse file", "bare Splink train+predict",
                 "share of the identity step outside pipeline Splink", "accuracy"):
        assert line in done.stdout
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage "))
    stage_rows = lines[header + 1:header + 1 + len(r["stages"])]
    assert [row.split(" ", 1)[0] for row in stage_rows] == list(r["stages"])
    for row in stage_rows:  # CPU seconds and the machine's cores stay two readable columns
        assert re.search(r"\d\.\d\s{2,}\d+\.\d\d \(\d+\.\d\d stolen\)$", row), row


def test_the_collector_timer_counts_the_collections_made_while_open():
    with CollectorTimer() as timer:
        gc.collect()
        gc.collect(0)
    gc.collect()  # after it is closed: not counted
    assert timer.collections == [1, 0, 1]
    assert timer.seconds[2] > 0 and timer.longest >= timer.seconds[0]
    assert timer._callback not in gc.callbacks
    assert timer.summary()["collections_by_generation"] == [1, 0, 1]


def test_machine_cores_are_read_between_samples():
    """Busy and stolen core-seconds are cumulative counters: the cores between two moments are
    their growth over the elapsed time, interpolated between samples; unsampled moments give None."""
    sampler = LoadSampler()
    # (epoch, load1, rss, cpu, machine busy, machine stolen)
    sampler.samples = [(100.0, 1.0, 0, 0.0, 50.0, 1.0), (110.0, 1.0, 0, 5.0, 70.0, 1.0),
                       (120.0, 1.0, 0, 8.0, 80.0, 6.0)]
    assert sampler.machine_cores(100.0, 110.0) == {"busy": 2.0, "stolen": 0.0}
    assert sampler.machine_cores(105.0, 115.0) == {"busy": 1.5, "stolen": 0.25}
    assert sampler.machine_cores(100.0, 120.0) == {"busy": 1.5, "stolen": 0.25}
    assert sampler.cpu_at(115.0) == 6.5
    assert sampler.machine_cores(90.0, 110.0) is None
    assert sampler.machine_cores(110.0, 110.0) is None
    sampler.samples = [(100.0, 1.0, 0, 0.0, None, None), (110.0, 1.0, 0, 5.0, None, None)]
    assert sampler.machine_cores(100.0, 110.0) is None  # no /proc/stat: not sampled
    assert format_cores({"busy": 1.5, "stolen": 0.25}) == "1.50 (0.25 stolen)" and format_cores(None) == ""


def test_machine_cpu_seconds_grow_while_this_process_works():
    before = machine_cpu_seconds()
    if before is None:
        pytest.skip("no /proc/stat on this system")
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    busy, stolen = machine_cpu_seconds()
    assert busy - before[0] >= 0.2 and stolen >= before[1]


def test_steps_alone_are_those_no_other_step_overlapped():
    steps = [{"step": "a", "start": 0.0, "end": 5.0}, {"step": "b", "start": 4.0, "end": 6.0},
             {"step": "c", "start": 6.0, "end": 20.0}, {"step": "d", "start": 20.0, "end": 21.0},
             {"step": "e", "start": 20.5, "end": 22.0}]
    assert [row["step"] for row in steps_alone(steps)] == ["c"]


def test_bad_inputs_stop_the_benchmark_with_one_line_before_any_data_is_generated(tmp_path, capsys):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    workdir = tmp_path / "work"
    cases = [
        (["--workdir", str(in_the_way / "work"), "--no-serving"], f"cannot use workdir {in_the_way / 'work'}"),
        (["--workdir", str(workdir), "--serving-url", "postgresql://postgres@127.0.0.1:1/nowhere"],
         "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere: Connection refused; start PostgreSQL or pass --serving-url"),
        (["--workdir", str(workdir), "--no-serving", "--config-dir", str(tmp_path / "missing")],
         "configuration folder"),
    ]
    for arguments, expected in cases:
        assert main(["--persons", "50", *arguments]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
        assert not (workdir / "data").exists()  # nothing was generated
    project_like = tmp_path / "project"
    (project_like / "data").mkdir(parents=True)
    (project_like / "data" / "sources.yaml").write_text("sources: []\n")
    (project_like / "warehouse.duckdb").write_text("not the benchmark's")
    assert main(["--persons", "50", "--workdir", str(project_like), "--no-serving"]) == 2
    assert "is not empty and is not a benchmark workdir" in capsys.readouterr().err
    assert (project_like / "data" / "sources.yaml").read_text() == "sources: []\n"  # nothing deleted
    assert (project_like / "warehouse.duckdb").read_text() == "not the benchmark's"
    with pytest.raises(SystemExit):
        main(["--persons", "0"])
    assert "--persons must be at least 1" in capsys.readouterr().err


def test_a_server_refusing_the_benchmark_database_is_one_clear_line(postgres_server_url):
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    role = f"cdp_bench_nocreate_{int(time.time() * 1000) % 10**9}"
    with psycopg.connect(postgres_server_url, autocommit=True) as con:
        con.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        as_role = make_conninfo(**{**conninfo_to_dict(postgres_server_url), "user": role})
        database = ServingDatabase(as_role, f"{role}_db")
        database.check()  # the server is reachable and lets the role in ...
        with pytest.raises(BenchmarkError, match="refused to prepare the benchmark database .*permission denied"):
            database.__enter__()  # ... but not create a database
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as con:
            con.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_the_benchmark_database_is_dropped_on_exit_unless_kept(postgres_server_url):
    import psycopg

    def exists(name: str) -> bool:
        with psycopg.connect(postgres_server_url) as con:
            return bool(con.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0])

    name = f"cdp_bench_test_{os.getpid()}"
    with ServingDatabase(postgres_server_url, name) as database:
        with psycopg.connect(database.url) as con:
            assert con.execute("SELECT current_database()").fetchone()[0] == name
    assert not exists(name)
    with ServingDatabase(postgres_server_url, name, keep=True):
        pass
    try:
        assert exists(name)  # serving_bench.py --keep: left for inspection
    finally:
        ServingDatabase(postgres_server_url, name).__exit__(None, None, None)
    assert not exists(name)


def test_bench_table_names_what_is_wrong_with_a_file(tmp_path):
    not_json, not_a_run = tmp_path / "notes.json", tmp_path / "other.json"
    not_json.write_text("figures: 12 s")
    not_a_run.write_text('{"persons": 10}')
    for path, expected in ((tmp_path / "missing.json", "cannot read"), (not_json, "is not JSON"),
                           (not_a_run, "is not a pipeline_bench.py result (no records_read")):
        done = subprocess.run([sys.executable, str(BENCH_TABLE), str(path)], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_identity_and_incremental_benchmarks_leave_a_foreign_folder_alone(tmp_path):
    """Both empty the folder they are given before generating: never one they did not make."""
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    for script, option in (("identity_bench.py", "--workdir"), ("incremental_bench.py", "--out")):
        done = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / script), "--persons", "50",
                               option, str(foreign)], capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "is not a benchmark workdir" in done.stderr, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert [p.name for p in foreign.iterdir()] == ["keep.txt"] and (foreign / "keep.txt").read_text() == "mine"


def test_an_earlier_benchmark_workdir_is_emptied_on_request_and_stays_marked(tmp_path):
    workdir = usable_workdir(tmp_path / "work")
    (workdir / "previous-run.txt").write_text("old figures")
    assert usable_workdir(workdir) == workdir and (workdir / "previous-run.txt").exists()  # reused as it is
    assert usable_workdir(workdir, empty=True) == workdir
    assert [p.name for p in workdir.iterdir()] == [".cdp-bench-workdir"]


@pytest.mark.slow
def test_incremental_benchmark_repeats_the_incremental_run_from_the_same_state(tmp_path):
    out = tmp_path / "incremental"
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "incremental_bench.py"),
                           "--persons", "200", "--repeats", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert len(report["incremental_seconds_each"]) == 2
    assert abs(report["incremental_seconds"] - statistics.median(report["incremental_seconds_each"])) <= 0.1
    # The last repeat started from the restored state, so the batch files were new to it again.
    assert report["record_changes"] and sum(c.get("new", 0) for c in report["record_changes"].values()) == \
        report["records_added"] > 0
    assert report["agreement_over_linked_pairs"] >= 0.999
    refused = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "incremental_bench.py"),
                              "--repeats", "0", "--out", str(tmp_path / "other")], capture_output=True, text=True)
    assert refused.returncode == 2 and "must be at least 1" in refused.stderr and "Traceback" not in refused.stderr
