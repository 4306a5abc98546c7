"""Profiles and context tables refreshed for the changed customers only equal a whole rebuild.

Unit tests pin the generation log and the refresh decisions; the end-to-end test runs the
whole graph, adds and changes records, runs the incremental job, and then rebuilds every
profile, context and segment table whole from the same identity result: each table refreshed
incrementally must hold exactly the rows of its whole rebuild.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline_support import run_whole_graph, without_some_records

from cdp_pipelines import settings
from cdp_pipelines.operations import scoped_refresh as sr
from cdp_pipelines.profiles import suppression
from cdp_pipelines.resources import default_resources
from cdp_pipelines.runner import load_definitions
from cdp_pipelines.synthetic import generate_dataset


def _xref(con, name: str, rows: list[tuple[str, str, str]]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {name} (source VARCHAR, source_record_id VARCHAR, customer_id VARCHAR)")
    con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", rows)


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA profiles")
    yield connection
    connection.close()


def _full_generation(con, rows: list[tuple[str, str, str]], run_id: str) -> dict:
    """The xref holds `rows`; profiles.active_xref is built whole (a full generation)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    con.execute(f"CREATE TABLE IF NOT EXISTS {suppression.SUPPRESSED} (customer_id VARCHAR)")
    _xref(con, suppression.XREF, rows)
    suppression.build_active_xref(con)
    return sr.record_generation(con, suppression.ACTIVE_XREF, run_id, None)


def _next_generation(con, rows: list[tuple[str, str, str]], run_id: str, changes: str | None = None) -> dict:
    """The xref now holds `rows`; profiles.active_xref is updated in place, as an incremental run does."""
    _xref(con, suppression.XREF, rows)
    assert suppression.update_active_xref(con, "d")
    return sr.record_generation(con, suppression.ACTIVE_XREF, run_id, changes,
                                moved=suppression.moved_customers_sql("d"))


def test_a_generation_lists_moved_new_removed_and_changed_customers(con):
    first = _full_generation(con, [("crm", "1", "A"), ("crm", "2", "B"), ("web", "9", "C"), ("pos", "5", "D"),
                                   ("pos", "6", "E")], "run-1")
    assert first["mode"] == "full"
    # 2 moves from B to A (both change), 9 is gone (C), 7 is new (F), 5 changed content (D).
    rows = [("crm", "1", "A"), ("crm", "2", "A"), ("web", "7", "F"), ("pos", "5", "D"), ("pos", "6", "E")]
    con.execute("CREATE TABLE changes AS SELECT 'run-2' AS run_id, 'pos' AS source, '5' AS source_record_id")
    generation = _next_generation(con, rows, "run-2", "changes")
    assert generation == {"generation": 2, "mode": "incremental", "customers_changed": 5}
    changed = {c for (c,) in con.execute(f"SELECT customer_id FROM {sr.CHANGED} WHERE generation = 2").fetchall()}
    assert changed == {"A", "B", "C", "F", "D"}
    # The content change of run-2 is consumed: the next generation does not list D again.
    assert _next_generation(con, rows, "run-3", "changes")["customers_changed"] == 0


def test_refresh_decisions(con):
    rows = [("crm", str(i), f"C{i}") for i in range(10)]
    _full_generation(con, rows, "r1")
    con.execute("CREATE TABLE profiles.t AS SELECT customer_id, 1 AS v FROM profiles.active_xref")
    first = sr.plan_refresh(con, "profiles.t", "print-1", incremental=True)
    assert (first.mode, first.reason) == ("full", "never refreshed incrementally before")
    sr.mark_refreshed(con, first)
    _next_generation(con, rows + [("crm", "10", "C10")], "r2")
    scoped = sr.plan_refresh(con, "profiles.t", "print-1", incremental=True)
    assert (scoped.mode, scoped.scope_customers) == ("scoped", 1)
    assert sr.plan_refresh(con, "profiles.t", "print-2", incremental=True).mode == "full"
    assert sr.plan_refresh(con, "profiles.t", "print-1", incremental=False).mode == "full"
    sr.mark_refreshed(con, scoped)
    assert sr.plan_refresh(con, "profiles.t", "print-1", incremental=True).mode == "unchanged"
    _full_generation(con, rows, "r3")  # a full refresh: everything rebuilds
    assert sr.plan_refresh(con, "profiles.t", "print-1", incremental=True).mode == "full"


