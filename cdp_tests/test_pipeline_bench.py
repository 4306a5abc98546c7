"""The whole-graph benchmark (benchmarks/pipeline_bench.py), run for real on a small population:
it must generate, run every stage with a PostgreSQL publish, time bare Splink on the same nodes
and report the figures issue 9 asks for, consistently with each other."""

import json
import subprocess
import sys

import pytest

from cdp_pipelines.settings import PROJECT_ROOT

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

    for line in ("stage", "records/s", "peak RSS", "bare Splink train+predict",
                 "share of the identity step outside pipeline Splink", "accuracy"):
        assert line in done.stdout
