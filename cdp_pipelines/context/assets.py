"""Dagster assets of the context stage: one asset per SQL model, the VADER sentiment asset,
and blocking checks on every mart (unique key, known customers, complete customer_360), run in
the mart's own step.

A model's dependencies are the `schema.table` names its SQL reads, as asset keys
`[schema, table]`. One table is written by several assets instead of one: `segments.membership`
holds the rows of every segment asset (`["segments", <name>]`), so a model reading it depends on
all of them (marts.customer_360 lists current segments and must run after every segment).
"""

from pathlib import Path

import dagster as dg

from cdp_pipelines import settings
from cdp_pipelines.context.runner import load_variables, refresh_on_duckdb
from cdp_pipelines.context.sentiment import TABLE as TEXT_SENTIMENT_TABLE, build_text_sentiment
from cdp_pipelines.context.sql_models import SqlModel, discover_models
from cdp_pipelines.metadata import BACKGROUND_STEP_TAGS, OWNERS, table_metadata
from cdp_pipelines.operations import scoped_refresh
from cdp_pipelines.operations.refresh_config import IncrementalRefreshConfig
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource
from cdp_pipelines.segments.assets import segment_key
from cdp_pipelines.segments.build import MEMBERSHIP_TABLE
from cdp_pipelines.segments.config import SEGMENTS_FILE, load_segments

GROUP = "context"
CONFIG_FILE = "context.yaml"
ACTIVE_XREF = "profiles.active_xref"
MEMBERSHIP = tuple(MEMBERSHIP_TABLE.split("."))
# Models that hold exactly one row per active customer (checked: none missing).
EVERY_CUSTOMER_MODELS = frozenset({"customer_profile", "customer_360"})
TEXT_SENTIMENT = dg.AssetKey(["intermediate", "int_text_sentiment"])


def model_key(model: SqlModel) -> dg.AssetKey:
    return dg.AssetKey([model.layer, model.name])


def columns_metadata(con, table: str) -> dg.TableSchema:
    described = con.execute(f"DESCRIBE {table}").fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name, str(kind)) for name, kind, *_ in described])


def declared_segment_keys(segments_file: Path) -> list[dg.AssetKey]:
    """The asset keys of the segments declared in the segments file (none when it is absent)."""
    if not segments_file.exists():
        return []
    return [segment_key(segment.name) for segment in load_segments(segments_file).segments]


