"""Dagster assets of the serving stage: the identifier lookup table, and the atomic publish of
profiles and context to PostgreSQL when a serving URL is configured."""

from pathlib import Path

import dagster as dg

from cdp_pipelines.metadata import OWNERS, table_metadata
from cdp_pipelines.operations import scoped_refresh
from cdp_pipelines.operations.refresh_config import IncrementalRefreshConfig
from cdp_pipelines.resources import ProjectPathsResource, ServingResource, WarehouseResource
from cdp_pipelines.segments.assets import segment_key
from cdp_pipelines.segments.config import load_segments
from cdp_pipelines.serving.config import load_config
from cdp_pipelines.serving.publish import publish

IDENTITY_LOOKUP = dg.AssetKey(["serving", "identity_lookup"])
PUBLISHED = dg.AssetKey(["serving", "published"])


@dg.asset(
    key=IDENTITY_LOOKUP,
    deps=[dg.AssetKey(["profiles", "customer_identifiers"])],
    group_name="serving",
    kinds={"duckdb"},
    owners=OWNERS,
    description="Normalized identifier (email, phone, card, cookie, order, account, web login, "
                "handle) to customer id, for every identifier the pipeline knows: what channel "
                "systems look customers up by. A shared value maps to several customers.",
)
def identity_lookup(config: IncrementalRefreshConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    def select_for(identifiers: str) -> str:
        # customer_identifiers holds each (customer, type, value) once, with a value (its GROUP
        # BY and filter), and the served table's primary key would refuse a repeat: no DISTINCT.
        return f"SELECT identifier_type, identifier_value, customer_id FROM {identifiers}"

    with warehouse.connect() as con:
        inputs = scoped_refresh.upstream_fingerprints(con, ["profiles.customer_identifiers"])
        plan = scoped_refresh.refresh_from_xref(
            con, "serving.identity_lookup", select_for, "profiles.customer_identifiers",
            scoped_refresh.fingerprint(select_for("identifiers"), *inputs), config.incremental)
        per_type = con.execute(
            "SELECT identifier_type, count(*) FROM serving.identity_lookup GROUP BY ALL ORDER BY 1"
        ).fetchall()
        shared = con.execute(
            "SELECT count(*) FROM (SELECT identifier_type, identifier_value FROM serving.identity_lookup "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        metadata = {**table_metadata(con, "serving.identity_lookup"), **plan.metadata(),
                    "identifiers_by_type": dg.MetadataValue.json({t: int(n) for t, n in per_type}),
                    "values_shared_by_several_customers": int(shared)}
    return dg.MaterializeResult(metadata=metadata)


def _published_sources(config_dir: Path) -> list[dg.AssetKey]:
    """Upstream assets of every published table (segment membership: every segment asset)."""
    keys: list[dg.AssetKey] = []
    for spec in load_config(config_dir / "serving.yaml").tables:
        if spec.source == "segments.membership":
            keys += [segment_key(s.name) for s in load_segments(config_dir / "segments.yaml").segments]
        else:
            keys.append(dg.AssetKey(spec.source.split(".")))
    return keys


def build_publish_asset(config_dir: Path) -> dg.AssetsDefinition:
    @dg.asset(
        key=PUBLISHED,
        deps=_published_sources(config_dir),
        group_name="serving",
        kinds={"postgres"},
        owners=OWNERS,
        description="Publishes customer_360, contact_context, journeys, customer_sentiment, escalations, "
                    "segment membership and identity_lookup to PostgreSQL: COPY into a new versioned "
                    "schema, keys and indexes built, then the stable views are re-pointed in one "
                    "transaction. Skipped (and said so) when CDP_SERVING_URL is not set.",
    )
    def _published(context: dg.AssetExecutionContext, warehouse: WarehouseResource, serving: ServingResource,
                   paths: ProjectPathsResource) -> dg.MaterializeResult:
        if not serving.url:
            context.log.info("CDP_SERVING_URL is not set: nothing published")
            return dg.MaterializeResult(metadata={"published": False,
                                                  "reason": "no serving URL configured (CDP_SERVING_URL)"})
        with warehouse.connect() as con:
            result = publish(serving.url, con, config_path=paths.config_path("serving.yaml"))
        context.log.info(f"published version {result.version} in {result.seconds}s")
        return dg.MaterializeResult(metadata={
            "published": True,
            "version": result.version,
            "schema": result.schema,
            "row_counts": dg.MetadataValue.json(result.row_counts),
            "seconds": result.seconds,
            "phase_seconds": dg.MetadataValue.json(result.phase_seconds),
            "dropped_schemas": dg.MetadataValue.json(result.dropped_schemas),
        })

    return _published
