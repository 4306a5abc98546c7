"""Customer ids that persist across runs, and the changes between two runs.

A new cluster inherits the id of the previous customer it overlaps most. When clusters merge,
the id of the larger previous customer survives (the older on ties) and the other is retired;
when a customer splits, its id stays with the larger part and the others get new ids. New ids
are derived from the cluster's first record, so the same data always gets the same ids.
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import pyarrow as pa

ID_PREFIX = "C"


def mint_id(first_record_key: str, salt: int = 0) -> str:
    digest = hashlib.sha1(f"{first_record_key}|{salt}".encode()).hexdigest()[:12].upper()
    return f"{ID_PREFIX}{digest}"


def assign_stable_ids(con: duckdb.DuckDBPyConnection, run_id: str, scope: tuple[str, str] | None = None) -> dict[str, int]:
    """Turn identity.clusters(rid, cluster) into customer ids, using the previous xref if any.

    Writes identity.cluster_ids(cluster, customer_id), appends to identity.identity_changes and
    maintains the id registry identity.customer_ids (first seen, retired, successor).

    `scope` = (table of rid, table of customer_id) limits the work to the clusters of those
    records and those previous customers (an incremental run: every previous customer that
    overlaps a record in scope must be listed, and each listed customer is taken whole).
    Clusters and customers outside it keep their rows in identity.cluster_ids.
    """
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
    scope_rids, scope_customers = scope or (None, None)
    current = "identity.clusters"
    if scope is not None:
        current = f"(SELECT c.* FROM identity.clusters c SEMI JOIN {scope_rids} USING (rid))"
        if has_previous:
            previous = f"(SELECT p.* FROM identity.customer_xref p SEMI JOIN {scope_customers} USING (customer_id))"
    overlaps = con.execute(
        f"""
        WITH cur AS (
            SELECT c.cluster, r.source, r.source_record_id
            FROM {current} c JOIN identity.records r USING (rid)
        ),
        prev_sizes AS (SELECT customer_id, count(*) AS prev_records FROM {previous} GROUP BY ALL)
        SELECT cur.cluster, p.customer_id, count(*) AS overlap, any_value(s.prev_records) AS prev_records,
               any_value(coalesce(ids.first_seen_at, TIMESTAMP '1970-01-01')) AS first_seen_at
        FROM cur JOIN {previous} p USING (source, source_record_id)
        JOIN prev_sizes s USING (customer_id)
        LEFT JOIN identity.customer_ids ids USING (customer_id)
        GROUP BY ALL
        ORDER BY overlap DESC, prev_records DESC, first_seen_at, p.customer_id, cur.cluster
        """
    ).fetchall()
    # Greedy one-to-one inheritance, strongest overlap first (ties: larger, then older id).
    taken_clusters: dict[int, str] = {}
    taken_ids: set[str] = set()
    top_cluster_of_id: dict[str, tuple[int, int]] = {}
    top_id_of_cluster: dict[int, tuple[str, int]] = {}
    for cluster, customer_id, overlap, _prev_records, _first_seen in overlaps:
        top_cluster_of_id.setdefault(customer_id, (cluster, overlap))
        top_id_of_cluster.setdefault(cluster, (customer_id, overlap))
        if cluster not in taken_clusters and customer_id not in taken_ids:
            taken_clusters[cluster] = customer_id
            taken_ids.add(customer_id)

    clusters = con.execute(
        f"""
        SELECT c.cluster, min(r.source || ':' || r.source_record_id) AS first_record, count(*) AS records
        FROM {current} c JOIN identity.records r USING (rid) GROUP BY ALL ORDER BY c.cluster
        """
    ).fetchall()
    # Ids ever issued that a new id must not repeat: looked up for the candidates only.
    candidates = [mint_id(first_record) for cluster, first_record, _ in clusters if cluster not in taken_clusters]
    known_ids = {row[0] for row in con.execute(
        "SELECT customer_id FROM identity.customer_ids WHERE customer_id IN (SELECT unnest(?::VARCHAR[]))", [candidates]
    ).fetchall()} if candidates else set()
    first_candidates = set(candidates)

    def issued(customer_id: str) -> bool:
        if customer_id in known_ids or customer_id in taken_ids:
            return True
        return customer_id not in first_candidates and bool(con.execute(
            "SELECT count(*) FROM identity.customer_ids WHERE customer_id = ?", [customer_id]).fetchall()[0][0])
    assignments: list[tuple[int, str]] = []
    changes: list[tuple[str, str, str | None, int, str]] = []
    for cluster, first_record, records in clusters:
        customer_id = taken_clusters.get(cluster)
        if customer_id is None:
            salt = 0
            customer_id = mint_id(first_record, salt)
            while issued(customer_id):
                salt += 1
                customer_id = mint_id(first_record, salt)
            taken_ids.add(customer_id)
            if cluster in top_id_of_cluster:
                parent, moved = top_id_of_cluster[cluster]
                changes.append(("split", customer_id, parent, records,
                                json.dumps({"split_from": parent, "records_moved": moved})))
            else:
                changes.append(("new", customer_id, None, records,
                                json.dumps({"reason": "no previous customer overlaps"})))
        assignments.append((cluster, customer_id))
    previous_ids = (
        [row[0] for row in con.execute(f"SELECT DISTINCT customer_id FROM {previous} ORDER BY 1").fetchall()]
        if has_previous else []
    )
    for old_id in previous_ids:
        if old_id in taken_ids:
            continue
        if old_id in top_cluster_of_id:
            cluster, moved = top_cluster_of_id[old_id]
            survivor = taken_clusters[cluster]
            changes.append(("merged", survivor, old_id, moved,
                            json.dumps({"retired": old_id, "kept": survivor, "records_moved": moved})))
        else:
            changes.append(("retired", old_id, None, 0, json.dumps({"reason": "none of its records remain"})))

    assigned = pa.table({"cluster": pa.array([a[0] for a in assignments], pa.int64()),
                         "customer_id": pa.array([a[1] for a in assignments], pa.string())})
    con.register("_assign", assigned)
    if scope is None:
        con.execute("CREATE OR REPLACE TABLE identity.cluster_ids AS SELECT * FROM _assign")
    else:
        con.execute(f"DELETE FROM identity.cluster_ids WHERE customer_id IN (SELECT customer_id FROM {scope_customers})"
                    " OR cluster IN (SELECT cluster FROM _assign)")
        con.execute("INSERT INTO identity.cluster_ids SELECT * FROM _assign")
    con.execute(
        """
        INSERT INTO identity.customer_ids
        SELECT customer_id, ?, now(), NULL, NULL, NULL FROM _assign
        ANTI JOIN identity.customer_ids USING (customer_id)
        """,
        [run_id],
    )
    con.unregister("_assign")
    if changes:
        kinds, ids, others, records, evidence = zip(*changes)
        frame = pa.table({"change": list(kinds), "customer_id": list(ids), "other_customer_id": list(others),
                          "records": pa.array(records, pa.int64()), "evidence": list(evidence)})
        con.register("_changes", frame)
        con.execute(
            "INSERT INTO identity.identity_changes "
            "SELECT ?, now(), change, customer_id, other_customer_id, records, evidence FROM _changes",
            [run_id],
        )
        # Retired ids keep their successor so old references can be followed.
        con.execute(
            """
            UPDATE identity.customer_ids AS ids
            SET retired_run = ?, retired_reason = ch.change,
                successor_id = CASE WHEN ch.change = 'merged' THEN ch.customer_id END
            FROM _changes ch
            WHERE ch.change IN ('merged', 'retired')
              AND ids.customer_id = CASE WHEN ch.change = 'merged' THEN ch.other_customer_id ELSE ch.customer_id END
            """,
            [run_id],
        )
        con.unregister("_changes")
    counts: dict[str, int] = {"new": 0, "merged": 0, "split": 0, "retired": 0}
    for change in changes:
        counts[change[0]] += 1
    counts["kept"] = len(taken_clusters)
    return counts
