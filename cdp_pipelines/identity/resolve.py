"""One identity-resolution run: records -> deterministic components -> Splink links ->
guarded clusters -> stable customer ids, all kept as tables in the `identity` schema."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from cdp_pipelines.identity import clustering, deterministic, splink_model, stable_ids
from cdp_pipelines.identity import incremental as incremental_module
from cdp_pipelines.identity.config import IdentityConfig, Overrides
from cdp_pipelines.vocabulary import STANDARDIZED_COLUMNS

RECORD_COLUMNS = ("source", "source_record_id", "observed_at", *STANDARDIZED_COLUMNS)


@dataclass
class ResolutionSummary:
    records: int = 0
    customers: int = 0
    deterministic: dict = field(default_factory=dict)
    splink_nodes: int = 0
    comparisons_by_rule: list = field(default_factory=list)
    probabilistic_edges: int = 0
    links_considered: int = 0
    links_accepted: int = 0
    links_refused: dict = field(default_factory=dict)
    model_path: str = ""
    model_version: int = 0
    model_trained: bool = False
    changes: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    charts: dict = field(default_factory=dict)
    incremental: dict = field(default_factory=dict)


def _override_rids(con: duckdb.DuckDBPyConnection, pairs) -> tuple[list[tuple[int, int]], list[str]]:
    """Map '<source>:<id>' override pairs to record ids; unknown records are reported, not fatal."""
    found, missing = [], []
    for pair in pairs:
        (sa, ia), (sb, ib) = pair.records()
        rows = con.execute(
            "SELECT source, source_record_id, rid FROM identity.records "
            "WHERE (source = ? AND source_record_id = ?) OR (source = ? AND source_record_id = ?)",
            [sa, ia, sb, ib],
        ).fetchall()
        rid = {(r[0], r[1]): r[2] for r in rows}
        if (sa, ia) in rid and (sb, ib) in rid:
            found.append((rid[(sa, ia)], rid[(sb, ib)]))
        else:
            missing.append(f"{pair.a} ~ {pair.b}")
    return found, missing


def _write_components(con: duckdb.DuckDBPyConnection, labels: np.ndarray) -> None:
    table = pa.table({"rid": pa.array(np.arange(len(labels)), pa.int64()), "component": pa.array(labels, pa.int64())})
    con.register("_components", table)
    con.execute("CREATE OR REPLACE TABLE identity.record_components AS SELECT * FROM _components")
    con.unregister("_components")


def _deterministic_components(
    con: duckdb.DuckDBPyConnection, n_records: int, must: list[tuple[int, int]], cannot: list[tuple[int, int]]
) -> int:
    labels, split = _component_labels(con, n_records, must, cannot)
    _write_components(con, labels)
    return split


def _component_labels(
    con: duckdb.DuckDBPyConnection, n_records: int, must: list[tuple[int, int]], cannot: list[tuple[int, int]]
) -> tuple[np.ndarray, int]:
    """Component label of every rid 0..n_records-1 (the smallest rid of its component)."""
    edges = con.execute("SELECT rid_l, rid_r FROM identity.deterministic_edges").fetchnumpy()
    return clustering.components_with_overrides(n_records, edges["rid_l"], edges["rid_r"], must, cannot)


def component_strength_sql(components: str = "identity.record_components") -> str:
    """Whether each component of `components` (rows of identity.record_components, whole
    components) has a record carrying a strong identifier value that is not shared."""
    own = "" if components == "identity.record_components" else f"SEMI JOIN {components} USING (rid)"
    return f"""
        SELECT c.component, bool_or(u.rid IS NOT NULL) AS strong
        FROM {components} c
        LEFT JOIN (SELECT DISTINCT v.rid FROM identity.identifier_values v {own}
                   ANTI JOIN identity.shared_identifiers s USING (id_type, id_value)) u USING (rid)
        GROUP BY ALL
        """


def nodes_sql(components: str = "identity.record_components") -> str:
    """Identity nodes of the (whole) components listed in `components`."""
    columns = ", ".join(splink_model.NODE_COLUMNS)
    any_present = " OR ".join(f"r.{c} IS NOT NULL" for c in splink_model.NODE_COLUMNS)
    # A node's id is a hash of its first record and its attributes, so it stays the same from
    # run to run while neither changes: an incremental run scores only nodes it has not seen.
    # Its source is the first source it has records in (rid order follows source order in a
    # full run, so this is the source of its first record there).
    key_parts = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in splink_model.NODE_COLUMNS)
    return f"""
        SELECT md5(concat_ws('|', min(r.source || ':' || r.source_record_id), {key_parts})) AS node_id,
               c.component, any_value(s.strong) AS strong,
               min(r.source) AS source, min(r.rid) AS first_rid, count(*) AS records, {columns}
        FROM identity.records r JOIN {components} c USING (rid)
        JOIN identity.component_strength s USING (component)
        WHERE {any_present}
        GROUP BY c.component, {columns}
        """


def _build_nodes(con: duckdb.DuckDBPyConnection) -> int:
    """Distinct comparable attribute combinations per deterministic component (Splink's input)."""
    con.execute(f"CREATE OR REPLACE TABLE identity.component_strength AS {component_strength_sql()}")
    con.execute(f"CREATE OR REPLACE TABLE identity.nodes AS {nodes_sql()}")
    return con.execute("SELECT count(*) FROM identity.nodes").fetchall()[0][0]


def _keep_previous_nodes(con: duckdb.DuckDBPyConnection) -> int:
    """Remember last run's node ids (and require its scored pairs) before nodes are rebuilt."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'identity' "
        "AND table_name IN ('nodes', 'probabilistic_edges')"
    ).fetchall()[0][0]
    if exists < 2:
        return 0
    con.execute("CREATE OR REPLACE TABLE identity.previous_nodes AS SELECT node_id FROM identity.nodes")
    return con.execute("SELECT count(*) FROM identity.previous_nodes").fetchall()[0][0]


def _predict_incrementally(con: duckdb.DuckDBPyConnection, linker, config: IdentityConfig) -> dict:
    """Keep last run's scored pairs between nodes that still exist; score only the new nodes."""
    con.execute(
        """
        CREATE OR REPLACE TABLE identity_work.new_nodes AS
        SELECT node_id FROM identity.nodes ANTI JOIN identity.previous_nodes USING (node_id)
        """
    )
    new_nodes = con.execute("SELECT count(*) FROM identity_work.new_nodes").fetchall()[0][0]
    con.execute(
        """
        CREATE OR REPLACE TABLE identity_work.kept_edges AS
        SELECT e.* FROM identity.probabilistic_edges e
        SEMI JOIN identity.nodes l ON l.node_id = e.node_id_l
        SEMI JOIN identity.nodes r ON r.node_id = e.node_id_r
        """
    )
    new_edges = splink_model.predict_new_node_edges(con, linker, config.probabilistic, "identity_work.new_nodes")
    con.execute("CREATE OR REPLACE TABLE identity.probabilistic_edges AS SELECT * FROM identity_work.kept_edges")
    con.execute(f"INSERT INTO identity.probabilistic_edges BY NAME SELECT * FROM {new_edges}")
    return {
        "new_nodes": new_nodes,
        "pairs_kept": con.execute("SELECT count(*) FROM identity_work.kept_edges").fetchall()[0][0],
        "pairs_scored": con.execute(f"SELECT count(*) FROM {new_edges}").fetchall()[0][0],
    }


def _refresh_edge_components(con: duckdb.DuckDBPyConnection) -> None:
    """Scored pairs carry the components of the run that scored them; use this run's (pairs
    kept from an earlier run may join components that changed since)."""
    con.execute(
        """
        CREATE OR REPLACE TABLE identity.probabilistic_edges AS
        SELECT e.* REPLACE (l.component AS component_l, r.component AS component_r)
        FROM identity.probabilistic_edges e
        JOIN identity.nodes l ON l.node_id = e.node_id_l
        JOIN identity.nodes r ON r.node_id = e.node_id_r
        """
    )


def _component_links(
    con: duckdb.DuckDBPyConnection, scope: str | None = None
) -> list[tuple[int, int, float, float, bool]]:
    """The strongest scored pair between each two components, and whether its given names are
    wholly different (Splink's lowest given-name level) while both are known. `scope`: a table
    of components whose links (within their link groups) are wanted."""
    where = f" AND component_l IN (SELECT component FROM {scope})" if scope else ""
    return con.execute(
        f"""
        SELECT least(component_l, component_r) AS a, greatest(component_l, component_r) AS b,
               max(match_weight) AS w, max(match_probability) AS p,
               arg_max(gamma_given_name = 0, match_weight) AS names_conflict
        FROM identity.probabilistic_edges WHERE component_l <> component_r{where}
        GROUP BY ALL
        """
    ).fetchall()


def _component_facts(
    con: duckdb.DuckDBPyConnection, cannot: list[tuple[int, int]], scope: str | None = None,
    min_probability: float = 0.0,
) -> dict[int, clustering.ComponentFacts]:
    """What the guard needs of each linked component. Every link needs both sides' strength;
    sizes, birth dates, account ids and cannot-link tags matter only for components with a link
    at `min_probability` or above (every weaker link is refused on probability alone)."""
    restrict = f"SEMI JOIN {scope} USING (component)" if scope else ""

    def linked(at_least: float) -> str:
        return (f"SELECT component_l AS component FROM identity.probabilistic_edges WHERE match_probability >= {at_least} "
                f"UNION SELECT component_r FROM identity.probabilistic_edges WHERE match_probability >= {at_least}")

    strengths = con.execute(
        f"SELECT component, strong FROM identity.component_strength SEMI JOIN ({linked(0.0)}) USING (component) {restrict}"
    ).fetchall()
    rows = con.execute(
        f"""
        SELECT c.component, count(*) AS records, any_value(s.strong) AS strong,
               list(DISTINCT r.date_of_birth) FILTER (WHERE r.date_of_birth IS NOT NULL),
               list(DISTINCT r.account_id) FILTER (WHERE r.account_id IS NOT NULL)
        FROM identity.record_components c SEMI JOIN ({linked(min_probability)}) USING (component) {restrict}
        JOIN identity.records r USING (rid) JOIN identity.component_strength s USING (component)
        GROUP BY ALL
        """
    ).fetchall()
    involved = sorted({rid for pair in cannot for rid in pair})
    labels = dict(con.execute(
        "SELECT rid, component FROM identity.record_components WHERE list_contains(?, rid)", [involved]
    ).fetchall()) if cannot else {}
    tags: dict[int, set[int]] = {}
    for tag, (a, b) in enumerate(cannot):
        tags.setdefault(labels[a], set()).add(tag)
        tags.setdefault(labels[b], set()).add(tag)
    strength_only = {True: clustering.ComponentFacts(records=1, strong=True),
                     False: clustering.ComponentFacts(records=1, strong=False)}
    facts = {comp: strength_only[bool(strong)] for comp, strong in strengths}
    facts.update({
        comp: clustering.ComponentFacts(records, bool(strong), frozenset(dobs or []), frozenset(accounts or []),
                                        frozenset(tags.get(comp, set())))
        for comp, records, strong, dobs, accounts in rows
    })
    return facts


def _count_decisions(con: duckdb.DuckDBPyConnection, summary: ResolutionSummary) -> None:
    """Links considered, accepted and refused (by reason; probabilities and the cluster bound
    are grouped by their first word) from identity.link_decisions."""
    summary.links_considered, summary.links_accepted = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE accepted) FROM identity.link_decisions").fetchall()[0]
    summary.links_refused = dict(con.execute(
        """
        SELECT CASE WHEN starts_with(reason, 'probability') OR starts_with(reason, 'would')
                    THEN split_part(reason, ' ', 1) ELSE reason END AS key, count(*)
        FROM identity.link_decisions WHERE NOT accepted GROUP BY ALL ORDER BY 1
        """
    ).fetchall())


