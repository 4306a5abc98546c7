"""Customer ids that persist across runs, and the changes between two runs.

A new cluster inherits the id of the previous customer it overlaps most. When clusters merge,
the id of the larger previous customer survives (the older on ties) and the other is retired;
when a customer splits, its id stays with the larger part and the others get new ids. New ids
are derived from the cluster's first record, so the same data always gets the same ids.
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa

ID_PREFIX = "C"


def mint_id(first_record_key: str, salt: int = 0) -> str:
    digest = hashlib.sha1(f"{first_record_key}|{salt}".encode()).hexdigest()[:12].upper()
    return f"{ID_PREFIX}{digest}"


# Edges of the overlap graph in the order the greedy inheritance takes them.
_EDGE_ORDER = "overlap DESC, prev_records DESC, first_seen_at, customer_id, cluster"


def _sql_mint_id(first_record: str) -> str:
    """SQL for mint_id(first_record) with salt 0 (a NULL first record hashes as "None", as in Python)."""
    return f"'{ID_PREFIX}' || upper(left(sha1(coalesce({first_record}, 'None') || '|0'), 12))"


def prepare_inputs(con: duckdb.DuckDBPyConnection, scope: tuple[str, str] | None) -> tuple[str, str]:
    """Create the id registry and change log if missing; return the relations of the previous
    customers (source, source_record_id, customer_id) and of the current clusters (rid, cluster),
    limited to `scope` when given (see assign_stable_ids)."""
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS identity.customer_ids (
            customer_id VARCHAR PRIMARY KEY, first_seen_run VARCHAR, first_seen_at TIMESTAMP,
            retired_run VARCHAR, retired_reason VARCHAR, successor_id VARCHAR)
        """
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS identity.identity_changes (
            run_id VARCHAR, changed_at TIMESTAMP, change VARCHAR, customer_id VARCHAR,
            other_customer_id VARCHAR, records BIGINT, evidence VARCHAR)
        """
    )
    has_previous = bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'identity' AND table_name = 'customer_xref'"
    ).fetchall()[0][0])
    previous = "identity.customer_xref" if has_previous else (
        "(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id, NULL::VARCHAR AS customer_id WHERE FALSE)"
    )
    current = "identity.clusters"
    if scope is not None:
        scope_rids, scope_customers = scope
        current = f"(SELECT c.* FROM identity.clusters c SEMI JOIN {scope_rids} USING (rid))"
        if has_previous:
            previous = f"(SELECT p.* FROM identity.customer_xref p SEMI JOIN {scope_customers} USING (customer_id))"
    return previous, current


def record_changes(con: duckdb.DuckDBPyConnection, run_id: str, changes: str) -> None:
    """Append `changes` (change, customer_id, other_customer_id, records, evidence) to the change
    log, and retire merged and retired ids in the registry; a merged id keeps its successor so
    old references can be followed."""
    con.execute(
        "INSERT INTO identity.identity_changes "
        f"SELECT ?, now(), change, customer_id, other_customer_id, records, evidence FROM {changes}",
        [run_id],
    )
    con.execute(
        f"""
        UPDATE identity.customer_ids AS ids
        SET retired_run = ?, retired_reason = ch.change,
            successor_id = CASE WHEN ch.change = 'merged' THEN ch.customer_id END
        FROM {changes} ch
        WHERE ch.change IN ('merged', 'retired')
          AND ids.customer_id = CASE WHEN ch.change = 'merged' THEN ch.other_customer_id ELSE ch.customer_id END
        """,
        [run_id],
    )


def assign_stable_ids(con: duckdb.DuckDBPyConnection, run_id: str, scope: tuple[str, str] | None = None) -> dict[str, int]:
    """Turn identity.clusters(rid, cluster) into customer ids, using the previous xref if any.

    Writes identity.cluster_ids(cluster, customer_id), appends to identity.identity_changes and
    maintains the id registry identity.customer_ids (first seen, retired, successor).

    `scope` = (table of rid, table of customer_id) limits the work to the clusters of those
    records and those previous customers (an incremental run: every previous customer that
    overlaps a record in scope must be listed, and each listed customer is taken whole).
    Clusters and customers outside it keep their rows in identity.cluster_ids.

    The work is done in SQL; Python only settles the contested overlaps and the colliding new ids.
    """
    previous, current = prepare_inputs(con, scope)
    scope_customers = scope[1] if scope else None

    # Overlaps between clusters and previous customers. The first edge of a cluster (of a customer)
    # in greedy order is its top customer (top cluster): the evidence of a split (a merge).
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sid_edges AS
        WITH cur AS (
            SELECT c.cluster, r.source, r.source_record_id
            FROM {current} c JOIN identity.records r USING (rid)
        ),
        prev_sizes AS (SELECT customer_id, count(*) AS prev_records FROM {previous} GROUP BY ALL),
        edges AS (
            SELECT cur.cluster, p.customer_id, count(*) AS overlap, any_value(s.prev_records) AS prev_records,
                   any_value(coalesce(ids.first_seen_at, TIMESTAMP '1970-01-01')) AS first_seen_at
            FROM cur JOIN {previous} p USING (source, source_record_id)
            JOIN prev_sizes s USING (customer_id)
            LEFT JOIN identity.customer_ids ids USING (customer_id)
            GROUP BY ALL
        )
        SELECT *,
               count(*) OVER (PARTITION BY cluster) AS cluster_edges,
               count(*) OVER (PARTITION BY customer_id) AS customer_edges,
               row_number() OVER (PARTITION BY cluster ORDER BY {_EDGE_ORDER}) = 1 AS top_of_cluster,
               row_number() OVER (PARTITION BY customer_id ORDER BY {_EDGE_ORDER}) = 1 AS top_of_customer
        FROM edges
        """
    )
    # Greedy one-to-one inheritance, strongest overlap first (ties: larger, then older id). An edge
    # alone in its piece of the overlap graph is always taken; greedy decisions in one piece never
    # depend on another, so only the pieces of several edges go through the loop, in global order.
    contested = con.execute(
        f"SELECT cluster, customer_id FROM _sid_edges WHERE cluster_edges > 1 OR customer_edges > 1 ORDER BY {_EDGE_ORDER}"
    ).fetchall()
    taken_clusters: dict[int, str] = {}
    taken_ids: set[str] = set()
    for cluster, customer_id in contested:
        if cluster not in taken_clusters and customer_id not in taken_ids:
            taken_clusters[cluster] = customer_id
            taken_ids.add(customer_id)
    con.register("_sid_greedy", pa.table({"cluster": pa.array(list(taken_clusters), pa.int64()),
                                          "customer_id": pa.array(list(taken_clusters.values()), pa.string())}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _sid_inherit AS
        SELECT cluster, customer_id FROM _sid_edges WHERE cluster_edges = 1 AND customer_edges = 1
        UNION ALL SELECT cluster, customer_id FROM _sid_greedy
        """
    )
    con.unregister("_sid_greedy")

    # Clusters, with the inherited id or the salt-0 candidate for a new one. A candidate collides
    # when the registry has it, it is inherited, or another cluster has the same candidate.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sid_clusters AS
        WITH c AS (
            SELECT c.cluster, min(r.source || ':' || r.source_record_id) AS first_record, count(*) AS records
            FROM {current} c JOIN identity.records r USING (rid) GROUP BY ALL
        ),
        d AS (
            SELECT c.*, i.customer_id AS inherited,
                   CASE WHEN i.customer_id IS NULL THEN {_sql_mint_id("c.first_record")} END AS candidate
            FROM c LEFT JOIN _sid_inherit i USING (cluster)
        )
        SELECT *,
               candidate IS NOT NULL AND (
                   count(*) OVER (PARTITION BY candidate) > 1
                   OR candidate IN (SELECT customer_id FROM identity.customer_ids)
                   OR candidate IN (SELECT customer_id FROM _sid_inherit)) AS collides
        FROM d
        """
    )
    fixed = _settle_collisions(con)
    con.register("_sid_fixed", pa.table({"cluster": pa.array(list(fixed), pa.int64()),
                                         "customer_id": pa.array(list(fixed.values()), pa.string())}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _sid_assign AS
        SELECT c.cluster::BIGINT AS cluster, coalesce(c.inherited, f.customer_id, c.candidate) AS customer_id
        FROM _sid_clusters c LEFT JOIN _sid_fixed f USING (cluster)
        ORDER BY c.cluster
        """
    )
    con.unregister("_sid_fixed")

    # Changes: new and split clusters in cluster order, then previous customers no cluster kept
    # (merged into the cluster they overlap most, or retired) in id order.
    previous_ids = f"(SELECT DISTINCT customer_id FROM {previous})"  # empty on a first run
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sid_changes AS
        WITH fresh AS (
            SELECT 0 AS part, c.cluster, NULL::VARCHAR AS old_id,
                   CASE WHEN t.customer_id IS NULL THEN 'new' ELSE 'split' END AS change,
                   a.customer_id, t.customer_id AS other_customer_id, c.records, t.overlap AS moved
            FROM _sid_clusters c JOIN _sid_assign a USING (cluster)
            LEFT JOIN (SELECT cluster, customer_id, overlap FROM _sid_edges WHERE top_of_cluster) t USING (cluster)
            WHERE c.inherited IS NULL
        ),
        gone AS (
            SELECT 1 AS part, NULL AS cluster, o.customer_id AS old_id,
                   CASE WHEN t.customer_id IS NULL THEN 'retired' ELSE 'merged' END AS change,
                   CASE WHEN t.customer_id IS NULL THEN o.customer_id ELSE i.customer_id END AS customer_id,
                   CASE WHEN t.customer_id IS NOT NULL THEN o.customer_id END AS other_customer_id,
                   coalesce(t.overlap, 0) AS records, t.overlap AS moved
            FROM {previous_ids} o
            ANTI JOIN _sid_assign a USING (customer_id)
            LEFT JOIN (SELECT cluster, customer_id, overlap FROM _sid_edges WHERE top_of_customer) t USING (customer_id)
            LEFT JOIN _sid_inherit i ON i.cluster = t.cluster
        ),
        rows AS (SELECT * FROM fresh UNION ALL SELECT * FROM gone)
        SELECT row_number() OVER (ORDER BY part, cluster, old_id) AS seq, change, customer_id, other_customer_id,
               records::BIGINT AS records, moved,
               CASE change
                   WHEN 'new' THEN json_object('reason', 'no previous customer overlaps')
                   WHEN 'retired' THEN json_object('reason', 'none of its records remain')
                   WHEN 'split' THEN json_object('split_from', other_customer_id, 'records_moved', moved)
                   ELSE json_object('retired', other_customer_id, 'kept', customer_id, 'records_moved', moved)
               END::VARCHAR AS evidence
        FROM rows
        """
    )

    if scope is None:
        con.execute("CREATE OR REPLACE TABLE identity.cluster_ids AS "
                    "SELECT cluster, customer_id FROM _sid_assign ORDER BY cluster")
    else:
        con.execute(f"DELETE FROM identity.cluster_ids WHERE customer_id IN (SELECT customer_id FROM {scope_customers})"
                    " OR cluster IN (SELECT cluster FROM _sid_assign)")
        con.execute("INSERT INTO identity.cluster_ids SELECT cluster, customer_id FROM _sid_assign ORDER BY cluster")
    con.execute(
        """
        INSERT INTO identity.customer_ids
        SELECT customer_id, ?, now(), NULL, NULL, NULL FROM _sid_assign
        ANTI JOIN identity.customer_ids USING (customer_id)
        """,
        [run_id],
    )
    record_changes(con, run_id, "(SELECT * FROM _sid_changes ORDER BY seq)")
    counts: dict[str, int] = {"new": 0, "merged": 0, "split": 0, "retired": 0}
    counts.update(dict(con.execute("SELECT change, count(*) FROM _sid_changes GROUP BY ALL").fetchall()))
    counts["kept"] = con.execute("SELECT count(*) FROM _sid_inherit").fetchall()[0][0]
    for table in ("_sid_edges", "_sid_inherit", "_sid_clusters", "_sid_assign", "_sid_changes"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return counts


def _settle_collisions(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """New ids of the clusters whose salt-0 candidate collides.

    In cluster order, each takes the first salt whose id is not in the registry, not inherited,
    not taken by an earlier cluster here and, from salt 1 on, not any new cluster's salt-0
    candidate (so salting never takes the id another cluster derives from its own first record).
    """
    pending = con.execute("SELECT cluster, first_record FROM _sid_clusters WHERE collides ORDER BY cluster").fetchall()
    facts: dict[str, tuple[bool, bool]] = {}  # id -> (issued or inherited, a new cluster's salt-0 candidate)

    def look_up(ids: list[str]) -> None:
        ids = [i for i in dict.fromkeys(ids) if i not in facts]
        if ids:
            facts.update((i, (bool(issued), bool(candidate))) for i, issued, candidate in con.execute(
                """
                SELECT id,
                       id IN (SELECT customer_id FROM identity.customer_ids)
                       OR id IN (SELECT customer_id FROM _sid_inherit),
                       id IN (SELECT candidate FROM _sid_clusters WHERE candidate IS NOT NULL)
                FROM (SELECT unnest(?::VARCHAR[]) AS id)
                """,
                [ids],
            ).fetchall())

    look_up([mint_id(first_record, salt) for _, first_record in pending for salt in range(3)])
    fixed: dict[int, str] = {}
    used: set[str] = set()
    for cluster, first_record in pending:
        salt = 0
        while True:
            customer_id = mint_id(first_record, salt)
            if customer_id not in facts:
                look_up([mint_id(first_record, s) for s in range(salt, salt + 8)])
            issued, candidate = facts[customer_id]
            if not issued and customer_id not in used and (salt == 0 or not candidate):
                break
            salt += 1
        fixed[cluster] = customer_id
        used.add(customer_id)
    return fixed
