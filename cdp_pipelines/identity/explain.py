"""Why records form one customer: its records, the deterministic rules that joined them and
the Splink links (match weight and each comparison's contribution) between its components."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
from rich.console import Console
from rich.table import Table

from cdp_pipelines.privacy import mask_value

RECORD_FIELDS = ("given_name", "last_name", "email", "phone", "date_of_birth", "postcode", "loyalty_card",
                 "web_user_id", "cookie_id", "social_handle", "order_number", "account_id")


@dataclass
class Explanation:
    customer_id: str
    status: str
    records: list[dict] = field(default_factory=list)
    deterministic: list[dict] = field(default_factory=list)
    probabilistic: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def explain_customer(con: duckdb.DuckDBPyConnection, customer_id: str) -> Explanation | None:
    """Everything the identity tables know about why this customer's records belong together."""
    records = _rows(
        con,
        f"""
        SELECT x.source, x.source_record_id, x.match_kind, round(x.match_probability, 4) AS match_probability,
               x.component, r.rid, {", ".join(f"r.{c}" for c in RECORD_FIELDS)}
        FROM identity.customer_xref x JOIN identity.records r USING (source, source_record_id)
        WHERE x.customer_id = ? ORDER BY x.component, x.source, x.source_record_id
        """,
        [customer_id],
    )
    if not records:
        retired = con.execute(
            "SELECT retired_reason, successor_id FROM identity.customer_ids WHERE customer_id = ?", [customer_id]
        ).fetchall()
        if not retired:
            return None
        reason, successor = retired[0]
        status = f"retired ({reason})" + (f"; its records now belong to {successor}" if successor else "")
        return Explanation(customer_id, status)
    rids = [r["rid"] for r in records]
    components = sorted({r["component"] for r in records})
    deterministic = _rows(
        con,
        """
        SELECT e.rule, e.id_value, a.source || ':' || a.source_record_id AS record_a,
               b.source || ':' || b.source_record_id AS record_b
        FROM identity.deterministic_edges e
        JOIN identity.records a ON a.rid = e.rid_l JOIN identity.records b ON b.rid = e.rid_r
        WHERE list_contains(?, e.rid_l) ORDER BY e.rule, record_a, record_b
        """,
        [rids],
    )
    edge_columns = [c[0] for c in con.execute("DESCRIBE identity.probabilistic_edges").fetchall()]
    contributions = [c for c in edge_columns if c.startswith("mw_")]
    probabilistic = _rows(
        con,
        f"""
        SELECT d.component_l, d.component_r, round(d.match_weight, 2) AS match_weight,
               round(d.match_probability, 5) AS match_probability, d.accepted, d.reason,
               (SELECT {{{", ".join(f"'{c[3:]}': round(e.{c}, 2)" for c in contributions) or "'none': 0"}}}
                FROM identity.probabilistic_edges e
                WHERE least(e.component_l, e.component_r) = d.component_l
                  AND greatest(e.component_l, e.component_r) = d.component_r
                ORDER BY e.match_weight DESC LIMIT 1) AS contributions
        FROM identity.link_decisions d
        WHERE list_contains(?, d.component_l) OR list_contains(?, d.component_r)
        ORDER BY d.match_weight DESC
        """,
        [components, components],
    )
    accepted = [p for p in probabilistic if p["accepted"]]
    refused = [p for p in probabilistic if not p["accepted"]]
    return Explanation(customer_id, "active", records, deterministic, accepted, refused)


def render_explanation(explanation: Explanation, console: Console, show_pii: bool = False) -> None:
    """Print an explanation as tables; personal data masked unless show_pii."""
    def shown(value, column: str):
        return "" if value is None else str(value if show_pii else mask_value(value, column))

    console.print(f"[bold]{explanation.customer_id}[/] — {explanation.status}")
    if not explanation.records:
        return
    records = Table(title=f"{len(explanation.records)} records", show_lines=False)
    for column in ("source", "source_record_id", "match_kind", "component", "given_name", "last_name", "email", "phone", "date_of_birth"):
        records.add_column(column)
    for r in explanation.records:
        records.add_row(r["source"], r["source_record_id"], r["match_kind"], str(r["component"]),
                        *(shown(r[c], c) for c in ("given_name", "last_name", "email", "phone", "date_of_birth")))
    console.print(records)
    if explanation.deterministic:
        rules = Table(title="Deterministic edges (shared strong identifier)")
        for column in ("rule", "value", "record", "joined to"):
            rules.add_column(column)
        for e in explanation.deterministic:
            rules.add_row(e["rule"], shown(e["id_value"], e["rule"]), e["record_a"], e["record_b"])
        console.print(rules)
    for title, links in (("Probabilistic links accepted", explanation.probabilistic),
                         ("Probabilistic links refused", explanation.refused)):
        if not links:
            continue
        table = Table(title=title)
        for column in ("components", "match weight", "probability", "decision", "contributions (match weight)"):
            table.add_column(column)
        for p in links:
            parts = ", ".join(f"{k} {v:+}" for k, v in (p["contributions"] or {}).items() if v)
            table.add_row(f"{p['component_l']}–{p['component_r']}", str(p["match_weight"]), str(p["match_probability"]),
                          p["reason"], parts)
        console.print(table)
