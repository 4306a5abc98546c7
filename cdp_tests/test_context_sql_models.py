"""SQL model discovery: dependencies parsed from the SQL, safe variables, Dagster assets."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest
import sqlglot

from cdp_pipelines import settings
from cdp_pipelines.context.assets import build_context_definitions
from cdp_pipelines.context.runner import (
    VariableError, load_variables, render, render_literal, run_models, sorted_list_as_ordered_aggregate, to_postgres,
)
from cdp_pipelines.context.sql_models import ModelError, discover_models, leading_comment, referenced_tables
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource, default_resources


def test_ctes_are_not_dependencies_but_qualified_tables_are():
    sql = """
        WITH cases AS (SELECT * FROM staging.stg_crm_cases),
             recent AS (SELECT * FROM cases WHERE opened_at > {{ var('as_of') }})
        SELECT r.*, x.customer_id FROM recent AS r
        JOIN profiles.active_xref AS x ON x.source_record_id = r.case_id
        WHERE EXISTS (SELECT 1 FROM standardized.crm_cases AS s WHERE s.source_record_id = r.case_id)
    """
    assert referenced_tables(sql) == {("staging", "stg_crm_cases"), ("profiles", "active_xref"),
                                      ("standardized", "crm_cases")}


def test_unqualified_table_is_refused():
    with pytest.raises(ModelError, match="schema-qualified"):
        referenced_tables("SELECT * FROM crm_cases")


def test_leading_comment_gives_description_and_directives():
    description, directives = leading_comment("-- First line\n-- second line.\n-- key: a, b\nSELECT 1")
    assert description == "First line second line."
    assert directives == {"key": "a, b"}


def test_variables_render_as_checked_literals():
    assert render("SELECT {{ var('n') }}, {{var('gap')}}", {"n": 3, "gap": "48 hours"}) == \
        "SELECT 3, INTERVAL '48 hours'"
    assert render_literal("as_of", "2026-10-31 23:59:59") == "CAST('2026-10-31 23:59:59' AS TIMESTAMP)"
    assert render_literal("as_of", dt.date(2026, 10, 31)) == "CAST('2026-10-31 00:00:00' AS TIMESTAMP)"
    assert render_literal("as_of", None) == "NULL"
    for bad in ("1; DROP TABLE x", "'", True, float("nan"), [1]):
        with pytest.raises(VariableError):
            render_literal("x", bad)
    with pytest.raises(VariableError, match="not defined"):
        render("SELECT {{ var('missing') }}", {})


def test_transpiles_window_frames_for_postgres():
    pg = to_postgres("SELECT count(*) OVER (ORDER BY t RANGE BETWEEN 7 * INTERVAL '1 day' PRECEDING AND CURRENT ROW) FROM a.b")
    assert "RANGE BETWEEN 7 * INTERVAL '1 DAY' PRECEDING" in pg


@pytest.mark.parametrize(("duckdb_sql", "postgres_sql"), [
    ("SELECT list_sort(list(v) FILTER (WHERE t = 'a')) FROM x GROUP BY k",
     "SELECT ARRAY_AGG(v ORDER BY v ASC) FILTER(WHERE t = 'a') FROM x GROUP BY k"),
    ("SELECT list_sort(list(DISTINCT v)) FROM x", "SELECT ARRAY_AGG(DISTINCT v ORDER BY v ASC) FROM x"),
    ("SELECT list_sort(list(v), 'DESC') FROM x", "SELECT ARRAY_AGG(v ORDER BY v DESC NULLS LAST) FROM x"),
    ("SELECT list_sort(list(v), 'DESC', 'NULLS FIRST') FROM x", "SELECT ARRAY_AGG(v ORDER BY v DESC) FROM x"),
    ("SELECT list_sort(list(v), 'ASC', 'NULLS FIRST') FROM x", "SELECT ARRAY_AGG(v ORDER BY v ASC NULLS FIRST) FROM x"),
    ("SELECT list_sort(a) FROM x", "SELECT ARRAY_SORT(a) FROM x"),  # not an aggregate: kept
])
def test_sorted_lists_become_ordered_aggregates_on_postgres(duckdb_sql, postgres_sql):
    assert to_postgres(duckdb_sql) == postgres_sql


def test_sorted_list_equals_the_ordered_aggregate_on_duckdb():
    con = duckdb.connect()
    con.execute("CREATE TABLE x AS SELECT * FROM (VALUES (1, 'b'), (1, NULL), (1, 'a'), (1, 'b'), (2, NULL)) t(k, v)")
    for form in ("", ", 'DESC'", ", 'ASC', 'NULLS FIRST'", ", 'DESC', 'NULLS FIRST'"):
        duck_sql = f"SELECT k, list_sort(list(v){form}) FROM x GROUP BY k ORDER BY k"
        tree = sqlglot.parse_one(duck_sql, read="duckdb").transform(sorted_list_as_ordered_aggregate)
        aggregate = tree.sql(dialect="duckdb")
        assert "ORDER BY v" in aggregate and "list_sort" not in aggregate.lower()
        assert con.execute(duck_sql).fetchall() == con.execute(aggregate).fetchall(), form


def test_project_models_and_their_dependencies():
    models = {m.table: m for m in discover_models(settings.SQL_MODELS_DIR)}
    assert {"marts.customer_360", "marts.customer_profile", "marts.interaction_timeline", "marts.contact_context", "marts.journeys",
            "marts.customer_sentiment", "marts.escalations"} <= set(models)
    assert ("standardized", "crm_cases") in models["staging.stg_crm_cases"].deps
    assert ("profiles", "active_xref") in models["staging.stg_crm_cases"].deps
    assert ("intermediate", "int_text_sentiment") in models["intermediate.int_sentiment_scores"].deps
    assert models["marts.escalations"].deps == (("intermediate", "int_interactions"),
                                                ("intermediate", "int_sentiment_scores"), ("staging", "stg_crm_cases"))
    assert all(m.key and m.description for m in models.values())
    order = [m.table for m in discover_models(settings.SQL_MODELS_DIR)]
    assert order.index("intermediate.int_interactions") < order.index("marts.customer_profile") < \
        order.index("marts.contact_context")
    assert order.index("marts.customer_profile") < order.index("marts.customer_360")
    assert models["marts.customer_360"].deps == (("marts", "customer_profile"), ("segments", "membership"))


def test_dagster_assets_keys_deps_and_checks():
    defs = dg.Definitions.merge(build_context_definitions(settings.SQL_MODELS_DIR),
                                dg.Definitions(resources=default_resources()))
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey(["marts", "escalations"])
    node = graph.get(key)
    assert node.group_name == "context" and node.kinds == {"duckdb", "sql"}
    assert dg.AssetKey(["staging", "stg_crm_cases"]) in node.parent_keys
    assert dg.AssetKey(["standardized", "crm_cases"]) in graph.get(dg.AssetKey(["staging", "stg_crm_cases"])).parent_keys
    assert "Customers an agent" in node.description
    for mart in ("customer_360", "customer_profile"):
        check_names = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey(["marts", mart])}
        assert check_names == {"unique_key", "customers_exist", "every_customer_present"}


def test_customer_360_depends_on_every_declared_segment(tmp_path):
    segments_file = tmp_path / "segments.yaml"
    segments_file.write_text(
        "version: 1\nsegments:\n" + "".join(
            f"  - {{name: {n}, description: d, owner: team:x, channel: email, rule: 'TRUE'}}\n" for n in ("a_one", "b_two")),
        encoding="utf-8")
    defs = dg.Definitions.merge(build_context_definitions(settings.SQL_MODELS_DIR, segments_file),
                                dg.Definitions(resources=default_resources()))
    parents = defs.resolve_asset_graph().get(dg.AssetKey(["marts", "customer_360"])).parent_keys
    assert parents == {dg.AssetKey(["marts", "customer_profile"]), dg.AssetKey(["segments", "a_one"]),
                       dg.AssetKey(["segments", "b_two"])}
    # No segments declared: nothing to wait for, and the model still runs on an empty membership.
    empty = build_context_definitions(settings.SQL_MODELS_DIR, tmp_path / "absent.yaml")
    node = dg.Definitions.merge(empty, dg.Definitions(resources=default_resources())).resolve_asset_graph()
    assert node.get(dg.AssetKey(["marts", "customer_360"])).parent_keys == {dg.AssetKey(["marts", "customer_profile"])}


def test_customer_360_runs_before_any_segment_was_built():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.customer_profile AS SELECT 'C1' AS customer_id, 5 AS lifetime_value")
    model = next(m for m in discover_models(settings.SQL_MODELS_DIR) if m.table == "marts.customer_360")
    run_models(con, [model], load_variables(settings.PROJECT_ROOT / "config" / "context.yaml"))
    assert con.execute("SELECT customer_id, lifetime_value, current_segments FROM marts.customer_360").fetchall() == \
        [("C1", 5, [])]


def test_materialize_context_assets_with_checks(tmp_path):
    try:
        from cdp_tests.test_context_marts import build_inputs
    except ImportError:  # cdp_tests is not a package: pytest put this folder on sys.path
        from test_context_marts import build_inputs

    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    build_inputs(con)
    con.close()
    defs = build_context_definitions(settings.SQL_MODELS_DIR)
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "paths": ProjectPathsResource(data_dir=str(tmp_path), sources_file=str(tmp_path / "s.yaml"),
                                      config_dir=str(settings.PROJECT_ROOT / "config"),
                                      artifacts_dir=str(tmp_path), export_dir=str(tmp_path)),
    }
    assets = [a for a in defs.assets]
    result = dg.materialize(assets, resources=resources)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    materializations = {e.materialization.asset_key: e.materialization.metadata
                        for e in result.get_asset_materialization_events()}
    escalations = materializations[dg.AssetKey(["marts", "escalations"])]
    assert escalations["dagster/row_count"].value == 3 and "freshness" in escalations


def _mart_with_problems(con) -> tuple:
    """marts.customer_360 (customer_id key) where customers A and B are in the scope, C is not:
    each of A's and C's rows repeats its key, B is no active customer, D (active, in scope)
    and E (active, not in scope) have no row, and one row has no customer."""
    from pathlib import Path

    from cdp_pipelines.context.sql_models import SqlModel

    con.execute("CREATE SCHEMA marts; CREATE SCHEMA profiles; CREATE SCHEMA w")
    con.execute("CREATE TABLE profiles.active_xref AS SELECT * FROM (VALUES ('A'), ('C'), ('D'), ('E')) t(customer_id)")
    con.execute("CREATE TABLE marts.customer_360 AS SELECT * FROM (VALUES ('A', 1), ('A', 2), ('B', 3), ('C', 4), "
                "('C', 5), (NULL, 6)) t(customer_id, v)")
    con.execute("CREATE TABLE w.scope AS SELECT * FROM (VALUES ('A'), ('B'), ('D')) t(customer_id)")
    return SqlModel("marts", "customer_360", Path("customer_360.sql"), "SELECT customer_id FROM profiles.active_xref",
                    "", (("profiles", "active_xref"),), (), key=("customer_id",))


def test_scoped_mart_checks_read_only_what_the_refreshed_customers_can_break():
    from cdp_pipelines.context.assets import check_queries

    con = duckdb.connect()
    model = _mart_with_problems(con)

    def offending(scope):
        return {name: con.execute(query).fetchone()[0] for name, (_, query) in check_queries(model, scope).items()}

    # Every row: A and C repeat, B unknown plus the row without customer, D and E missing.
    assert offending(None) == {"unique_key": 2, "customers_exist": 2, "every_customer_present": 2}
    # The scope's rows only (the rest passed before): A repeats, B unknown plus the NULL row, D missing.
    assert offending("w.scope") == {"unique_key": 1, "customers_exist": 2, "every_customer_present": 1}
    con.execute("DELETE FROM marts.customer_360 WHERE customer_id IN ('A', 'B') AND v <> 1 OR customer_id IS NULL")
    con.execute("INSERT INTO marts.customer_360 VALUES ('D', 7)")
    assert offending("w.scope") == {"unique_key": 0, "customers_exist": 0, "every_customer_present": 0}


def test_models_are_parsed_once_per_sql_text(tmp_path, monkeypatch):
    """Loading the definitions discovers the models twice; the second reading parses nothing."""
    import cdp_pipelines.context.sql_models as sql_models

    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "stg_probe_once.sql").write_text(
        "-- probe\nSELECT customer_id FROM profiles.active_xref AS x /* parsed once */\n")
    parsed = []
    real_parse = sql_models.sqlglot.parse_one
    monkeypatch.setattr(sql_models.sqlglot, "parse_one", lambda *a, **k: parsed.append(a[0]) or real_parse(*a, **k))
    first = discover_models(tmp_path)
    second = discover_models(tmp_path)
    assert sum("parsed once" in str(sql) for sql in parsed) == 1
    assert first[0].deps == second[0].deps == (("profiles", "active_xref"),)
