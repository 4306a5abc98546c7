"""Deterministic edges, shared identifiers, stable ids and evaluation, on hand-made tables."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cdp_pipelines.identity.config import load_identity_config
from cdp_pipelines.identity.deterministic import build_identifier_tables
from cdp_pipelines.identity.evaluation import evaluate
from cdp_pipelines.identity.splink_model import comparisons_by_rule
from cdp_pipelines.identity.stable_ids import assign_stable_ids
from cdp_pipelines.settings import PROJECT_ROOT

COLUMNS = ["rid", "source", "source_record_id", "given_name", "first_name", "email", "phone", "phone_kind",
           "loyalty_card", "web_user_id", "account_id", "order_number", "social_handle", "cookie_id", "payment_token",
           "date_of_birth"]


def _records(con, rows):
    frame = pd.DataFrame([dict(zip(COLUMNS, r)) for r in rows], columns=COLUMNS).astype(object)
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    con.register("_rows", frame)
    con.execute("CREATE OR REPLACE TABLE identity.records AS SELECT * FROM _rows")
    con.unregister("_rows")


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture
def config():
    return load_identity_config(PROJECT_ROOT / "config" / "identity.yaml")


def _row(rid, source, given=None, first=None, email=None, phone=None, kind=None, card=None, user=None, cookie=None,
         born=None):
    return (rid, source, f"R{rid}", given, first or given, email, phone, kind, card, user, None, None, None, cookie,
            None, pd.Timestamp(born).date() if born else None)


def test_family_email_is_shared_but_a_typo_is_not(con, config):
    _records(con, [
        _row(0, "crm_accounts", "john", email="smiths@mail.com"),
        _row(1, "crm_accounts", "mary", email="smiths@mail.com"),
        _row(2, "pos_transactions", "christiana", "tina", card="LC1"),
        _row(3, "crm_accounts", "tiba", "tiba", card="LC1"),
        _row(4, "pos_transactions", "c", card="LC1"),
    ])
    counts = build_identifier_tables(con, config.deterministic)
    shared = con.execute("SELECT id_type, id_value FROM identity.shared_identifiers").fetchall()
    assert shared == [("email", "smiths@mail.com")]
    edges = con.execute("SELECT rule, rid_l, rid_r FROM identity.deterministic_edges ORDER BY rid_r").fetchall()
    assert edges == [("loyalty_card", 2, 3), ("loyalty_card", 2, 4)]
    assert counts["deterministic_edges"] == 2


@pytest.mark.parametrize("variants", [True, False])
def test_known_name_variants_are_one_person_on_an_email(con, config, variants):
    # "debbie" is listed with nicknames of its own, so it stays "debbie"; the package still
    # relates it to "deborah". "peter" and "karen" are not variants of "deborah".
    _records(con, [
        _row(0, "crm_accounts", "debbie", email="ddennis@mail.com"),
        _row(1, "pos_transactions", "deborah", email="ddennis@mail.com"),
        _row(2, "crm_accounts", "deborah", email="dk@mail.com"),
        _row(3, "crm_accounts", "deborah", email="dk@mail.com"),
        _row(4, "pos_transactions", "karen", email="dk@mail.com"),
    ])
    config.deterministic.same_person_name_variants = variants
    build_identifier_tables(con, config.deterministic)
    shared = con.execute("SELECT id_value, distinct_people, example_hints FROM identity.shared_identifiers "
                         "ORDER BY 1").fetchall()
    expected = [("dk@mail.com", 2, ["deborah", "karen"])]
    if not variants:
        expected.insert(0, ("ddennis@mail.com", 2, ["debbie", "deborah"]))
    assert shared == expected


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_a_name_like_any_spelling_of_the_modal_name_is_the_same_person(con, config, order):
    # "erick" resolves to "frederick", the modal name; "eric" is unlike "frederick" but written
    # like "erick", so the email is one person's, whatever order the rows come in.
    rows = [_row(0, "crm_accounts", "frederick", email="eb@mail.com"),
            _row(1, "crm_accounts", "frederick", "erick", email="eb@mail.com"),
            _row(2, "pos_transactions", "eric", email="eb@mail.com")]
    _records(con, [rows[i] for i in order])
    build_identifier_tables(con, config.deterministic)
    assert con.execute("SELECT count(*) FROM identity.shared_identifiers").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM identity.deterministic_edges").fetchall()[0][0] == 2


def test_only_mobile_phones_link_and_a_household_cookie_is_shared(con, config):
    _records(con, [
        _row(0, "crm_accounts", "ann", phone="+441134960000", kind="landline"),
        _row(1, "crm_accounts", "bob", phone="+441134960000", kind="landline"),
        _row(2, "web_events", user="W1", cookie="K1"),
        _row(3, "web_events", user="W2", cookie="K1"),
        _row(4, "web_events", cookie="K1"),
    ])
    build_identifier_tables(con, config.deterministic)
    assert con.execute("SELECT count(*) FROM identity.identifier_values WHERE id_type = 'phone'").fetchall()[0][0] == 0
    shared = con.execute("SELECT id_type, id_value, distinct_people FROM identity.shared_identifiers").fetchall()
    assert shared == [("cookie_id", "K1", 2)]
    assert con.execute("SELECT count(*) FROM identity.deterministic_edges").fetchall()[0][0] == 0


def _run(con, clusters: dict[str, int], run_id: str) -> dict:
    """One run: records named by id, assigned to the given cluster numbers."""
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    frame = pd.DataFrame({"rid": range(len(clusters)), "source": "s", "source_record_id": list(clusters),
                          "cluster": list(clusters.values())})
    con.register("_f", frame)
    con.execute("CREATE OR REPLACE TABLE identity.records AS SELECT rid, source, source_record_id FROM _f")
    con.execute("CREATE OR REPLACE TABLE identity.clusters AS SELECT rid, cluster FROM _f")
    con.unregister("_f")
    counts = assign_stable_ids(con, run_id)
    con.execute(
        """CREATE OR REPLACE TABLE identity.customer_xref AS
           SELECT r.source, r.source_record_id, i.customer_id FROM identity.records r
           JOIN identity.clusters c USING (rid) JOIN identity.cluster_ids i USING (cluster)"""
    )
    return counts


def _ids(con) -> dict[str, str]:
    return dict(con.execute("SELECT source_record_id, customer_id FROM identity.customer_xref").fetchall())


def test_ids_persist_merge_keeps_the_larger_and_split_keeps_the_larger_part(con):
    _run(con, {"a1": 1, "a2": 1, "a3": 1, "b1": 2, "c1": 3, "c2": 3, "c3": 3, "c4": 3}, "run1")
    first = _ids(con)
    a, b, c = first["a1"], first["b1"], first["c1"]
    # Same data again, clusters numbered differently: identical ids, nothing changes.
    assert _run(con, {"a1": 7, "a2": 7, "a3": 7, "b1": 5, "c1": 9, "c2": 9, "c3": 9, "c4": 9}, "run2")["new"] == 0
    assert _ids(con) == first
    # a and b merge (a is larger: it keeps its id); c splits 3+1 (the 3 keep c's id).
    counts = _run(con, {"a1": 1, "a2": 1, "a3": 1, "b1": 1, "c1": 3, "c2": 3, "c3": 3, "c4": 4}, "run3")
    ids = _ids(con)
    assert ids["b1"] == a and ids["c1"] == c and ids["c4"] not in {a, b, c}
    assert counts["merged"] == 1 and counts["split"] == 1
    changes = con.execute(
        "SELECT change, customer_id, other_customer_id FROM identity.identity_changes WHERE run_id = 'run3' ORDER BY change"
    ).fetchall()
    assert ("merged", a, b) in changes and ("split", ids["c4"], c) in changes
    retired = con.execute("SELECT retired_reason, successor_id FROM identity.customer_ids WHERE customer_id = ?", [b]).fetchall()
    assert retired == [("merged", a)]


def test_new_ids_are_deterministic(con):
    _run(con, {"x1": 1, "y1": 2}, "r")
    first = _ids(con)
    other = duckdb.connect()
    _run(other, {"x1": 5, "y1": 6}, "r")
    assert _ids(other) == first


def test_evaluation_pairwise_and_bcubed(con, tmp_path: Path):
    con.execute("CREATE SCHEMA identity")
    con.execute("""CREATE TABLE identity.customer_xref AS SELECT * FROM (VALUES
        ('s', '1', 'A'), ('s', '2', 'A'), ('s', '3', 'A'), ('s', '4', 'B')) t(source, source_record_id, customer_id)""")
    truth = tmp_path / "truth.csv"
    truth.write_text("source,source_record_id,person_id\ns,1,P\ns,2,P\ns,3,Q\ns,4,Q\n")
    report = evaluate(con, truth)
    # predicted pairs: (1,2) (1,3) (2,3); true pairs: (1,2) (3,4); one true positive.
    assert report["pairwise"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["pairwise"]["recall"] == pytest.approx(1 / 2, abs=1e-4)
    # B-cubed precision: (2/3 + 2/3 + 1/3 + 1) / 4; recall: (1 + 1 + 1/2 + 1/2) / 4.
    assert report["bcubed"]["precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4, abs=1e-4)
    assert report["bcubed"]["recall"] == pytest.approx(0.75, abs=1e-4)
    assert report["over_merged_customers"] == 1 and report["under_merged_persons"] == 1


def test_pairwise_scores_over_no_pairs_are_undefined_not_perfect(con, tmp_path: Path):
    con.execute("CREATE SCHEMA identity")
    con.execute("""CREATE TABLE identity.customer_xref AS SELECT * FROM (VALUES
        ('s', '1', 'A'), ('s', '2', 'B'), ('s', '3', 'C')) t(source, source_record_id, customer_id)""")
    singletons = tmp_path / "singletons.csv"
    singletons.write_text("source,source_record_id,person_id\ns,1,P\ns,2,Q\ns,3,R\n")
    pairwise = evaluate(con, singletons)["pairwise"]
    assert (pairwise["precision"], pairwise["recall"], pairwise["f1"]) == (None, None, None)
    assert pairwise["true_pairs"] == pairwise["predicted_pairs"] == 0
    missed = tmp_path / "missed.csv"  # one true pair, nothing merged: recall 0, precision undefined
    missed.write_text("source,source_record_id,person_id\ns,1,P\ns,2,P\ns,3,R\n")
    report = evaluate(con, missed)
    assert (report["pairwise"]["precision"], report["pairwise"]["recall"], report["pairwise"]["f1"]) == (None, 0.0, 0.0)
    assert report["by_source_pair"] == [{"sources": "s~s", "precision": None, "recall": 0.0, "f1": 0.0,
                                         "true_pairs": 1, "predicted_pairs": 0}]


def test_a_value_seen_under_several_web_logins_is_shared_even_without_names(con, config):
    _records(con, [_row(i, "web_events", email="someone@mail.com", user=f"W{i % 3}") for i in range(6)])
    build_identifier_tables(con, config.deterministic)
    shared = con.execute("SELECT id_type, id_value, distinct_people FROM identity.shared_identifiers").fetchall()
    assert shared == [("email", "someone@mail.com", 3)]


def test_one_name_with_two_birth_years_is_two_people(con, config):
    _records(con, [
        _row(0, "crm_accounts", "eric", email="eric.h@mail.com", born="1951-12-08"),
        _row(1, "crm_accounts", "eric", email="eric.h@mail.com", born="2006-10-31"),
        _row(2, "crm_accounts", "anna", email="anna.k@mail.com", born="1980-01-02"),
        _row(3, "pos_transactions", "anna", email="anna.k@mail.com", born="1980-02-01"),  # a typo, same year
    ])
    build_identifier_tables(con, config.deterministic)
    shared = con.execute("SELECT id_value, distinct_people FROM identity.shared_identifiers").fetchall()
    assert shared == [("eric.h@mail.com", 2)]


def test_evaluation_names_a_wrong_truth_file(con, tmp_path: Path):
    from cdp_pipelines.identity.evaluation import TruthFileError

    truth = tmp_path / "truth.csv"
    truth.write_text("a,b\n1,2\n")
    with pytest.raises(TruthFileError, match="missing column\\(s\\) source, source_record_id, person_id"):
        evaluate(con, truth)


def test_comparisons_by_rule_follow_the_rule_order_with_running_totals(config):
    rules = config.probabilistic.blocking_rules
    rows = comparisons_by_rule(config.probabilistic, {0: 5, 2: 7})  # rule 1 generated no pair
    assert [r["rule"] for r in rows] == ["+".join(rule) for rule in rules]
    assert [r["comparisons"] for r in rows[:3]] == [5, 0, 7]
    assert [r["cumulative"] for r in rows] == [5, 5] + [12] * (len(rules) - 2)
    with pytest.raises(ValueError, match="outside"):
        comparisons_by_rule(config.probabilistic, {len(rules): 1})
