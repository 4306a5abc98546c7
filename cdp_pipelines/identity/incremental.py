"""Incremental identity resolution: work on the region new or changed records reach.

A full run rebuilds every identity table from all records. An incremental run starts from the
previous run's tables and touches only what the changed records can affect:

1. **Records.** The records listed in this run's `quality.record_changes` (or, when it lists
   none, every record whose attributes differ from `identity.records`) are replaced or added;
   existing records keep their rid, new ones get rids after the largest.
2. **Identifier values.** Sharing and star edges are judged again only for the identifier
   values those records carry now or carried before (a value's verdict and edges depend on that
   value's rows only).
3. **Components.** Only the *affected* records, those of every previous component holding a
   changed, removed or override record or a record carrying a touched value, get new components
   (computed from their own edges, which cannot reach outside them), strengths and nodes. Every
   other component has the same edges, records and label as before.
4. **Splink.** Nodes not seen before, and every node of a component split this run (its pairs
   with its former component were never scored), are scored against the existing nodes that
   share a blocking key with them; earlier scored pairs between remaining nodes are kept.
5. **Clustering.** Components linked by scored pairs form link groups, and the guarded merge of
   one group depends on that group's links only. Groups holding an affected component or a newly
   scored pair, and groups that held a previously affected component, are merged again; every
   other group keeps its clusters and decisions.
6. **Stable ids.** Only the clusters of the re-merged groups and the previous customers that
   overlap them go through id inheritance; every other customer keeps its id and records.

The configuration must be the one of the previous run (its hash is kept in
`identity.resolution_state`); otherwise, or when any previous table is missing, the caller runs
the full computation.
"""

from __future__ import annotations

import hashlib
import json
import time

import duckdb
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cdp_pipelines.identity import clustering, splink_model
from cdp_pipelines.identity.config import IdentityConfig

STATE_TABLE = "identity.resolution_state"
WORK = splink_model.SPLINK_SCHEMA
PREVIOUS_TABLES = (
    "records", "identifier_values", "shared_identifiers", "deterministic_edges", "record_components",
    "component_strength", "nodes", "probabilistic_edges", "link_decisions", "clusters", "cluster_ids",
    "customer_xref", "customer_ids", "resolution_state",
)


def config_hash(config: IdentityConfig) -> str:
    """Changes when any identity setting changes (overrides are handled region by region)."""
    payload = json.dumps(config.model_dump(exclude={"overrides_file"}), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def save_state(con: duckdb.DuckDBPyConnection, config: IdentityConfig, run_id: str, mode: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {STATE_TABLE} (config_hash VARCHAR, run_id VARCHAR, mode VARCHAR)")
    con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)", [config_hash(config), run_id, mode])


def forget_state(con: duckdb.DuckDBPyConnection) -> None:
    """A run that stops half way leaves no state, so the next incremental run resolves everything."""
    con.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")


def can_run(con: duckdb.DuckDBPyConnection, config: IdentityConfig) -> str | None:
    """None when an incremental run can start from the previous tables, else the reason not."""
    present = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'identity'"
    ).fetchall()}
    missing = [t for t in PREVIOUS_TABLES if t not in present]
    if missing:
        return f"no previous run's {', '.join(missing)}"
    row = con.execute(f"SELECT config_hash FROM {STATE_TABLE}").fetchall()
    if not row or row[0][0] != config_hash(config):
        return "identity settings changed since the previous run"
    return None