def dependency_keys(model: SqlModel, segment_keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """Asset keys of the tables a model reads; segments.membership means every segment asset."""
    keys: list[dg.AssetKey] = []
    for dep in model.deps:
        keys.extend(segment_keys if dep == MEMBERSHIP else [dg.AssetKey(list(dep))])
    return keys


def build_model_asset(model: SqlModel, segment_keys: list[dg.AssetKey] | None = None) -> dg.AssetsDefinition:
    """The model's asset; a mart's blocking checks run in the same step, right after the build
    (one step instead of one per check: each step costs the run a fixed overhead)."""
    checks = check_queries(model) if model.layer == "marts" else {}

    @dg.asset(
        key=model_key(model),
        check_specs=[dg.AssetCheckSpec(name, asset=model_key(model), blocking=True, description=description)
                     for name, (description, _) in checks.items()],
        deps=dependency_keys(model, segment_keys or []),
        group_name=GROUP,
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        description=model.description or None,
        metadata={"sql_file": dg.MetadataValue.path(str(model.path))},
    )
    def _model(context: dg.AssetExecutionContext, config: IncrementalRefreshConfig, warehouse: WarehouseResource,
               paths: ProjectPathsResource):
        variables = load_variables(paths.config_path(CONFIG_FILE))
        with warehouse.connect() as con:
            plan = refresh_on_duckdb(con, model, variables, config.incremental)
            metadata = {
                **table_metadata(con, model.table),
                **plan.metadata(),
                "dagster/column_schema": columns_metadata(con, model.table),
                "variables": dg.MetadataValue.json({name: variables.get(name) for name in model.variables}),
            }
            if model.freshness:
                latest = con.execute(f'SELECT max("{model.freshness}") FROM {model.table}').fetchone()[0]
                metadata["freshness"] = dg.MetadataValue.text(str(latest) if latest is not None else "no rows")
            scope = plan.checks_scope
            results = [check_result(con, model, name, query, scoped=scope is not None)
                       for name, (_, query) in (check_queries(model, scope) if checks else {}).items()]
            if results:
                scoped_refresh.record_checks(con, model.table, all(r.passed for r in results))
            scoped_refresh.drop_scope(con, plan)
        context.log.info(f"{model.table}: {metadata['dagster/row_count'].value} rows")
        return dg.MaterializeResult(metadata=metadata, check_results=results)

    return _model


@dg.asset(
    key=TEXT_SENTIMENT,
    deps=[dg.AssetKey(["standardized", "reviews"]), dg.AssetKey(["standardized", "social_posts"])],
    group_name=GROUP,
    kinds={"duckdb", "python"},
    owners=OWNERS,
    op_tags=BACKGROUND_STEP_TAGS,  # its readers also wait on identity resolution: score beside it
    description="VADER compound sentiment (-1..1) of every review and social post text, scored once per "
                "distinct text in Python; the SQL models join to it.",
)
def int_text_sentiment(config: IncrementalRefreshConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        scored = build_text_sentiment(con, incremental=config.incremental)
        metadata = table_metadata(con, TEXT_SENTIMENT_TABLE)
    return dg.MaterializeResult(metadata={**metadata, "texts_scored": scored})


def check_queries(model: SqlModel, scope: str | None = None) -> dict[str, tuple[str, str]]:
    """Per check: (description, SQL returning the number of offending rows).

    With `scope` (a table of customer_id), only what rows of those customers can break is read:
    used after a scoped refresh of a table whose other rows passed the same checks before."""
    queries: dict[str, tuple[str, str]] = {}
    table = model.table
    mine = f"(SELECT * FROM {table} SEMI JOIN {scope} USING (customer_id))" if scope else table
    if model.key:
        key = ", ".join(f'"{c}"' for c in model.key)
        rows = f"{table} SEMI JOIN (SELECT {key} FROM {mine} AS s) USING ({key})" if scope else table
        queries["unique_key"] = (
            f"No two rows share ({', '.join(model.key)}).",
            f"SELECT count(*) FROM (SELECT {key} FROM {rows} GROUP BY {key} HAVING count(*) > 1) AS d",
        )
    if "customer_id" in model.sql:
        if scope:
            active = f"(SELECT customer_id FROM {ACTIVE_XREF} SEMI JOIN {scope} USING (customer_id))"
            query = (f"SELECT (SELECT count(*) FROM {table} WHERE customer_id IS NULL) + "
                     f"(SELECT count(*) FROM {mine} AS m ANTI JOIN {active} AS x USING (customer_id))")
        else:
            query = (f"SELECT count(*) FROM {table} AS m WHERE m.customer_id IS NULL OR NOT EXISTS "
                     f"(SELECT 1 FROM {ACTIVE_XREF} AS x WHERE x.customer_id = m.customer_id)")
        queries["customers_exist"] = ("Every customer_id is an active customer of profiles.active_xref.", query)
    if model.name in EVERY_CUSTOMER_MODELS:
        active = f"(SELECT * FROM {ACTIVE_XREF} SEMI JOIN {scope} USING (customer_id))" if scope else ACTIVE_XREF
        queries["every_customer_present"] = (
            f"{model.name} has exactly the customers of profiles.active_xref: none missing.",
            f"SELECT count(*) FROM (SELECT DISTINCT customer_id FROM {active}) AS x "
            f"WHERE NOT EXISTS (SELECT 1 FROM {mine} AS m WHERE m.customer_id = x.customer_id)",
        )
    return queries


def check_result(con, model: SqlModel, name: str, query: str, scoped: bool = False) -> dg.AssetCheckResult:
    offending = int(con.execute(query).fetchone()[0])
    return dg.AssetCheckResult(
        check_name=name,
        passed=offending == 0,
        metadata={"offending_rows": offending,
                  "rows_checked": "the refreshed customers' rows" if scoped else "every row"},
        description=None if offending == 0 else f"{offending} offending rows in {model.table} ({name})",
    )


def build_context_definitions(models_dir: Path, segments_file: Path | None = None) -> dg.Definitions:
    """One asset per SQL file (a mart's checks run in its step), and the sentiment asset.

    `segments_file` (default: the segments file of the configuration folder) names the segment
    assets a model reading segments.membership depends on.
    """
    models = discover_models(models_dir)
    segment_keys = declared_segment_keys(segments_file or settings.config_dir() / SEGMENTS_FILE)
    assets = [int_text_sentiment] + [build_model_asset(m, segment_keys) for m in models]
    return dg.Definitions(assets=assets)