def _merge(
    con: duckdb.DuckDBPyConnection, config: IdentityConfig, cannot: list[tuple[int, int]], scope: str | None = None
) -> tuple[pa.Table, pa.Table]:
    """Guarded merge of the components' links (of the link groups of `scope`, if given)."""
    links = _component_links(con, scope)
    probabilistic = config.probabilistic
    facts = _component_facts(con, cannot, scope,
                             min(probabilistic.match_probability, probabilistic.weak_record_probability))
    guard = clustering.GuardSettings(
        match_probability=config.probabilistic.match_probability,
        weak_record_probability=config.probabilistic.weak_record_probability,
        overwhelming_match_weight=config.clustering.overwhelming_match_weight,
        overwhelming_by_attribute=dict(config.clustering.overwhelming_match_weight_by_attribute),
        conflict_attributes=tuple(config.clustering.conflict_attributes),
    )
    roots, decisions = clustering.guarded_merge(facts, links, guard)
    decision_table = pa.table({
        "component_l": pa.array([d.left for d in decisions], pa.int64()),
        "component_r": pa.array([d.right for d in decisions], pa.int64()),
        "match_weight": pa.array([d.match_weight for d in decisions], pa.float64()),
        "match_probability": pa.array([d.match_probability for d in decisions], pa.float64()),
        "accepted": pa.array([d.accepted for d in decisions], pa.bool_()),
        "reason": pa.array([d.reason for d in decisions], pa.string()),
    })
    root_table = pa.table({"component": pa.array(list(roots.keys()), pa.int64()),
                           "cluster": pa.array(list(roots.values()), pa.int64())})
    return decision_table, root_table


