"""Faults injected into a generated dataset never stop the run and never lose a row: each faulty
row lands in quality.quarantine with a reason naming what is wrong, every source's counts
reconcile (read = staged + quarantined), and every staged row is standardized.

Faults are appended to the files (new rows, or copies of existing rows for duplicates), so the
generated rows themselves all stay stageable and the expected counts are exact. A few per
source stay under the blocking ratios (1% duplicate ids, 20% bad timestamps).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from pipeline_support import run_whole_graph

from cdp_pipelines.synthetic import generate_dataset

PERSONS, SEED = 600, 23
MEGABYTE = 1_048_576
BAD_BYTES_TOKEN = "@@BAD-BYTES@@"
BAD_BYTES = b"Ren\xe9e \xff\xfe"  # Latin-1 and stray bytes: not UTF-8

pytestmark = pytest.mark.slow

FILES = {"crm_accounts": "crm_accounts.csv", "crm_cases": "crm_cases.csv", "pos_transactions": "pos_transactions.csv",
         "reviews": "reviews.csv", "web_events": "web_events.jsonl", "social_posts": "social_posts.jsonl"}


@dataclass(frozen=True)
class Fault:
    source: str
    record_id: str | None
    reason: str
    """Regular expression the quarantine reason must match in full."""


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def append(path: Path, lines: list[bytes]) -> None:
    content = path.read_bytes()
    with path.open("ab") as handle:
        if content and not content.endswith(b"\n"):
            handle.write(b"\n")
        for line in lines:
            handle.write(line if line.endswith(b"\n") else line + b"\n")


def csv_fault_lines(rows: list[list[str]]) -> list[bytes]:
    """CSV lines, with the bad-bytes token replaced by bytes that are not UTF-8."""
    return [csv_line(r).encode("utf-8").replace(BAD_BYTES_TOKEN.encode(), BAD_BYTES) for r in rows]


def inject_faults(data_dir: Path) -> tuple[list[Fault], dict[str, str]]:
    """Append the faults; returns what the quarantine must hold and the staged 1 MB case id."""
    faults: list[Fault] = []

    # web_events.jsonl: malformed JSON, a non-object, blank id, bad timestamp, a duplicate id.
    web = data_dir / FILES["web_events"]
    web_first = json.loads(web.read_text(encoding="utf-8").splitlines()[0])
    append(web, [
        b'{"event_id": "EFAULT1", "ts": "2024-11-02T07:26:34Z", "cookie_id": ',
        b'["EFAULT2", "2024-11-02T07:26:34Z"]',
        json.dumps({**web_first, "event_id": "  "}).encode(),
        json.dumps({**web_first, "event_id": "EFAULT4", "ts": "32/13/2024 25:61"}).encode(),
        json.dumps({**web_first, "event_type": "page_view"}).encode(),
    ])
    faults += [
        Fault("web_events", None, r"malformed JSON: .+"),
        Fault("web_events", None, r"expected a JSON object, found an array"),
        Fault("web_events", None, r"missing record id in column event_id"),
        Fault("web_events", "EFAULT4", r"unparseable or out-of-range timestamp '32/13/2024 25:61' in column ts"),
        Fault("web_events", web_first["event_id"],
              r"duplicate record id, first seen in file web_events\.jsonl row 1"),
    ]

    # social_posts.jsonl: malformed JSON and a line that is not UTF-8.
    social = data_dir / FILES["social_posts"]
    append(social, [
        b'{"post_id": "SPFAULT1", "text": "unterminated, "ts": "2024-11-01T10:25:41Z"}',
        b'{"post_id": "SPFAULT2", "handle": "@' + BAD_BYTES + b'", "ts": "2024-11-01T10:25:41Z"}',
    ])
    faults += [
        Fault("social_posts", None, r"malformed JSON: .+"),
        Fault("social_posts", None, r"invalid UTF-8 at byte \d+ of the line"),
    ]

    # crm_cases.csv: too few fields, a bad timestamp; one good case with a 1 MB note is staged.
    cases = data_dir / FILES["crm_cases"]
    case = csv_rows(cases)[0]
    columns = list(case)
    huge_case = {**case, "case_id": "CFAULT3", "note": "n" * MEGABYTE}
    append(cases, csv_fault_lines([
        ["CFAULT1", case["account_id"], "2024-11-03 11:06:52"],
        list({**case, "case_id": "CFAULT2", "opened_at": "not a date"}.values()),
        list(huge_case.values()),
    ]))
    faults += [
        Fault("crm_cases", None, rf"expected {len(columns)} fields, found 3"),
        Fault("crm_cases", "CFAULT2", r"unparseable or out-of-range timestamp 'not a date' in column opened_at"),
    ]

    # pos_transactions.csv: invalid UTF-8 in one field, a duplicate transaction id.
    pos = data_dir / FILES["pos_transactions"]
    sale = csv_rows(pos)[0]
    append(pos, csv_fault_lines([
        list({**sale, "transaction_id": "TFAULT1", "customer_name": BAD_BYTES_TOKEN}.values()),
        list({**sale, "total": "999.99"}.values()),
    ]))
    faults += [
        Fault("pos_transactions", "TFAULT1", r"invalid UTF-8 in column customer_name"),
        Fault("pos_transactions", sale["transaction_id"],
              r"duplicate record id, first seen in file pos_transactions\.csv row 1"),
    ]

    # reviews.csv: one field too many (with a 1 MB body), a blank review id.
    reviews = data_dir / FILES["reviews"]
    review = csv_rows(reviews)[0]
    append(reviews, csv_fault_lines([
        [*{**review, "review_id": "RFAULT1", "body": "b" * MEGABYTE}.values(), "one too many"],
        list({**review, "review_id": ""}.values()),
    ]))
    faults += [
        Fault("reviews", None, rf"expected {len(review)} fields, found {len(review) + 1}"),
        Fault("reviews", None, r"missing record id in column review_id"),
    ]

    # crm_accounts.csv: the same account id twice in one file.
    accounts = data_dir / FILES["crm_accounts"]
    account = csv_rows(accounts)[1]
    append(accounts, csv_fault_lines([list({**account, "email": "someone.else@example.com"}.values())]))
    faults.append(Fault("crm_accounts", account["account_id"],
                        r"duplicate record id, first seen in file crm_accounts\.csv row 2"))
    return faults, {"huge_case": "CFAULT3"}


def data_rows(path: Path) -> int:
    """Rows of a clean generated file: CSV records after the header, non-blank JSON lines."""
    if path.suffix == ".csv":
        return len(csv_rows(path))
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data_dir = root / "data"
    generate_dataset(PERSONS, SEED, data_dir)
    clean_rows = {name: data_rows(data_dir / f) for name, f in FILES.items()}
    faults, ids = inject_faults(data_dir)
    outcome = run_whole_graph(root, data_dir)
    yield {"outcome": outcome, "faults": faults, "clean_rows": clean_rows, "ids": ids,
           "warehouse": root / "warehouse.duckdb"}


@pytest.fixture
def warehouse(faulty_run):
    con = duckdb.connect(str(faulty_run["warehouse"]), read_only=True)
    yield con
    con.close()


def test_the_run_succeeds_with_every_check_passing(faulty_run):
    outcome = faulty_run["outcome"]
    assert outcome.success, json.dumps(outcome.summary, default=str)[:3000]
    assert outcome.summary["failed_checks"] == [] and outcome.summary["skipped_steps"] == []
    assert outcome.summary["check_warnings"] == []


def test_every_fault_is_quarantined_with_its_reason(faulty_run, warehouse):
    quarantined = warehouse.execute(
        "SELECT stage, source, record_id, reason, raw_content FROM quality.quarantine ORDER BY source, row_number"
    ).fetchall()
    remaining = list(quarantined)
    for fault in faulty_run["faults"]:
        match = next((row for row in remaining if row[1] == fault.source and row[2] == fault.record_id
                      and re.fullmatch(fault.reason, row[3])), None)
        assert match, (fault, [r[:4] for r in quarantined if r[1] == fault.source])
        assert match[0] == "ingest" and match[4]
        remaining.remove(match)
    assert remaining == [], "quarantined rows no fault explains"


def test_quarantined_content_is_kept_readable_and_bounded(warehouse):
    rows = dict(warehouse.execute(
        "SELECT reason, raw_content FROM quality.quarantine WHERE source IN ('reviews', 'pos_transactions')"
    ).fetchall())
    oversized = next(raw for reason, raw in rows.items() if reason.startswith("expected"))
    assert re.search(r"\.\.\.\[truncated, \d+ characters in total\]$", oversized) and len(oversized) < 11_000
    undecodable = next(raw for reason, raw in rows.items() if reason.startswith("invalid UTF-8"))
    assert undecodable.startswith("TFAULT1,") and "Ren\\xe9e \\xff\\xfe" in undecodable  # bytes shown, not lost


def test_counts_reconcile_per_source(faulty_run, warehouse):
    runs = {source: (read, staged, quarantined) for source, read, staged, quarantined in warehouse.execute(
        "SELECT source, arg_max(rows_read, ingested_at), arg_max(rows_staged, ingested_at), "
        "arg_max(rows_quarantined, ingested_at) FROM quality.ingest_runs GROUP BY ALL").fetchall()}
    expected_faults: dict[str, int] = {}
    for fault in faulty_run["faults"]:
        expected_faults[fault.source] = expected_faults.get(fault.source, 0) + 1
    staged_extra = {"crm_cases": 1}  # the good case with the 1 MB note
    assert set(runs) == set(FILES)
    for source, (read, staged, quarantined) in runs.items():
        assert read == staged + quarantined, source
        assert quarantined == expected_faults.get(source, 0), source
        assert staged == faulty_run["clean_rows"][source] + staged_extra.get(source, 0), source
        raw, standardized = warehouse.execute(
            f"SELECT (SELECT count(*) FROM raw.{source}), (SELECT count(*) FROM standardized.{source})").fetchone()
        assert raw == standardized == staged, source
    records = warehouse.execute("SELECT count(*) FROM standardized.identity_records").fetchone()[0]
    xref = warehouse.execute("SELECT count(*) FROM identity.customer_xref").fetchone()[0]
    assert records == xref == sum(r[1] for r in runs.values())


def test_a_one_megabyte_field_is_staged_whole_and_reaches_the_marts(faulty_run, warehouse):
    case_id = faulty_run["ids"]["huge_case"]
    raw_note, standardized_note = warehouse.execute(
        f"""SELECT length(r.note), length(s.src_note) FROM raw.crm_cases r
            JOIN standardized.crm_cases s ON s.source_record_id = r._record_id WHERE r._record_id = '{case_id}'"""
    ).fetchone()
    assert raw_note == standardized_note == MEGABYTE
    customer, notes = warehouse.execute(
        f"""SELECT x.customer_id, c.notes FROM profiles.active_xref x JOIN marts.contact_context c USING (customer_id)
            WHERE x.source = 'crm_cases' AND x.source_record_id = '{case_id}'"""
    ).fetchone()
    assert customer and (notes is None or len(notes) < 10_000)
