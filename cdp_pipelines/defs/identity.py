"""Identity stage: identity graph, stable customer ids and their blocking checks."""

from cdp_pipelines.identity.assets import (  # noqa: F401  (collected by the defs loader)
    every_record_resolved_once,
    identity_graph,
    largest_cluster_within_bound,
)