def xref_sql(scope_rids: str | None = None) -> str:
    """Rows of identity.customer_xref (for the records of `scope_rids`, whose components are whole)."""
    restrict = f"SEMI JOIN {scope_rids} USING (rid)" if scope_rids else ""
    return f"""
        WITH clusters AS (SELECT c.* FROM identity.clusters c {restrict}),
        component_size AS (SELECT component, count(*) AS n FROM clusters GROUP BY ALL),
        accepted AS (
            SELECT component, max(match_probability) AS p FROM (
                SELECT component_l AS component, match_probability FROM identity.link_decisions WHERE accepted
                UNION ALL
                SELECT component_r, match_probability FROM identity.link_decisions WHERE accepted)
            GROUP BY ALL
        )
        SELECT r.source, r.source_record_id, ids.customer_id,
               CASE WHEN a.p IS NOT NULL THEN 'probabilistic'
                    WHEN s.n > 1 THEN 'deterministic' ELSE 'single' END AS match_kind,
               CASE WHEN a.p IS NOT NULL THEN a.p WHEN s.n > 1 THEN 1.0 END AS match_probability,
               c.component, c.cluster
        FROM clusters c JOIN identity.records r USING (rid)
        JOIN identity.cluster_ids ids USING (cluster)
        JOIN component_size s USING (component)
        LEFT JOIN accepted a USING (component)
        """


