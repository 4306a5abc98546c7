"""In-memory source tables: rows are collected per channel, then sorted and written once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdp_pipelines.synthetic.randomness import IdMint


@dataclass(frozen=True)
class TableSpec:
    name: str  # the file stem, also the `source` in the ground truth
    columns: tuple[str, ...]
    id_column: str
    id_prefix: str
    id_width: int
    order_by: str  # a timestamp column; files are written in time order like a real export
    timestamps: dict[str, str]  # column -> "iso_z" (2026-01-02T03:04:05Z) or "space" (2026-01-02 03:04:05)
    file_format: str = "csv"

    @property
    def file_name(self) -> str:
        return f"{self.name}.{'jsonl' if self.file_format == 'jsonl' else 'csv'}"


@dataclass
class Table:
    spec: TableSpec
    mint: IdMint
    rows: list[dict[str, Any]] = field(default_factory=list)
    person_ids: list[str] = field(default_factory=list)

    def add(self, person_id: str, **values: Any) -> str:
        """Append one record for a person; timestamp columns take epoch seconds. Returns its id."""
        record_id = self.mint()
        values[self.spec.id_column] = record_id
        self.rows.append(values)
        self.person_ids.append(person_id)
        return record_id


SPECS = {
    spec.name: spec
    for spec in (
        TableSpec(
            "crm_accounts",
            ("account_id", "title", "first_name", "last_name", "email", "phone", "date_of_birth", "address_line1",
             "address_line2", "city", "postcode", "country", "created_at", "updated_at", "email_consent",
             "sms_consent", "consent_updated_at", "loyalty_card", "web_user_id", "social_handle"),
            "account_id", "A", 7, "created_at",
            {"created_at": "space", "updated_at": "space", "consent_updated_at": "space"},
        ),
        TableSpec(
            "crm_cases",
            ("case_id", "account_id", "opened_at", "closed_at", "channel", "reason", "order_number", "status",
             "agent", "handle_seconds", "note"),
            "case_id", "C", 8, "opened_at", {"opened_at": "space", "closed_at": "space"},
        ),
        TableSpec(
            "web_events",
            ("event_id", "cookie_id", "user_id", "session_id", "ts", "event_type", "url", "sku", "order_number",
             "email", "consent_email"),
            "event_id", "E", 10, "ts", {"ts": "iso_z"}, "jsonl",
        ),
        TableSpec(
            "pos_transactions",
            ("transaction_id", "store_id", "ts", "loyalty_card", "card_token", "receipt_email", "phone",
             "customer_name", "total", "currency", "line_items"),
            "transaction_id", "T", 9, "ts", {"ts": "iso_z"},
        ),
        TableSpec(
            "reviews",
            ("review_id", "platform", "display_name", "email", "sku", "rating", "title", "body", "created_at",
             "order_number"),
            "review_id", "R", 8, "created_at", {"created_at": "iso_z"},
        ),
        TableSpec(
            "social_posts",
            ("post_id", "platform", "handle", "display_name", "location", "text", "ts", "in_reply_to"),
            "post_id", "SP", 9, "ts", {"ts": "iso_z"}, "jsonl",
        ),
    )
}


def new_tables(seed: int) -> dict[str, Table]:
    return {name: Table(spec, IdMint(spec.id_prefix, spec.id_width, seed)) for name, spec in SPECS.items()}