def test_checks_are_scoped_only_when_the_rows_outside_the_scope_passed_them(con):
    _full_generation(con, [("crm", str(i), f"C{i}") for i in range(10)], "r1")
    con.execute("CREATE TABLE profiles.t AS SELECT customer_id FROM profiles.active_xref")
    first = sr.plan_refresh(con, "profiles.t", "p", incremental=True)
    assert first.checks_scope is None  # a whole rebuild checks every row
    sr.mark_refreshed(con, first)
    sr.record_checks(con, "profiles.t", passed=False)

    def next_plan(generation: int) -> sr.RefreshPlan:
        _next_generation(con, [("crm", str(i), f"C{i}") for i in range(10 + generation)], f"r{generation}")
        return sr.plan_refresh(con, "profiles.t", "p", incremental=True)

    failed_before = next_plan(2)
    assert failed_before.mode == "scoped" and failed_before.checks_scope is None
    sr.mark_refreshed(con, failed_before)  # checks not yet known: not trusted either
    assert next_plan(3).checks_scope is None
    sr.record_checks(con, "profiles.t", passed=True)
    passed_before = next_plan(4)
    assert passed_before.mode == "scoped" and passed_before.checks_scope == passed_before.scope_table


def test_active_xref_updated_in_place_equals_its_whole_rebuild(con):
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    _xref(con, "identity.customer_xref", [("crm", "1", "A"), ("crm", "2", "B"), ("web", "9", "C"), ("pos", "5", "D")])
    con.execute("CREATE TABLE profiles.suppressed_customers (customer_id VARCHAR)")
    suppression.build_active_xref(con)
    # 2 moves to A, 9 is gone, 7 is new, D is erased.
    _xref(con, "identity.customer_xref", [("crm", "1", "A"), ("crm", "2", "A"), ("web", "7", "F"), ("pos", "5", "D")])
    con.execute("INSERT INTO profiles.suppressed_customers VALUES ('D')")
    assert suppression.update_active_xref(con, "d")
    assert sorted(con.execute("SELECT * FROM d").fetchall()) == [
        ("crm", "2", "B", "A"), ("pos", "5", "D", None), ("web", "7", None, "F"), ("web", "9", "C", None)]
    updated = sorted(con.execute("SELECT * FROM profiles.active_xref").fetchall())
    suppression.build_active_xref(con)
    assert updated == sorted(con.execute("SELECT * FROM profiles.active_xref").fetchall())
    # A table of other columns (an older warehouse) is left for a whole rebuild.
    con.execute("ALTER TABLE identity.customer_xref ADD COLUMN cluster BIGINT")
    assert not suppression.update_active_xref(con, "d")


def test_scoped_sql_narrows_customer_tables_under_their_alias():
    sql = ("SELECT c.customer_id, count(*) AS n FROM marts.customer_profile AS c "
           "JOIN staging.stg_crm_cases ON stg_crm_cases.customer_id = c.customer_id "
           "JOIN standardized.crm_cases AS s ON s.source_record_id = stg_crm_cases.case_id GROUP BY 1")
    narrowed = sr.scoped_sql(sql, {"marts.customer_profile", "staging.stg_crm_cases"}, "w.scope")
    assert narrowed.count("JOIN w.scope AS s USING (customer_id)") == 2
    assert "AS c" in narrowed and "AS stg_crm_cases" in narrowed
    assert "standardized.crm_cases AS s" in narrowed