def resolve(
    con: duckdb.DuckDBPyConnection,
    config: IdentityConfig,
    overrides: Overrides,
    model_dir: Path,
    run_id: str,
    retrain: bool = False,
    charts_dir: Path | None = None,
    incremental: bool = False,
) -> ResolutionSummary:
    """Resolve standardized.identity_records into identity.customer_xref (and companions).

    With `incremental`, only the region that new or changed records reach is resolved again
    (see identity/incremental.py), when the previous run's tables, settings and model allow it;
    otherwise everything is, and only new nodes are scored when a saved model is reused."""
    if incremental and not retrain:
        reason = incremental_module.can_run(con, config)
        fingerprint = splink_model.settings_fingerprint(config.probabilistic)
        if reason is None and splink_model.latest_model(model_dir, fingerprint) is None:
            reason = "no saved model for the current settings"
        # Until this run completes, its tables are no base for an incremental run.
        incremental_module.forget_state(con)
        if reason is None:
            summary = _resolve_incremental(con, config, overrides, model_dir, run_id, charts_dir)
            incremental_module.save_state(con, config, run_id, "incremental")
            return summary
        summary = _resolve_everything(con, config, overrides, model_dir, run_id, retrain, charts_dir, incremental)
        summary.incremental.update(mode="whole graph", whole_graph_because=reason)
    else:
        incremental_module.forget_state(con)
        summary = _resolve_everything(con, config, overrides, model_dir, run_id, retrain, charts_dir, incremental)
    incremental_module.save_state(con, config, run_id, "full" if not incremental else "incremental (whole graph)")
    return summary


