"""Incremental run against full refresh on generated data.

Generates N persons, runs a full refresh, then adds about 1% more records as batch files beside
the originals (records of a second generated population, written as `<source>_batch2.<ext>`,
matching globs `<source>*.<ext>` in a copied sources file), runs the incremental job, and then a
full refresh over the same files into a second warehouse. With `--repeats N` the incremental run
is timed N times, each from the same state (the first full refresh's warehouse, artifacts and
exports restored, and flushed to disk before the clock starts), and the median is used: the
machines are noisy. Prints both times, their ratio
(target: incremental <= 1/5 of full) and the agreement of same-customer decisions between the
two results over record pairs (target >= 99.9%), counted in SQL over the pairs inside clusters
of either result.

    python benchmarks/incremental_bench.py --persons 20000 --out /tmp/incremental_bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
import yaml


def _env(root: Path, name: str) -> dict[str, str]:
    return {
        "CDP_DATA_DIR": str(root / "data"),
        "CDP_SOURCES_FILE": str(root / "sources.yaml"),
        "CDP_WAREHOUSE": str(root / f"{name}.duckdb"),
        "CDP_ARTIFACTS_DIR": str(root / f"artifacts_{name}"),
        "CDP_EXPORT_DIR": str(root / f"exports_{name}"),
        "DAGSTER_HOME": str(root / "dagster_home"),
    }


def _run(root: Path, name: str, incremental: bool) -> dict:
    os.environ.update(_env(root, name))
    from cdp_pipelines.runner import run_pipeline

    outcome = run_pipeline(incremental=incremental)
    if not outcome.success:
        raise SystemExit(f"{name} run failed: {json.dumps(outcome.summary, default=str)[:2000]}")
    return {**outcome.summary, "slowest_steps": _slowest_steps(outcome.run_id)}


def _slowest_steps(run_id: str, top: int = 12) -> dict[str, float]:
    """Wall seconds of the run's slowest steps, read from the Dagster instance."""
    from cdp_pipelines.runner import dagster_instance

    stats = dagster_instance().get_run_step_stats(run_id)
    timed = [(s.step_key, s.end_time - s.start_time) for s in stats if s.start_time and s.end_time]
    return {key: round(seconds, 2) for key, seconds in sorted(timed, key=lambda t: -t[1])[:top]}


def _state_paths(root: Path, name: str) -> list[Path]:
    """What a run of `name` reads and changes besides the data folder."""
    env = _env(root, name)
    warehouse = Path(env["CDP_WAREHOUSE"])
    return [warehouse, warehouse.with_name(warehouse.name + ".wal"),
            Path(env["CDP_ARTIFACTS_DIR"]), Path(env["CDP_EXPORT_DIR"])]


def _copy_state(paths: list[Path], source: Path, target: Path) -> None:
    """Copy the `paths` found under `source` to the same names under `target` (replacing them),
    then flush them to disk, so a timed run does not pay for writing back the copy."""
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        origin, destination = source / path.name, target / path.name
        if destination.is_dir():
            shutil.rmtree(destination)
        elif destination.exists():
            destination.unlink()
        if origin.is_dir():
            shutil.copytree(origin, destination)
        elif origin.exists():
            shutil.copy2(origin, destination)
    os.sync()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _globbed_sources(project_sources: Path, target: Path) -> None:
    """The project's sources with `name.ext` paths widened to `name*.ext` (batch files match)."""
    document = yaml.safe_load(project_sources.read_text())
    for source in document["sources"]:
        path = Path(source["path"])
        if "*" not in source["path"]:
            source["path"] = str(path.with_name(f"{path.stem}*{path.suffix}"))
    target.write_text(yaml.safe_dump(document, sort_keys=False))


def _write_batch(data: Path, extra: Path, share: float, seed: int) -> int:
    """Take `share` of another population's records per source, ids prefixed so they are new."""
    con = duckdb.connect()
    added = 0
    for original in sorted(data.iterdir()):
        if original.suffix not in {".csv", ".jsonl"} or original.stem in {"ground_truth", "stories"}:
            continue
        source = extra / original.name
        if not source.exists():
            continue
        target = data / f"{original.stem}_batch2{original.suffix}"
        reader = (f"read_csv('{source}', all_varchar=true, header=true)" if original.suffix == ".csv"
                  else f"read_json('{source}', format='newline_delimited', records=true)")
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM {reader} USING SAMPLE {share * 100}% "
                    f"(bernoulli, {seed})")
        if not con.execute("SELECT count(*) FROM t").fetchall()[0][0]:
            continue  # an empty file would break the source's contract
        columns = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
        # Every column that holds an id-like value of the other population gets a prefix so the
        # batch adds new records (and new people) rather than colliding with the first population.
        id_like = [c for c in columns if c.endswith("_id") or c in {"order_number", "loyalty_card"}]
        select = ", ".join(f"CASE WHEN \"{c}\" IS NULL THEN NULL ELSE 'b2-' || \"{c}\" END AS \"{c}\""
                           if c in id_like else f'"{c}"' for c in columns)
        if original.suffix == ".csv":
            con.execute(f"COPY (SELECT {select} FROM t) TO '{target}' (HEADER, DELIMITER ',')")
        else:
            con.execute(f"COPY (SELECT {select} FROM t) TO '{target}' (FORMAT json)")
        added += con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
    return added


