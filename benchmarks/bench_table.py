"""Markdown tables from pipeline_bench.py JSON files, one column per run.

Usage: python benchmarks/bench_table.py RUN.json [RUN.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_pipelines.bench import format_cores  # noqa: E402

REQUIRED_KEYS = ("persons", "records_read", "wall_seconds", "stages", "identity", "success")


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def tables(runs: list[dict]) -> str:
    header = "| | " + " | ".join(f"{r['records_read']:,} records" for r in runs) + " |"
    rule = "|---|" + "---:|" * len(runs)
    stages = list(dict.fromkeys(s for r in runs for s in r["stages"]))
    rows = [
        ("persons", [r["persons"] for r in runs]),
        ("load average during run (mean / max)", [f"{r['load_average']['load1_mean']} / {r['load_average']['load1_max']}" for r in runs]),
        ("**whole graph, wall s**", [r["wall_seconds"] for r in runs]),
        ("whole graph, CPU s (this process)", [r["cpu_seconds"] for r in runs]),
        ("steps running at once, on average", [r.get("step_concurrency", 1.0) for r in runs]),
        ("whole machine, cores busy during the run", [format_cores(r.get("machine_cores")) or None for r in runs]),
        *((f"{stage}: cores busy on the whole machine during its span",
           [format_cores(r["stages"].get(stage, {}).get("machine_cores")) or None for r in runs]) for stage in stages
          if any(r["stages"].get(stage, {}).get("machine_cores") for r in runs)),
        *((f"{stage}: step s summed (CPU s)",
           [f"{_fmt(r['stages'][stage]['seconds'])} ({_fmt(r['stages'][stage].get('cpu_seconds'))})" if stage in r["stages"] else "–"
            for r in runs]) for stage in stages),
        ("no step running (definitions, run start, summary), s", [r["outside_steps_seconds"] for r in runs]),
        ("records per second", [r["records_per_second"] for r in runs]),
        ("peak RSS, GiB (process / largest child)", [f"{r['peak_rss']['self']} / {r['peak_rss']['children']}" for r in runs]),
        ("warehouse file, GiB", [round(r["warehouse_file_bytes"] / 2**30, 2) if "warehouse_file_bytes" in r else None
                                 for r in runs]),
        ("Splink nodes", [r["identity"]["splink_nodes"] for r in runs]),
        ("comparisons scored", [r["identity"]["comparisons"] for r in runs]),
        ("comparisons per second of predict", [r["identity"]["comparisons_per_second_predict"] for r in runs]),
        ("identity seconds (deterministic / train / predict / clustering / ids)",
         [" / ".join(_fmt(r["identity"]["seconds"].get(k)) for k in ("deterministic", "splink_train", "splink_predict", "clustering", "stable_ids")) for r in runs]),
        ("pipeline Splink s (train + predict)", [r["pipeline_splink_seconds"] for r in runs]),
        ("bare Splink s (train + predict)", [r.get("bare_splink", {}).get("train_predict_seconds") for r in runs]),
        ("ratio pipeline / bare Splink", [r.get("splink_ratio_pipeline_over_bare") for r in runs]),
        ("share of wall outside bare Splink", [f"{r['share_outside_bare_splink']:.0%}" if r.get("share_outside_bare_splink") is not None else None for r in runs]),
        ("share of the identity step outside the pipeline's Splink",
         [f"{r['identity']['share_outside_pipeline_splink']:.0%}" if r["identity"].get("share_outside_pipeline_splink") is not None else None for r in runs]),
        ("pairwise F1 / B-cubed F1", [f"{r['accuracy']['pairwise']['f1']:.3f} / {r['accuracy']['bcubed']['f1']:.3f}" if r.get("accuracy") else None for r in runs]),
        ("pairwise precision / recall", [f"{r['accuracy']['pairwise']['precision']:.3f} / {r['accuracy']['pairwise']['recall']:.3f}" if r.get("accuracy") else None for r in runs]),
        ("all checks passed", [r["success"] for r in runs]),
    ]
    out = [header, rule] + [f"| {name} | " + " | ".join(_fmt(v) for v in values) + " |" for name, values in rows]
    rules = list(dict.fromkeys(c["rule"] for r in runs for c in r["identity"]["comparisons_by_rule"]))
    out += ["", "| blocking rule | " + " | ".join(f"{r['records_read']:,} records" for r in runs) + " |", rule]
    for name in rules:
        values = [next((c["comparisons"] for c in r["identity"]["comparisons_by_rule"] if c["rule"] == name), None) for r in runs]
        out.append(f"| {name} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(out)


def load_run(path: Path) -> dict:
    """One benchmark result; a file that is missing, not JSON or not pipeline_bench.py's is a ValueError."""
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(run, dict) or key not in run]
    if missing:
        raise ValueError(f"{path} is not a pipeline_bench.py result (no {', '.join(missing)})")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN.json")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(path) for path in args.runs]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(tables(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