def _count(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> int:
    return con.execute(sql, params or []).fetchall()[0][0]


def _int_table(con: duckdb.DuckDBPyConnection, name: str, column: str, values) -> None:
    array = pa.array(np.asarray(sorted(values) if isinstance(values, set) else values, dtype=np.int64), pa.int64())
    con.register("_ints", pa.table({column: array}))
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _ints")
    con.unregister("_ints")


def find_changes(con: duckdb.DuckDBPyConnection, run_id: str, record_columns: tuple[str, ...]) -> dict:
    """identity_work.changed_records: the new or changed records with their (kept or new) rid
    and is_new; identity_work.removed_rids: the rids whose previous rows go (changed or gone)."""
    columns = ", ".join(f"s.{c}" for c in record_columns)
    listed = _count(con, "SELECT count(*) FROM quality.record_changes WHERE run_id = ?", [run_id]) if _count(
        con, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quality' "
             "AND table_name = 'record_changes'") else 0
    if listed:
        con.execute(
            f"CREATE OR REPLACE TABLE {WORK}.changed_keys AS SELECT DISTINCT source, source_record_id "
            "FROM quality.record_changes WHERE run_id = ?", [run_id])
        con.execute(f"CREATE OR REPLACE TABLE {WORK}.gone_keys (source VARCHAR, source_record_id VARCHAR)")
        # The contract says incremental runs never remove records; check it rather than trust it.
        new_keys = _count(con, f"SELECT count(*) FROM {WORK}.changed_keys k ANTI JOIN identity.records "
                               "USING (source, source_record_id)")
        consistent = _count(con, "SELECT count(*) FROM standardized.identity_records") == \
            _count(con, "SELECT count(*) FROM identity.records") + new_keys
        how = "record_changes"
    else:
        consistent = False
    if not consistent:
        # Compare every record with the previous run's copy (one hash per row on each side).
        hashed = ", ".join(record_columns)
        con.execute(
            f"""
            CREATE OR REPLACE TABLE {WORK}.changed_keys AS
            SELECT source, source_record_id FROM (
                SELECT source, source_record_id, hash({hashed}) AS h FROM standardized.identity_records)
            ANTI JOIN (SELECT source, source_record_id, hash({hashed}) AS h FROM identity.records)
            USING (source, source_record_id, h)
            """
        )
        con.execute(
            f"CREATE OR REPLACE TABLE {WORK}.gone_keys AS SELECT source, source_record_id FROM identity.records "
            "ANTI JOIN standardized.identity_records USING (source, source_record_id)"
        )
        how = "compared with previous records"
    first_new = _count(con, "SELECT coalesce(max(rid), -1) + 1 FROM identity.records")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {WORK}.changed_records AS
        SELECT coalesce(r.rid, {first_new} - 1 + row_number() OVER (
                   PARTITION BY r.rid IS NULL ORDER BY s.source, s.source_record_id)) AS rid,
               {columns}, r.rid IS NULL AS is_new
        FROM standardized.identity_records s SEMI JOIN {WORK}.changed_keys USING (source, source_record_id)
        LEFT JOIN identity.records r USING (source, source_record_id)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {WORK}.removed_rids AS
        SELECT rid FROM {WORK}.changed_records WHERE NOT is_new
        UNION ALL
        SELECT rid FROM identity.records SEMI JOIN {WORK}.gone_keys USING (source, source_record_id)
        """
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.gone_xref AS SELECT x.* FROM identity.customer_xref x "
        f"SEMI JOIN {WORK}.gone_keys USING (source, source_record_id)"
    )
    return {
        "changes_from": how,
        "new_records": _count(con, f"SELECT count(*) FROM {WORK}.changed_records WHERE is_new"),
        "changed_records": _count(con, f"SELECT count(*) FROM {WORK}.changed_records WHERE NOT is_new"),
        "removed_records": _count(con, f"SELECT count(*) FROM {WORK}.gone_keys"),
    }


def update_records(con: duckdb.DuckDBPyConnection, record_columns: tuple[str, ...]) -> None:
    columns = ", ".join(record_columns)
    con.execute(f"DELETE FROM identity.records WHERE rid IN (SELECT rid FROM {WORK}.removed_rids)")
    con.execute(f"INSERT INTO identity.records SELECT rid, {columns} FROM {WORK}.changed_records")


def region_components(
    con: duckdb.DuckDBPyConnection, must: list[tuple[int, int]], cannot: list[tuple[int, int]]
) -> tuple[dict, int]:
    """Components of the affected region only; every other component keeps its records and label.

    The region starts from the *seeds* (removed, changed and new records, every record carrying a
    touched value, every override record) and holds each seed's whole previous component. Its
    edges cannot reach outside it: an edge of a touched value joins two carriers of that value,
    both seeds, and an edge of an untouched value existed before, inside one previous component.
    So its components, computed from its own edges, are those the whole graph would give. (Were
    an edge to leave the region, the other record's previous component is added and the region
    grows until none does.) Reads identity_work.touched_rows (the touched values' identifier
    rows, written by deterministic.update_identifier_tables). Writes identity_work.affected_rids, old_components, new_components
    and split_components, replaces the region's rows of identity.record_components, and returns
    the region's counts and how many components a cannot-link pair split."""
    overrides = sorted({rid for pair in must + cannot for rid in pair})
    _int_table(con, f"{WORK}.override_rids", "rid", overrides)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {WORK}.region_rids AS
        WITH seeds AS (
            SELECT rid FROM {WORK}.removed_rids
            UNION SELECT rid FROM {WORK}.changed_records
            UNION SELECT rid FROM {WORK}.touched_rows
            UNION SELECT rid FROM {WORK}.override_rids)
        SELECT rid FROM seeds
        UNION
        SELECT c.rid FROM identity.record_components c
        WHERE c.component IN (SELECT p.component FROM identity.record_components p SEMI JOIN seeds USING (rid))
        """
    )
    while True:
        edges = con.execute(
            f"""
            SELECT e.rid_l, e.rid_r FROM identity.deterministic_edges e
            SEMI JOIN {WORK}.region_rids g ON e.rid_l = g.rid
            UNION ALL
            SELECT e.rid_l, e.rid_r FROM identity.deterministic_edges e
            SEMI JOIN {WORK}.region_rids g ON e.rid_r = g.rid
            ANTI JOIN {WORK}.region_rids h ON e.rid_l = h.rid
            """
        ).fetchnumpy()
        _int_table(con, f"{WORK}.edge_rids", "rid", np.union1d(edges["rid_l"], edges["rid_r"]))
        outside = _count(con, f"SELECT count(*) FROM {WORK}.edge_rids ANTI JOIN {WORK}.region_rids USING (rid)")
        if not outside:
            break
        con.execute(
            f"""
            INSERT INTO {WORK}.region_rids
            SELECT rid FROM {WORK}.edge_rids ANTI JOIN {WORK}.region_rids USING (rid)
            UNION
            SELECT c.rid FROM identity.record_components c
            WHERE c.component IN (SELECT p.component FROM identity.record_components p
                                  SEMI JOIN {WORK}.edge_rids USING (rid))
              AND c.rid NOT IN (SELECT rid FROM {WORK}.region_rids)
            """
        )
    region = con.execute(
        f"""
        SELECT g.rid, coalesce(c.component, -1) AS old, r.rid IS NOT NULL AS present
        FROM {WORK}.region_rids g
        LEFT JOIN identity.record_components c USING (rid)
        LEFT JOIN identity.records r USING (rid)
        ORDER BY g.rid
        """
    ).fetchnumpy()
    present = np.asarray(region["present"], dtype=bool)
    rids = region["rid"].astype(np.int64)[present]
    old = region["old"].astype(np.int64)[present]
    # Label the present records 0..k-1 in rid order: a component's smallest index is its smallest rid.
    def local(values) -> np.ndarray:
        return np.searchsorted(rids, np.asarray(values, dtype=np.int64))

    def local_pairs(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if pairs and not np.isin(np.asarray(pairs), rids).all():  # override records are region seeds
            raise RuntimeError("an override record lies outside the affected region")
        return [(int(a), int(b)) for a, b in zip(local([p[0] for p in pairs]), local([p[1] for p in pairs]))]

    labels, split = clustering.components_with_overrides(
        len(rids), local(edges["rid_l"]), local(edges["rid_r"]), local_pairs(must), local_pairs(cannot))
    new = rids[labels]
    all_old = region["old"].astype(np.int64)
    old_components = np.unique(all_old[all_old >= 0])
    new_components = np.unique(new)
    _int_table(con, f"{WORK}.affected_rids", "rid", rids)
    _int_table(con, f"{WORK}.old_components", "component", old_components)
    _int_table(con, f"{WORK}.new_components", "component", new_components)
    # A previous component whose records now lie in two or more components was split: pairs
    # between its parts were never scored (they were one component), so its nodes are rescored.
    both = old >= 0
    pairs = np.unique(np.stack([old[both], new[both]], axis=1), axis=0) if both.any() else np.zeros((0, 2), np.int64)
    olds, parts = np.unique(pairs[:, 0], return_counts=True)
    split_old = olds[parts > 1]
    split_new = np.unique(pairs[np.isin(pairs[:, 0], split_old), 1])
    _int_table(con, f"{WORK}.split_components", "component", split_new)
    con.register("_components", pa.table({"rid": pa.array(rids, pa.int64()), "component": pa.array(new, pa.int64())}))
    con.execute(f"DELETE FROM identity.record_components WHERE rid IN (SELECT rid FROM {WORK}.region_rids)")
    con.execute("INSERT INTO identity.record_components SELECT * FROM _components")
    con.unregister("_components")
    return ({"affected_records": int(len(rids)), "affected_components": int(len(new_components)),
             "split_components": len(split_old)}, split)


def update_nodes(con: duckdb.DuckDBPyConnection) -> int:
    """Strength and nodes of the affected components; returns this run's node count.
    identity_work.score_ids lists the nodes to score, identity_work.dropped_nodes the nodes gone."""
    from cdp_pipelines.identity.resolve import component_strength_sql, nodes_sql

    region = f"{WORK}.region_components"  # read twice below: written once
    con.execute(f"CREATE OR REPLACE TABLE {region} AS SELECT c.* FROM identity.record_components c "
                f"SEMI JOIN {WORK}.new_components USING (component)")
    con.execute(
        f"DELETE FROM identity.component_strength WHERE component IN (SELECT component FROM {WORK}.old_components) "
        f"OR component IN (SELECT component FROM {WORK}.new_components)"
    )
    con.execute(f"INSERT INTO identity.component_strength {component_strength_sql(region)}")
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.old_region_nodes AS SELECT node_id FROM identity.nodes "
        f"WHERE component IN (SELECT component FROM {WORK}.old_components)"
    )
    con.execute(f"DELETE FROM identity.nodes WHERE component IN (SELECT component FROM {WORK}.old_components)")
    con.execute(f"CREATE OR REPLACE TABLE {WORK}.region_nodes AS {nodes_sql(region)}")
    con.execute(f"INSERT INTO identity.nodes SELECT * FROM {WORK}.region_nodes")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {WORK}.score_ids AS
        SELECT node_id FROM {WORK}.region_nodes ANTI JOIN {WORK}.old_region_nodes USING (node_id)
        UNION
        SELECT node_id FROM {WORK}.region_nodes WHERE component IN (SELECT component FROM {WORK}.split_components)
        """
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.dropped_nodes AS SELECT node_id FROM {WORK}.old_region_nodes "
        f"ANTI JOIN {WORK}.region_nodes USING (node_id)"
    )
    return _count(con, "SELECT count(*) FROM identity.nodes")


