"""The whole graph on the committed sample, as `cdp run` runs it, publishing to real PostgreSQL:
every stage's real output is checked, the generator's stories must come out right, and a
second run must keep every customer id."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import duckdb
import psycopg
import pytest
from pipeline_support import run_whole_graph
from postgres_fixtures import fresh_database

from cdp_pipelines import settings
from cdp_pipelines.bench import most_running, step_timings
from cdp_pipelines.context.sql_models import LAYERS
from cdp_pipelines.identity import splink_model
from cdp_pipelines.identity.evaluation import evaluate
from cdp_pipelines.ingest.sources_config import load_sources
from cdp_pipelines.operations.scoped_refresh import WORK_SCHEMA
from cdp_pipelines.operations.shared_tables import STAGE_SCHEMAS
from cdp_pipelines.serving import lookup

SAMPLE = settings.PROJECT_ROOT / "data" / "sample"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, postgres_server_url):
    """Two full runs of the sample into a fresh warehouse and a fresh serving database."""
    root = tmp_path_factory.mktemp("e2e")
    with fresh_database(postgres_server_url, f"cdp_test_e2e_{uuid.uuid4().hex[:10]}") as serving_url:
        first = run_whole_graph(root, SAMPLE, serving_url=serving_url)
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        first_ids = con.execute("SELECT source, source_record_id, customer_id FROM identity.customer_xref").fetchall()
        con.close()
        second = run_whole_graph(root, SAMPLE, serving_url=serving_url)
        yield {"first": first, "second": second, "first_ids": first_ids, "serving_url": serving_url,
               "warehouse": root / "warehouse.duckdb", "root": root}


@pytest.fixture
def warehouse(pipeline_run):
    con = duckdb.connect(str(pipeline_run["warehouse"]), read_only=True)
    yield con
    con.close()


def test_both_runs_succeed_with_every_check_passing(pipeline_run):
    for run in (pipeline_run["first"], pipeline_run["second"]):
        assert run.success, json.dumps(run.summary, default=str)[:2000]
        assert run.summary["failed_checks"] == [] and run.summary["check_warnings"] == []


def test_every_row_is_staged_or_quarantined(pipeline_run, warehouse):
    per_source = pipeline_run["second"].summary["records_per_source"]
    assert set(per_source) == {"crm_accounts", "crm_cases", "web_events", "pos_transactions", "reviews", "social_posts"}
    truth = warehouse.execute(
        f"SELECT source, count(*) FROM read_csv('{SAMPLE / 'ground_truth.csv'}', all_varchar=true) GROUP BY ALL"
    ).fetchall()
    for source, lines in truth:
        counts = per_source[source]
        assert counts["read"] == lines
        assert counts["read"] == counts["staged"] + counts["quarantined"]


def test_identity_resolves_every_record_accurately(warehouse):
    records = warehouse.execute("SELECT count(*) FROM standardized.identity_records").fetchall()[0][0]
    xref = warehouse.execute("SELECT count(DISTINCT (source, source_record_id)) FROM identity.customer_xref").fetchall()[0][0]
    assert records == xref
    report = evaluate(warehouse, SAMPLE / "ground_truth.csv", by_source_pair=False)
    assert report["pairwise"]["precision"] >= 0.95, report
    assert report["pairwise"]["f1"] >= 0.93, report
    assert report["bcubed"]["f1"] >= 0.95, report


def test_customer_ids_are_stable_across_runs(pipeline_run, warehouse):
    second = dict(((s, r), c) for s, r, c in warehouse.execute(
        "SELECT source, source_record_id, customer_id FROM identity.customer_xref").fetchall())
    first = {(s, r): c for s, r, c in pipeline_run["first_ids"]}
    assert first == second
    changes = warehouse.execute(
        "SELECT change, count(*) FROM identity.identity_changes WHERE run_id = ? GROUP BY ALL",
        [pipeline_run["second"].run_id],
    ).fetchall()
    assert dict(changes).get("new", 0) == 0 and dict(changes).get("merged", 0) == 0


def test_golden_profile_covers_every_active_customer(warehouse):
    active, golden, c360 = warehouse.execute(
        """SELECT (SELECT count(DISTINCT customer_id) FROM profiles.active_xref),
                  (SELECT count(*) FROM profiles.golden_profile),
                  (SELECT count(*) FROM marts.customer_360)"""
    ).fetchall()[0]
    assert active == golden == c360 > 1500


def _stories(kind: str) -> list[dict]:
    lines = (SAMPLE / "stories.jsonl").read_text().splitlines()
    return [s for s in map(json.loads, lines) if s["story"] == kind]


def test_cross_channel_journeys_are_one_journey_with_three_channels(warehouse):
    stories = _stories("cross_channel_journey")
    assert stories
    for story in stories:
        journeys = warehouse.execute(
            "SELECT channels, case_ids, cumulative_seconds FROM marts.journeys WHERE list_contains(order_numbers, ?)",
            [story["order_number"]],
        ).fetchall()
        assert any({"web", "chat", "phone"} <= set(channels) and set(story["case_ids"]) <= set(cases) and seconds > 0
                   for channels, cases, seconds in journeys), (story, journeys)


def test_repeat_contacts_raise_an_escalation_with_its_reason(warehouse):
    for story in _stories("repeat_contacts"):
        reasons = warehouse.execute(
            """SELECT e.reason FROM marts.escalations e JOIN profiles.active_xref x USING (customer_id)
               WHERE x.source = 'crm_cases' AND x.source_record_id = ? AND e.rule = 'repeat_contacts'""",
            [story["case_ids"][0]],
        ).fetchall()
        assert reasons and "contacts in 7 days" in reasons[0][0], story


def test_negative_review_after_open_case_reaches_sentiment_and_escalations(warehouse):
    reviews = [s for s in _stories("unresolved_then_negative") if "review_id" in s]
    assert reviews
    for story in reviews:
        rows = warehouse.execute(
            """SELECT t.rating, t.is_negative, s.ratings, e.reason
               FROM intermediate.int_sentiment_scores t
               JOIN marts.customer_sentiment s USING (customer_id)
               LEFT JOIN marts.escalations e ON e.customer_id = t.customer_id AND e.rule = 'negative_while_open'
               WHERE t.source = 'reviews' AND t.source_record_id = ?""",
            [story["review_id"]],
        ).fetchall()
        assert rows, story
        rating, is_negative, ratings, reason = rows[0]
        assert rating <= 2 and is_negative and ratings >= 1, story
        assert reason and "still open" in reason, story


def test_segments_only_hold_consented_customers(warehouse):
    leaked = warehouse.execute(
        """SELECT count(*) FROM segments.membership m
           LEFT JOIN profiles.consent c ON c.customer_id = m.customer_id AND c.channel = 'email'
           WHERE coalesce(c.status, 'unknown') <> 'opt_in'"""
    ).fetchall()[0][0]
    members = warehouse.execute("SELECT count(*) FROM segments.membership").fetchall()[0][0]
    assert members > 0 and leaked == 0


def test_published_to_postgres_and_looked_up_by_a_messy_email(pipeline_run, warehouse):
    with psycopg.connect(pipeline_run["serving_url"]) as conn:
        served = conn.execute("SELECT count(*) FROM cdp.customer_360").fetchone()[0]
        version = conn.execute("SELECT max(_publish_version) FROM cdp.customer_360").fetchone()[0]
    assert served == warehouse.execute("SELECT count(*) FROM marts.customer_360").fetchall()[0][0]
    assert version == 2  # one version per run
    email, customer_id = warehouse.execute(
        "SELECT email, customer_id FROM marts.customer_360 WHERE email IS NOT NULL ORDER BY customer_id LIMIT 1"
    ).fetchall()[0]
    found = lookup(pipeline_run["serving_url"], email=f"  {email.upper()} ")
    assert [c["customer_id"] for c in found] == [customer_id]


def test_steps_ran_two_at_a_time_after_the_shared_schemas_were_made(pipeline_run, warehouse):
    """`cdp run` uses the threaded executor: steps overlapped, never more than two; and every
    schema a step wrote was either created before the steps started or is one step's own."""
    instance = dg.DagsterInstance.from_config(str(pipeline_run["root"] / "dagster_home"))
    assert most_running(step_timings(instance, pipeline_run["second"].run_id)) == 2

    schemas = {r[0] for r in warehouse.execute(
        "SELECT DISTINCT schema_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    made_first = {*STAGE_SCHEMAS, *LAYERS, WORK_SCHEMA}
    one_steps_own = {"main", splink_model.SPLINK_SCHEMA}
    assert schemas - made_first - one_steps_own == set()


def test_standardized_quality_suites_ran_as_steps_of_their_own(pipeline_run):
    """The warning-level quality suite of each standardized table is a background step (it no
    longer lengthens the standardize step identity resolution waits on), run after the table."""
    instance = dg.DagsterInstance.from_config(str(pipeline_run["root"] / "dagster_home"))
    timings = {t["step"]: t for t in step_timings(instance, pipeline_run["second"].run_id)}
    sources = [s.name for s in load_sources(settings.sources_file()).sources]
    assert sources
    for source in sources:
        check = timings[f"standardized__{source}_standardized_quality"]
        assert check["status"] == "STEP_SUCCESS"
        assert check["start"] >= timings[f"standardized__{source}"]["end"]
