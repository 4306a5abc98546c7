"""Dagster assets of the identity stage: the identity graph, stable ids and their checks."""


import json
from pathlib import Path

import dagster as dg

from cdp_pipelines.identity.config import load_identity_config, load_overrides
from cdp_pipelines.identity.resolve import resolve
from cdp_pipelines.metadata import OWNERS, table_metadata
from cdp_pipelines.resources import ProjectPathsResource, WarehouseResource

IDENTITY_RECORDS = dg.AssetKey(["standardized", "identity_records"])
XREF = dg.AssetKey(["identity", "customer_xref"])
CHANGES = dg.AssetKey(["identity", "identity_changes"])


class IdentityRunConfig(dg.Config):
    """Run-time choices for identity resolution."""

    retrain: bool = False
    """Train a new Splink model even when a saved one matches the current settings."""

    incremental: bool = False
    """Resolve only the region that new or changed records reach (see identity/incremental.py),
    scoring their nodes with the saved model and keeping everything else from the previous run.
    Resolves the whole graph when there is no earlier run or model, or the identity settings
    changed since it."""


def cluster_size_distribution(con) -> dict[str, int]:
    rows = con.execute(
        """
        WITH sizes AS (SELECT customer_id, count(*) AS n FROM identity.customer_xref GROUP BY ALL)
        SELECT CASE WHEN n = 1 THEN '1' WHEN n <= 3 THEN '2-3' WHEN n <= 10 THEN '4-10'
                    WHEN n <= 50 THEN '11-50' ELSE '51+' END AS bucket, count(*)
        FROM sizes GROUP BY ALL ORDER BY min(n)
        """
    ).fetchall()
    return {bucket: int(count) for bucket, count in rows}


def largest_clusters(con, limit: int = 5) -> list[dict]:
    # The largest customers first, then the sources of those only.
    rows = con.execute(
        f"""
        WITH largest AS (
            SELECT customer_id, count(*) AS records FROM identity.customer_xref
            GROUP BY customer_id ORDER BY records DESC, customer_id LIMIT {int(limit)}
        )
        SELECT l.customer_id, l.records, string_agg(DISTINCT x.source, ', ' ORDER BY x.source) AS sources
        FROM largest l JOIN identity.customer_xref x USING (customer_id)
        GROUP BY ALL ORDER BY l.records DESC, l.customer_id
        """
    ).fetchall()
    return [{"customer_id": c, "records": int(n), "sources": s} for c, n, s in rows]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(XREF, deps=[IDENTITY_RECORDS],
                     description="One row per source record: the customer it belongs to, how it was "
                                 "matched (deterministic, probabilistic or single) and with what confidence.",
                     kinds={"duckdb", "splink"}, owners=OWNERS, group_name="identity"),
        dg.AssetSpec(CHANGES, deps=[IDENTITY_RECORDS],
                     description="What changed between runs: new, merged, split and retired customer ids, "
                                 "with evidence, so downstream systems can reconcile.",
                     kinds={"duckdb"}, owners=OWNERS, group_name="identity"),
    ],
)
def identity_graph(
    context: dg.AssetExecutionContext,
    config: IdentityRunConfig,
    warehouse: WarehouseResource,
    paths: ProjectPathsResource,
):
    """Resolve every standardized record into a customer: deterministic edges on strong
    identifiers (shared values detected and set aside), Splink 5 probabilistic links between
    the resulting components, guarded clustering, and ids that persist from run to run."""
    identity_config = load_identity_config(paths.config_path("identity.yaml"))
    overrides = load_overrides(paths.config_path(identity_config.overrides_file))
    artifacts = Path(paths.artifacts_dir) / "identity"
    with warehouse.connect() as con:
        summary = resolve(
            con, identity_config, overrides, model_dir=artifacts / "models", run_id=context.run.run_id,
            retrain=config.retrain, charts_dir=artifacts / "charts", incremental=config.incremental,
        )
        distribution = cluster_size_distribution(con)
        largest = largest_clusters(con)
        xref_meta = table_metadata(con, "identity.customer_xref")
        changes_meta = table_metadata(con, f"(SELECT * FROM identity.identity_changes WHERE run_id = '{context.run.run_id}')")
        shared = con.execute(
            "SELECT id_type, count(*) FROM identity.shared_identifiers GROUP BY ALL ORDER BY 1"
        ).fetchall()
    report = artifacts / "last_run_summary.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary.__dict__, indent=2, default=str))
    context.log.info(
        f"{summary.records} records -> {summary.customers} customers; "
        f"{summary.links_accepted}/{summary.links_considered} probabilistic links accepted"
    )
    chart_links = {name: dg.MetadataValue.path(path) for name, path in summary.charts.items()}
    yield dg.MaterializeResult(
        asset_key=XREF,
        metadata={
            **xref_meta,
            "records": summary.records,
            "customers": summary.customers,
            "deterministic_edges": summary.deterministic.get("deterministic_edges", 0),
            "shared_identifiers": dg.MetadataValue.json({k: int(v) for k, v in shared}),
            "splink_nodes": summary.splink_nodes,
            "comparisons_by_blocking_rule": dg.MetadataValue.json(summary.comparisons_by_rule),
            "probabilistic_pairs_kept": summary.probabilistic_edges,
            "links_accepted": summary.links_accepted,
            "links_refused": dg.MetadataValue.json(summary.links_refused),
            "cluster_size_distribution": dg.MetadataValue.json(distribution),
            "largest_clusters": dg.MetadataValue.json(largest),
            "overrides": dg.MetadataValue.json(summary.overrides),
            "model": dg.MetadataValue.path(summary.model_path) if summary.model_path else "none",
            "model_version": summary.model_version,
            "model_trained_this_run": summary.model_trained,
            "seconds": dg.MetadataValue.json(summary.seconds),
            "incremental": dg.MetadataValue.json(summary.incremental or {"mode": "full"}),
            "run_summary": dg.MetadataValue.path(str(report)),
            **chart_links,
        },
    )
    yield dg.MaterializeResult(
        asset_key=CHANGES,
        metadata={**changes_meta, "changes": dg.MetadataValue.json(summary.changes)},
    )


@dg.asset_check(asset=XREF, blocking=True, description="No customer is larger than the configured bound.")
def largest_cluster_within_bound(warehouse: WarehouseResource, paths: ProjectPathsResource) -> dg.AssetCheckResult:
    bound = load_identity_config(paths.config_path("identity.yaml")).clustering.max_cluster_records
    with warehouse.connect() as con:
        largest = largest_clusters(con, limit=3)
    biggest = largest[0]["records"] if largest else 0
    return dg.AssetCheckResult(
        passed=biggest <= bound,
        description=None if biggest <= bound else
        f"customer {largest[0]['customer_id']} has {biggest} records, above the bound of {bound}: "
        "an identifier or link is probably chaining different people together",
        metadata={"largest_cluster_records": biggest, "bound": bound, "largest": dg.MetadataValue.json(largest)},
    )


@dg.asset_check(asset=XREF, blocking=True, description="Every standardized record has exactly one customer id.")
def every_record_resolved_once(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        records, xref, distinct = con.execute(
            """
            SELECT (SELECT count(*) FROM standardized.identity_records),
                   (SELECT count(*) FROM identity.customer_xref),
                   (SELECT count(*) FROM (SELECT DISTINCT source, source_record_id FROM identity.customer_xref))
            """
        ).fetchall()[0]
    passed = records == xref == distinct
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"identity_records": records, "xref_rows": xref, "distinct_xref_records": distinct},
        description=None if passed else f"{records} records in, {xref} xref rows ({distinct} distinct)",
    )