def update_edges(con: duckdb.DuckDBPyConnection, linker, config: IdentityConfig) -> dict:
    """Keep scored pairs between remaining nodes not rescored; score the nodes in score_ids
    (with `linker`; None scores nothing)."""
    # The link graph before this run, for finding the groups that held an affected component.
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.old_links AS SELECT DISTINCT component_l, component_r "
        "FROM identity.probabilistic_edges WHERE component_l <> component_r"
    )
    con.execute(
        f"""
        DELETE FROM identity.probabilistic_edges
        WHERE node_id_l IN (SELECT node_id FROM {WORK}.dropped_nodes UNION ALL SELECT node_id FROM {WORK}.score_ids)
           OR node_id_r IN (SELECT node_id FROM {WORK}.dropped_nodes UNION ALL SELECT node_id FROM {WORK}.score_ids)
        """
    )
    kept = _count(con, "SELECT count(*) FROM identity.probabilistic_edges")
    if linker is None:  # fewer than two nodes: nothing to compare
        con.execute(f"CREATE OR REPLACE TABLE {WORK}.scored_edges AS SELECT * FROM identity.probabilistic_edges LIMIT 0")
    else:
        new_edges = splink_model.predict_new_node_edges(con, linker, config.probabilistic, f"{WORK}.score_ids")
        con.execute(f"CREATE OR REPLACE TABLE {WORK}.scored_edges AS SELECT * FROM {new_edges}")
    con.execute(f"INSERT INTO identity.probabilistic_edges BY NAME SELECT * FROM {WORK}.scored_edges")
    # Pairs touching the affected region carry the components of the run that scored them.
    for side in ("l", "r"):
        con.execute(
            f"""
            UPDATE identity.probabilistic_edges e SET component_{side} = n.component
            FROM identity.nodes n
            WHERE n.node_id = e.node_id_{side}
              AND n.component IN (SELECT component FROM {WORK}.new_components)
            """
        )
    return {
        "new_nodes": _count(con, f"SELECT count(*) FROM {WORK}.score_ids"),
        "pairs_kept": kept,
        "pairs_scored": _count(con, f"SELECT count(*) FROM {WORK}.scored_edges"),
    }


