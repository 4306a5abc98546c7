"""Small hand-made marts and consent for the segments tests (imported by test_segments_*.py).

Customers and their resolved consent (profiles.consent is the truth, not customer_360):
  C1  email opt_in,  sms opt_in    high value, frustrated, happy reviewer, abandoned a cart
  C2  email opt_out, sms opt_out   customer_360 still says email_consent 'opt_in' (stale column)
  C3  email unknown
  C4  email opt_in,  sms opt_out   lapsed store customer; checked out after adding to cart
  C5  no consent rows at all
  C6  email: one opt_in and one opt_out record (conflict: not eligible)
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb

CONSENTED_EMAIL = {"C1", "C4"}
CONSENTED_SMS = {"C1"}
OPTED_OUT_EMAIL = {"C2", "C6"}

SEGMENTS_YAML = """
version: 1
segments:
  - name: everyone_email
    description: Everyone, for email.
    owner: team:growth
    channel: email
    rule: "TRUE"
  - name: opted_out_email
    description: A rule that tries to pick the people who opted out.
    owner: team:growth
    channel: email
    rule: "email_consent = 'opt_out' OR customer_id IN ('C2', 'C6')"
  - name: everyone_sms
    description: Everyone, for sms.
    owner: team:growth
    channel: sms
    rule: "TRUE"
  - name: everyone_ads
    description: Everyone, for ads.
    owner: marketing@example.com
    channel: ads
    rule: "TRUE"
  - name: high_value
    description: Customers worth 500 or more.
    owner: team:growth
    channel: email
    rule: "lifetime_value >= 500"
    export_columns: [customer_id, email, city]
    schedule_folder: crm/weekly
