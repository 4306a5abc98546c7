"""Accuracy of identity resolution against a ground-truth file, computed in SQL.

Pairwise precision/recall/F1 count record pairs placed together; B-cubed scores average, over
records, how much of a record's predicted cluster is its true person and vice versa. Only
evaluation reads ground truth; the pipeline never does.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


TRUTH_COLUMNS = ("source", "source_record_id", "person_id")


class TruthFileError(ValueError):
    """The ground-truth file cannot be used (missing, unreadable, wrong columns)."""


def _check_truth_file(con: duckdb.DuckDBPyConnection, truth_csv: Path) -> None:
    if Path(truth_csv).is_dir():
        raise TruthFileError(f"{truth_csv} is a folder; give the ground-truth CSV file ({','.join(TRUTH_COLUMNS)})")
    try:
        columns = [row[0] for row in con.execute(
            "DESCRIBE SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(truth_csv)]
        ).fetchall()]
    except duckdb.Error as error:
        raise TruthFileError(f"{truth_csv}: cannot be read as CSV ({str(error).splitlines()[0]})") from None
    missing = [c for c in TRUTH_COLUMNS if c not in columns]
    if missing:
        raise TruthFileError(f"{truth_csv}: missing column(s) {', '.join(missing)}; expected "
                             f"{', '.join(TRUTH_COLUMNS)}, found {', '.join(columns)}")


def _check_overlap(truth_csv: Path, in_truth: int, evaluated: int) -> None:
    """Scores over no records would read as perfect (1.0): refuse them instead."""
    if in_truth == 0:
        raise TruthFileError(f"{truth_csv}: holds no truth records")
    if evaluated == 0:
        raise TruthFileError(f"none of the {in_truth:,} truth records in {truth_csv} are in the warehouse; "
                             "is it the ground truth of the data this warehouse was built from?")


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def pair_scores(tp: float, predicted: float, actual: float) -> dict:
    """Pairwise precision, recall and F1 from pair counts. A score over no pairs is undefined and
    reported as None, never as a perfect 1.0: precision without predicted pairs, recall without
    true pairs, F1 when there are neither (F1 = 2·tp / (predicted + actual))."""
    tp, predicted, actual = float(tp or 0), float(predicted or 0), float(actual or 0)
    return {"precision": round(tp / predicted, 5) if predicted else None,
            "recall": round(tp / actual, 5) if actual else None,
            "f1": round(2 * tp / (predicted + actual), 5) if predicted + actual else None}


def evaluate(con: duckdb.DuckDBPyConnection, truth_csv: Path, by_source_pair: bool = True) -> dict:
    """Compare identity.customer_xref with a truth CSV (source, source_record_id, person_id)."""
    _check_truth_file(con, truth_csv)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _truth AS SELECT source::VARCHAR AS source, "
        "source_record_id::VARCHAR AS source_record_id, person_id::VARCHAR AS person_id "
        "FROM read_csv(?, header = true, all_varchar = true)",
        [str(truth_csv)],
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _joined AS
        SELECT x.source, x.source_record_id, x.customer_id, t.person_id
        FROM identity.customer_xref x JOIN _truth t USING (source, source_record_id)
        """
    )
    coverage = con.execute(
        """
        SELECT (SELECT count(*) FROM identity.customer_xref), (SELECT count(*) FROM _truth), (SELECT count(*) FROM _joined)
        """
    ).fetchall()[0]
    _check_overlap(truth_csv, in_truth=coverage[1], evaluated=coverage[2])
    pairs = con.execute(
        """
        WITH cell AS (SELECT customer_id, person_id, count(*) AS n FROM _joined GROUP BY ALL),
        clus AS (SELECT customer_id, count(*) AS n FROM _joined GROUP BY ALL),
        pers AS (SELECT person_id, count(*) AS n FROM _joined GROUP BY ALL)
        SELECT (SELECT sum(n * (n - 1) / 2) FROM cell)::DOUBLE,
               (SELECT sum(n * (n - 1) / 2) FROM clus)::DOUBLE,
               (SELECT sum(n * (n - 1) / 2) FROM pers)::DOUBLE,
               (SELECT count(*) FROM (SELECT customer_id FROM cell GROUP BY ALL HAVING count(*) > 1)),
               (SELECT count(*) FROM (SELECT person_id FROM cell GROUP BY ALL HAVING count(*) > 1)),
               (SELECT count(*) FROM clus), (SELECT count(*) FROM pers)
        """
    ).fetchall()[0]
    tp, predicted, actual, over_merged, under_merged, clusters, persons = pairs
    tp, predicted, actual = tp or 0.0, predicted or 0.0, actual or 0.0
    bcubed = con.execute(
        """
        WITH cell AS (SELECT customer_id, person_id, count(*) AS n FROM _joined GROUP BY ALL),
        clus AS (SELECT customer_id, count(*) AS n FROM _joined GROUP BY ALL),
        pers AS (SELECT person_id, count(*) AS n FROM _joined GROUP BY ALL)
        SELECT sum(cell.n * cell.n / clus.n) / sum(cell.n), sum(cell.n * cell.n / pers.n) / sum(cell.n)
        FROM cell JOIN clus USING (customer_id) JOIN pers USING (person_id)
        """
    ).fetchall()[0]
    b_precision, b_recall = float(bcubed[0] or 0.0), float(bcubed[1] or 0.0)
    report = {
        "records_resolved": coverage[0],
        "records_in_truth": coverage[1],
        "records_evaluated": coverage[2],
        "customers": clusters,
        "true_persons": persons,
        "pairwise": {**pair_scores(tp, predicted, actual),
                     "true_positive_pairs": int(tp), "predicted_pairs": int(predicted), "true_pairs": int(actual)},
        "bcubed": {"precision": round(b_precision, 5), "recall": round(b_recall, 5),
                   "f1": round(_f1(b_precision, b_recall), 5)},
        "over_merged_customers": over_merged,
        "under_merged_persons": under_merged,
    }
    has_records = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'identity' AND table_name = 'records'"
    ).fetchall()[0][0]
    if has_records:
        report["strongly_identified"] = strongly_identified_precision(con)
    if by_source_pair:
        report["by_source_pair"] = source_pair_accuracy(con)
    return report