def _groups(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected-component label of every component id 0..n-1 in the graph of `pairs`."""
    if len(pairs) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def regroup_scope(con: duckdb.DuckDBPyConnection, n: int) -> int:
    """identity_work.scope_components: every component whose link group must be merged again,
    and identity_work.scope_rids its records. Returns how many components that is."""
    def pairs(sql: str) -> np.ndarray:
        data = con.execute(sql).fetchnumpy()
        return np.stack([data["component_l"].astype(np.int64), data["component_r"].astype(np.int64)], axis=1) \
            if len(data["component_l"]) else np.zeros((0, 2), np.int64)

    old_pairs = pairs(f"SELECT component_l, component_r FROM {WORK}.old_links")
    new_pairs = pairs("SELECT DISTINCT component_l, component_r FROM identity.probabilistic_edges "
                      "WHERE component_l <> component_r")
    old_affected = con.execute(f"SELECT component FROM {WORK}.old_components").fetchnumpy()["component"].astype(np.int64)
    seeds = set(con.execute(
        f"""
        SELECT component FROM {WORK}.new_components
        UNION SELECT component_l FROM {WORK}.scored_edges UNION SELECT component_r FROM {WORK}.scored_edges
        UNION SELECT n.component FROM identity.nodes n SEMI JOIN {WORK}.scored_edges e ON n.node_id = e.node_id_l
        UNION SELECT n.component FROM identity.nodes n SEMI JOIN {WORK}.scored_edges e ON n.node_id = e.node_id_r
        """
    ).fetchnumpy()["component"].astype(np.int64).tolist())
    # Groups of the previous link graph that held an affected component: their other
    # components (unchanged ones keep their labels) are merged again too.
    size = max(n, int(old_pairs.max()) + 1 if len(old_pairs) else 0, int(old_affected.max()) + 1 if len(old_affected) else 0)
    old_groups = _groups(old_pairs, size)
    hit = np.isin(old_groups, old_groups[old_affected]) if len(old_affected) else np.zeros(size, dtype=bool)
    linked_old = np.zeros(size, dtype=bool)
    linked_old[old_pairs.ravel()] = True
    seeds |= set(np.flatnonzero(hit & linked_old).tolist())
    size = max(size, int(new_pairs.max()) + 1 if len(new_pairs) else 0, max(seeds) + 1 if seeds else 0)
    new_groups = _groups(new_pairs, size)
    seed_array = np.asarray(sorted(seeds), dtype=np.int64)
    in_scope = np.isin(new_groups, new_groups[seed_array]) if len(seed_array) else np.zeros(size, dtype=bool)
    linked_new = np.zeros(size, dtype=bool)
    linked_new[new_pairs.ravel()] = True
    scope = set(np.flatnonzero(in_scope & linked_new).tolist()) | seeds
    _int_table(con, f"{WORK}.scope_candidates", "component", scope)
    # Only components that exist this run (old labels of merged-away components drop out).
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.scope_components AS SELECT DISTINCT component FROM identity.record_components "
        f"SEMI JOIN {WORK}.scope_candidates USING (component)"
    )
    con.execute(
        f"CREATE OR REPLACE TABLE {WORK}.scope_rids AS SELECT rid FROM identity.record_components "
        f"SEMI JOIN {WORK}.scope_components USING (component)"
    )
    # Previous customers of those records or of removed records: each is taken whole.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {WORK}.scope_customers AS
        SELECT DISTINCT x.customer_id FROM identity.customer_xref x
        SEMI JOIN (SELECT r.source, r.source_record_id FROM identity.records r SEMI JOIN {WORK}.scope_rids USING (rid)
                   UNION ALL SELECT source, source_record_id FROM {WORK}.gone_xref) k USING (source, source_record_id)
        """
    )
    return _count(con, f"SELECT count(*) FROM {WORK}.scope_components")


def timed(seconds: dict, name: str, started: float) -> float:
    now = time.perf_counter()
    seconds[name] = round(now - started, 2)
    return now