def _rebuild_downstream_whole(root: Path, data: Path) -> None:
    """Every profile, context, segment and serving table rebuilt whole (default config) from the xref."""
    env = {settings.ENV_DATA_DIR: str(data), settings.ENV_WAREHOUSE: str(root / "warehouse.duckdb"),
           settings.ENV_ARTIFACTS_DIR: str(root / "artifacts"), settings.ENV_EXPORT_DIR: str(root / "exports")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv(settings.ENV_SERVING_URL, raising=False)
        defs = load_definitions()
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        result = dg.materialize(assets, resources=default_resources(),
                                selection=dg.AssetSelection.groups("profiles", "context", "segments", "serving"))
        assert result.success


def _rows(con, table: str) -> list[tuple]:
    columns = con.execute(f"DESCRIBE {table}").fetchall()
    select = ", ".join(f'round("{n}", 9)' if t in {"DOUBLE", "FLOAT"} else f'"{n}"' for n, t, *_ in columns)
    return sorted(con.execute(f"SELECT {select} FROM {table}").fetchall(), key=repr)


@pytest.mark.slow
def test_incremental_profiles_and_context_equal_a_whole_rebuild(tmp_path):
    full = tmp_path / "full"
    generate_dataset(persons=600, seed=33, out_dir=full)
    data = tmp_path / "data"
    without_some_records(full, data, share=0.03, seed=2)
    root = tmp_path / "project"
    assert run_whole_graph(root, data).success

    # New records arrive (the held-back 3%) and one account changes its last name.
    shutil.rmtree(data)
    shutil.copytree(full, data)
    with (data / "crm_accounts.csv").open(newline="", encoding="utf-8") as handle:
        accounts = list(csv.reader(handle))
    changed_id = accounts[5][accounts[0].index("account_id")]
    accounts[5][accounts[0].index("last_name")] = "Changedname"
    with (data / "crm_accounts.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(accounts)
    outcome = run_whole_graph(root, data, incremental=True)
    assert outcome.success, outcome.summary

    warehouse = root / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    modes = dict(con.execute(f"SELECT target, mode FROM {sr.STATE}").fetchall())
    marts_checked = dict(con.execute(f"SELECT target, checks_passed FROM {sr.STATE} WHERE target LIKE 'marts.%'").fetchall())
    modes["profiles.active_xref"] = "updated in place"
    refreshed = {t: _rows(con, t) for t in modes}
    # The changed account's customer is refreshed although no record moved between customers.
    in_scope = con.execute(
        f"SELECT count(*) FROM {sr.CHANGED} JOIN profiles.active_xref USING (customer_id) "
        "WHERE source = 'crm_accounts' AND source_record_id = ?", [changed_id]).fetchall()[0][0]
    con.close()
    assert "scoped" in modes.values() and modes["profiles.golden_profile"] == "scoped", modes
    assert in_scope == 1
    # The marts' checks passed on the whole tables in the first run, so this run's read the
    # refreshed customers' rows only (and passed).
    assert marts_checked and all(marts_checked.values()), marts_checked
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        instance = dg.DagsterInstance.get()
        records = instance.get_records_for_run(
            outcome.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        rows_checked = {(r.event_log_entry.dagster_event.event_specific_data.asset_key.path[-1],
                         r.event_log_entry.dagster_event.event_specific_data.metadata["rows_checked"].value)
                        for r in records
                        if "rows_checked" in r.event_log_entry.dagster_event.event_specific_data.metadata}
        instance.dispose()
    scoped_marts = {mart for mart, rows in rows_checked if rows == "the refreshed customers' rows"}
    assert {"customer_profile", "customer_360", "contact_context"} <= scoped_marts, rows_checked

    _rebuild_downstream_whole(root, data)
    con = duckdb.connect(str(warehouse), read_only=True)
    differing = [t for t in modes if _rows(con, t) != refreshed[t]]
    con.close()
    assert not differing, f"tables whose incremental refresh differs from a whole rebuild: {differing}"