STRONG_RECORDS = """
    r.source IN ('crm_accounts', 'crm_cases')
    OR (r.source = 'pos_transactions' AND r.loyalty_card IS NOT NULL)
    OR (r.source = 'web_events' AND r.web_user_id IS NOT NULL)
"""
"""Records from the strongly identified sources: CRM, POS with a loyalty card, logged-in web."""


def strongly_identified_precision(con: duckdb.DuckDBPyConnection) -> dict:
    """Pairwise precision and recall among records of the strongly identified sources."""
    tp, predicted, actual, records = con.execute(
        f"""
        WITH strong AS (
            SELECT j.* FROM _joined j JOIN identity.records r USING (source, source_record_id) WHERE {STRONG_RECORDS}
        ),
        cell AS (SELECT customer_id, person_id, count(*) AS n FROM strong GROUP BY ALL),
        clus AS (SELECT customer_id, count(*) AS n FROM strong GROUP BY ALL),
        pers AS (SELECT person_id, count(*) AS n FROM strong GROUP BY ALL)
        SELECT (SELECT sum(n * (n - 1) / 2) FROM cell)::DOUBLE, (SELECT sum(n * (n - 1) / 2) FROM clus)::DOUBLE,
               (SELECT sum(n * (n - 1) / 2) FROM pers)::DOUBLE, (SELECT count(*) FROM strong)
        """
    ).fetchall()[0]
    scores = pair_scores(tp, predicted, actual)
    return {"records": records, "pairwise_precision": scores["precision"], "pairwise_recall": scores["recall"]}


def source_pair_accuracy(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Pairwise precision and recall restricted to record pairs from each pair of sources."""
    rows = con.execute(
        """
        WITH cell AS (SELECT customer_id, person_id, source, count(*) AS n FROM _joined GROUP BY ALL),
        by_clus AS (SELECT customer_id, source, sum(n) AS n FROM cell GROUP BY ALL),
        by_pers AS (SELECT person_id, source, sum(n) AS n FROM cell GROUP BY ALL),
        tp AS (
            SELECT a.source AS s1, b.source AS s2,
                   sum(CASE WHEN a.source = b.source THEN a.n * (a.n - 1) / 2 ELSE a.n * b.n END) AS n
            FROM cell a JOIN cell b ON a.customer_id = b.customer_id AND a.person_id = b.person_id AND a.source <= b.source
            GROUP BY ALL
        ),
        pred AS (
            SELECT a.source AS s1, b.source AS s2,
                   sum(CASE WHEN a.source = b.source THEN a.n * (a.n - 1) / 2 ELSE a.n * b.n END) AS n
            FROM by_clus a JOIN by_clus b ON a.customer_id = b.customer_id AND a.source <= b.source
            GROUP BY ALL
        ),
        act AS (
            SELECT a.source AS s1, b.source AS s2,
                   sum(CASE WHEN a.source = b.source THEN a.n * (a.n - 1) / 2 ELSE a.n * b.n END) AS n
            FROM by_pers a JOIN by_pers b ON a.person_id = b.person_id AND a.source <= b.source
            GROUP BY ALL
        )
        SELECT coalesce(p.s1, a.s1), coalesce(p.s2, a.s2), coalesce(t.n, 0), coalesce(p.n, 0), coalesce(a.n, 0)
        FROM pred p FULL JOIN act a USING (s1, s2) LEFT JOIN tp t ON t.s1 = coalesce(p.s1, a.s1) AND t.s2 = coalesce(p.s2, a.s2)
        ORDER BY 1, 2
        """
    ).fetchall()
    out = []
    for s1, s2, tp, predicted, actual in rows:
        if not predicted and not actual:
            continue
        out.append({"sources": f"{s1}~{s2}", **pair_scores(tp, predicted, actual), "true_pairs": int(actual),
                    "predicted_pairs": int(predicted)})
    return out