def pair_agreement(first: Path, second: Path) -> dict:
    """Share of record pairs on which both results make the same same-customer decision.

    Only pairs inside a cluster of either result can disagree, so those are the pairs counted
    (pairs outside both are "different customer" in both and agree)."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{first}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{second}' AS b (READ_ONLY)")
    row = con.execute(
        """
        WITH x AS (
            SELECT a.source || '|' || a.source_record_id AS rec, a.customer_id AS ca, b.customer_id AS cb
            FROM a.identity.customer_xref a JOIN b.identity.customer_xref b USING (source, source_record_id)),
        pa AS (SELECT x1.rec r1, x2.rec r2 FROM x x1 JOIN x x2 ON x1.ca = x2.ca AND x1.rec < x2.rec),
        pb AS (SELECT x1.rec r1, x2.rec r2 FROM x x1 JOIN x x2 ON x1.cb = x2.cb AND x1.rec < x2.rec),
        both_ AS (SELECT count(*) AS n FROM pa JOIN pb USING (r1, r2))
        SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM pa), (SELECT count(*) FROM pb), (SELECT n FROM both_)
        """
    ).fetchall()[0]
    records, pairs_a, pairs_b, pairs_both = row
    total_pairs = records * (records - 1) // 2
    disagree = (pairs_a - pairs_both) + (pairs_b - pairs_both)
    return {
        "records_compared": records,
        "same_customer_pairs_incremental": pairs_a,
        "same_customer_pairs_full": pairs_b,
        "pairs_disagreeing": disagree,
        "agreement_over_all_pairs": 1 - disagree / total_pairs if total_pairs else 1.0,
        "agreement_over_linked_pairs": pairs_both / (pairs_a + pairs_b - pairs_both) if pairs_a + pairs_b else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=0.01, help="share of records added as batch files")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("/tmp/cdp_incremental_bench"))
    parser.add_argument("--repeats", type=_positive, default=1,
                        help="time the incremental run this many times from the same state; the median counts")
    args = parser.parse_args()

    from cdp_pipelines import settings
    from cdp_pipelines.bench import BenchmarkError, usable_workdir
    from cdp_pipelines.synthetic import generate_dataset

    try:
        root = usable_workdir(args.out, empty=True)
    except BenchmarkError as error:
        sys.exit(f"error: {error}")
    generate_dataset(persons=args.persons, seed=args.seed, out_dir=root / "data")
    generate_dataset(persons=args.persons, seed=args.seed + 1, out_dir=root / "extra")
    _globbed_sources(settings.PROJECT_ROOT / "data" / "sources.yaml", root / "sources.yaml")

    started = time.perf_counter()
    _run(root, "incremental", incremental=False)
    first_full = time.perf_counter() - started

    added = _write_batch(root / "data", root / "extra", args.share, args.seed)
    state = _state_paths(root, "incremental")
    if args.repeats > 1:
        _copy_state(state, root, root / "before_incremental")
    times = []
    for repeat in range(args.repeats):
        if repeat:
            _copy_state(state, root / "before_incremental", root)
        started = time.perf_counter()
        incremental = _run(root, "incremental", incremental=True)
        times.append(time.perf_counter() - started)
    incremental_seconds = statistics.median(times)

    started = time.perf_counter()
    full = _run(root, "full", incremental=False)
    full_seconds = time.perf_counter() - started

    report = {
        "persons": args.persons,
        "records_added": added,
        "record_changes": incremental.get("record_changes"),
        "first_full_refresh_seconds": round(first_full, 1),
        "incremental_seconds": round(incremental_seconds, 1),
        "incremental_seconds_each": [round(t, 1) for t in times],
        "full_refresh_seconds": round(full_seconds, 1),
        "incremental_over_full": round(incremental_seconds / full_seconds, 3),
        "target_ratio": 0.2,
        **pair_agreement(root / "incremental.duckdb", root / "full.duckdb"),
        "target_agreement": 0.999,
        "slowest_steps_incremental": incremental["slowest_steps"],
        "slowest_steps_full": full["slowest_steps"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
