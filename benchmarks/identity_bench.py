"""Identity accuracy and id stability on generated data, as the identity targets define them.

    .venv/bin/python benchmarks/identity_bench.py --persons 20000 --seed 7 [--workdir DIR]

1. Generates persons * 1.05 people. The last 5% of them are "new persons"; for 10% of the others
   one of their records is held back as a "new record".
2. Runs ingest -> standardize -> identity on the data without the new persons and records, then
   again on the whole data (a full refresh each time, as a daily job would).
3. Prints accuracy (pairwise and B-cubed precision/recall/F1, precision among strongly identified
   records) of the second run against ground truth, and stability: the share of first-run
   records whose true person was not affected by a merge or split that keep their customer_id.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_pipelines.bench import BenchmarkError, usable_workdir  # noqa: E402
from cdp_pipelines.identity import assets as identity_assets  # noqa: E402
from cdp_pipelines.identity.evaluation import evaluate  # noqa: E402
from cdp_pipelines.ingest.assets import build_ingest_definitions  # noqa: E402
from cdp_pipelines.resources import project_resources  # noqa: E402
from cdp_pipelines.settings import PROJECT_ROOT  # noqa: E402
from cdp_pipelines.standardize.assets import build_standardize_definitions  # noqa: E402
from cdp_pipelines.synthetic import generate_dataset  # noqa: E402

SOURCES = PROJECT_ROOT / "data" / "sources.yaml"


def hold_back(full: Path, base: Path, new_persons: set[str], record_share: float, seed: int) -> dict:
    """Copy `full` to `base` without the new persons' records and one record of a share of the others."""
    truth = list(csv.DictReader((full / "ground_truth.csv").open(encoding="utf-8")))
    rng = random.Random(seed)
    by_person: dict[str, list[tuple[str, str]]] = {}
    for row in truth:
        by_person.setdefault(row["person_id"], []).append((row["source"], row["source_record_id"]))
    existing = sorted(p for p in by_person if p not in new_persons)
    touched = rng.sample(existing, int(len(existing) * record_share))
    held = {key for p in new_persons for key in by_person.get(p, [])}
    held |= {rng.choice(by_person[p]) for p in touched}
    id_columns = {"crm_accounts": "account_id", "crm_cases": "case_id", "web_events": "event_id",
                  "pos_transactions": "transaction_id", "reviews": "review_id", "social_posts": "post_id"}
    base.mkdir(parents=True, exist_ok=True)
    for source, id_column in id_columns.items():
        path = next(full.glob(f"{source}.*"))
        if path.suffix == ".jsonl":
            lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                     if line and (source, json.loads(line)[id_column]) not in held]
            (base / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = [r for r in reader if (source, r[id_column]) not in held]
                fields = reader.fieldnames
            with (base / path.name).open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
    return {"records_held_back": len(held), "new_persons": len(new_persons), "persons_with_new_records": len(touched)}


def resolve(data_dir: Path, root: Path) -> float:
    """Ingest, standardize and resolve `data_dir` into the warehouse under `root`; seconds taken."""
    defs = dg.Definitions.merge(build_ingest_definitions(SOURCES), build_standardize_definitions(SOURCES))
    resources = project_resources(root, data_dir, SOURCES, PROJECT_ROOT / "config")
    started = time.perf_counter()
    result = dg.materialize([*defs.assets, identity_assets.identity_graph], resources=resources, raise_on_error=False)
    if not result.success:
        raise SystemExit("pipeline run failed; see the log above")
    return time.perf_counter() - started


def stability(con: duckdb.DuckDBPyConnection, first: str, run_id_filter: str) -> dict:
    """Share of first-run records, whose customer was not merged or split, keeping their id."""
    return dict(zip(("records", "kept", "share_kept", "excluded_by_merge_or_split"), con.execute(
        f"""
        WITH affected AS (
            SELECT customer_id FROM identity.identity_changes WHERE {run_id_filter} AND change IN ('merged', 'split')
            UNION SELECT other_customer_id FROM identity.identity_changes
            WHERE {run_id_filter} AND change IN ('merged', 'split') AND other_customer_id IS NOT NULL
        ),
        before AS (SELECT * FROM {first} WHERE customer_id NOT IN (SELECT customer_id FROM affected))
        SELECT count(*), count(*) FILTER (WHERE b.customer_id = x.customer_id),
               round(count(*) FILTER (WHERE b.customer_id = x.customer_id) / count(*), 5),
               (SELECT count(*) FROM {first}) - count(*)
        FROM before b JOIN identity.customer_xref x USING (source, source_record_id)
        """
    ).fetchall()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=PROJECT_ROOT / "benchmarks" / "out" / "identity")
    args = parser.parse_args()
    try:
        work = usable_workdir(args.workdir, empty=True)
    except BenchmarkError as error:
        sys.exit(f"error: {error}")
    total = int(args.persons * 1.05)
    generate_dataset(persons=total, seed=args.seed, out_dir=work / "full")
    truth_persons = sorted({r["person_id"] for r in csv.DictReader((work / "full" / "ground_truth.csv").open())})
    new_persons = set(truth_persons[args.persons:])
    held = hold_back(work / "full", work / "base", new_persons, record_share=0.10, seed=args.seed)

    first_seconds = resolve(work / "base", work / "run")
    con = duckdb.connect(str(work / "run" / "warehouse.duckdb"))
    con.execute("CREATE OR REPLACE TABLE main.first_xref AS SELECT source, source_record_id, customer_id FROM identity.customer_xref")
    first_run = con.execute("SELECT max(run_id) FROM identity.identity_changes").fetchall()[0][0]
    con.close()
    second_seconds = resolve(work / "full", work / "run")
    con = duckdb.connect(str(work / "run" / "warehouse.duckdb"))
    report = {
        "persons": args.persons, "seed": args.seed, **held,
        "seconds": {"first_run": round(first_seconds, 1), "second_run": round(second_seconds, 1)},
        "accuracy": evaluate(con, work / "full" / "ground_truth.csv", by_source_pair=False),
        "stability": stability(con, "main.first_xref", f"run_id <> '{first_run}'"),
        "changes": dict(con.execute(
            f"SELECT change, count(*) FROM identity.identity_changes WHERE run_id <> '{first_run}' GROUP BY ALL"
        ).fetchall()),
    }
    con.close()
    (work / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    accuracy, stable = report["accuracy"], report["stability"]
    print(f"\npairwise F1 {accuracy['pairwise']['f1']} (target >= 0.97), B-cubed F1 {accuracy['bcubed']['f1']} "
          f"(target >= 0.98), strongly identified precision {accuracy['strongly_identified']['pairwise_precision']} "
          f"(target >= 0.99), ids kept {stable['share_kept']} (target >= 0.995)")


if __name__ == "__main__":
    main()