def _resolve_everything(
    con: duckdb.DuckDBPyConnection,
    config: IdentityConfig,
    overrides: Overrides,
    model_dir: Path,
    run_id: str,
    retrain: bool,
    charts_dir: Path | None,
    incremental: bool,
) -> ResolutionSummary:
    summary = ResolutionSummary()
    clock = time.perf_counter
    t0 = clock()
    con.execute("CREATE SCHEMA IF NOT EXISTS identity")
    # Numbering only the keys and joining them back is several times faster than numbering
    # the wide rows: a window over the whole table sorts everything it carries on one thread.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE identity.records AS
        SELECT k.rid, {", ".join(f"r.{c}" for c in RECORD_COLUMNS)}
        FROM standardized.identity_records r
        JOIN (SELECT source, source_record_id, row_number() OVER (ORDER BY source, source_record_id) - 1 AS rid
              FROM standardized.identity_records) k USING (source, source_record_id)
        """
    )
    summary.records = con.execute("SELECT count(*) FROM identity.records").fetchall()[0][0]
    summary.deterministic = deterministic.build_identifier_tables(con, config.deterministic)
    must, missing_must = _override_rids(con, overrides.must_link)
    cannot, missing_cannot = _override_rids(con, overrides.cannot_link)
    split = _deterministic_components(con, summary.records, must, cannot)
    summary.overrides = {"must_link": len(must), "cannot_link": len(cannot), "components_split_by_cannot_link": split,
                         "unknown_records": missing_must + missing_cannot}
    summary.seconds["deterministic"] = round(clock() - t0, 2)

    previous_nodes = _keep_previous_nodes(con) if incremental else 0
    summary.splink_nodes = _build_nodes(con)
    if summary.splink_nodes >= 2:
        linker, model = splink_model.train_or_load(con, config.probabilistic, model_dir, retrain)
        summary.model_path, summary.model_version, summary.model_trained = str(model.path), model.version, model.trained
        summary.seconds["splink_train"] = round(model.seconds, 2)
        t2 = clock()
        kept_earlier_pairs = incremental and previous_nodes and not model.trained
        if kept_earlier_pairs:
            summary.incremental = _predict_incrementally(con, linker, config)
            summary.probabilistic_edges = con.execute("SELECT count(*) FROM identity.probabilistic_edges").fetchall()[0][0]
        else:
            summary.probabilistic_edges, summary.comparisons_by_rule = splink_model.predict_edges(
                con, linker, config.probabilistic)
        summary.seconds["splink_predict"] = round(clock() - t2, 2)
        if kept_earlier_pairs:  # pairs scored this run already carry this run's components
            _refresh_edge_components(con)
        if charts_dir is not None:
            summary.charts = {k: str(v) for k, v in splink_model.save_charts(linker, con, charts_dir).items()}
    else:
        con.execute(
            "CREATE OR REPLACE TABLE identity.probabilistic_edges (component_l BIGINT, component_r BIGINT, "
            "match_weight DOUBLE, match_probability DOUBLE, node_id_l VARCHAR, node_id_r VARCHAR, gamma_given_name INTEGER)"
        )

    t3 = clock()
    decision_table, root_table = _merge(con, config, cannot)
    con.register("_decisions", decision_table)
    con.register("_roots", root_table)
    con.execute("CREATE OR REPLACE TABLE identity.link_decisions AS SELECT * FROM _decisions")
    con.execute(
        """
        CREATE OR REPLACE TABLE identity.clusters AS
        SELECT c.rid, coalesce(r.cluster, c.component) AS cluster, c.component
        FROM identity.record_components c LEFT JOIN _roots r USING (component)
        """
    )
    con.unregister("_decisions")
    con.unregister("_roots")
    _count_decisions(con, summary)
    summary.seconds["clustering"] = round(clock() - t3, 2)

    t4 = clock()
    summary.changes = stable_ids.assign_stable_ids(con, run_id)
    con.execute(f"CREATE OR REPLACE TABLE identity.customer_xref AS {xref_sql()}")
    summary.customers = con.execute("SELECT count(DISTINCT customer_id) FROM identity.customer_xref").fetchall()[0][0]
    summary.seconds["stable_ids"] = round(clock() - t4, 2)
    con.execute(f"DROP SCHEMA IF EXISTS {splink_model.SPLINK_SCHEMA} CASCADE")
    con.execute("DROP TABLE IF EXISTS identity.previous_nodes")
    return summary


def _resolve_incremental(
    con: duckdb.DuckDBPyConnection,
    config: IdentityConfig,
    overrides: Overrides,
    model_dir: Path,
    run_id: str,
    charts_dir: Path | None,
) -> ResolutionSummary:
    """The region-by-region run described in identity/incremental.py."""
    inc = incremental_module
    work = inc.WORK
    summary = ResolutionSummary()
    seconds = summary.seconds
    clock = time.perf_counter
    t = t0 = clock()
    con.execute(f"DROP SCHEMA IF EXISTS {work} CASCADE")
    con.execute(f"CREATE SCHEMA {work}")
    summary.incremental = {"mode": "incremental", **inc.find_changes(con, run_id, RECORD_COLUMNS)}
    previous_max = con.execute("SELECT coalesce(max(rid), -1) FROM identity.records").fetchall()[0][0]
    inc.update_records(con, RECORD_COLUMNS)
    summary.records, current_max = con.execute(
        "SELECT count(*), coalesce(max(rid), -1) FROM identity.records").fetchall()[0]
    t = inc.timed(seconds, "records", t)
    summary.deterministic = deterministic.update_identifier_tables(
        con, config.deterministic, f"{work}.removed_rids", f"{work}.changed_records")
    t = inc.timed(seconds, "identifiers", t)
    must, missing_must = _override_rids(con, overrides.must_link)
    cannot, missing_cannot = _override_rids(con, overrides.cannot_link)
    n = max(previous_max, current_max) + 1
    region, split = inc.region_components(con, must, cannot)
    summary.overrides = {"must_link": len(must), "cannot_link": len(cannot), "components_split_by_cannot_link": split,
                         "unknown_records": missing_must + missing_cannot}
    summary.incremental.update(region)
    t = inc.timed(seconds, "components", t)
    seconds["deterministic"] = round(t - t0, 2)

    summary.splink_nodes = inc.update_nodes(con)
    t = inc.timed(seconds, "nodes", t)
    linker = None
    if summary.splink_nodes >= 2:
        linker, model = splink_model.train_or_load(con, config.probabilistic, model_dir, retrain=False)
        summary.model_path, summary.model_version, summary.model_trained = str(model.path), model.version, model.trained
        seconds["splink_train"] = round(model.seconds, 2)
    t = clock()
    summary.incremental.update(inc.update_edges(con, linker, config))
    summary.probabilistic_edges = con.execute("SELECT count(*) FROM identity.probabilistic_edges").fetchall()[0][0]
    t = inc.timed(seconds, "splink_predict", t)
    if charts_dir is not None and linker is not None:
        summary.charts = {k: str(v) for k, v in splink_model.save_charts(linker, con, charts_dir).items()}
        t = inc.timed(seconds, "charts", t)

    summary.incremental["regrouped_components"] = inc.regroup_scope(con, n)
    scope = f"{work}.scope_components"
    decision_table, root_table = _merge(con, config, cannot, scope)
    con.register("_decisions", decision_table)
    con.register("_roots", root_table)
    con.execute(
        f"""
        DELETE FROM identity.link_decisions
        WHERE component_l IN (SELECT component FROM {scope} UNION ALL SELECT component FROM {work}.scope_candidates
                              UNION ALL SELECT component FROM {work}.old_components)
           OR component_r IN (SELECT component FROM {scope} UNION ALL SELECT component FROM {work}.scope_candidates
                              UNION ALL SELECT component FROM {work}.old_components)
        """
    )
    con.execute("INSERT INTO identity.link_decisions SELECT * FROM _decisions")
    con.execute(
        f"DELETE FROM identity.clusters WHERE rid IN (SELECT rid FROM {work}.scope_rids "
        f"UNION ALL SELECT rid FROM {work}.removed_rids)"
    )
    con.execute(
        f"""
        INSERT INTO identity.clusters
        SELECT c.rid, coalesce(r.cluster, c.component) AS cluster, c.component
        FROM identity.record_components c SEMI JOIN {work}.scope_rids USING (rid) LEFT JOIN _roots r USING (component)
        """
    )
    con.unregister("_decisions")
    con.unregister("_roots")
    _count_decisions(con, summary)
    t = inc.timed(seconds, "clustering", t)

    summary.changes = stable_ids.assign_stable_ids(con, run_id, scope=(f"{work}.scope_rids", f"{work}.scope_customers"))
    summary.changes["kept"] += con.execute(
        f"SELECT count(*) FROM identity.cluster_ids ANTI JOIN (SELECT DISTINCT cluster FROM identity.clusters "
        f"SEMI JOIN {work}.scope_rids USING (rid)) USING (cluster)").fetchall()[0][0]
    con.execute(
        f"""
        DELETE FROM identity.customer_xref x USING (
            SELECT r.source, r.source_record_id FROM identity.records r SEMI JOIN {work}.scope_rids USING (rid)
            UNION ALL SELECT source, source_record_id FROM {work}.gone_keys
            UNION ALL SELECT source, source_record_id FROM {work}.changed_records) k
        WHERE x.source = k.source AND x.source_record_id = k.source_record_id
        """
    )
    con.execute(f"INSERT INTO identity.customer_xref {xref_sql(f'{work}.scope_rids')}")
    summary.customers = con.execute("SELECT count(*) FROM identity.cluster_ids").fetchall()[0][0]
    t = inc.timed(seconds, "stable_ids", t)
    con.execute(f"DROP SCHEMA IF EXISTS {work} CASCADE")
    return summary