"""


def write_segments(folder: Path, text: str = SEGMENTS_YAML) -> Path:
    path = Path(folder) / "segments.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def build_warehouse(path: Path) -> Path:
    """A warehouse with the marts and profiles.consent columns the segments stage reads."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE SCHEMA IF NOT EXISTS profiles")
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.customer_profile AS SELECT * FROM (VALUES
              ('C1', 'Alice', 'Smith', ' Alice.Smith@Example.com ', '+447700900001', DATE '1980-01-02', 'Leeds', 'LS1 1AA', 'GB', 900.0, 9, TIMESTAMP '2024-01-01', TIMESTAMP '2026-10-31', 'email', 'opt_in', 'opt_in'),
              ('C2', 'Bob', 'Jones', 'bob@example.com', '+447700900002', DATE '1975-05-06', 'York', 'YO1 1AA', 'GB', 800.0, 5, TIMESTAMP '2024-02-01', TIMESTAMP '2026-10-30', 'phone', 'opt_in', 'opt_in'),
              ('C3', 'Cara', 'Brown', 'cara@example.com', NULL, NULL, 'Hull', 'HU1 1AA', 'GB', 50.0, 1, TIMESTAMP '2025-01-01', TIMESTAMP '2026-09-01', 'web', 'unknown', 'unknown'),
              ('C4', 'Dan', 'Taylor', 'dan@example.com', '+353861234567', NULL, 'Dublin', NULL, 'IE', 950.0, 12, TIMESTAMP '2023-01-01', TIMESTAMP '2026-10-29', 'store', 'opt_in', 'opt_out'),
              ('C5', 'Eve', 'White', 'eve@example.com', '+447700900005', NULL, 'Bath', 'BA1 1AA', 'GB', 700.0, 3, TIMESTAMP '2024-06-01', TIMESTAMP '2026-08-01', 'email', 'opt_in', 'opt_in'),
              ('C6', 'Finn', 'Green', 'finn@example.com', '+447700900006', NULL, 'Leeds', 'LS2 2AA', 'GB', 600.0, 2, TIMESTAMP '2024-07-01', TIMESTAMP '2026-10-01', 'email', 'opt_in', 'unknown')
            ) AS t(customer_id, first_name, last_name, email, phone, date_of_birth, city, postcode, country,
                   lifetime_value, order_count, first_seen, last_seen, preferred_channel, email_consent, sms_consent)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE profiles.consent AS SELECT * FROM (VALUES
              ('C1', 'email', 'opt_in', TIMESTAMP '2025-01-01', 'crm_accounts', 'A1'),
              ('C1', 'sms', 'opt_in', TIMESTAMP '2025-01-01', 'crm_accounts', 'A1'),
              ('C2', 'email', 'opt_out', TIMESTAMP '2026-10-01', 'crm_accounts', 'A2'),
              ('C2', 'sms', 'opt_out', TIMESTAMP '2026-10-01', 'crm_accounts', 'A2'),
              ('C3', 'email', 'unknown', NULL, 'crm_accounts', 'A3'),
              ('C4', 'email', 'opt_in', TIMESTAMP '2025-03-01', 'crm_accounts', 'A4'),
              ('C4', 'sms', 'opt_out', TIMESTAMP '2025-03-01', 'crm_accounts', 'A4'),
              ('C6', 'email', 'opt_in', TIMESTAMP '2025-03-01', 'crm_accounts', 'A6'),
              ('C6', 'email', 'opt_out', TIMESTAMP '2026-03-01', 'web_events', 'W6')
            ) AS t(customer_id, channel, status, decided_at, source, source_record_id)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.contact_context AS SELECT * FROM (VALUES
              ('C1', TIMESTAMP '2026-10-30', 'phone', 'K1', 'open', 3, 4, 35.0),
              ('C2', TIMESTAMP '2026-10-30', 'chat', 'K2', 'pending', 2, 2, 20.0),
              ('C4', TIMESTAMP '2026-01-01', 'store', NULL, NULL, 0, 0, 0.0)
            ) AS t(customer_id, last_contact_at, last_contact_channel, open_case_id, open_case_status,
                   contacts_7d, contacts_30d, handling_minutes_7d)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.journeys AS SELECT * FROM (VALUES
              ('J1', 'C1', TIMESTAMP '2026-10-25', TIMESTAMP '2026-10-30', ['web', 'phone'], 2, false)
            ) AS t(journey_id, customer_id, started_at, ended_at, channels, hops, resolved)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.customer_sentiment AS SELECT * FROM (VALUES
              ('C1', 5, 4.8, 0.62, 0),
              ('C2', 5, 4.9, 0.70, 0),
              ('C3', 2, 2.5, -0.40, 2)
            ) AS t(customer_id, last_rating, average_rating, average_compound, negative_mentions_30d)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.escalations AS SELECT * FROM (VALUES
              ('C1', 'repeat_contact', 'three contacts in a week')
            ) AS t(customer_id, rule, reason)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE marts.interaction_timeline AS SELECT * FROM (VALUES
              ('C1', 'phone', 'case_opened', TIMESTAMP '2026-10-28 10:00', NULL, 'K1', 'late delivery'),
              ('C1', 'email', 'case_update', TIMESTAMP '2026-10-29 09:00', NULL, 'K1', 'chased'),
              ('C1', 'store', 'purchase', TIMESTAMP '2026-10-20 12:00', NULL, NULL, 'bought shoes'),
              ('C1', 'web', 'add_to_cart', TIMESTAMP '2026-10-29 20:00', NULL, NULL, 'added a coat'),
              ('C2', 'chat', 'case_opened', TIMESTAMP '2026-10-28 10:00', NULL, 'K2', 'refund'),
              ('C2', 'phone', 'case_update', TIMESTAMP '2026-10-30 10:00', NULL, 'K2', 'refund again'),
              ('C4', 'store', 'purchase', TIMESTAMP '2026-01-05 12:00', NULL, NULL, 'bought a sofa'),
              ('C4', 'web', 'add_to_cart', TIMESTAMP '2026-10-25 20:00', NULL, NULL, 'added a lamp'),
              ('C4', 'web', 'checkout', TIMESTAMP '2026-10-25 20:10', 'O4', NULL, 'bought the lamp'),
              ('C5', 'web', 'page_view', TIMESTAMP '2026-10-31 08:00', NULL, NULL, 'looked around')
            ) AS t(customer_id, channel, interaction_type, occurred_at, order_number, case_id, summary)
            """
        )
    finally:
        con.close()
    return path
